import Foundation
import SIPMessage
import Testing
import TestSupport

/// A switch that reads its UDP socket more slowly than datagrams arrive
/// refuses new calls with 503 until it has caught up (`ReceiveBacklogGate`),
/// instead of letting the socket overflow. The switch is stopped (SIGSTOP)
/// while a caller's burst of INVITEs fills its socket, then let go: it finds
/// its queue backed up, answers the calls it reads from then on 503
/// "Temporarily Overloaded" with Retry-After, and once the queue has drained
/// takes new calls again (here to a destination with no rate: 404, which
/// tells a taken call from a refused one without a gateway).
@Suite struct OverloadTests {
    static let burst = 4000

    /// Trunk calls on event loops, where the socket is the queue (the actor
    /// service's backlog is its mailbox, which this does not watch).
    @Test func aSwitchBehindItsSocketRefusesNewCallsUntilItCatchesUp() async throws {
        let bed = try await TrunkTestbed.start(.sqlite, callsOnEventLoop: true)
        defer { bed.stop() }
        let caller = RawSocket(udp: true)
        // Room for the answers (the kernel caps it at net.core.rmem_max).
        var size: Int32 = 8 << 20
        setsockopt(caller.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))

        #expect(kill(bed.sw.process.pid, SIGSTOP) == 0)
        for i in 0..<Self.burst { caller.sendTo(port: bed.sw.port, Self.invite(callID: "burst-\(i)")) }
        #expect(kill(bed.sw.process.pid, SIGCONT) == 0)

        // The first final answer of each call, until none new has come for 5 s.
        var finals: [String: SIPMessage] = [:]
        var lastNew = ContinuousClock.now
        let give = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now - lastNew < .seconds(5), ContinuousClock.now < give {
            guard let bytes = await caller.receive(timeout: .seconds(1)), let m = try? SIPMessage(parsing: bytes),
                  let code = m.statusCode, code >= 200, let callID = m.callID else { continue }
            caller.sendTo(port: bed.sw.port, Self.ack(for: m))
            if finals[callID] == nil { finals[callID] = m; lastNew = .now }
        }
        let refused = finals.values.filter { $0.statusCode == 503 }
        let taken = finals.values.filter { $0.statusCode == 404 }
        #expect(!refused.isEmpty, "no call was refused: \(finals.count) answered")
        #expect(!taken.isEmpty, "no call was taken: \(finals.count) answered")
        #expect(refused.count + taken.count == finals.count,
                "other answers: \(Set(finals.values.compactMap(\.statusCode)).sorted())")
        for r in refused.prefix(20) {
            #expect(r.firstValue(SIPHeaderName("X-Reason")) == "Temporarily Overloaded")
            #expect(r.firstValue(.retryAfter) == "1")
            #expect(r.firstValue(.reason) == "SIP ;cause=503 ;text=\"Temporarily Overloaded\"")
        }
        // Some of the burst was read after the switch fell behind and some
        // before; the refused ones, read later, come after the first taken one.
        let order = { (m: SIPMessage) in Int(m.callID?.split(separator: "-").last ?? "") ?? -1 }
        if let firstTaken = taken.map(order).min(), let firstRefused = refused.map(order).min() {
            #expect(firstTaken < firstRefused, "taken from \(firstTaken), refused from \(firstRefused)")
        }

        // Caught up: a new call is taken again.
        var after: SIPMessage?
        for attempt in 0..<10 where after?.statusCode != 404 {
            let callID = "after-\(attempt)"
            caller.sendTo(port: bed.sw.port, Self.invite(callID: callID))
            let until = ContinuousClock.now + .seconds(3)
            while ContinuousClock.now < until {
                guard let bytes = await caller.receive(timeout: .seconds(1)), let m = try? SIPMessage(parsing: bytes),
                      let code = m.statusCode, code >= 200 else { continue }
                caller.sendTo(port: bed.sw.port, Self.ack(for: m))
                if m.callID == callID { after = m; break }
            }
        }
        #expect(after?.statusCode == 404, "after the burst: \(after.map { "\($0.statusCode ?? 0)" } ?? "no answer")")
        #expect(bed.sw.process.isRunning)
    }

    /// A trunk call from the seeded customer (127.0.0.1 is trunk 920700-L001)
    /// to a number its rate deck has no rate for.
    static func invite(callID: String) -> [UInt8] {
        Array("""
            INVITE sip:33123456789@127.0.0.1 SIP/2.0\r
            Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-\(callID);rport\r
            Max-Forwards: 70\r
            From: <sip:441632960000@127.0.0.1>;tag=t-\(callID)\r
            To: <sip:33123456789@127.0.0.1>\r
            Call-ID: \(callID)\r
            CSeq: 1 INVITE\r
            Contact: <sip:441632960000@127.0.0.1:5999>\r
            Content-Length: 0\r
            \r

            """.utf8)
    }

    /// The ACK of a final non-2xx answer (RFC 3261 §17.1.1.3): the INVITE's
    /// branch, the answer's To tag, so the switch stops retransmitting it.
    static func ack(for response: SIPMessage) -> [UInt8] {
        let callID = response.callID ?? ""
        return Array("""
            ACK sip:33123456789@127.0.0.1 SIP/2.0\r
            Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-\(callID);rport\r
            Max-Forwards: 70\r
            From: <sip:441632960000@127.0.0.1>;tag=t-\(callID)\r
            To: \(response.firstValue(.to) ?? "<sip:33123456789@127.0.0.1>")\r
            Call-ID: \(callID)\r
            CSeq: 1 ACK\r
            Content-Length: 0\r
            \r

            """.utf8)
    }
}
