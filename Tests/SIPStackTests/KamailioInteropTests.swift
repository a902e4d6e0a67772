import Foundation
import NIOCore
import SIPAuth
import SIPMessage
import SIPStack
import SIPTransport
import Testing
import TestSupport

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

@Suite("digest client against Kamailio's registrar", .serialized)
struct KamailioDigestTests {
    func register(_ endpoint: SIPEndpoint, registrarPort: Int, user: String, password: String) async throws -> SIPMessage {
        let destination = SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.1", port: registrarPort), transport: .udp)
        let contact = await endpoint.contactHostPort(for: destination) ?? "127.0.0.1"
        var register = SIPMessage(request: .register, uri: "sip:127.0.0.1:\(registrarPort)")
        register.append(.from, "<sip:\(user)@127.0.0.1>;tag=\(SIPEndpoint.newTag())")
        register.append(.to, "<sip:\(user)@127.0.0.1>")
        register.append(.callID, SIPEndpoint.newCallID(host: "127.0.0.1"))
        register.append(.cseq, "1 REGISTER")
        register.append(.contact, "<sip:\(user)@\(contact)>")
        register.append(.expires, "60")
        return try await endpoint.send(register, to: destination, credentials: SIPCredentials(username: user, password: password))
    }

    @Test func registersAfterAnsweringTheChallenge() async throws {
        let registrar = try await KamailioRegistrar(users: [("8931440400000000001", "s3cret!"), ("u2", "pw2")])
        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        ) { _ in }
        let ok = try await register(endpoint, registrarPort: registrar.port, user: "8931440400000000001", password: "s3cret!")
        #expect(ok.statusCode == 200, "\(ok.text)")
        #expect(ok.cseq?.number == 2)  // the challenged REGISTER was resent with the next CSeq
        #expect(ok.contacts.first?.address?.uri.user == "8931440400000000001")
        let wrong = try await register(endpoint, registrarPort: registrar.port, user: "u2", password: "not-it")
        #expect(wrong.statusCode == 401)  // answered once, challenged again: wrong password
        await endpoint.shutdown()
    }
}
