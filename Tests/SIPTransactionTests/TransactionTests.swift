import Foundation
import SIPMessage
import SIPTransaction
import Testing

let timers = TransactionTimers()

func msg(_ s: String) -> SIPMessage {
    do { return try SIPMessage(parsing: s.replacingOccurrences(of: "\n", with: "\r\n")) } catch {
        Issue.record("fixture does not parse: \(error)")
        return SIPMessage(response: 500)
    }
}

let invite = msg("""
    INVITE sip:bob@192.0.2.4 SIP/2.0
    Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1
    Max-Forwards: 70
    Route: <sip:proxy.example.com;lr>
    From: <sip:alice@example.com>;tag=a1
    To: <sip:bob@example.com>
    Call-ID: call1@192.0.2.1
    CSeq: 7 INVITE
    Content-Length: 0


    """)

let options = msg("""
    OPTIONS sip:bob@192.0.2.4 SIP/2.0
    Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKopt1
    Max-Forwards: 70
    From: <sip:alice@example.com>;tag=a1
    To: <sip:bob@example.com>
    Call-ID: opt1@192.0.2.1
    CSeq: 1 OPTIONS
    Content-Length: 0


    """)

func response(_ code: Int, to request: SIPMessage, tag: String = "b1") -> SIPMessage {
    request.makeResponse(code, toTag: tag)
}

/// Compact view of actions for assertions.
func describe(_ actions: [TransactionAction]) -> [String] {
    actions.map { a in
        switch a {
        case .send(let m): return "send " + (m.method?.rawValue ?? String(m.statusCode ?? 0))
        case .startTimer(let t, let d): return "start \(t) \(d)"
        case .cancelTimer(let t): return "cancel \(t)"
        case .deliverToTU(let m): return "deliver " + (m.method?.rawValue ?? String(m.statusCode ?? 0))
        case .timeout: return "timeout"
        case .transportError: return "transportError"
        case .terminated: return "terminated"
        }
    }
}

@Suite struct ClientInviteTransactionTests {
    @Test func timerADoublesUntilAProvisionalArrives() {
        var t = ClientInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        #expect(describe(t.start()) == ["send INVITE", "start A 0.5 seconds", "start B 32.0 seconds"])
        #expect(describe(t.timerFired(.A)) == ["send INVITE", "start A 1.0 seconds"])
        #expect(describe(t.timerFired(.A)) == ["send INVITE", "start A 2.0 seconds"])
        #expect(describe(t.timerFired(.A)) == ["send INVITE", "start A 4.0 seconds"])
        #expect(describe(t.receivedResponse(response(180, to: invite))) == ["cancel A", "deliver 180"])
        #expect(t.state == .proceeding)
        #expect(t.timerFired(.A).isEmpty)
    }

    @Test func noRetransmissionOverReliableTransport() {
        var t = ClientInviteTransaction(request: invite, reliableTransport: true, timers: timers)
        #expect(describe(t.start()) == ["send INVITE", "start B 32.0 seconds"])
    }

    @Test func timerBTimesOut() {
        var t = ClientInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        _ = t.start()
        #expect(describe(t.timerFired(.B)) == ["cancel A", "timeout", "terminated"])
        #expect(t.state == .terminated)
    }

    @Test func twoHundredGoesToTheTUAndEndsTheTransaction() {
        var t = ClientInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        _ = t.start()
        #expect(describe(t.receivedResponse(response(200, to: invite))) == ["cancel A", "cancel B", "deliver 200", "terminated"])
    }

    @Test func nonTwoHundredFinalIsACKedByTheTransaction() throws {
        var t = ClientInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        _ = t.start()
        let busy = response(486, to: invite, tag: "busy1")
        let actions = t.receivedResponse(busy)
        #expect(describe(actions) == ["cancel A", "cancel B", "send ACK", "deliver 486", "start D 32.0 seconds"])
        guard case .send(let ack) = actions[2] else { Issue.record("no ACK"); return }
        // §17.1.1.3: same Request-URI, Call-ID, From, CSeq number, top Via and Route; To from the response.
        #expect(ack.requestURI == "sip:bob@192.0.2.4")
        #expect(ack.callID == "call1@192.0.2.1")
        #expect(ack.fromTag == "a1")
        #expect(ack.toTag == "busy1")
        #expect(ack.cseq == SIPCSeq(7, .ack))
        #expect(ack.topVia?.branch == "z9hG4bKinv1")
        #expect(ack.values(.route) == ["<sip:proxy.example.com;lr>"])
        // A retransmitted 486 is ACKed again and not delivered.
        #expect(describe(t.receivedResponse(busy)) == ["send ACK"])
        #expect(describe(t.timerFired(.D)) == ["terminated"])
    }

    @Test func timerDIsZeroOverReliableTransport() {
        var t = ClientInviteTransaction(request: invite, reliableTransport: true, timers: timers)
        _ = t.start()
        #expect(describe(t.receivedResponse(response(503, to: invite))) == ["cancel A", "cancel B", "send ACK", "deliver 503", "terminated"])
    }
}

@Suite struct ClientNonInviteTransactionTests {
    @Test func timerEDoublesToT2AndStaysAtT2InProceeding() {
        var t = ClientNonInviteTransaction(request: options, reliableTransport: false, timers: timers)
        #expect(describe(t.start()) == ["send OPTIONS", "start E 0.5 seconds", "start F 32.0 seconds"])
        #expect(describe(t.timerFired(.E)) == ["send OPTIONS", "start E 1.0 seconds"])
        #expect(describe(t.timerFired(.E)) == ["send OPTIONS", "start E 2.0 seconds"])
        #expect(describe(t.timerFired(.E)) == ["send OPTIONS", "start E 4.0 seconds"])
        #expect(describe(t.timerFired(.E)) == ["send OPTIONS", "start E 4.0 seconds"])
        _ = t.receivedResponse(response(100, to: options))
        #expect(describe(t.timerFired(.E)) == ["send OPTIONS", "start E 4.0 seconds"])
    }

    @Test func finalResponseThenTimerK() {
        var t = ClientNonInviteTransaction(request: options, reliableTransport: false, timers: timers)
        _ = t.start()
        #expect(describe(t.receivedResponse(response(200, to: options))) == ["cancel E", "cancel F", "deliver 200", "start K 5.0 seconds"])
        #expect(t.receivedResponse(response(200, to: options)).isEmpty)  // retransmission absorbed
        #expect(describe(t.timerFired(.K)) == ["terminated"])
    }

    @Test func timerFTimesOutAndTCPHasNoTimerK() {
        var t = ClientNonInviteTransaction(request: options, reliableTransport: true, timers: timers)
        #expect(describe(t.start()) == ["send OPTIONS", "start F 32.0 seconds"])
        var u = t
        #expect(describe(t.timerFired(.F)) == ["cancel E", "timeout", "terminated"])
        #expect(describe(u.receivedResponse(response(404, to: options))) == ["cancel E", "cancel F", "deliver 404", "terminated"])
    }
}

@Suite struct ServerInviteTransactionTests {
    @Test func tryingIsSentAndRetransmissionsGetTheLastProvisional() {
        var t = ServerInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        #expect(describe(t.start()) == ["send 100", "deliver INVITE"])
        #expect(describe(t.receivedRequest(invite)) == ["send 100"])
        #expect(describe(t.tuSend(response: response(180, to: invite))) == ["send 180"])
        #expect(describe(t.receivedRequest(invite)) == ["send 180"])
    }

    @Test func finalErrorIsRetransmittedOnTimerGUntilACK() {
        var t = ServerInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        _ = t.start()
        #expect(describe(t.tuSend(response: response(486, to: invite))) == ["send 486", "start G 0.5 seconds", "start H 32.0 seconds"])
        #expect(describe(t.timerFired(.G)) == ["send 486", "start G 1.0 seconds"])
        #expect(describe(t.timerFired(.G)) == ["send 486", "start G 2.0 seconds"])
        #expect(describe(t.timerFired(.G)) == ["send 486", "start G 4.0 seconds"])
        #expect(describe(t.timerFired(.G)) == ["send 486", "start G 4.0 seconds"])
        #expect(describe(t.receivedRequest(invite)) == ["send 486"])
        let ack = ClientInviteTransaction.makeACK(for: invite, response: response(486, to: invite))
        #expect(describe(t.receivedRequest(ack)) == ["cancel G", "cancel H", "start I 5.0 seconds"])
        #expect(t.state == .confirmed)
        #expect(t.receivedRequest(ack).isEmpty)  // absorbed
        #expect(describe(t.timerFired(.I)) == ["terminated"])
    }

    @Test func timerHFiresWithoutACK() {
        var t = ServerInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        _ = t.start()
        _ = t.tuSend(response: response(404, to: invite))
        #expect(describe(t.timerFired(.H)) == ["cancel G", "timeout", "terminated"])
    }

    @Test func twoHundredEndsTheTransaction() {
        var t = ServerInviteTransaction(request: invite, reliableTransport: true, timers: timers)
        _ = t.start()
        #expect(!t.hasSentFinalResponse)
        #expect(describe(t.tuSend(response: response(200, to: invite))) == ["send 200", "terminated"])
        #expect(t.hasSentFinalResponse)
    }

    @Test func reliableTransportHasNoTimerGAndZeroTimerI() {
        var t = ServerInviteTransaction(request: invite, reliableTransport: true, timers: timers)
        _ = t.start()
        #expect(describe(t.tuSend(response: response(480, to: invite))) == ["send 480", "start H 32.0 seconds"])
        let ack = ClientInviteTransaction.makeACK(for: invite, response: response(480, to: invite))
        #expect(describe(t.receivedRequest(ack)) == ["cancel G", "cancel H", "terminated"])
    }
}

@Suite struct ServerNonInviteTransactionTests {
    @Test func retransmissionsGetTheLastResponseUntilTimerJ() {
        var t = ServerNonInviteTransaction(request: options, reliableTransport: false, timers: timers)
        #expect(describe(t.start()) == ["deliver OPTIONS"])
        #expect(t.receivedRequest(options).isEmpty)  // Trying: absorbed
        #expect(describe(t.tuSend(response: response(200, to: options))) == ["send 200", "start J 32.0 seconds"])
        #expect(describe(t.receivedRequest(options)) == ["send 200"])
        #expect(t.tuSend(response: response(500, to: options)).isEmpty)  // one final response only
        #expect(describe(t.timerFired(.J)) == ["terminated"])
    }

    @Test func timerJIsZeroOverTCP() {
        var t = ServerNonInviteTransaction(request: options, reliableTransport: true, timers: timers)
        _ = t.start()
        #expect(describe(t.tuSend(response: response(200, to: options))) == ["send 200", "terminated"])
    }
}

@Suite struct TransactionMatchingTests {
    @Test func ackForNonTwoHundredMatchesItsInvite() {
        let ack = ClientInviteTransaction.makeACK(for: invite, response: response(486, to: invite))
        #expect(TransactionKey.server(for: ack) == TransactionKey.server(for: invite))
    }

    @Test func sameBranchDifferentSentByOrMethodIsAnotherTransaction() {
        var other = invite
        other.set(.via, "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKinv1")
        #expect(TransactionKey.server(for: other) != TransactionKey.server(for: invite))
        let cancel = msg("""
            CANCEL sip:bob@192.0.2.4 SIP/2.0
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1
            From: <sip:alice@example.com>;tag=a1
            To: <sip:bob@example.com>
            Call-ID: call1@192.0.2.1
            CSeq: 7 CANCEL
            Content-Length: 0


            """)
        #expect(TransactionKey.server(for: cancel) != TransactionKey.server(for: invite))
        #expect(TransactionKey.cancelTarget(for: cancel) == TransactionKey.server(for: invite))
    }

    @Test func rfc2543RequestsMatchOnTheirFields() throws {
        // RFC 4475 §3.4.1 style: no branch at all.
        let old = msg("""
            INVITE sip:UserB@example.com SIP/2.0
            Via: SIP/2.0/UDP iftgw.example.com
            From: <sip:+13035551111@ift.client.example.net;user=phone>;tag=9
            To: sip:+16505552222@ss1.example.net;user=phone
            Call-ID: inv2543.1717@ift.client.example.com
            CSeq: 56 INVITE
            Content-Length: 0


            """)
        let key = TransactionKey.server(for: old)
        guard case .legacyServer = key else { Issue.record("expected the RFC 2543 key, got \(key)"); return }
        #expect(TransactionKey.server(for: old) == key)  // a retransmission matches
        var nextRequest = old
        nextRequest.set(.cseq, "57 INVITE")
        #expect(TransactionKey.server(for: nextRequest) != key)
        let ack = ClientInviteTransaction.makeACK(for: old, response: response(404, to: old))
        #expect(TransactionKey.server(for: ack) == key)
    }

    @Test func branchThatIsOnlyTheMagicCookieFallsBackToRFC2543Matching() throws {
        // RFC 4475 §3.2.1: "branch=z9hG4bK" identifies nothing.
        var m = options
        m.set(.via, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK")
        guard case .legacyServer = TransactionKey.server(for: m) else { Issue.record("expected RFC 2543 matching"); return }
    }

    @Test func responsesMatchClientTransactionsByBranchAndCSeqMethod() {
        #expect(TransactionKey.client(for: response(200, to: invite)) == .client(branch: "z9hG4bKinv1", method: .invite))
        #expect(TransactionKey.newBranch().hasPrefix("z9hG4bK"))
        #expect(TransactionKey.newBranch() != TransactionKey.newBranch())
    }
}
