import ArgumentParser
import Foundation
import Logging
import NodeConfiguration
import SIPMessage
import SIPStack
import SIPTransport
import Store

/// `switchboard serve` — runs the node: the store (SQLite file by default,
/// created on first start) and the SIP endpoint. The call core and HTTP API
/// arrive with the next slices of the trunk service.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the switch.",
        discussion: "With no --config, defaults apply: SIP on UDP and TCP 0.0.0.0:5060, store in ./switchboard.sqlite. Environment variables SWITCHBOARD_SIP_LISTEN, SWITCHBOARD_HTTP_LISTEN, SWITCHBOARD_DATABASE and SWITCHBOARD_NODE_NAME override the file."
    )

    @Option(help: "YAML configuration file (see switchboard.example.yaml).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    func run() async throws {
        var logger = Logger(label: "switchboard")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let node: NodeConfiguration
        do { node = try NodeConfiguration.load(path: config) } catch {
            // Stop start-up with the key and the problem.
            print("error: \(error)")
            throw ExitCode(78)
        }

        let location: StoreLocation
        switch node.database {
        case .sqlite(let path): location = .sqlite(path: path)
        case .postgres(let url): location = .postgres(url: url)
        }
        let store: Store
        do { store = try await Store.open(location, logger: logger) } catch {
            print("error: \(error)")
            throw ExitCode(1)
        }
        logger.info("store open", metadata: ["store": "\(location)"])
        let interrupted = try await store.recordInterruptedCalls(now: Date().timeIntervalSince1970)
        if interrupted > 0 { logger.warning("recorded calls interrupted by the last stop", metadata: ["count": "\(interrupted)"]) }

        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: node.sipListeners.map {
                SIPListenAddress(host: $0.host, port: $0.port, transport: $0.transport == .udp ? .udp : .tcp)
            }),
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
        try await store.close()
    }
}
