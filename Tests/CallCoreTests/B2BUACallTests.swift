import CallControl
import CallCore
import Foundation
import SIPMessage
import Testing

let aInvite: SIPMessage = {
    let text = """
        INVITE sip:447700900123@switch.example SIP/2.0\r
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport\r
        Max-Forwards: 70\r
        From: "Reception" <sip:441632960000@pbx.customer.example>;tag=atag\r
        To: <sip:447700900123@switch.example>\r
        Call-ID: a-leg-1@192.0.2.10\r
        CSeq: 10 INVITE\r
        Contact: <sip:pbx@192.0.2.10:5060>\r
        X-simwood-tag: CUST001-AB384720\r
        X-simwood-maxdur: 120\r
        Content-Type: application/sdp\r
        Content-Length: 10\r
        \r
        v=0\r
        s=-\r

        """
    return (try? SIPMessage(parsing: text)) ?? SIPMessage(request: .invite, uri: "broken")
}()

let gateways = [GatewayTarget(name: "gw1", hostPort: "gw1.carrier.example"), GatewayTarget(name: "gw2", hostPort: "gw2.carrier.example:5080")]

func newCall(maxDuration: Int? = 120, costCapSeconds: Int? = nil) -> B2BUACall {
    B2BUACall(invite: aInvite, gateways: gateways, bCallID: "b-leg-1@switch", bFromTag: "btag", aToTag: "a-to",
              localContact: "203.0.113.1:5060", maxDuration: maxDuration, costCapSeconds: costCapSeconds)
}

/// A response from the gateway to the B leg's INVITE.
func gatewayResponse(_ code: Int, to invite: SIPMessage, sdp: Bool = false) -> SIPMessage {
    var r = invite.makeResponse(code, toTag: "gwtag")
    if code < 300, code > 100 { r.append(.contact, "<sip:447700900123@198.51.100.5:5060>") }
    if sdp { r.append(.contentType, "application/sdp"); r.body = Array("v=0\r\ns=gw\r\n".utf8) }
    return r
}

extension B2BUACall.Action {
    var bRequest: SIPMessage? { if case .sendToB(let m, _) = self { return m } else { return nil } }
    var gateway: Int? { if case .sendToB(_, let g) = self { return g } else { return nil } }
    var aResponse: SIPMessage? { if case .respondToA(let m) = self { return m } else { return nil } }
    var aRequest: SIPMessage? { if case .sendToA(let m) = self { return m } else { return nil } }
    var record: CallRecord? { if case .writeRecord(let r) = self { return r } else { return nil } }
    var timer: (CallTimer, Int)? { if case .startTimer(let t, let s) = self { return (t, s) } else { return nil } }
}

@Suite struct B2BUACallTests {
    @Test func bLegHidesTheCustomersDialogAndStripsControls() throws {
        var call = newCall()
        let actions = call.start(now: 0)
        let b = try #require(actions.first?.bRequest)
        #expect(actions.first?.gateway == 0)
        #expect(b.requestURI == "sip:447700900123@gw1.carrier.example")
        #expect(b.callID == "b-leg-1@switch" && b.fromTag == "btag" && b.toTag == nil)
        #expect(b.from?.uri.user == "441632960000")
        #expect(b.maxForwards == 69)
        #expect(!b.contains("X-simwood-tag") && !b.contains("X-simwood-maxdur"))
        #expect(b.body == aInvite.body && b.contentType == "application/sdp")
        #expect(b.vias.isEmpty)  // the endpoint adds its own Via
    }

    @Test func answeredCallRelaysAndClearsByCallerBye() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        let ringing = call.bLegResponse(gatewayResponse(180, to: b), now: 1)
        let r180 = try #require(ringing.first?.aResponse)
        #expect(r180.statusCode == 180 && r180.toTag == "a-to" && r180.callID == "a-leg-1@192.0.2.10" && r180.cseq?.number == 10)
        let answer = call.bLegResponse(gatewayResponse(200, to: b, sdp: true), now: 5)
        let ack = try #require(answer.first?.bRequest)
        #expect(ack.method == .ack && ack.toTag == "gwtag" && ack.requestURI == "sip:447700900123@198.51.100.5:5060")
        #expect(ack.cseq == SIPCSeq(1, .ack))
        let r200 = try #require(answer.compactMap(\.aResponse).first)
        #expect(r200.statusCode == 200 && r200.body == Array("v=0\r\ns=gw\r\n".utf8))
        #expect(answer.compactMap(\.timer).map(\.0) == [.maximumDuration])
        #expect(answer.compactMap(\.timer).first?.1 == 120)
        #expect(call.state == .answered)

        let bye = call.aLegBye(now: 65.2)
        let byeB = try #require(bye.first?.bRequest)
        #expect(byeB.method == .bye && byeB.cseq == SIPCSeq(2, .bye) && byeB.toTag == "gwtag")
        let record = try #require(bye.compactMap(\.record).first)
        #expect(record.durationSeconds == 61 && record.clearedBy == .caller && record.finalStatus == 200 && record.gateway == "gw1")
        #expect(call.aLegBye(now: 66).isEmpty)  // already over
    }

    @Test func calleeByeIsSentToTheCallerInTheADialog() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(200, to: b), now: 1)
        let actions = call.bLegBye(now: 31)
        let bye = try #require(actions.first?.aRequest)
        #expect(bye.method == .bye && bye.requestURI == "sip:pbx@192.0.2.10:5060")
        #expect(bye.fromTag == "a-to" && bye.toTag == "atag" && bye.callID == "a-leg-1@192.0.2.10")
        #expect(actions.compactMap(\.record).first?.clearedBy == .callee)
    }

    @Test func failsOverOn503AndTimeoutThenRelaysTheLastAnswer() throws {
        var call = newCall()
        let first = try #require(call.start(now: 0).first?.bRequest)
        let second = call.bLegResponse(gatewayResponse(503, to: first), now: 1)
        let b2 = try #require(second.first?.bRequest)
        #expect(second.first?.gateway == 1)
        #expect(b2.requestURI == "sip:447700900123@gw2.carrier.example:5080" && b2.cseq?.number == 2)
        // The second gateway never answers: Timer B ends it with 408 to the caller.
        let end = call.bLegTimeout(now: 33)
        #expect(end.first?.aResponse?.statusCode == 408)
        #expect(end.compactMap(\.record).first?.finalStatus == 408)
        #expect(call.state == .ended)
    }

    @Test func busyIsTheCalleesAnswerAndIsNotRetried() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        let actions = call.bLegResponse(gatewayResponse(486, to: b), now: 2)
        #expect(actions.first?.aResponse?.statusCode == 486)
        #expect(actions.compactMap(\.bRequest).isEmpty)
    }

    @Test func callerCancelsBeforeAnswer() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(180, to: b), now: 1)
        let actions = call.aLegCancel(now: 4)
        let cancel = try #require(actions.first?.bRequest)
        #expect(cancel.method == .cancel && cancel.cseq == SIPCSeq(1, .cancel) && cancel.callID == "b-leg-1@switch")
        #expect(cancel.requestURI == b.requestURI)
        #expect(actions.compactMap(\.record).first?.finalStatus == 487)
    }

    @Test(arguments: [CallTimer.maximumDuration, .costCap])
    func platformClearsBothWaysWithXReason(timer: CallTimer) throws {
        var call = newCall(maxDuration: 120, costCapSeconds: 90)
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(200, to: b), now: 10)
        let actions = call.timerFired(timer, now: timer == .costCap ? 100 : 130)
        let text = timer == .maximumDuration ? "Maximum Duration Reached" : "Maximum Cost Reached"
        let toA = try #require(actions.compactMap(\.aRequest).first)
        #expect(toA.method == .bye && toA.firstValue("X-Reason") == text)
        #expect(toA.firstValue(.reason) == "SIP ;cause=\(timer == .maximumDuration ? 408 : 402) ;text=\"\(text)\"")
        let toB = try #require(actions.compactMap(\.bRequest).first)
        #expect(toB.method == .bye && !toB.contains("X-Reason") && toB.contains(.reason))  // X-Reason never goes upstream (T13)
        let record = try #require(actions.compactMap(\.record).first)
        #expect(record.reason == text && record.clearedBy == .platform)
        #expect(record.durationSeconds == (timer == .costCap ? 90 : 120))
    }

    @Test func answerCrossingTheCancelIsAcknowledgedAndHungUp() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(180, to: b), now: 1)
        _ = call.aLegCancel(now: 2)
        let late = call.bLegResponse(gatewayResponse(200, to: b), now: 2.1)
        #expect(late.compactMap(\.bRequest).map(\.method) == [.ack, .bye])
        #expect(late.compactMap(\.bRequest).allSatisfy { $0.toTag == "gwtag" && $0.callID == "b-leg-1@switch" })
        #expect(late.compactMap(\.aResponse).isEmpty && late.compactMap(\.record).isEmpty)  // the caller already has its 487
        let again = call.bLegResponse(gatewayResponse(200, to: b), now: 2.2)
        #expect(again.isEmpty)  // a retransmission: once is enough
    }

    @Test func reInviteIsRelayedInTheOtherDialogWithItsBody() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(200, to: b), now: 1)
        var reinvite = SIPMessage(request: .invite, uri: "sip:b2bua@203.0.113.1:5060")
        reinvite.append(.callID, "a-leg-1@192.0.2.10")
        reinvite.append(.cseq, "11 INVITE")
        reinvite.append(.contentType, "application/sdp")
        reinvite.append(CallControlHeaders.tagHeader, "leak")
        reinvite.body = Array("v=0\r\ns=hold\r\n".utf8)
        let relayedReinvite = call.relayFromA(reinvite)
        let toB = try #require(relayedReinvite)
        #expect(toB.method == .invite && toB.callID == "b-leg-1@switch" && toB.toTag == "gwtag" && toB.fromTag == "btag")
        #expect(toB.cseq == SIPCSeq(2, .invite) && toB.body == reinvite.body && !toB.contains(CallControlHeaders.tagHeader))
        #expect(toB.requestURI == "sip:447700900123@198.51.100.5:5060")  // the callee's Contact
        let answer = gatewayResponse(200, to: toB, sdp: true)
        let relayed = call.relayResponse(answer, to: reinvite)
        #expect(relayed.statusCode == 200 && relayed.callID == "a-leg-1@192.0.2.10" && relayed.cseq == SIPCSeq(11, .invite))
        #expect(relayed.body == answer.body && relayed.contains(.contact))
        #expect(call.bLegACK(cseq: 2).cseq == SIPCSeq(2, .ack))
        // From the callee: toward the caller's Contact, in the A dialog.
        var update = SIPMessage(request: .update, uri: "sip:b2bua@203.0.113.1:5060")
        update.append(.callID, "b-leg-1@switch")
        update.append(.cseq, "5 UPDATE")
        let relayedUpdate = call.relayFromB(update)
        let toA = try #require(relayedUpdate)
        #expect(toA.method == .update && toA.callID == "a-leg-1@192.0.2.10" && toA.requestURI == "sip:pbx@192.0.2.10:5060")
        #expect(toA.fromTag == "a-to" && toA.toTag == "atag")
    }

    @Test func inDialogRequestsBeforeTheAnswerAreRefused() throws {
        var call = newCall()
        _ = call.start(now: 0)
        let relayed = call.relayFromA(SIPMessage(request: .info, uri: "sip:x"))
        #expect(relayed?.method == nil)
    }

    @Test func missingACKClearsBothLegs() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(200, to: b), now: 1)
        let actions = call.aLegACKTimeout(now: 33)
        #expect(actions.compactMap(\.aRequest).first?.method == .bye && actions.compactMap(\.bRequest).first?.method == .bye)
        let record = try #require(actions.compactMap(\.record).first)
        #expect(record.clearedBy == .platform && record.reason == "No ACK From Caller" && record.durationSeconds == 32)
    }

    @Test func balanceRunningOutClearsWithItsOwnReason() throws {
        var call = B2BUACall(invite: aInvite, gateways: gateways, bCallID: "b-leg-1@switch", bFromTag: "btag", aToTag: "a-to",
                             localContact: "203.0.113.1:5060", maxDuration: nil, costCapSeconds: nil, balanceCapSeconds: 45,
                             warning: "Invalid CLI")
        let b = try #require(call.start(now: 0).first?.bRequest)
        let answered = call.bLegResponse(gatewayResponse(200, to: b), now: 1)
        #expect(answered.compactMap(\.timer).map(\.0) == [.balanceCap])
        #expect(answered.compactMap(\.aResponse).first?.firstValue("X-Warning") == "Invalid CLI")
        let actions = call.timerFired(.balanceCap, now: 46.004)
        #expect(actions.compactMap(\.aRequest).first?.firstValue("X-Reason") == "Balance now below limit")
        #expect(actions.compactMap(\.record).first?.durationSeconds == 45)
    }

    /// The node is stopping and the drain period is over (`platformClear`).
    @Test func stoppingNodeClearsAnAnsweredCallBothWaysWithItsReason() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(200, to: b), now: 10)
        let actions = call.platformClear(.nodeStopping, now: 25)
        let toA = try #require(actions.compactMap(\.aRequest).first)
        #expect(toA.method == .bye && toA.firstValue("X-Reason") == "Node Shutting Down")
        #expect(toA.firstValue(.reason) == "SIP ;cause=503 ;text=\"Node Shutting Down\"")
        let toB = try #require(actions.compactMap(\.bRequest).first)
        #expect(toB.method == .bye && toB.toTag == "gwtag" && !toB.contains("X-Reason") && toB.contains(.reason))
        let record = try #require(actions.compactMap(\.record).first)
        #expect(record.finalStatus == 200 && record.reason == "Node Shutting Down" && record.clearedBy == .platform && record.durationSeconds == 15)
        #expect(call.state == .ended && call.platformClear(.nodeStopping, now: 26).isEmpty)
    }

    @Test func stoppingNodeRefusesACallStillRingingAndCancelsItsBLeg() throws {
        var call = newCall()
        let b = try #require(call.start(now: 0).first?.bRequest)
        _ = call.bLegResponse(gatewayResponse(180, to: b), now: 1)
        let actions = call.platformClear(.nodeStopping, now: 3)
        let cancel = try #require(actions.compactMap(\.bRequest).first)
        #expect(cancel.method == .cancel && cancel.cseq == SIPCSeq(1, .cancel) && cancel.callID == "b-leg-1@switch")
        let refusal = try #require(actions.compactMap(\.aResponse).first)
        #expect(refusal.statusCode == 503 && refusal.firstValue("X-Reason") == "Node Shutting Down" && refusal.firstValue(.retryAfter) == "30")
        #expect(actions.compactMap(\.record).first?.finalStatus == 503 && actions.compactMap(\.record).first?.reason == "Node Shutting Down")
        // The gateway's answer crossing the CANCEL is acknowledged and hung up, as for the caller's CANCEL.
        #expect(call.bLegResponse(gatewayResponse(200, to: b), now: 3.1).compactMap(\.bRequest).map(\.method) == [.ack, .bye])
    }

    @Test func noGatewayMeans503() {
        var call = B2BUACall(invite: aInvite, gateways: [], bCallID: "b", bFromTag: "t", aToTag: "a", localContact: "h", maxDuration: nil, costCapSeconds: nil)
        #expect(call.start(now: 0).first?.aResponse?.statusCode == 503)
    }
}
