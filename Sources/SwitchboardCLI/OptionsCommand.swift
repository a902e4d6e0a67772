import ArgumentParser
import Foundation
import NIOCore
import SIPMessage
import SIPResolver
import SIPStack
import SIPTransaction
import SIPTransport

/// `switchboard sip options URI` — one OPTIONS through the whole stack:
/// RFC 3263 resolution, a client transaction, the transport.
struct OptionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "options",
        abstract: "Send OPTIONS to a SIP URI and print the response.",
        discussion: "Targets come from RFC 3263 (SRV, then A/AAAA); on a timeout or 503 the next target is tried. Exits 0 on a 2xx."
    )

    @Argument(help: "Where to send it, e.g. sip:example.com or sip:192.0.2.1:5060;transport=tcp")
    var uri: String

    @Option(help: "Local address to send from.")
    var bind = "0.0.0.0"

    @Option(help: "DNS server to ask instead of the system's, as IP or IP:PORT (for testing).")
    var dnsServer: String?

    @Option(help: "Seconds to wait for a final response from each target (Timer F; RFC 3261's default is 32).")
    var timeout: Double = 32

    func validate() throws {
        guard timeout >= 0.1, timeout <= 300 else { throw ValidationError("--timeout must be between 0.1 and 300 seconds") }
    }

    func run() async throws {
        let target: SIPURI
        do { target = try SIPURI(uri) } catch { throw ValidationError("'\(uri)' is not a SIP URI: \(error)") }
        guard target.isSIP else { throw ValidationError("only sip: and sips: URIs can be probed, not \(target.scheme):") }

        let transportHint: SIPTransportKind? = target.transportParameter.flatMap { SIPTransportKind(rawValue: $0.uppercased()) }
        var resolverConfig = DNSResolverConfiguration()
        if let dnsServer {
            let parts = dnsServer.split(separator: ":")
            resolverConfig.nameserver = (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 53 : 53)
        }
        let locator = SIPServerLocator(configuration: resolverConfig)
        let host = target.host.hasPrefix("[") ? String(target.host.dropFirst().dropLast()) : target.host
        let targets = try await locator.locate(host: host, port: target.port.map(Int.init), transport: transportHint)
        let destinations = try targets.map { t in
            SIPDestination(address: try SocketAddress(ipAddress: t.host, port: Int(t.port)), transport: t.transport == .tcp ? .tcp : .udp)
        }
        guard !destinations.isEmpty else { throw ValidationError("no address found for \(target.host)") }
        print("targets: " + destinations.map(\.description).joined(separator: ", "))

        // Timer F = 64·T1 (RFC 3261 §17.1.2.2): scale T1 so that F is the timeout asked for.
        let t1 = Duration.milliseconds(Int64(timeout * 1000 / 64))
        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(
                listen: [
                    SIPListenAddress(host: bind, port: 0, transport: .udp),
                    SIPListenAddress(host: bind, port: 0, transport: .tcp),
                ],
                timers: TransactionTimers(t1: t1, t2: max(t1, min(.seconds(4), t1 * 8)))
            )
        ) { request in await request.respond(405) }

        var options = SIPMessage(request: .options, uri: target.description)
        let local = await endpoint.contactHostPort(for: destinations[0]) ?? "127.0.0.1"
        options.append(.from, "<sip:switchboard@\(local)>;tag=\(SIPEndpoint.newTag())")
        options.append(.to, "<\(target.description)>")
        options.append(.callID, SIPEndpoint.newCallID(host: local))
        options.append(.cseq, "1 OPTIONS")
        options.append(.contact, "<sip:switchboard@\(local)>")
        options.append(.accept, "application/sdp")

        do {
            let (response, destination) = try await endpoint.send(options, toFirstAvailable: destinations)
            print("response from \(destination):")
            print(response.text, terminator: "")
            await endpoint.shutdown()
            if let code = response.statusCode, !(200..<300).contains(code) { throw ExitCode(1) }
        } catch let error as SIPClientError {
            await endpoint.shutdown()
            print("error: \(error)")
            throw ExitCode(1)
        }
    }
}
