import CallControl
import CallCore
import Foundation
import Logging
import NIOCore
import NodeConfiguration
import Rating
import SIPMessage
import SIPStack
import SIPTransport
import Store
import Testing
@testable import TrunkService

/// A request as the core sees it; the tests answer nothing, they read the actions.
struct TestRequest: CallRequest {
    var message: SIPMessage
    var source: SocketAddress
    var transport: SIPTransportProtocol = .udp
    var readWhileBehind = false
}

typealias Core = TrunkCallCore<TestRequest>

let pbx = "192.0.2.10"

func clock(_ seconds: Double) -> CallClock {
    CallClock(wall: 1_800_000_000 + seconds, uptimeNanoseconds: 5_000_000_000 + UInt64(seconds * 1_000_000_000))
}

/// A core with one account (balance 10, per-second 0.60/min to 44), trunk
/// 920700-L001 matched by the PBX's address, and two gateways for every number.
func makeCore(trunkLimits: CallLimits = CallLimits(), storeCountsLimits: Bool = false) throws -> Core {
    var node = try NodeConfiguration.load(path: nil, environment: [:])
    try node.apply(yaml: """
        gateways:
          - { name: gw1, address: "198.51.100.1:5060", priority: 1 }
          - { name: gw2, address: "198.51.100.2:5060", priority: 2 }
        """)
    var core = Core(node: node, storeCountsLimits: storeCountsLimits, nonceSecret: Array("test secret".utf8), logger: Logger(label: "test"))
    core.directory.accounts["920700"] = Account(id: "920700", name: "Acme", currency: "GBP", balance: m("10"), creditLimit: 0, cliPolicy: .reject)
    core.directory.add(Trunk(accountID: "920700", name: "L001", sourceAddresses: [pbx], limits: trunkLimits))
    core.directory.decks["default"] = try RateDeck(name: "default", currency: "GBP", rates: [try rate(perMinute: "0.60")])
    for (name, port) in [("gw1", 5060), ("gw2", 5060)] {
        core.gatewayAddresses[name] = SIPDestination(address: try SocketAddress(ipAddress: name == "gw1" ? "198.51.100.1" : "198.51.100.2", port: port),
                                                     transport: .udp)
    }
    return core
}

func invite(callID: String = "a-1@pbx", from source: String = pbx, maxdur: Int? = nil, extra: String = "") throws -> TestRequest {
    let text = """
        INVITE sip:447700900123@switch.example SIP/2.0\r
        Via: SIP/2.0/UDP \(source):5060;branch=z9hG4bK-\(callID.hashValue & 0xFFFF);rport\r
        Max-Forwards: 70\r
        From: <sip:441632960000@pbx.example>;tag=atag\r
        To: <sip:447700900123@switch.example>\r
        Call-ID: \(callID)\r
        CSeq: 10 INVITE\r
        Contact: <sip:pbx@\(source):5060>\r
        \(maxdur.map { "X-simwood-maxdur: \($0)\r\n" } ?? "")\(extra)Content-Length: 0\r
        \r

        """
    return TestRequest(message: try SIPMessage(parsing: text), source: try SocketAddress(ipAddress: source, port: 5060))
}

/// An in-dialog request from the caller on call `callID` (To tag: the one we gave).
func fromCaller(_ method: String, callID: String = "a-1@pbx", toTag: String, cseq: Int = 11) throws -> TestRequest {
    let text = """
        \(method) sip:switch@203.0.113.1:5060 SIP/2.0\r
        Via: SIP/2.0/UDP \(pbx):5060;branch=z9hG4bK-\(method)-\(cseq)\r
        Max-Forwards: 70\r
        From: <sip:441632960000@pbx.example>;tag=atag\r
        To: <sip:447700900123@switch.example>;tag=\(toTag)\r
        Call-ID: \(callID)\r
        CSeq: \(cseq) \(method)\r
        Content-Length: 0\r
        \r

        """
    return TestRequest(message: try SIPMessage(parsing: text), source: try SocketAddress(ipAddress: pbx, port: 5060))
}

/// The gateway's answer to the B leg's INVITE.
func answer(_ code: Int, to b: SIPMessage) -> SIPMessage {
    var r = b.makeResponse(code, toTag: "gwtag")
    if (101..<300).contains(code) { r.append(.contact, "<sip:447700900123@198.51.100.1:5060>") }
    return r
}

extension TrunkCallCore.Action {
    var response: SIPMessage? { if case .respond(_, let r) = self { return r } else { return nil } }
    var live: LiveCall? { if case .admit(let l, _) = self { return l } else { return nil } }
    var limits: [StoredLimit]? { if case .admit(_, let l) = self { return l } else { return nil } }
    var bInvite: (SIPMessage, SIPDestination)? { if case .sendInvite(let m, let d, _) = self { return (m, d) } else { return nil } }
    var sent: (SIPMessage, SIPDestination)? { if case .send(let m, let d) = self { return (m, d) } else { return nil } }
    var ack: SIPMessage? { if case .sendACK(let m, _) = self { return m } else { return nil } }
    var cdr: (CDR, Bool)? { if case .recordCDR(let c, let refused) = self { return (c, refused) } else { return nil } }
    var armed: UInt64? { if case .armTimer(let at) = self { return at } else { return nil } }
    var relay: TrunkCallCore.Relay? { if case .relay(let r) = self { return r } else { return nil } }
    var cancelled: (String, UInt32)? { if case .cancelInvite(let c, let s) = self { return (c, s) } else { return nil } }
}

extension Array where Element == Core.Action {
    var responses: [SIPMessage] { compactMap(\.response) }
    var codes: [Int] { compactMap(\.response?.statusCode) }
}

/// Sets up a call to the point where the gateway answered; returns the B leg's INVITE and the To tag given to the caller.
func answeredCall(_ core: inout Core, callID: String = "a-1@pbx", maxdur: Int? = nil, at t: Double = 0) throws -> (b: SIPMessage, aTag: String) {
    let admitting = core.received(try invite(callID: callID, maxdur: maxdur), contact: "203.0.113.1:5060", at: clock(t))
    #expect(admitting.count == 1 && admitting.first?.live?.callID == callID)
    let started = core.admitted(callID: callID, refusedAt: nil, at: clock(t))
    let b = try #require(started.compactMap(\.bInvite).first).0
    let answered = core.bResponse(answer(200, to: b), callID: callID, at: clock(t + 5))
    let ok = try #require(answered.responses.first { $0.statusCode == 200 })
    return (b, try #require(ok.toTag))
}

@Suite struct TrunkCallCoreTests {
    @Test func aTrunkCallIsRecordedLiveBeforeItsBLegThenBridgedAndCosted() throws {
        var core = try makeCore()
        let request = try invite()
        let admitting = core.received(request, contact: "203.0.113.1:5060", at: clock(0))
        // Nothing goes to the gateway until the store has the call as live.
        #expect(admitting.count == 1)
        let live = try #require(admitting.first?.live)
        #expect(live.accountID == "920700" && live.trunkID == "920700-L001" && live.to == "447700900123" && live.from == "441632960000")
        let admitting1 = core.hasCall("a-1@pbx")
        #expect(admitting1)

        let started = core.admitted(callID: "a-1@pbx", refusedAt: nil, at: clock(0))
        let (b, gateway) = try #require(started.compactMap(\.bInvite).first)
        #expect(gateway.address.ipAddress == "198.51.100.1")
        #expect(b.callID != "a-1@pbx" && b.requestURI?.hasPrefix("sip:447700900123@198.51.100.1") == true)

        let ringing = core.bResponse(answer(180, to: b), callID: "a-1@pbx", at: clock(1))
        #expect(ringing.codes == [180])
        let answered = core.bResponse(answer(200, to: b), callID: "a-1@pbx", at: clock(5))
        #expect(answered.codes == [200])
        #expect(answered.compactMap(\.ack).count == 1)
        let aTag = try #require(answered.responses.first?.toTag)

        // 65 s after the answer the caller hangs up: 200, BYE to the gateway, the CDR.
        let bye = core.received(try fromCaller("BYE", toTag: aTag), contact: "", at: clock(70))
        #expect(bye.codes == [200])
        let byeToGateway = try #require(bye.compactMap(\.sent).first)
        #expect(byeToGateway.0.method == .bye && byeToGateway.0.callID == b.callID && byeToGateway.1.address.ipAddress == "198.51.100.1")
        let (cdr, refused) = try #require(bye.compactMap(\.cdr).first)
        #expect(!refused && cdr.durationSeconds == 65 && cdr.billedSeconds == 65 && cdr.cost == m("0.65") && cdr.finalStatus == 200)
        #expect(cdr.trunkID == "920700-L001" && cdr.callID == "a-1@pbx")
        let (stillLive, liveCount) = (core.hasCall("a-1@pbx"), core.liveCallCount)
        #expect(!stillLive && liveCount == 0)
        // The cached balance is debited until the next reload.
        let balance = core.directory.accounts["920700"]?.balance
        #expect(balance == m("9.35"))
    }

    @Test func aChannelIsHeldFromAdmissionAndGivenBackWhenTheCallEndsOrTheStoreFails() throws {
        var core = try makeCore(trunkLimits: CallLimits(channels: 1))
        _ = try answeredCall(&core, callID: "a-1@pbx")
        let second = core.received(try invite(callID: "a-2@pbx"), contact: "", at: clock(10))
        #expect(second.codes == [503])
        #expect(second.responses.first?.firstValue(CallControlHeaders.reasonHeader) == "Channel Limit Exceeded")
        #expect(second.compactMap(\.cdr).first?.1 == true)

        // The first call ends (the gateway hangs up): its channel is free again.
        var byeFromGateway = SIPMessage(request: .bye, uri: "sip:switch@203.0.113.1:5060")
        let bLeg = core.calls["a-1@pbx"]?.machine.bLegCallID
        let bCallID = try #require(bLeg)
        byeFromGateway.append(.callID, bCallID)
        byeFromGateway.append(.cseq, "1 BYE")
        let ended = core.received(TestRequest(message: byeFromGateway, source: try SocketAddress(ipAddress: "198.51.100.1", port: 5060)),
                                  contact: "", at: clock(20))
        #expect(ended.codes == [200] && ended.compactMap(\.sent).first?.0.method == .bye)
        #expect(ended.compactMap(\.cdr).first?.0.durationSeconds == 15)

        // A call the store could not record is refused and holds nothing.
        let third = core.received(try invite(callID: "a-3@pbx"), contact: "", at: clock(21))
        #expect(third.first?.live != nil)
        let failed = core.admissionFailed(callID: "a-3@pbx", at: clock(21))
        #expect(failed.codes == [500])
        let fourth = core.received(try invite(callID: "a-4@pbx"), contact: "", at: clock(22))
        #expect(fourth.first?.live != nil)
    }

    @Test func theStoreCountsAClustersLimitsAndItsRefusalIsTheCallersReason() throws {
        var core = try makeCore(trunkLimits: CallLimits(channels: 2), storeCountsLimits: true)
        let admitting = core.received(try invite(), contact: "", at: clock(0))
        let limits = try #require(admitting.first?.limits)
        #expect(limits.contains { $0.key == "trunk:920700-L001" })
        let index = try #require(limits.firstIndex { $0.key == "trunk:920700-L001" })
        let refused = core.admitted(callID: "a-1@pbx", refusedAt: index, at: clock(0))
        #expect(refused.codes == [503])
        #expect(refused.responses.first?.firstValue(CallControlHeaders.reasonHeader) == "Channel Limit Exceeded")
        #expect(refused.compactMap(\.cdr).first.map { $0.1 && $0.0.finalStatus == 503 } == true)
        let live = core.hasCall("a-1@pbx")
        #expect(refused.compactMap(\.bInvite).isEmpty && !live)
    }

    /// Read while the switch was behind its socket: refused at once, before
    /// any lookup (no live call, no CDR); the calls it already has go on.
    @Test func aNewCallReadWhileBehindIsRefusedWith503AndNothingElse() throws {
        var core = try makeCore()
        _ = try answeredCall(&core, callID: "a-1@pbx")
        var request = try invite(callID: "a-2@pbx")
        request.readWhileBehind = true
        let refused = core.received(request, contact: "", at: clock(5))
        #expect(refused.codes == [503] && refused.count == 1)
        let answer = try #require(refused.responses.first)
        #expect(answer.firstValue(CallControlHeaders.reasonHeader) == "Temporarily Overloaded")
        #expect(answer.firstValue(.retryAfter) == "1")
        #expect(answer.firstValue(.reason) == "SIP ;cause=503 ;text=\"Temporarily Overloaded\"")
        #expect(answer.toTag != nil)
        let known = core.hasCall("a-2@pbx"), first = core.hasCall("a-1@pbx")
        #expect(!known && first)
        // The same call read once the switch has caught up is taken.
        let taken = core.received(try invite(callID: "a-2@pbx"), contact: "", at: clock(6))
        #expect(taken.first?.live != nil)
    }

    @Test func aStrangerIsChallengedAndWrongCredentialsAreRefused() throws {
        var core = try makeCore()
        let challenged = core.received(try invite(from: "203.0.113.99"), contact: "", at: clock(0))
        #expect(challenged.codes == [407])
        #expect(challenged.responses.first?.firstValue(.proxyAuthenticate)?.hasPrefix("Digest") == true)
        let wrong = core.received(try invite(from: "203.0.113.99", extra: """
            Proxy-Authorization: Digest username="nobody", realm="switchboard", nonce="x", uri="sip:447700900123@switch.example", response="00"\r\n
            """), contact: "", at: clock(1))
        #expect(wrong.codes == [403])
        let ended = core.hasCall("a-1@pbx")
        #expect(!ended)
    }

    @Test func aFailedGatewayFailsOverToTheNext() throws {
        var core = try makeCore()
        _ = core.received(try invite(), contact: "", at: clock(0))
        let started = core.admitted(callID: "a-1@pbx", refusedAt: nil, at: clock(0))
        let first = try #require(started.compactMap(\.bInvite).first)
        let failedOver = core.bResponse(answer(503, to: first.0), callID: "a-1@pbx", at: clock(1))
        let second = try #require(failedOver.compactMap(\.bInvite).first)
        #expect(second.1.address.ipAddress == "198.51.100.2" && failedOver.codes.isEmpty)
        // The second cannot be reached either: the caller gets the failure and the call is recorded.
        let failed = core.bUnreachable(callID: "a-1@pbx", at: clock(2))
        #expect(failed.codes.first.map { $0 >= 500 } == true)
        let live = core.hasCall("a-1@pbx")
        #expect(failed.compactMap(\.cdr).first?.0.durationSeconds == 0 && !live)
    }

    @Test func cancelFromTheCallerCancelsTheBLegAndEndsTheCallWith487() throws {
        var core = try makeCore()
        _ = core.received(try invite(), contact: "", at: clock(0))
        let started = core.admitted(callID: "a-1@pbx", refusedAt: nil, at: clock(0))
        let b = try #require(started.compactMap(\.bInvite).first).0
        _ = core.bResponse(answer(180, to: b), callID: "a-1@pbx", at: clock(1))
        let inviteText = String(decoding: try invite().message.serialized(), as: UTF8.self)
        let cancel = try SIPMessage(parsing: inviteText.replacingOccurrences(of: "INVITE sip:", with: "CANCEL sip:")
            .replacingOccurrences(of: "CSeq: 10 INVITE", with: "CSeq: 10 CANCEL"))
        let cancelling = core.received(TestRequest(message: cancel, source: try SocketAddress(ipAddress: pbx, port: 5060)), contact: "", at: clock(2))
        let cancelled = try #require(cancelling.compactMap(\.cancelled).first)
        #expect(cancelled.0 == b.callID && cancelled.1 == b.cseq?.number)
        // The endpoint has answered the CANCEL 200 and the INVITE 487; the call is over and recorded.
        #expect(cancelling.compactMap(\.cdr).first.map { !$0.1 && $0.0.finalStatus == 487 } == true)
        let ended = core.hasCall("a-1@pbx")
        #expect(!ended)
        // The gateway's 487 to the cancelled INVITE changes nothing.
        let late = core.bResponse(answer(487, to: b), callID: "a-1@pbx", at: clock(2.1))
        #expect(late.isEmpty && core.cancelledBLegsUnanswered == 0)
    }

    /// The gateway answered 200 as the caller's CANCEL crossed it (RFC 3261 §9.1):
    /// the call is over for the caller (487, CDR), but the gateway's dialog is
    /// up and would stay up until its own ACK timeout, billing: it is ACKed and hung up.
    @Test func aGatewaysAnswerCrossingTheCancelIsACKedAndHungUp() throws {
        var core = try makeCore()
        _ = core.received(try invite(), contact: "", at: clock(0))
        let b = try #require(core.admitted(callID: "a-1@pbx", refusedAt: nil, at: clock(0)).compactMap(\.bInvite).first).0
        _ = core.bResponse(answer(180, to: b), callID: "a-1@pbx", at: clock(1))
        let inviteText = String(decoding: try invite().message.serialized(), as: UTF8.self)
        let cancel = try SIPMessage(parsing: inviteText.replacingOccurrences(of: "INVITE sip:", with: "CANCEL sip:")
            .replacingOccurrences(of: "CSeq: 10 INVITE", with: "CSeq: 10 CANCEL"))
        let cancelling = core.received(TestRequest(message: cancel, source: try SocketAddress(ipAddress: pbx, port: 5060)), contact: "", at: clock(2))
        #expect(cancelling.compactMap(\.cdr).first?.0.finalStatus == 487 && core.cancelledBLegsUnanswered == 1)
        let crossed = core.bResponse(answer(200, to: b), callID: "a-1@pbx", at: clock(2.05))
        let ack = try #require(crossed.compactMap(\.ack).first)
        #expect(ack.callID == b.callID && ack.toTag == "gwtag")
        let bye = try #require(crossed.compactMap(\.sent).first)
        #expect(bye.0.method == .bye && bye.0.callID == b.callID && bye.1.address.ipAddress == "198.51.100.1")
        #expect(crossed.responses.isEmpty && crossed.compactMap(\.cdr).isEmpty)  // the caller has its 487, the call its CDR
        #expect(core.cancelledBLegsUnanswered == 0)
        #expect(core.bResponse(answer(200, to: b), callID: "a-1@pbx", at: clock(2.1)).isEmpty)
    }

    /// A CANCEL while the store is still recording the call (the endpoint has
    /// answered 200 and 487): the gateway is never called, the channel is given
    /// back, and the CDR says 487.
    /// SIGTERM: new calls are refused at once; the calls up go on until the
    /// drain period is over; then the answered one is cleared BYE both ways,
    /// and one the store was still recording is refused once it has, its
    /// CDR ending the live-call row; the channels are given back.
    @Test func aStoppingNodeRefusesNewCallsThenClearsTheLiveOnesWithTheirCDRs() throws {
        var core = try makeCore(trunkLimits: CallLimits(channels: 2))
        let (b, _) = try answeredCall(&core, callID: "a-1@pbx")
        _ = core.received(try invite(callID: "a-2@pbx"), contact: "", at: clock(6))  // waiting for the store
        core.stopping = true
        let refused = core.received(try invite(callID: "a-3@pbx"), contact: "", at: clock(7))
        #expect(refused.codes == [503] && refused.count == 1)
        let answer = try #require(refused.responses.first)
        #expect(answer.firstValue(CallControlHeaders.reasonHeader) == "Node Shutting Down" && answer.firstValue(.retryAfter) == "30")
        #expect(core.callsInProgress == 2)

        let cleared = core.clearAll(.nodeStopping, at: clock(35))
        let byes = cleared.compactMap(\.sent).map(\.0)
        #expect(byes.map(\.method) == [.bye, .bye])
        #expect(byes.contains { $0.callID == b.callID } && byes.contains { $0.callID == "a-1@pbx" && $0.firstValue(CallControlHeaders.reasonHeader) == "Node Shutting Down" })
        let (cdr, wasRefused) = try #require(cleared.compactMap(\.cdr).first)
        #expect(!wasRefused && cdr.callID == "a-1@pbx" && cdr.reason == "Node Shutting Down" && cdr.durationSeconds == 30 && cdr.finalStatus == 200)

        let late = core.admitted(callID: "a-2@pbx", refusedAt: nil, at: clock(35.1))
        #expect(late.codes == [503] && late.compactMap(\.bInvite).isEmpty)
        #expect(late.compactMap(\.cdr).first.map { $0.0.callID == "a-2@pbx" && $0.0.reason == "Node Shutting Down" } == true)
        #expect(core.callsInProgress == 0)
        // Both channels are free: a core that stops stopping takes two calls again.
        core.stopping = false
        core.clearing = false
        for id in ["a-4@pbx", "a-5@pbx"] { #expect(core.received(try invite(callID: id), contact: "", at: clock(36)).first?.live != nil) }
    }

    @Test func cancelWhileTheStoreRecordsTheCallNeverReachesTheGateway() throws {
        var core = try makeCore(trunkLimits: CallLimits(channels: 1))
        _ = core.received(try invite(), contact: "", at: clock(0))
        let inviteText = String(decoding: try invite().message.serialized(), as: UTF8.self)
        let cancel = try SIPMessage(parsing: inviteText.replacingOccurrences(of: "INVITE sip:", with: "CANCEL sip:")
            .replacingOccurrences(of: "CSeq: 10 INVITE", with: "CSeq: 10 CANCEL"))
        let cancelling = core.received(TestRequest(message: cancel, source: try SocketAddress(ipAddress: pbx, port: 5060)), contact: "", at: clock(0.5))
        #expect(cancelling.isEmpty)
        let recorded = core.admitted(callID: "a-1@pbx", refusedAt: nil, at: clock(1))
        #expect(recorded.compactMap(\.bInvite).isEmpty && recorded.codes.isEmpty)
        let cdr = try #require(recorded.compactMap(\.cdr).first)
        #expect(cdr.0.finalStatus == 487 && cdr.0.durationSeconds == 0 && cdr.0.cost == 0 && !cdr.1)
        let live = core.hasCall("a-1@pbx")
        #expect(!live)
        // Its channel is free again.
        let next = core.received(try invite(callID: "a-2@pbx"), contact: "", at: clock(2))
        #expect(next.first?.live != nil)
    }

    @Test func maxdurClearsBothLegsWhenItsTimerIsDue() throws {
        var core = try makeCore()
        let admitted = core.received(try invite(maxdur: 30), contact: "", at: clock(0))
        #expect(admitted.first?.live != nil)
        let started = core.admitted(callID: "a-1@pbx", refusedAt: nil, at: clock(0))
        let b = try #require(started.compactMap(\.bInvite).first).0
        let answered = core.bResponse(answer(200, to: b), callID: "a-1@pbx", at: clock(5))
        // Armed for 30 s after the answer, rounded up to the 5 ms tick.
        let deadline = try #require(answered.compactMap(\.armed).first)
        #expect(deadline >= clock(35).uptimeNanoseconds && deadline < clock(35.005).uptimeNanoseconds + 1)
        let early = core.timersDue(at: clock(34.9))
        #expect(early.compactMap(\.sent).isEmpty)
        let due = core.timersDue(at: clock(35.005))
        let byes = due.compactMap(\.sent).filter { $0.0.method == .bye }
        #expect(byes.count == 2)
        // The caller is told why in X-Reason; the gateway in Reason only (T13: no X- headers upstream).
        #expect(byes.first { $0.1.address.ipAddress == pbx }?.0.firstValue(CallControlHeaders.reasonHeader) == "Maximum Duration Reached")
        #expect(byes.first { $0.1.address.ipAddress == "198.51.100.1" }?.0.firstValue(.reason)?.contains("Maximum Duration Reached") == true)
        let (cdr, _) = try #require(due.compactMap(\.cdr).first)
        #expect(cdr.durationSeconds == 30 && cdr.reason == "Maximum Duration Reached")
        let ended = core.hasCall("a-1@pbx")
        #expect(!ended)
    }

    @Test func aReINVITEIsRelayedAndItsAnswerACKedAndRelayedBack() throws {
        var core = try makeCore()
        let (b, aTag) = try answeredCall(&core)
        let reinvite = try fromCaller("INVITE", toTag: aTag)
        let relaying = core.received(reinvite, contact: "", at: clock(10))
        let relay = try #require(relaying.compactMap(\.relay).first)
        #expect(relay.request.method == .invite && relay.request.callID == b.callID && relay.destination.address.ipAddress == "198.51.100.1")
        let back = relay.answered(answer(200, to: relay.request))
        #expect(back.compactMap(\.ack).first?.callID == b.callID)
        #expect(back.codes == [200] && back.responses.first?.callID == "a-1@pbx")
        // No answer from the gateway: the caller gets 408.
        #expect(relay.answered(nil).codes == [408])
        // A request in no dialog of ours: 481.
        let stranger = core.received(try fromCaller("INFO", callID: "stranger@x", toTag: "t"), contact: "", at: clock(11))
        #expect(stranger.codes == [481])
    }

    @Test func aCallerWhoNeverACKsIsCleared() throws {
        var core = try makeCore()
        _ = try answeredCall(&core)
        let cleared = core.missingACK(callID: "a-1@pbx", at: clock(37))
        #expect(cleared.compactMap(\.sent).contains { $0.0.method == .bye })
        let live = core.hasCall("a-1@pbx")
        #expect(cleared.compactMap(\.cdr).count == 1 && !live)
        let again = core.missingACK(callID: "a-1@pbx", at: clock(38))
        #expect(again.isEmpty)
    }
}

@Suite struct SIMRoutingTests {
    func request(_ uri: String) throws -> SIPMessage {
        var m = SIPMessage(request: .invite, uri: uri)
        m.append(.callID, "c@x")
        return m
    }

    /// The event loop leaves these INVITEs to the actor service (SIP2SIM), as `TrunkCallService.simDirection` would take them.
    @Test func sim2SIMCallsAreRecognisedAndTrunkCallsAreNot() throws {
        let sim = SIMCallProfile(iccid: "8944101234567890128", accountID: "920700", hostname: "pbx.example", username: "7001",
                                 password: "pw", linkedNumber: "447700900999")
        let routing = SIMRouting(enabled: true, mobileCoreSources: ["192.0.2.50"], gatewaySources: ["198.51.100.1"],
                                 sims: [sim.iccid: sim], simsByLinkedNumber: ["447700900999": sim])
        #expect(routing.isSIMCall(try request("sip:447700900123@switch"), source: "192.0.2.50"))  // from the mobile core
        #expect(routing.isSIMCall(try request("sip:8944101234567890128@switch"), source: "192.0.2.10"))  // to a SIM
        #expect(routing.isSIMCall(try request("sip:+447700900999@switch"), source: "198.51.100.1"))  // a linked number, from a carrier
        #expect(!routing.isSIMCall(try request("sip:447700900999@switch"), source: "192.0.2.10"))  // the same number from a PBX: a trunk call
        #expect(!routing.isSIMCall(try request("sip:447700900123@switch"), source: "192.0.2.10"))
        var off = routing
        off.enabled = false
        #expect(!off.isSIMCall(try request("sip:8944101234567890128@switch"), source: "192.0.2.50"))
    }
}

@Suite struct CallOwnershipTests {
    /// Every datagram of a call goes to one loop: the caller's Call-ID by its
    /// hash, the B leg's by the marker of the loop that made it.
    @Test func aCallsDatagramsAllBelongToOneLoop() throws {
        #expect(TrunkCallLoops.owner(of: "anything@host", loops: 1) == 0)
        for loops in 2...4 {
            for i in 0..<loops {
                var core = try makeCore()
                core.callIDMarker = TrunkCallLoops.marker(loop: i)
                let bCallID = core.newBCallID()
                #expect(bCallID.contains(".l\(i)@"), "\(bCallID)")
                #expect(TrunkCallLoops.owner(of: bCallID, loops: loops) == i)
            }
            // Callers' Call-IDs spread over the loops, the same one always to the same loop.
            let owners = (0..<400).map { TrunkCallLoops.owner(of: "\($0)-4242@127.0.0.1", loops: loops) }
            #expect(owners == (0..<400).map { TrunkCallLoops.owner(of: "\($0)-4242@127.0.0.1", loops: loops) })
            for i in 0..<loops { #expect(owners.filter { $0 == i }.count > 400 / loops / 2, "loop \(i) of \(loops)") }
        }
        // A marker naming a loop that does not exist is hashed like any Call-ID.
        #expect((0..<2).contains(TrunkCallLoops.owner(of: "x.l7@host", loops: 2)))
    }
}
