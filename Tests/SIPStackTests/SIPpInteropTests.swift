import Foundation
import NIOCore
import SIPMessage
import SIPStack
import SIPTransport
import Testing
import TestSupport


let sdpOffer = Array("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 16000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n".utf8)

/// A minimal UAS on the stack: 180, then 200 with SDP to INVITE; 200 to BYE and OPTIONS.
func startAnsweringUAS(transport: SIPTransportProtocol) async throws -> (SIPEndpoint, Int) {
    let endpoint = try await SIPEndpoint.start(
        configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: "127.0.0.1", port: 0, transport: transport)])
    ) { _ in }
    let port = try #require(await endpoint.boundAddresses.first?.address.port)
    await endpoint.setHandler { request in
        switch request.message.method {
        case .invite?:
            let tag = SIPEndpoint.newTag()
            await request.respond(180, toTag: tag)
            await request.respond(200, toTag: tag, headers: [(.contact, "<sip:uas@127.0.0.1:\(port);transport=\(transport.rawValue.lowercased())>")],
                                  body: sdpOffer, contentType: "application/sdp")
        case .bye?, .options?:
            await request.respond(200)
        case .ack?, .cancel?:
            break
        default:
            await request.respond(501)
        }
    }
    return (endpoint, port)
}

func runSIPp(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> SIPpResult {
    let sipp = try ExternalProcess("sipp", arguments + ["-nostdin", "-timeout", "100s", "-timeout_error"])
    let (status, output, timedOut) = await sipp.wait(timeout: timeout)
    #expect(!timedOut, "SIPp did not finish in time")
    return SIPpResult(status: status, output: output)
}

/// SIPp plays the customer's UAC (INVITE/180/200/ACK/BYE); the stack answers.
@Suite("SIPp uac → stack UAS", .serialized)
struct SIPpUACInteropTests {
    @Test(arguments: [SIPTransportProtocol.udp, .tcp])
    func sippCallsAreAnswered(transport: SIPTransportProtocol) async throws {
        let (endpoint, port) = try await startAnsweringUAS(transport: transport)
        defer { Task { await endpoint.shutdown() } }
        let calls = 20
        let result = try await runSIPp([
            "-sn", "uac", "127.0.0.1:\(port)", "-t", transport == .udp ? "u1" : "t1",
            "-i", "127.0.0.1", "-p", "\(freePort())", "-m", "\(calls)", "-r", "20", "-l", "20",
        ])
        #expect(result.status == 0, "SIPp exit status \(result.status):\n\(result.output.suffix(3000))")
        #expect(result.successful == calls)
        #expect(result.failed == 0)
        await endpoint.shutdown()
    }

    /// With SIPp dropping 10 % of messages, retransmissions (Timer A/E on its
    /// side, Timer G/2xx retransmission and absorption on ours) recover every call.
    @Test func everyCallCompletesWithTenPercentLoss() async throws {
        let (endpoint, port) = try await startAnsweringUAS(transport: .udp)
        let calls = 30
        let result = try await runSIPp([
            "-sn", "uac", "127.0.0.1:\(port)", "-t", "u1", "-i", "127.0.0.1", "-p", "\(freePort())",
            "-m", "\(calls)", "-r", "10", "-l", "30", "-lost", "10",
        ], timeout: .seconds(180))
        #expect(result.status == 0, "SIPp exit status \(result.status):\n\(result.output.suffix(3000))")
        #expect(result.successful == calls)
        await endpoint.shutdown()
    }
}

/// A UAC built on the stack places calls to SIPp's uas scenario.
struct StackUAC {
    let endpoint: SIPEndpoint
    let destination: SIPDestination
    let target: String
    /// A loose-routing proxy to send the INVITE through (pre-loaded Route, RFC 3261 §8.1.2).
    var outboundProxy: String? = nil

    /// One call: INVITE, wait for 200, ACK, BYE, wait for 200. Returns the final codes.
    func call(index: Int) async throws -> (invite: Int, bye: Int) {
        let contactHostPort = await endpoint.contactHostPort(for: destination) ?? "127.0.0.1"
        let callID = SIPEndpoint.newCallID(host: "127.0.0.1")
        let fromTag = SIPEndpoint.newTag()
        var invite = SIPMessage(request: .invite, uri: target)
        invite.append(.from, "<sip:uac@127.0.0.1>;tag=\(fromTag)")
        invite.append(.to, "<\(target)>")
        invite.append(.callID, callID)
        invite.append(.cseq, "1 INVITE")
        invite.append(.contact, "<sip:uac@\(contactHostPort)>")
        invite.append(.contentType, "application/sdp")
        if let outboundProxy { invite.append(.route, "<\(outboundProxy);lr>") }
        invite.body = sdpOffer
        let ok: SIPMessage
        do { ok = try await endpoint.send(invite, to: destination) } catch { throw CallFailure(step: "INVITE \(callID)", error: error) }
        guard ok.statusCode == 200, let toHeader = ok.firstValue(.to) else { return (ok.statusCode ?? 0, 0) }
        let remoteTarget = ok.contacts.first?.address?.uri.description ?? target
        // The dialog's route set: the 2xx's Record-Route in reverse (RFC 3261 §12.1.2).
        let routeSet = ok.values(.recordRoute).reversed()

        var ack = SIPMessage(request: .ack, uri: remoteTarget)
        ack.append(.from, "<sip:uac@127.0.0.1>;tag=\(fromTag)")
        ack.append(.to, toHeader)
        ack.append(.callID, callID)
        ack.append(.cseq, "1 ACK")
        for r in routeSet { ack.append(.route, r) }
        try await endpoint.sendACK(ack, to: destination)

        var bye = SIPMessage(request: .bye, uri: remoteTarget)
        bye.append(.from, "<sip:uac@127.0.0.1>;tag=\(fromTag)")
        bye.append(.to, toHeader)
        bye.append(.callID, callID)
        bye.append(.cseq, "2 BYE")
        for r in routeSet { bye.append(.route, r) }
        let byeResponse: SIPMessage
        do { byeResponse = try await endpoint.send(bye, to: destination) } catch { throw CallFailure(step: "BYE \(callID)", error: error) }
        return (200, byeResponse.statusCode ?? 0)
    }
}

struct CallFailure: Error, CustomStringConvertible {
    let step: String
    let error: any Error
    var description: String { "\(step): \(error)" }
}

@Suite("stack UAC → SIPp uas", .serialized)
struct SIPpUASInteropTests {
    func run(calls: Int, lossPercent: Int?) async throws {
        let sippPort = freePort()
        var args = ["-i", "127.0.0.1", "-p", "\(sippPort)", "-m", "\(calls)", "-nostdin"]
        if let lossPercent {
            // SIPp's built-in uas cannot recover from losing its own 200 (see the scenario's comment).
            args += ["-sf", fixture("sipp/uas_lossy.xml"), "-lost", "\(lossPercent)",
                     "-default_behaviors", "all,-abortunexp"]
        } else {
            args += ["-sn", "uas"] + tolerateRetransmissions
        }
        let sipp = try ExternalProcess("sipp", args)
        defer { sipp.kill() }
        try await Task.sleep(for: .milliseconds(500))  // let SIPp bind its socket

        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        ) { request in await request.respond(200) }
        let uac = StackUAC(endpoint: endpoint,
                           destination: SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.1", port: sippPort), transport: .udp),
                           target: "sip:service@127.0.0.1:\(sippPort)")
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for i in 0..<calls { group.addTask { try await uac.call(index: i) } }
            var all: [(Int, Int)] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == calls)
        #expect(results.allSatisfy { $0 == (200, 200) }, "\(results)")
        let (status, output, _) = await sipp.wait(timeout: .seconds(60))
        let sippResult = SIPpResult(status: status, output: output)
        if lossPercent == nil {
            #expect(sippResult.status == 0, "SIPp uas exit status \(status):\n\(output.suffix(3000))")
            #expect(sippResult.successful == calls)
        } else {
            #expect(sippResult.counter("Incoming calls created") == calls, "\(output.suffix(3000))")
        }
        await endpoint.shutdown()
    }

    @Test func callsReachSIPpUAS() async throws {
        try await run(calls: 10, lossPercent: nil)
    }

    @Test func callsSurviveTenPercentLoss() async throws {
        try await run(calls: 20, lossPercent: 10)
    }
}
