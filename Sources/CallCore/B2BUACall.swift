import CallControl
import SIPAuth
import SIPMessage

/// Who the B leg calls and as whom, when that is not the A leg's own
/// Request-URI and From (SIP2SIM, SPEC.md S3–S5).
public struct BLegIdentity: Sendable, Equatable {
    /// Request-URI and To user (already escaped for a SIP URI).
    public var calledUser: String
    /// From user.
    public var callerUser: String
    /// From host; the node's own address when nil.
    public var callerHost: String?
    /// Digest credentials for a 401/407 from the far end (S4: the SIM's).
    public var credentials: DigestLogin?

    public init(calledUser: String, callerUser: String, callerHost: String? = nil, credentials: DigestLogin? = nil) {
        self.calledUser = calledUser; self.callerUser = callerUser; self.callerHost = callerHost; self.credentials = credentials
    }
}

/// A user name and password to answer digest challenges with.
public struct DigestLogin: Sendable, Equatable {
    public var username: String
    public var password: String
    public init(username: String, password: String) { self.username = username; self.password = password }
}

/// An upstream gateway a call can be routed to.
public struct GatewayTarget: Sendable, Equatable {
    public var name: String
    /// Request-URI host[:port] for the B leg, e.g. "gw1.carrier.example:5060".
    public var hostPort: String
    public init(name: String, hostPort: String) { self.name = name; self.hostPort = hostPort }
}

/// Timers a call owns (distinct from transaction timers).
public enum CallTimer: Sendable, Hashable, CaseIterable {
    /// T5: X-simwood-maxdur reached.
    case maximumDuration
    /// T4: the running cost reaches X-simwood-maxcost.
    case costCap
    /// T10: the running cost reaches the account's balance + credit.
    case balanceCap
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

    public init(aLegCallID: String, gateway: String? = nil, setupAt: Double, answeredAt: Double? = nil, endedAt: Double, finalStatus: Int,
                reason: String? = nil, clearedBy: ClearedBy? = nil) {
        self.aLegCallID = aLegCallID; self.gateway = gateway; self.setupAt = setupAt; self.answeredAt = answeredAt
        self.endedAt = endedAt; self.finalStatus = finalStatus; self.reason = reason; self.clearedBy = clearedBy
    }

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
    let balanceCapSeconds: Int?
    /// T7 warn policy: an `X-Warning` on the responses to the caller.
    let warning: String?
    var attempt = 0
    var bInvite: SIPMessage?
    var bToTag: String?
    var bRemoteTarget: String?
    var bCSeq: UInt32 = 1
    var aCSeq: UInt32 = 1
    var setupAt: Double = 0
    public private(set) var answeredAt: Double?
    var cancelled = false
    let identity: BLegIdentity?
    var digest: DigestClient?
    /// Whether the current gateway's challenge was answered (a second one means wrong credentials).
    var challengeAnswered = false

    /// - Parameters:
    ///   - invite: the A leg's INVITE, already admitted by policy.
    ///   - gateways: in failover order.
    ///   - costCapSeconds: when the running cost reaches maxcost (from `Rate.secondsUntilCost`).
    ///   - balanceCapSeconds: when it reaches the account's balance + credit.
    public init(invite: SIPMessage, gateways: [GatewayTarget], bCallID: String, bFromTag: String, aToTag: String,
                localContact: String, maxDuration: Int?, costCapSeconds: Int?, balanceCapSeconds: Int? = nil, warning: String? = nil,
                identity: BLegIdentity? = nil) {
        self.identity = identity
        digest = identity?.credentials.map { DigestClient(username: $0.username, password: $0.password) }
        self.aInvite = invite; self.gateways = gateways; self.bCallID = bCallID; self.bFromTag = bFromTag
        self.aToTag = aToTag; self.localContact = localContact; self.maxDuration = maxDuration; self.costCapSeconds = costCapSeconds
        self.balanceCapSeconds = balanceCapSeconds; self.warning = warning
    }

    public var aCallID: String { aInvite.callID ?? "" }
    public var bLegCallID: String { bCallID }
    /// Over, with its B leg's INVITE cancelled: the gateway's 2xx may still
    /// cross the CANCEL and must then be ACKed and hung up (`bLegResponse`).
    public var awaitsAnswerToCancel: Bool { state == .ended && cancelled }
    /// The gateway the B leg is on now (index into `gateways`).
    public var currentGateway: Int { attempt }

    public mutating func start(now: Double) -> [Action] {
        setupAt = now
        guard !gateways.isEmpty else { return endBeforeAnswer(503, reason: nil, now: now) }
        return [sendInvite()]
    }

    /// The B leg's INVITE for the current gateway. A new Call-ID and From tag
    /// hide the customer's dialog; Max-Forwards goes down by one; the
    /// customer's control headers are stripped (T13).
    mutating func sendInvite(authorization: (SIPHeaderName, String)? = nil) -> Action {
        let called = identity?.calledUser ?? aInvite.parsedRequestURI?.user ?? ""
        let requestURI = "sip:\(called)@\(gateways[attempt].hostPort)"
        var b = SIPMessage(request: .invite, uri: requestURI)
        let fromUser = identity?.callerUser ?? aInvite.from?.uri.user ?? "anonymous"
        b.append(.from, "<sip:\(fromUser)@\(identity?.callerHost ?? localContact)>;tag=\(bFromTag)")
        b.append(.to, "<\(requestURI)>")
        b.append(.callID, bCallID)
        b.append(.cseq, "\(bCSeq) INVITE")
        b.append(.maxForwards, String(max(0, (aInvite.maxForwards ?? 70) - 1)))
        b.append(.contact, "<sip:b2bua@\(localContact)>")
        if let authorization { b.append(authorization.0, authorization.1) }
        // A SIP2SIM leg speaks for the SIM itself: the mobile core's identity stays inside.
        if identity == nil, let pai = aInvite.firstValue(.pAssertedIdentity) { b.append(.pAssertedIdentity, pai) }
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
            for timer in CallTimer.allCases { if let seconds = seconds(of: timer) { actions.append(.startTimer(timer, seconds: seconds)) } }
            return actions
        case (.routing, 300...), (.early, 300...):
            if code == 401 || code == 407, digest != nil {
                if let retry = answerChallenge(response, code: code) { return [retry] }
                // The credentials were refused: the caller cannot answer our far
                // end's challenge, so to it this is a refusal.
                var refused = SIPMessage(response: 403, reasonPhrase: "Forbidden (the called server refused the SIM's credentials)")
                refused.append(.callID, bCallID)
                return endBeforeAnswer(403, reason: nil, now: now, relay: refused)
            }
            // Failover to the next gateway on 408, 5xx (RFC 3263 §4.3 spirit); other
            // final responses are the callee's answer and go back to the caller.
            if code == 408 || (500..<600).contains(code), attempt + 1 < gateways.count {
                attempt += 1
                state = .routing
                bToTag = nil
                challengeAnswered = false
                bCSeq += 1
                return [sendInvite()]
            }
            return endBeforeAnswer(code, reason: nil, now: now, relay: response)
        case (.ended, 200..<300) where cancelled:
            // The callee answered as our CANCEL crossed it (RFC 3261 §9.1,
            // §15): acknowledge, then hang that dialog up at once.
            bToTag = response.toTag
            bRemoteTarget = response.contacts.first?.address?.uri.description
            cancelled = false
            return [.sendToB(bLegRequest(.ack, cseq: bCSeq), gateway: attempt),
                    .sendToB(bLegRequest(.bye, cseq: bCSeq + 1), gateway: attempt)]
        default:
            return []
        }
    }

    /// The INVITE again with digest credentials (RFC 3261 §22.2): same
    /// Call-ID and From tag, the next CSeq. Nil when the challenge cannot or
    /// should not be answered (answered once already and not stale).
    mutating func answerChallenge(_ response: SIPMessage, code: Int) -> Action? {
        guard var client = digest else { return nil }
        let challenges = response.values(code == 401 ? .wwwAuthenticate : .proxyAuthenticate).compactMap { try? DigestChallenge(parsing: $0) }
        guard let challenge = DigestClient.preferred(challenges), !challengeAnswered || challenge.stale else { return nil }
        let uri = "sip:\(identity?.calledUser ?? "")@\(gateways[attempt].hostPort)"
        guard let credentials = try? client.authorization(for: challenge, method: "INVITE", uri: uri) else { return nil }
        digest = client
        challengeAnswered = true
        bCSeq += 1
        bToTag = nil
        state = .routing
        return sendInvite(authorization: (code == 401 ? .authorization : .proxyAuthorization, credentials.headerValue))
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
        state = .ended
        cancelled = true
        return [.sendToB(cancelRequest(for: bInvite), gateway: attempt),
                .writeRecord(record(status: 487, reason: nil, clearedBy: .caller, now: now))]
    }

    /// BYE from the caller: BYE to the callee, record.
    public mutating func aLegBye(now: Double) -> [Action] {
        guard state == .answered else { return [] }
        state = .ended
        bCSeq += 1
        return [.sendToB(bLegRequest(.bye, cseq: bCSeq), gateway: attempt)] + Self.cancelTimers(except: nil)
            + [.writeRecord(record(status: 200, reason: nil, clearedBy: .caller, now: now))]
    }

    /// The caller never ACKed the 2xx (RFC 3261 §13.3.1.4): the dialog is
    /// torn down both ways, and the call is recorded as cleared by the platform.
    public mutating func aLegACKTimeout(now: Double) -> [Action] {
        guard state == .answered else { return [] }
        state = .ended
        bCSeq += 1
        return [.sendToA(aLegRequest(.bye, reason: nil)), .sendToB(bLegRequest(.bye, cseq: bCSeq), gateway: attempt)]
            + Self.cancelTimers(except: nil)
            + [.writeRecord(record(status: 200, reason: "No ACK From Caller", clearedBy: .platform, now: now))]
    }

    /// BYE from the callee: BYE to the caller, record.
    public mutating func bLegBye(now: Double) -> [Action] {
        guard state == .answered else { return [] }
        state = .ended
        return [.sendToA(aLegRequest(.bye, reason: nil))] + Self.cancelTimers(except: nil)
            + [.writeRecord(record(status: 200, reason: nil, clearedBy: .callee, now: now))]
    }

    /// T4/T5: the platform clears an answered call, BYE both ways with X-Reason.
    public mutating func timerFired(_ timer: CallTimer, now: Double) -> [Action] {
        guard state == .answered else { return [] }
        let rejection: CallRejection
        switch timer {
        case .maximumDuration: rejection = .maximumDurationReached
        case .costCap: rejection = .maximumCostReached
        case .balanceCap: rejection = .balanceBelowLimit
        }
        var actions = byeBothLegs(rejection)
        actions += Self.cancelTimers(except: timer)
        // The CDR ends at the moment the limit was reached, not when the timer
        // task got to run (a few ms later), so duration and cost are exact.
        var end = now
        if let answeredAt, let seconds = seconds(of: timer), now >= answeredAt + Double(seconds), now < answeredAt + Double(seconds) + 1.5 {
            end = answeredAt + Double(seconds)
        }
        actions.append(.writeRecord(record(status: 200, reason: rejection.reasonText, clearedBy: .platform, now: end)))
        return actions
    }

    /// The platform ends the call whatever its state (the node is stopping):
    /// an answered call is cleared BYE both ways with the X-Reason; a call
    /// still being set up is refused to the caller with the reason's code and
    /// its B leg cancelled (RFC 3261 §9.1). Nothing for a call already over.
    public mutating func platformClear(_ why: CallRejection, now: Double) -> [Action] {
        switch state {
        case .ended:
            return []
        case .answered:
            return byeBothLegs(why) + Self.cancelTimers(except: nil)
                + [.writeRecord(record(status: 200, reason: why.reasonText, clearedBy: .platform, now: now))]
        case .routing, .early:
            var actions: [Action] = []
            if let bInvite {
                actions.append(.sendToB(cancelRequest(for: bInvite), gateway: attempt))
                cancelled = true
            }
            return actions + endBeforeAnswer(why.statusCode, reason: why, now: now)
        }
    }

    /// The CANCEL of the B leg's INVITE (RFC 3261 §9.1: its Request-URI, From, To, Call-ID and CSeq number).
    func cancelRequest(for bInvite: SIPMessage) -> SIPMessage {
        var cancel = SIPMessage(request: .cancel, uri: bInvite.requestURI ?? "")
        for h: SIPHeaderName in [.from, .to, .callID] { if let v = bInvite.firstValue(h) { cancel.append(h, v) } }
        cancel.append(.cseq, "\(bCSeq) CANCEL")
        return cancel
    }

    /// BYE to both legs with the platform's reason (X-Reason to the caller, Reason to both).
    mutating func byeBothLegs(_ why: CallRejection) -> [Action] {
        state = .ended
        bCSeq += 1
        var toB = bLegRequest(.bye, cseq: bCSeq)
        toB.append(.reason, why.reasonHeader)
        return [.sendToA(aLegRequest(.bye, reason: why)), .sendToB(toB, gateway: attempt)]
    }

    /// Seconds from the answer until `timer` fires; nil when it is not set for this call.
    func seconds(of timer: CallTimer) -> Int? {
        switch timer {
        case .maximumDuration: return maxDuration
        case .costCap: return costCapSeconds
        case .balanceCap: return balanceCapSeconds
        }
    }

    static func cancelTimers(except kept: CallTimer?) -> [Action] {
        CallTimer.allCases.filter { $0 != kept }.map { .cancelTimer($0) }
    }

    // MARK: In-dialog requests (re-INVITE, UPDATE, INFO …), passed through

    /// The caller's in-dialog request as the B leg's: our dialog identifiers,
    /// the next B CSeq, the body unchanged. Nil outside an answered call.
    public mutating func relayFromA(_ request: SIPMessage) -> SIPMessage? {
        guard state == .answered, let method = request.method else { return nil }
        bCSeq += 1
        var m = bLegRequest(method, cseq: bCSeq)
        copyPayload(from: request, to: &m)
        return m
    }

    /// The callee's in-dialog request as the A leg's.
    public mutating func relayFromB(_ request: SIPMessage) -> SIPMessage? {
        guard state == .answered, let method = request.method else { return nil }
        var m = aLegRequest(method, reason: nil)
        copyPayload(from: request, to: &m)
        return m
    }

    /// The ACK for a 2xx to a relayed re-INVITE on the B leg (RFC 3261 §13.2.2.4: same CSeq number).
    public func bLegACK(cseq: UInt32) -> SIPMessage { bLegRequest(.ack, cseq: cseq) }

    /// The ACK for a 2xx to a relayed re-INVITE on the A leg.
    public func aLegACK(cseq: UInt32) -> SIPMessage { aDialogRequest(.ack, cseq: cseq) }

    /// A response from the other leg, answered on `request`'s own transaction.
    public func relayResponse(_ response: SIPMessage, to request: SIPMessage) -> SIPMessage {
        var r = request.makeResponse(response.statusCode ?? 500, reasonPhrase: response.reasonPhrase, toTag: nil)
        if let code = response.statusCode, (200..<300).contains(code), request.method == .invite {
            r.append(.contact, "<sip:b2bua@\(localContact)>")
        }
        if let ct = response.firstValue(.contentType), response.bodyCount > 0 {
            r.append(.contentType, ct)
            r.body = response.body
        }
        CallControlHeaders.strip(&r)
        return r
    }

    func copyPayload(from source: SIPMessage, to m: inout SIPMessage) {
        if let ct = source.firstValue(.contentType), source.bodyCount > 0 {
            m.append(.contentType, ct)
            m.body = source.body
        }
        if source.method == .invite || source.method == .update { m.append(.contact, "<sip:b2bua@\(localContact)>") }
        CallControlHeaders.strip(&m)
    }

    // MARK: Building messages

    /// A B-leg response relayed to the caller: the A leg's own transaction
    /// headers and To tag, the B leg's body (SDP passes unchanged for now).
    func relayed(_ response: SIPMessage, code: Int) -> SIPMessage {
        var r = aInvite.makeResponse(code, reasonPhrase: response.reasonPhrase, toTag: aToTag)
        if code > 100, code < 300 { r.append(.contact, "<sip:b2bua@\(localContact)>") }
        if let warning, code > 100 { r.append(CallControlHeaders.warningHeader, warning) }
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
    func aDialogRequest(_ method: SIPMethod, cseq: UInt32) -> SIPMessage {
        let target = aInvite.contacts.first?.address?.uri.description ?? aInvite.from?.uri.description ?? ""
        var m = SIPMessage(request: method, uri: target)
        if let to = aInvite.firstValue(.to) { m.append(.from, to + ";tag=\(aToTag)") }
        if let from = aInvite.firstValue(.from) { m.append(.to, from) }
        if let c = aInvite.callID { m.append(.callID, c) }
        m.append(.cseq, "\(cseq) \(method)")
        for rr in aInvite.values(.recordRoute) { m.append(.route, rr) }
        return m
    }

    /// The next request of ours in the A dialog, with the platform's reason if it clears the call.
    mutating func aLegRequest(_ method: SIPMethod, reason: CallRejection?) -> SIPMessage {
        aCSeq += 1
        var m = aDialogRequest(method, cseq: aCSeq)
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
            if let seconds = reason.retryAfterSeconds { r.append(.retryAfter, String(seconds)) }
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
