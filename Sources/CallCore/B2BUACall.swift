import CallControl
import SIPMessage

/// An upstream gateway a call can be routed to.
public struct GatewayTarget: Sendable, Equatable {
    public var name: String
    /// Request-URI host[:port] for the B leg, e.g. "gw1.carrier.example:5060".
    public var hostPort: String
    public init(name: String, hostPort: String) { self.name = name; self.hostPort = hostPort }
}

/// Timers a call owns (distinct from transaction timers).
public enum CallTimer: Sendable, Hashable {
    /// T5: X-simwood-maxdur reached.
    case maximumDuration
    /// T4 / T10: the running cost reaches the cap (maxcost, or balance + credit).
    case costCap
}

/// What ended the call, for the CDR.
public struct CallRecord: Sendable, Equatable {
    public var aLegCallID: String
    public var gateway: String?
    public var setupAt: Double
    public var answeredAt: Double?
    public var endedAt: Double
    /// Final status of the call set-up (200 for answered calls).
    public var finalStatus: Int
    /// The platform's X-Reason when the platform cleared or refused it.
    public var reason: String?
    /// Who hung up an answered call.
    public var clearedBy: ClearedBy?

    public enum ClearedBy: String, Sendable { case caller, callee, platform }

    /// Whole seconds from answer to end (0 if never answered).
    public var durationSeconds: Int {
        guard let answeredAt else { return 0 }
        return max(0, Int((endedAt - answeredAt).rounded(.up)))
    }
}

/// One call through the B2BUA as a pure state machine (SPEC.md trunk service):
/// an A leg from the customer, a B leg to an upstream gateway with its own
/// Call-ID, tags and CSeq (topology hiding), failover across gateways on
/// 408/5xx/timeout, and clearing by either side or by the platform.
/// The owner performs the actions: it sends what it is told on the legs'
/// transactions and keeps the timers.
public struct B2BUACall: Sendable {
    public enum State: Sendable, Equatable { case routing, early, answered, ended }

    public enum Action: Sendable {
        /// A response on the A leg's INVITE server transaction.
        case respondToA(SIPMessage)
        /// A request to send on the B leg to gateway `gateway` (INVITE, CANCEL, ACK, BYE, or a relayed in-dialog request).
        case sendToB(SIPMessage, gateway: Int)
        /// A request to send to the caller in the A dialog (BYE).
        case sendToA(SIPMessage)
        case startTimer(CallTimer, seconds: Int)
        case cancelTimer(CallTimer)
        /// The call is over: store its record.
        case writeRecord(CallRecord)
    }

    public private(set) var state: State = .routing
    let aInvite: SIPMessage
    let gateways: [GatewayTarget]
    let bCallID: String
    let bFromTag: String
    let aToTag: String
    let localContact: String
    let maxDuration: Int?
    let costCapSeconds: Int?
    var attempt = 0
    var bInvite: SIPMessage?
    var bToTag: String?
    var bRemoteTarget: String?
    var bCSeq: UInt32 = 1
    var aCSeq: UInt32 = 1
    var setupAt: Double = 0
    var answeredAt: Double?

    /// - Parameters:
    ///   - invite: the A leg's INVITE, already admitted by policy.
    ///   - gateways: in failover order.
    ///   - costCapSeconds: when the running cost reaches the cap (from `Rate.secondsUntilCost`).
    public init(invite: SIPMessage, gateways: [GatewayTarget], bCallID: String, bFromTag: String, aToTag: String,
                localContact: String, maxDuration: Int?, costCapSeconds: Int?) {
        self.aInvite = invite; self.gateways = gateways; self.bCallID = bCallID; self.bFromTag = bFromTag
        self.aToTag = aToTag; self.localContact = localContact; self.maxDuration = maxDuration; self.costCapSeconds = costCapSeconds
    }

    public mutating func start(now: Double) -> [Action] {
        setupAt = now
        guard !gateways.isEmpty else { return endBeforeAnswer(503, reason: nil, now: now) }
        return [sendInvite()]
    }

    /// The B leg's INVITE for the current gateway. A new Call-ID and From tag
    /// hide the customer's dialog; Max-Forwards goes down by one; the
    /// customer's control headers are stripped (T13).
    mutating func sendInvite() -> Action {
        let called = aInvite.parsedRequestURI?.user ?? ""
        var b = SIPMessage(request: .invite, uri: "sip:\(called)@\(gateways[attempt].hostPort)")
        let fromUser = aInvite.from?.uri.user ?? "anonymous"
        b.append(.from, "<sip:\(fromUser)@\(localContact)>;tag=\(bFromTag)")
        b.append(.to, "<sip:\(called)@\(gateways[attempt].hostPort)>")
        b.append(.callID, bCallID)
        b.append(.cseq, "\(bCSeq) INVITE")
        b.append(.maxForwards, String(max(0, (aInvite.maxForwards ?? 70) - 1)))
        b.append(.contact, "<sip:b2bua@\(localContact)>")
        if let pai = aInvite.firstValue(.pAssertedIdentity) { b.append(.pAssertedIdentity, pai) }
        if let ct = aInvite.firstValue(.contentType) { b.append(.contentType, ct) }
        b.body = aInvite.body
        CallControlHeaders.strip(&b)
        bInvite = b
        return .sendToB(b, gateway: attempt)
    }

    /// A response on the B leg's INVITE.
    public mutating func bLegResponse(_ response: SIPMessage, now: Double) -> [Action] {
        guard let code = response.statusCode, response.callID == bCallID else { return [] }
        switch (state, code) {
        case (.routing, 100), (.early, 100):
            return []
        case (.routing, 101..<200), (.early, 101..<200):
            state = .early
            if bToTag == nil { bToTag = response.toTag }
            return [.respondToA(relayed(response, code: code))]
        case (.routing, 200..<300), (.early, 200..<300):
            state = .answered
            answeredAt = now
            bToTag = response.toTag
            bRemoteTarget = response.contacts.first?.address?.uri.description
            var actions: [Action] = [.sendToB(bLegRequest(.ack, cseq: bCSeq), gateway: attempt), .respondToA(relayed(response, code: code))]
            if let maxDuration { actions.append(.startTimer(.maximumDuration, seconds: maxDuration)) }
            if let costCapSeconds { actions.append(.startTimer(.costCap, seconds: costCapSeconds)) }
            return actions
        case (.routing, 300...), (.early, 300...):
            // Failover to the next gateway on 408, 5xx (RFC 3263 §4.3 spirit); other
            // final responses are the callee's answer and go back to the caller.
            if code == 408 || (500..<600).contains(code), attempt + 1 < gateways.count {
                attempt += 1
                state = .routing
                bToTag = nil
                bCSeq += 1
                return [sendInvite()]
            }
            return endBeforeAnswer(code, reason: nil, now: now, relay: response)
        default:
            return []
        }
    }

    /// Timer B on the B leg's INVITE (no answer at all from the gateway).
    public mutating func bLegTimeout(now: Double) -> [Action] {
        guard state == .routing || state == .early else { return [] }
        return bLegResponse(Self.syntheticTimeout(callID: bCallID), now: now)
    }

    /// CANCEL from the caller before the answer (RFC 3261 §9): cancel the B leg
    /// and end the call; the endpoint has already answered 200/487 on the A leg.
    public mutating func aLegCancel(now: Double) -> [Action] {
        guard state == .routing || state == .early, let bInvite else { return [] }
        var cancel = SIPMessage(request: .cancel, uri: bInvite.requestURI ?? "")
        for h: SIPHeaderName in [.from, .to, .callID] { if let v = bInvite.firstValue(h) { cancel.append(h, v) } }
        cancel.append(.cseq, "\(bCSeq) CANCEL")
        state = .ended
        return [.sendToB(cancel, gateway: attempt),
                .writeRecord(record(status: 487, reason: nil, clearedBy: .caller, now: now))]
    }

    /// BYE from the caller: BYE to the callee, record.
    public mutating func aLegBye(now: Double) -> [Action] {
        guard state == .answered else { return [] }
        state = .ended
        bCSeq += 1
        return [.sendToB(bLegRequest(.bye, cseq: bCSeq), gateway: attempt),
                .cancelTimer(.maximumDuration), .cancelTimer(.costCap),
                .writeRecord(record(status: 200, reason: nil, clearedBy: .caller, now: now))]
    }

    /// BYE from the callee: BYE to the caller, record.
    public mutating func bLegBye(now: Double) -> [Action] {
        guard state == .answered else { return [] }
        state = .ended
        return [.sendToA(aLegRequest(.bye, reason: nil)),
                .cancelTimer(.maximumDuration), .cancelTimer(.costCap),
                .writeRecord(record(status: 200, reason: nil, clearedBy: .callee, now: now))]
    }

    /// T4/T5: the platform clears an answered call, BYE both ways with X-Reason.
    public mutating func timerFired(_ timer: CallTimer, now: Double) -> [Action] {
        guard state == .answered else { return [] }
        let rejection: CallRejection = timer == .maximumDuration ? .maximumDurationReached : .maximumCostReached
        state = .ended
        bCSeq += 1
        var toB = bLegRequest(.bye, cseq: bCSeq)
        toB.append(.reason, rejection.reasonHeader)
        let other: CallTimer = timer == .maximumDuration ? .costCap : .maximumDuration
        return [.sendToA(aLegRequest(.bye, reason: rejection)), .sendToB(toB, gateway: attempt), .cancelTimer(other),
                .writeRecord(record(status: 200, reason: rejection.reasonText, clearedBy: .platform, now: now))]
    }

    // MARK: Building messages

    /// A B-leg response relayed to the caller: the A leg's own transaction
    /// headers and To tag, the B leg's body (SDP passes unchanged for now).
    func relayed(_ response: SIPMessage, code: Int) -> SIPMessage {
        var r = aInvite.makeResponse(code, reasonPhrase: response.reasonPhrase, toTag: aToTag)
        if code > 100, code < 300 { r.append(.contact, "<sip:b2bua@\(localContact)>") }
        if let ct = response.firstValue(.contentType), response.bodyCount > 0 {
            r.append(.contentType, ct)
            r.body = response.body
        }
        CallControlHeaders.strip(&r)
        return r
    }

    func bLegRequest(_ method: SIPMethod, cseq: UInt32) -> SIPMessage {
        var m = SIPMessage(request: method, uri: bRemoteTarget ?? bInvite?.requestURI ?? "")
        if let v = bInvite?.firstValue(.from) { m.append(.from, v) }
        m.append(.to, (bInvite?.firstValue(.to) ?? "") + (bToTag.map { ";tag=\($0)" } ?? ""))
        m.append(.callID, bCallID)
        m.append(.cseq, "\(cseq) \(method)")
        return m
    }

    /// A request to the caller in the A dialog: From/To swapped (we are the UAS side there).
    mutating func aLegRequest(_ method: SIPMethod, reason: CallRejection?) -> SIPMessage {
        let target = aInvite.contacts.first?.address?.uri.description ?? aInvite.from?.uri.description ?? ""
        var m = SIPMessage(request: method, uri: target)
        if let to = aInvite.firstValue(.to) { m.append(.from, to + ";tag=\(aToTag)") }
        if let from = aInvite.firstValue(.from) { m.append(.to, from) }
        if let c = aInvite.callID { m.append(.callID, c) }
        aCSeq += 1
        m.append(.cseq, "\(aCSeq) \(method)")
        for rr in aInvite.values(.recordRoute) { m.append(.route, rr) }
        if let reason {
            m.append(CallControlHeaders.reasonHeader, reason.reasonText)
            m.append(.reason, reason.reasonHeader)
        }
        return m
    }

    mutating func endBeforeAnswer(_ code: Int, reason: CallRejection?, now: Double, relay: SIPMessage? = nil) -> [Action] {
        state = .ended
        var r = relay.map { relayed($0, code: code) } ?? aInvite.makeResponse(code, toTag: aToTag)
        if let reason {
            r.append(CallControlHeaders.reasonHeader, reason.reasonText)
            r.append(.reason, reason.reasonHeader)
        }
        return [.respondToA(r), .writeRecord(record(status: code, reason: reason?.reasonText, clearedBy: nil, now: now))]
    }

    func record(status: Int, reason: String?, clearedBy: CallRecord.ClearedBy?, now: Double) -> CallRecord {
        CallRecord(aLegCallID: aInvite.callID ?? "", gateway: gateways.isEmpty ? nil : gateways[attempt].name,
                   setupAt: setupAt, answeredAt: answeredAt, endedAt: now, finalStatus: status,
                   reason: reason, clearedBy: clearedBy)
    }

    static func syntheticTimeout(callID: String) -> SIPMessage {
        var r = SIPMessage(response: 408, reasonPhrase: "Request Timeout")
        r.append(.callID, callID)
        return r
    }
}
