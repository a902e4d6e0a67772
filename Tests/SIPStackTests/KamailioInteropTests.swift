import Foundation
import NIOCore
import SIPMessage
import SIPStack
import SIPTransport
import Testing

/// Kamailio (Debian's package) as the customer's SIP proxy.
final class KamailioProxy {
    let process: ExternalProcess
    let port: Int
    let runDirectory: String

    init() async throws {
        port = freePort()
        runDirectory = NSTemporaryDirectory() + "kamailio-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        process = try ExternalProcess("kamailio", [
            "-f", fixture("kamailio/proxy.cfg"), "-DD", "-E", "-l", "udp:127.0.0.1:\(port)",
            "-Y", runDirectory, "-w", runDirectory, "-m", "32", "-M", "8", "-n", "1",
        ])
        try await Task.sleep(for: .milliseconds(1500))
        if !process.isRunning {
            let (_, output, _) = await process.wait(timeout: .seconds(1))
            Issue.record("kamailio did not start: \(output.suffix(2000))")
        }
    }

    deinit {
        process.kill()
        try? FileManager.default.removeItem(atPath: runDirectory)
    }
}

@Suite("Kamailio interop", .serialized)
struct KamailioInteropTests {
    @Test func optionsToolGetsKamailiosAnswer() async throws {
        let kamailio = try await KamailioProxy()
        let tool = try ExternalProcess(try switchboardBinary(), ["sip", "options", "sip:127.0.0.1:\(kamailio.port)", "--bind", "127.0.0.1", "--timeout", "5"])
        let (status, output, _) = await tool.wait(timeout: .seconds(20))
        #expect(status == 0, "\(output)")
        #expect(output.contains("SIP/2.0 200 Kamailio Keepalive"))
        #expect(output.contains("Server: kamailio"))
    }

    /// Stack UAC → Kamailio (stateful, Record-Route) → SIPp uas: the INVITE
    /// goes through the proxy, and ACK and BYE follow the recorded route.
    @Test func callsThroughKamailioFollowTheRouteSet() async throws {
        let kamailio = try await KamailioProxy()
        let sippPort = freePort()
        let sipp = try ExternalProcess("sipp", ["-sf", fixture("sipp/uas_rr.xml"), "-i", "127.0.0.1", "-p", "\(sippPort)", "-m", "5", "-nostdin"])
        defer { sipp.kill() }
        try await Task.sleep(for: .milliseconds(500))
        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        ) { request in await request.respond(200) }
        let uac = StackUAC(endpoint: endpoint,
                           destination: SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.1", port: kamailio.port), transport: .udp),
                           target: "sip:service@127.0.0.1:\(sippPort)",
                           outboundProxy: "sip:127.0.0.1:\(kamailio.port)")
        for i in 0..<5 {
            do {
                let (invite, bye) = try await uac.call(index: i)
                #expect(invite == 200 && bye == 200)
            } catch {
                let (_, log, _) = await kamailio.process.wait(timeout: .zero)
                Issue.record("call \(i) failed: \(error)\nkamailio said:\n\(log.suffix(4000))")
                break
            }
        }
        let (status, output, _) = await sipp.wait(timeout: .seconds(30))
        #expect(status == 0, "\(output.suffix(2000))")
        #expect(SIPpResult(status: status, output: output).successful == 5)
        await endpoint.shutdown()
    }
}
