import ArgumentParser
import Logging
import SIPMessage
import SIPStack
import SIPTransport

/// `switchboard serve` — runs the node. Today that is the SIP endpoint alone:
/// the call core, store and HTTP API arrive with the next issues.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the switch: SIP on UDP and TCP."
    )

    @Option(help: "Address to listen on for SIP (IPv4 or IPv6 literal).")
    var sipHost = "0.0.0.0"

    @Option(help: "SIP port for UDP and TCP.")
    var sipPort = 5060

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (1...65535).contains(sipPort) else { throw ValidationError("--sip-port must be 1…65535, got \(sipPort)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    func run() async throws {
        var logger = Logger(label: "switchboard")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: [
                SIPListenAddress(host: sipHost, port: sipPort, transport: .udp),
                SIPListenAddress(host: sipHost, port: sipPort, transport: .tcp),
            ]),
            logger: logger
        ) { request in
            switch request.message.method {
            case .options?:
                // Keep-alive and capability probe (RFC 3261 §11.2).
                await request.respond(200, headers: [(.allow, "INVITE, ACK, CANCEL, BYE, OPTIONS"), (.accept, "application/sdp")])
            case .ack?, .cancel?:
                break
            default:
                await request.respond(503, reasonPhrase: "Service Unavailable (call handling is not enabled on this node yet)",
                                      headers: [(.retryAfter, "300")])
            }
        }
        for b in await endpoint.boundAddresses {
            logger.info("listening", metadata: ["transport": "\(b.transport)", "address": "\(b.address)"])
        }
        // Run until interrupted.
        while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
        await endpoint.shutdown()
    }
}
