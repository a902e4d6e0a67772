import CallControl
import CallCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NodeConfiguration
import Rating
import SIPAuth
import SIPMessage
import SIPStack
import SIPTransaction
import SIPTransport
import Store

/// What the call core needs of a server request: the message, where it came
/// from, and (opaque to the core) how to answer it — the shell answers.
public protocol CallRequest: Sendable {
    var message: SIPMessage { get }
    var source: SocketAddress { get }
    var transport: SIPTransportProtocol { get }
    /// Read while the switch was behind (`SIPInbound.readWhileBehind`): a new call in it may be refused (`OverloadAdmission`).
    var readWhileBehind: Bool { get }
}

/// The actor service's requests are never refused so (README, "Overload"):
/// its backlog is its mailbox, not the socket.
extension CallRequest {
    public var readWhileBehind: Bool { false }
}

extension SIPServerRequest: CallRequest {}

/// The two clocks a call runs on: the wall clock for CDRs and rate windows,
/// the monotonic one for the maxdur/maxcost/balance timers.
public struct CallClock: Sendable, Equatable {
    public var wall: Double
    public var uptimeNanoseconds: UInt64

    public init(wall: Double, uptimeNanoseconds: UInt64) {
        self.wall = wall; self.uptimeNanoseconds = uptimeNanoseconds
    }

    public static func now() -> CallClock {
        CallClock(wall: Date().timeIntervalSince1970, uptimeNanoseconds: NIODeadline.now().uptimeNanoseconds)
    }
}

/// This node's in-memory limits (T9, T10 channels and rate windows) and the
/// balance its live calls hold: one per node, shared by the trunk call
/// cores (the actor service's and each event loop's), each admission or
/// release one short critical section.
public final class CallAccounting: Sendable {
    struct State {
        var limits = LimitBook()
        var holds = BalanceHolds()
    }

    let state = NIOLockedValueBox(State())

    public init() {}

    /// The policy runs here; the limits are counted in this node's memory or,
    /// when the store counts them (a cluster's PostgreSQL), by the store as
    /// the call is launched: those checks are returned. An admitted call
    /// holds its first billing increment (`BalanceHolds`) from here, so calls
    /// arriving together see each other's; `release` gives it back with the channels.
    func admit(_ attempt: CallAttempt, blacklists: Blacklists, storeCountsLimits: Bool, now: Double) -> (AdmissionDecision, [LimitCheck]) {
        state.withLockedValue { s in
            var attempt = attempt
            attempt.committed = s.holds.held(attempt.account.id)
            let decided: (AdmissionDecision, [LimitCheck])
            if storeCountsLimits {
                switch LimitBook.plan(attempt, blacklists: blacklists) {
                case .reject(let why): decided = (.reject(why), [])
                case .admit(let plan): decided = (.admit(plan.admission), plan.checks)
                }
            } else {
                decided = (s.limits.admit(attempt, blacklists: blacklists, now: now), [])
            }
            if case .admit(let a) = decided.0 { s.holds.hold(a.held, account: attempt.account.id) }
            return decided
        }
    }

    /// What an admitted call took: its channels on this node and its hold on the balance.
    func release(_ admission: Admission, account: String) {
        state.withLockedValue { s in
            s.limits.release(admission.channels)
            s.holds.release(admission.held, account: account)
        }
    }
}

/// The trunk service's calls as one value (docs/run-to-completion.md, slice 2):
/// the directory snapshot, the in-memory limits and balance holds, every live
/// call's `B2BUACall` and the calls' timers in one queue. Each event — a
/// request, a B-leg response or timeout, the store's answer to an admission,
/// the timers being due — updates it and returns what to do as data (answer
/// this request, send this to the gateway, record this CDR, arm the timer for
/// this deadline). It performs no I/O and never waits: `TrunkCallService` is
/// its shell today; a handler on an event loop can own it the same way.
///
/// Not copyable: its live calls are objects updated in place (as values they
/// were copied whole, every field retained and released, for each action
/// performed — 5–10 % more CPU per call), so a copy would share them.
public struct TrunkCallCore<Request: CallRequest>: ~Copyable {
    public enum Action: Sendable {
        /// Answer a request (through its server transaction).
        case respond(Request, SIPMessage)
        /// Record the call as live, counting the limits the store counts
        /// (none unless it is a cluster's PostgreSQL); answer with
        /// `admitted(callID:refusedAt:at:)` or `admissionFailed(callID:at:)`.
        case admit(LiveCall, limits: [StoredLimit])
        /// The call's B-leg INVITE (a client transaction): its provisional and
        /// final responses go to `bResponse`, a timeout to `bTimeout`, a
        /// transport failure to `bUnreachable`, all with `callID`.
        case sendInvite(SIPMessage, to: SIPDestination, callID: String)
        /// CANCEL the B leg's INVITE (RFC 3261 §9.1: once it has a provisional response).
        case cancelInvite(bCallID: String, cseq: UInt32)
        case sendACK(SIPMessage, to: SIPDestination)
        /// An in-dialog request (BYE) whose answer does not matter to the call.
        case send(SIPMessage, to: SIPDestination)
        /// Relay an in-dialog request to the other leg and its answer back: `relay.answered(_:)`.
        case relay(Relay)
        /// Write a CDR (`refused`: of a call refused before it was bridged).
        case recordCDR(CDR, refused: Bool)
        /// A cluster's store learns the call's answer, so every node can cost the account's calls together.
        case recordAnswer(callID: String, at: Double, rate: Rate)
        /// Call `timersDue(at:)` at this uptime (one deadline armed at a time; a later one replaces it).
        case armTimer(atUptimeNanoseconds: UInt64)
    }

    /// An in-dialog request relayed to the other leg; its answer is relayed back
    /// with the call's state as it was when the request was relayed.
    public struct Relay: Sendable {
        public let request: SIPMessage
        public let destination: SIPDestination
        let original: Request
        let machine: B2BUACall
        let fromA: Bool

        /// The other leg's answer (nil: none came); a 2xx to a re-INVITE is ACKed.
        public func answered(_ response: SIPMessage?) -> [Action] {
            guard let response else {
                return [.respond(original, machine.relayResponse(SIPMessage(response: 408, reasonPhrase: "Request Timeout"), to: original.message))]
            }
            var out: [Action] = []
            if let code = response.statusCode, (200..<300).contains(code), request.method == .invite, let cseq = request.cseq?.number {
                out.append(.sendACK(fromA ? machine.bLegACK(cseq: cseq) : machine.aLegACK(cseq: cseq), to: destination))
            }
            out.append(.respond(original, machine.relayResponse(response, to: original.message)))
            return out
        }
    }

    /// A live call's state, owned by the core only.
    final class Call {
        var machine: B2BUACall
        let attempt: CallAttempt
        let admission: Admission
        let request: Request
        let caller: SIPDestination
        let gateways: [SIPDestination]
        var bInviteCSeq: UInt32 = 1
        /// A SIP2SIM call's SIM (its CDR has no trunk).
        let simICCID: String?
        /// Admitted against the account's balance (not an emergency or free call):
        /// cleared with the account's other calls when together they use it up.
        let spendsBalance: Bool

        init(machine: B2BUACall, attempt: CallAttempt, admission: Admission, request: Request, caller: SIPDestination,
             gateways: [SIPDestination], simICCID: String? = nil, spendsBalance: Bool = true) {
            self.machine = machine; self.attempt = attempt; self.admission = admission; self.request = request
            self.caller = caller; self.gateways = gateways; self.simICCID = simICCID; self.spendsBalance = spendsBalance
        }

    }

    /// A call waiting for the store to record it as live (and, on a cluster, to count its limits).
    struct Pending {
        var call: Call
        var checks: [LimitCheck]
        var startAt: Double
        /// The caller cancelled while the store was recording the call (the endpoint answered 487).
        var cancelledAt: Double?
    }

    struct CallTimerID: Hashable, Sendable {
        var callID: String
        var timer: CallTimer
    }

    let node: NodeConfiguration
    /// The store counts the limits (a cluster's PostgreSQL) rather than this node's memory.
    let storeCountsLimits: Bool
    let logger: Logger
    public var directory = TrunkDirectory()
    /// The upstream gateways' addresses by name, resolved at start.
    public var gatewayAddresses: [String: SIPDestination] = [:]
    /// This node's channel and rate counters and balance holds, shared by every core on the node.
    let accounting: CallAccounting
    var digest: DigestServer
    var calls: [String: Call] = [:]
    var pending: [String: Pending] = [:]
    var aCallIDOfB: [String: String] = [:]
    /// Calls over whose B leg's INVITE was cancelled, until the gateway's final
    /// answer to it: a 2xx crossing the CANCEL is ACKed and hung up (RFC 3261 §9.1, §15).
    var cancelledCalls: [String: Call] = [:]
    var timers = TimerQueue<CallTimerID>()
    var armedTimer: UInt64?
    /// How many new calls are taken while the socket is (or lately was) behind; the rest are refused (`refuseOverloaded`).
    public internal(set) var overloadAdmission = OverloadAdmission()
    /// Written into the B legs' Call-IDs (before the "@") so that a datagram
    /// of the B leg read on another event loop is passed to this core's loop
    /// (`TrunkCallLoops.owner(of:loops:)`); nil with one loop.
    var callIDMarker: String?

    public init(node: NodeConfiguration, storeCountsLimits: Bool, nonceSecret: [UInt8], accounting: CallAccounting = CallAccounting(),
                logger: Logger) {
        self.node = node; self.storeCountsLimits = storeCountsLimits; self.accounting = accounting; self.logger = logger
        digest = DigestServer(realm: node.sipRealm, secret: nonceSecret,
                              algorithms: node.digestAlgorithms.compactMap { DigestAlgorithm(token: $0) })
    }

    /// The node is stopping: new calls are refused (`refuseNewCall`).
    public var stopping = false
    /// The drain period is over: calls the store records as live from now on are refused, not bridged.
    var clearing = false

    public var liveCallCount: Int { calls.count }
    /// Calls bridged or waiting for the store to record them as live.
    public var callsInProgress: Int { calls.count + pending.count }
    /// Cancelled B legs whose INVITE has no final answer yet.
    public var cancelledBLegsUnanswered: Int { cancelledCalls.count }
    public func hasCall(_ callID: String) -> Bool { calls[callID] != nil || pending[callID] != nil }
    /// Whether a Call-ID is one of this core's calls, either leg.
    public func knows(_ callID: String) -> Bool { hasCall(callID) || aCallIDOfB[callID] != nil }

    /// The answered calls that spend their account's balance, for costing accounts together (T10).
    public func answeredCalls() -> [AnsweredCall] {
        calls.compactMap { callID, call in
            guard call.spendsBalance, call.machine.state == .answered, let rate = call.attempt.rate,
                  let answeredAt = call.machine.answeredAt else { return nil }
            return AnsweredCall(callID: callID, accountID: call.attempt.account.id, rate: rate, answeredAt: answeredAt)
        }
    }

    // MARK: Requests

    /// A request for the trunk service. `contact`: our host:port as the
    /// caller sees it (the Contact of our answers), used for a new INVITE.
    public mutating func received(_ request: Request, contact: String, at clock: CallClock) -> [Action] {
        let m = request.message
        guard let method = m.method else { return [] }
        switch method {
        case .invite where m.toTag == nil:
            if stopping { return refuseNewCall(request, .nodeStopping) }
            if !overloadAdmission.admits(behind: request.readWhileBehind, now: clock.uptimeNanoseconds) { return refuseNewCall(request, .overloaded) }
            return newCall(request, contact: contact, at: clock)
        case .cancel:
            guard let callID = m.callID else { return [] }
            if pending[callID] != nil {
                // Not bridged yet: nothing goes to the gateway once the store answers.
                pending[callID]?.cancelledAt = clock.wall
                return []
            }
            guard calls[callID] != nil else { return [] }
            return event(callID, at: clock) { $0.aLegCancel(now: clock.wall) }
        case .ack:
            return []  // the A leg's ACK of our 2xx; the B leg was ACKed when it answered
        case .bye:
            return bye(request, at: clock)
        case .options:
            return [.respond(request, m.makeResponse(200, headers: [(.allow, Self.allowed), (.accept, "application/sdp")]))]
        default:
            if m.toTag != nil { return inDialog(request) }
            return [.respond(request, m.makeResponse(405, headers: [(.allow, Self.allowed)]))]
        }
    }

    static var allowed: String { "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO" }

    mutating func newCall(_ request: Request, contact: String, at clock: CallClock) -> [Action] {
        let invite = request.message
        guard let callID = invite.callID, !hasCall(callID) else { return [] }
        let now = clock.wall
        let source = request.source.ipAddress ?? ""

        // T12: the trunk by source address, else by digest credentials.
        var trunk = directory.trunk(forSource: source)
        if trunk == nil {
            switch authenticate(invite, now: now) {
            case .trunk(let t): trunk = t
            case .challenge(let stale):
                let challenges = digest.makeChallenges(now: now, stale: stale)
                return [.respond(request, invite.makeResponse(407, headers: challenges.map { (.proxyAuthenticate, $0.headerValue) }))]
            case .refuse(let why):
                logger.notice("trunk authentication failed", metadata: ["source": "\(source)", "why": "\(why)"])
                return [.respond(request, invite.makeResponse(403, reasonPhrase: "Forbidden (authentication failed)"))]
            }
        }
        guard var trunk else { return [] }

        let controls: CallControlHeaders
        do { controls = try CallControlHeaders(from: invite) } catch {
            logger.info("bad call control header", metadata: ["source": "\(source)", "error": "\(error)"])
            return [.respond(request, invite.makeResponse(400, reasonPhrase: "Bad Request (\(error.description.prefix(120)))"))]
        }
        // T2: a named trunk must be one of the caller's own.
        if let named = controls.trunk {
            guard named.account == trunk.accountID, let t = directory.trunks[named.description] else {
                return reject(request, .invalidTrunk, account: trunk.accountID, trunk: trunk.id, controls: controls, now: now)
            }
            trunk = t
        }
        guard let account = directory.accounts[trunk.accountID] else {
            logger.error("trunk belongs to no account", metadata: ["trunk": "\(trunk.id)"])
            return [.respond(request, invite.makeResponse(500, reasonPhrase: "Server Internal Error (trunk has no account)"))]
        }
        let destination = TrunkCallService.number(invite.parsedRequestURI?.user ?? "")
        let cli = TrunkCallService.number(TrunkCallService.callerNumber(invite))
        let attempt = CallAttempt(account: account, accountLimits: directory.accountLimits[account.id] ?? CallLimits(), trunk: trunk,
                                  controls: controls, cli: cli, destination: destination, callType: node.callType(of: destination),
                                  rate: directory.rate(account: account.id, number: destination))
        let admission: Admission
        let (decision, counted) = admit(attempt, now: now)
        switch decision {
        case .reject(let why):
            return reject(request, why, account: account.id, trunk: trunk.id, controls: controls, now: now, attempt: attempt)
        case .admit(let a): admission = a
        }

        let routes = node.gateways(for: destination).compactMap { g in gatewayAddresses[g.name].map { (g, $0) } }
        let machine = B2BUACall(
            invite: invite, gateways: routes.map { GatewayTarget(name: $0.0.name, hostPort: $0.0.address) },
            bCallID: newBCallID(), bFromTag: SIPEndpoint.newTag(), aToTag: SIPEndpoint.newTag(),
            localContact: contact, maxDuration: admission.maxDuration, costCapSeconds: admission.maxCostSeconds,
            balanceCapSeconds: admission.balanceSeconds, warning: admission.warning)
        let call = Call(machine: machine, attempt: attempt, admission: admission, request: request,
                        caller: SIPDestination(address: request.source, transport: request.transport), gateways: routes.map(\.1))
        return launch(call, live: LiveCall(callID: callID, accountID: account.id, trunkID: trunk.id, tag: controls.tag,
                                           from: cli, to: destination, startAt: now), countedInStore: counted)
    }

    /// The policy runs here; the limits are counted in this node's memory or,
    /// when the store counts them (a cluster's PostgreSQL), by the store as
    /// the call is launched: those checks are returned. An admitted call
    /// holds its first billing increment on this node (`BalanceHolds`) from
    /// here, so calls arriving together see each other's; `release` gives it
    /// back with the channels.
    func newBCallID() -> String {
        let id = SIPEndpoint.newCallID(host: node.nodeName)
        guard let marker = callIDMarker, let at = id.firstIndex(of: "@") else { return id }
        return id[..<at] + marker + id[at...]
    }

    func admit(_ attempt: CallAttempt, now: Double) -> (AdmissionDecision, [LimitCheck]) {
        accounting.admit(attempt, blacklists: directory.blacklists, storeCountsLimits: storeCountsLimits, now: now)
    }

    /// Starts an admitted call, trunk or SIP2SIM: it waits for the store to
    /// record it as live (and count the limits it counts) before anything is
    /// sent on, so a crash from then on leaves a trace to record as interrupted.
    mutating func launch(_ call: Call, live: LiveCall, countedInStore checks: [LimitCheck] = []) -> [Action] {
        pending[live.callID] = Pending(call: call, checks: checks, startAt: live.startAt)
        return [.admit(live, limits: checks.map { StoredLimit(key: $0.key.storeKey, kind: $0.kind) })]
    }

    /// The store's answer to `.admit`.
    mutating func admissionAnswered(callID: String, _ result: CallStoreWrites.AdmissionResult, at clock: CallClock) -> [Action] {
        switch result {
        case .recorded(let refusedAt): admitted(callID: callID, refusedAt: refusedAt, at: clock)
        case .failed: admissionFailed(callID: callID, at: clock)
        }
    }

    /// The store recorded the call as live; `refusedAt`: the index of the
    /// first limit it found full (the call is refused with that limit's reason).
    public mutating func admitted(callID: String, refusedAt: Int?, at clock: CallClock) -> [Action] {
        guard let p = pending.removeValue(forKey: callID) else { return [] }
        let call = p.call
        if let cancelledAt = p.cancelledAt {
            // Never bridged: its CDR (which also ends the live-call row) says cancelled.
            release(call.admission, account: call.attempt.account.id)
            let record = CallRecord(aLegCallID: callID, setupAt: p.startAt, endedAt: cancelledAt, finalStatus: 487, clearedBy: .caller)
            return [.recordCDR(call.attempt.cdr(callID: callID, record: record, onTrunk: call.simICCID == nil), refused: false)]
        }
        // Refused by a limit the store found full, or recorded as live after a
        // stop's drain period; either way its CDR ends the live-call row.
        let refusal = clearing ? CallRejection.nodeStopping : refusedAt.flatMap { $0 < p.checks.count ? p.checks[$0].rejection : nil }
        if let refusal {
            release(call.admission, account: call.attempt.account.id)
            return reject(call.request, refusal, account: call.attempt.account.id, trunk: call.simICCID == nil ? call.attempt.trunk.id : nil,
                          controls: call.attempt.controls, now: clock.wall, attempt: call.attempt)
        }
        aCallIDOfB[call.machine.bLegCallID] = callID
        calls[callID] = call
        return event(callID, at: clock) { $0.start(now: clock.wall) }
    }

    /// The store could not record the call (the shell has logged why): refused, nothing held.
    public mutating func admissionFailed(callID: String, at clock: CallClock) -> [Action] {
        guard let p = pending.removeValue(forKey: callID) else { return [] }
        release(p.call.admission, account: p.call.attempt.account.id)
        return [.respond(p.call.request, p.call.request.message.makeResponse(500, reasonPhrase: "Server Internal Error (store unavailable)"))]
    }

    /// What an admitted call took: its channels on this node and its hold on the balance.
    func release(_ admission: Admission, account: String) {
        accounting.release(admission, account: account)
    }

    enum AuthOutcome { case trunk(Trunk), challenge(stale: Bool), refuse(String) }

    mutating func authenticate(_ invite: SIPMessage, now: Double) -> AuthOutcome {
        guard let header = invite.firstValue(.proxyAuthorization) ?? invite.firstValue(.authorization) else { return .challenge(stale: false) }
        let credentials: DigestCredentials
        do { credentials = try DigestCredentials(parsing: header, header: "Proxy-Authorization") } catch {
            return .refuse("\(error)")
        }
        guard let trunk = directory.trunk(forUsername: credentials.username) else {
            return .refuse("no trunk has user name '\(credentials.username.prefix(64))'")
        }
        let ha1 = credentials.algorithm == .md5 || credentials.algorithm == .md5Session ? trunk.ha1MD5 : trunk.ha1SHA256
        guard let ha1 else { return .refuse("trunk \(trunk.id) has no \(credentials.algorithm.rawValue) credentials") }
        switch digest.verify(credentials, method: "INVITE", ha1: ha1, now: now) {
        case .accepted: return .trunk(trunk)
        case .stale: return .challenge(stale: true)
        case .rejected(let why): return .refuse("trunk \(trunk.id): \(why)")
        }
    }

    /// A new call refused before any lookup, with no CDR: above the rate
    /// taken while the switch is overloaded (`OverloadAdmission`; the point is
    /// to spend as little as possible on it, and the loop logs how many it
    /// refused once the rate is lifted), or while the node is stopping. 503
    /// with Retry-After, so that a caller with another node tries that (RFC 3263 §4.3).
    func refuseNewCall(_ request: Request, _ why: CallRejection) -> [Action] {
        let headers = Self.refusalHeaders(why)
        let answer = request.message.makeResponse(why.statusCode, reasonPhrase: SIPMessage.standardReasonPhrase(why.statusCode),
                                                  toTag: SIPEndpoint.newTag(), headers: headers)
        return [.respond(request, answer)]
    }

    /// X-Reason, Reason (RFC 3326) and, for what clears with time, Retry-After.
    static func refusalHeaders(_ why: CallRejection) -> [(SIPHeaderName, String)] {
        var headers: [(SIPHeaderName, String)] = [(CallControlHeaders.reasonHeader, why.reasonText), (.reason, why.reasonHeader)]
        if let s = why.retryAfterSeconds { headers.append((.retryAfter, String(s))) }
        return headers
    }

    /// Refuses a call with the T6 code, X-Reason and Reason, and records the attempt.
    func reject(_ request: Request, _ why: CallRejection, account: String, trunk: String?, controls: CallControlHeaders,
                now: Double, attempt: CallAttempt? = nil) -> [Action] {
        let headers = Self.refusalHeaders(why)
        let invite = request.message
        let answer = invite.makeResponse(why.statusCode, reasonPhrase: SIPMessage.standardReasonPhrase(why.statusCode),
                              toTag: SIPEndpoint.newTag(), headers: headers)
        logger.info("call refused", metadata: ["trunk": "\(trunk ?? "-")", "account": "\(account)", "status": "\(why.statusCode)",
                                               "reason": "\(why.reasonText)"])
        let cdr = CDR(callID: invite.callID ?? "", accountID: account, trunkID: trunk, tag: controls.tag,
                      from: attempt?.cli ?? TrunkCallService.number(TrunkCallService.callerNumber(invite)),
                      to: attempt?.destination ?? TrunkCallService.number(invite.parsedRequestURI?.user ?? ""), callType: attempt?.callType,
                      startAt: now, endAt: now, durationSeconds: 0, billedSeconds: 0, cost: 0, finalStatus: why.statusCode,
                      reason: why.reasonText)
        return [.respond(request, answer), .recordCDR(cdr, refused: true)]
    }

    mutating func bye(_ request: Request, at clock: CallClock) -> [Action] {
        let m = request.message
        guard let callID = m.callID else { return [] }
        if calls[callID] != nil {
            return [.respond(request, m.makeResponse(200))] + event(callID, at: clock) { $0.aLegBye(now: clock.wall) }
        }
        if let aCallID = aCallIDOfB[callID], calls[aCallID] != nil {
            return [.respond(request, m.makeResponse(200))] + event(aCallID, at: clock) { $0.bLegBye(now: clock.wall) }
        }
        return [.respond(request, m.makeResponse(481))]
    }

    /// re-INVITE, UPDATE, INFO … from either side: relayed to the other, and its answer back.
    mutating func inDialog(_ request: Request) -> [Action] {
        let m = request.message
        guard let callID = m.callID else { return [] }
        let fromA = calls[callID] != nil
        guard let aCallID = fromA ? callID : aCallIDOfB[callID], let call = calls[aCallID] else {
            return [.respond(request, m.makeResponse(481))]
        }
        guard let relayed = fromA ? call.machine.relayFromA(m) : call.machine.relayFromB(m) else {
            return [.respond(request, m.makeResponse(491, reasonPhrase: "Request Pending"))]
        }
        let destination = fromA ? call.gateways[call.machine.currentGateway] : call.caller
        return [.relay(Relay(request: relayed, destination: destination, original: request, machine: call.machine, fromA: fromA))]
    }

    // MARK: B leg and timer events

    /// A response to the B leg's INVITE (`callID`: the A leg's).
    public mutating func bResponse(_ response: SIPMessage, callID: String, at clock: CallClock) -> [Action] {
        guard let call = calls[callID] else { return answerToCancelledInvite(response, callID: callID, at: clock) }
        let wasAnswered = call.machine.state == .answered
        var out = event(callID, at: clock) { $0.bLegResponse(response, now: clock.wall) }
        // With a store shared by a cluster, an answered call is recorded there
        // with its rate, so that every node can cost the account's calls
        // together. Not waited for: if it fails, the call is still held to its own cap.
        if !wasAnswered, storeCountsLimits, call.spendsBalance, let rate = call.attempt.rate,
           call.machine.state == .answered, let at = call.machine.answeredAt {
            out.insert(.recordAnswer(callID: callID, at: at, rate: rate), at: 0)
        }
        return out
    }

    /// The final answer to a cancelled B leg's INVITE: a 487 ends the wait;
    /// a 2xx that crossed the CANCEL is ACKed and the gateway's dialog hung up
    /// (else the gateway would hold the call up until its own ACK timeout).
    mutating func answerToCancelledInvite(_ response: SIPMessage, callID: String, at clock: CallClock) -> [Action] {
        guard let call = cancelledCalls[callID], let code = response.statusCode, code >= 200 else { return [] }
        cancelledCalls[callID] = nil
        var out: [Action] = []
        perform(call.machine.bLegResponse(response, now: clock.wall), call, callID: callID, at: clock, into: &out)
        return out
    }

    /// The B leg's INVITE had no final response in time (Timer B).
    public mutating func bTimeout(callID: String, at clock: CallClock) -> [Action] {
        cancelledCalls[callID] = nil
        return event(callID, at: clock) { $0.bLegTimeout(now: clock.wall) }
    }

    /// The gateway cannot be reached: treated as 503, so the next one is tried.
    public mutating func bUnreachable(callID: String, at clock: CallClock) -> [Action] {
        guard let bCallID = calls[callID]?.machine.bLegCallID else {
            cancelledCalls[callID] = nil
            return []
        }
        var r = SIPMessage(response: 503, reasonPhrase: "Service Unavailable")
        r.append(.callID, bCallID)
        return bResponse(r, callID: callID, at: clock)
    }

    /// The caller never ACKed our 2xx (RFC 3261 §13.3.1.4): the call is cleared.
    public mutating func missingACK(callID: String, at clock: CallClock) -> [Action] {
        guard calls[callID] != nil else { return [] }
        logger.notice("caller never acknowledged the answer; clearing the call", metadata: ["call-id": "\(callID)"])
        return event(callID, at: clock) { $0.aLegACKTimeout(now: clock.wall) }
    }

    /// A call timer went off (or, for `.balanceCap`, the account's calls together used up its money).
    public mutating func timerFired(_ timer: CallTimer, callID: String, at clock: CallClock) -> [Action] {
        event(callID, at: clock) { $0.timerFired(timer, now: clock.wall) }
    }

    /// The node's drain period is over: every call still up is cleared by the
    /// platform (`B2BUACall.platformClear`: BYE both ways, or refused and its B
    /// leg cancelled while it is set up), each with a CDR saying why; calls
    /// the store has yet to record as live are refused when it has.
    public mutating func clearAll(_ why: CallRejection, at clock: CallClock) -> [Action] {
        stopping = true
        clearing = true
        var out: [Action] = []
        for callID in calls.keys.sorted() {
            out += event(callID, at: clock, arm: false) { $0.platformClear(why, now: clock.wall) }
        }
        arm(&out)
        return out
    }

    /// The armed deadline was reached: fire the call timers that are due.
    public mutating func timersDue(at clock: CallClock) -> [Action] {
        armedTimer = nil
        var out: [Action] = []
        for id in timers.expired(now: clock.uptimeNanoseconds) {
            out += event(id.callID, at: clock, arm: false) { $0.timerFired(id.timer, now: clock.wall) }
        }
        arm(&out)
        return out
    }

    // MARK: The machine's actions

    /// Feeds one event to a call's machine (updated in place) and turns its actions into the core's.
    mutating func event(_ callID: String, at clock: CallClock, arm armAfter: Bool = true,
                        _ feed: (inout B2BUACall) -> [B2BUACall.Action]) -> [Action] {
        guard let call = calls[callID] else { return [] }
        let machineActions = feed(&call.machine)
        var out: [Action] = []
        perform(machineActions, call, callID: callID, at: clock, into: &out)
        if armAfter { arm(&out) }
        return out
    }

    mutating func perform(_ actions: [B2BUACall.Action], _ call: Call, callID: String, at clock: CallClock, into out: inout [Action]) {
        for action in actions {
            switch action {
            case .respondToA(let response):
                out.append(.respond(call.request, response))
            case .sendToB(let request, let gateway):
                guard gateway < call.gateways.count else { continue }
                let destination = call.gateways[gateway]
                switch request.method {
                case .invite?:
                    call.bInviteCSeq = request.cseq?.number ?? 1
                    out.append(.sendInvite(request, to: destination, callID: callID))
                case .cancel?:
                    out.append(.cancelInvite(bCallID: request.callID ?? "", cseq: call.bInviteCSeq))
                case .ack?:
                    out.append(.sendACK(request, to: destination))
                default:
                    out.append(.send(request, to: destination))
                }
            case .sendToA(let request):
                out.append(.send(request, to: call.caller))
            case .startTimer(let timer, let seconds):
                // A large balance gives a cap decades away: held to 30 years so the nanoseconds fit.
                let nanos = UInt64(min(max(0, seconds), 946_080_000)) * 1_000_000_000
                timers.schedule(CallTimerID(callID: callID, timer: timer), at: clock.uptimeNanoseconds + nanos)
            case .cancelTimer(let timer):
                _ = timers.cancel(CallTimerID(callID: callID, timer: timer))
            case .writeRecord(let record):
                if let written = finish(callID: callID, record: record) { out.append(written) }
                return  // the call is over: nothing after its record
            }
        }
    }

    /// Keeps one deadline armed for the earliest call timer, rounded up to a
    /// 5 ms tick (well inside the ±1 s T4/T5/T10 allow) so that calls set up
    /// together share a wake-up.
    mutating func arm(_ out: inout [Action]) {
        guard let at = timers.deadlineToArm(armed: armedTimer) else { return }
        armedTimer = at
        out.append(.armTimer(atUptimeNanoseconds: at))
    }

    /// The call is over: rated, its CDR to write (debiting the balance in the
    /// same transaction), its channels and hold given back.
    mutating func finish(callID: String, record: CallRecord) -> Action? {
        guard let call = calls.removeValue(forKey: callID) else { return nil }
        for timer in CallTimer.allCases { _ = timers.cancel(CallTimerID(callID: callID, timer: timer)) }
        aCallIDOfB[call.machine.bLegCallID] = nil
        if call.machine.awaitsAnswerToCancel { cancelledCalls[callID] = call }
        release(call.admission, account: call.attempt.account.id)
        let cdr = call.attempt.cdr(callID: callID, record: record, onTrunk: call.simICCID == nil)
        directory.debit(account: cdr.accountID, cdr.cost)
        return .recordCDR(cdr, refused: false)
    }
}
