import CallControl
import CallCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import NodeConfiguration
import Rating
import SIMs
import SIPAuth
import SIPMessage
import SIPStack
import SIPTransaction
import Store

/// The trunk service: answers INVITEs from customers' trunks, applies the
/// policy (T1–T13), bridges each admitted call to an upstream gateway as a
/// `B2BUACall`, enforces maxdur/maxcost/balance while it runs and writes its
/// CDR when it ends. One actor owns every call's state machine and performs
/// the actions the machines return; the SIP endpoint does the transactions.
public actor TrunkCallService {
    /// A live call's state. A class, owned by this actor only: each event
    /// updates it in place (as a struct it was copied whole, a dozen
    /// references retained and released, for every action performed).
    final class LiveCallEntry {
        var machine: B2BUACall
        let attempt: CallAttempt
        let admission: Admission
        let invite: SIPServerRequest
        let caller: SIPDestination
        let gateways: [SIPDestination]
        var bInviteCSeq: UInt32 = 1
        /// A SIP2SIM call's SIM (its CDR has no trunk).
        let simICCID: String?
        /// Admitted against the account's balance (not an emergency or free call):
        /// cleared with the account's other calls when together they use it up.
        let spendsBalance: Bool

        init(machine: B2BUACall, attempt: CallAttempt, admission: Admission, invite: SIPServerRequest, caller: SIPDestination,
             gateways: [SIPDestination], simICCID: String? = nil, spendsBalance: Bool = true) {
            self.machine = machine; self.attempt = attempt; self.admission = admission; self.invite = invite
            self.caller = caller; self.gateways = gateways; self.simICCID = simICCID; self.spendsBalance = spendsBalance
        }
    }

    let store: Store
    let node: NodeConfiguration
    let logger: Logger
    var endpoint: SIPEndpoint?
    var directory = TrunkDirectory()
    var limits = LimitBook()
    var holds = BalanceHolds()
    var digest: DigestServer
    var calls: [String: LiveCallEntry] = [:]
    var aCallIDOfB: [String: String] = [:]
    var gatewayAddresses: [String: SIPDestination] = [:]
    var localContacts: [String: String] = [:]
    var refreshTask: Task<Void, Never>?
    var spendTask: Task<Void, Never>?
    /// The calls' maxdur/maxcost/balance timers, in one queue with one
    /// event-loop task armed for the earliest (a sleeping task per call cost
    /// a task, its continuation and a dispatch timer for every call).
    var callTimers = TimerQueue<CallTimerID>()
    var armedCallTimer: (deadline: UInt64, task: Scheduled<Void>)?
    let timerLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()
    // SIP2SIM calls (SIMCalls.swift).
    var simSource: (@Sendable () async throws -> [SIMCallProfile])?
    var sims: [String: SIMCallProfile] = [:]
    /// The same SIMs by linked number (S12: calls to the customer's number).
    var simsByLinkedNumber: [String: SIMCallProfile] = [:]
    var mobileCoreSources: Set<String> = []
    var mobileCoreDestination: SIPDestination?
    var customerServers: [String: (destinations: [SIPDestination], until: Double)] = [:]
    let dialPlan: HandsetDialPlan

    public init(store: Store, node: NodeConfiguration, nonceSecret: [UInt8], logger: Logger) {
        self.store = store; self.node = node; self.logger = logger
        dialPlan = HandsetDialPlan(emergencyNumbers: node.emergencyNumbers, networkServiceCodes: node.networkServiceCodes)
        digest = DigestServer(realm: node.sipRealm, secret: nonceSecret,
                              algorithms: node.digestAlgorithms.compactMap { DigestAlgorithm(token: $0) })
    }

    /// Loads the directory, resolves the gateways and starts the periodic reload.
    public func start(endpoint: SIPEndpoint, reloadEvery seconds: Double = 5) async throws {
        self.endpoint = endpoint
        await endpoint.setMissingACKHandler { [weak self] callID in await self?.missingACK(callID: callID) }
        directory = try await TrunkDirectory.load(from: store)
        var named = node.gateways.map { ($0.name, $0.address) }
        if let e = node.emergencyGateway { named.append(("emergency", e)) }
        for (name, address) in named {
            if let d = Self.resolve(address) { gatewayAddresses[name] = d } else {
                logger.error("gateway address does not resolve; calls will not be routed to it", metadata: ["gateway": "\(name)", "address": "\(address)"])
            }
        }
        refreshTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(seconds))
                await self?.reload()
            }
        }
        spendTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await self?.clearCallsOutOfMoney(now: Date().timeIntervalSince1970)
            }
        }
    }

    /// T10 across calls: every second, the answered calls of each account are
    /// costed together; an account whose calls have used up its balance +
    /// credit has all of them cleared, BYE both ways with `Balance now below limit`.
    /// With a store shared by a cluster (PostgreSQL) the account's calls on
    /// every node are costed, against the balance as stored now; each node
    /// clears its own.
    func clearCallsOutOfMoney(now: Double) async {
        var running: [AnsweredCall] = []
        for (callID, entry) in calls where entry.spendsBalance && entry.machine.state == .answered {
            guard let rate = entry.attempt.rate, let answeredAt = entry.machine.answeredAt else { continue }
            running.append(AnsweredCall(callID: callID, accountID: entry.attempt.account.id, rate: rate, answeredAt: answeredAt))
        }
        guard !running.isEmpty else { return }
        let exhausted: [String: [String]]
        if store.countsLimits {
            let local = Dictionary(grouping: running, by: \.accountID)
            do {
                // Only accounts that could be out of money are costed call by call:
                // those whose calls in the store, at most their bound, plus this
                // node's own (some counted twice, so still a bound) reach what they have.
                let bounds = try await store.answeredCallsCostBound(accounts: local.keys.sorted(), now: now)
                let close = local.keys.filter { id in
                    guard let b = bounds[id] else { return true }
                    return b.costBound + AccountSpend.spent(local[id] ?? [], now: now) >= b.available
                }.sorted()
                guard !close.isEmpty else { return }
                let (all, available) = try await store.answeredCalls(accounts: close)
                // Calls answered here whose answer is not in the store yet still count.
                let recorded = Set(all.map(\.callID))
                let everywhere = all + close.flatMap { local[$0] ?? [] }.filter { !recorded.contains($0.callID) }
                exhausted = AccountSpend.exhausted(everywhere, available: { available[$0] }, now: now)
            } catch {
                logger.error("could not cost the accounts' calls across the cluster", metadata: ["error": "\(error)"])
                return
            }
        } else {
            exhausted = AccountSpend.exhausted(running, available: { [directory] id in
                directory.accounts[id].map { $0.balance + $0.creditLimit }
            }, now: now)
        }
        for (account, callIDs) in exhausted.sorted(by: { $0.key < $1.key }) {
            let mine = callIDs.filter { calls[$0] != nil }
            guard !mine.isEmpty else { continue }
            logger.notice("account's calls together used up its balance and credit: clearing them",
                          metadata: ["account": "\(account)", "calls": "\(callIDs.count)", "on this node": "\(mine.count)"])
            for callID in mine {
                guard let entry = calls[callID] else { continue }
                let actions = entry.machine.timerFired(.balanceCap, now: now)
                await perform(actions, callID: callID)
            }
        }
    }

    public func stop() {
        refreshTask?.cancel()
        spendTask?.cancel()
        armedCallTimer?.task.cancel()
        armedCallTimer = nil
        callTimers.removeAll()
    }

    func reload() async {
        do { directory = try await TrunkDirectory.load(from: store) } catch {
            logger.error("could not reload accounts and trunks from the store; keeping the last copy", metadata: ["error": "\(error)"])
        }
        await reloadSIMs()
    }

    // MARK: Requests

    public func handle(_ request: SIPServerRequest) async {
        let m = request.message
        guard let method = m.method else { return }
        switch method {
        case .invite where m.toTag == nil:
            if let direction = simDirection(of: request) { await newSIMCall(request, direction) } else { await newCall(request) }
        case .cancel:
            await cancelled(request)
        case .ack:
            break  // the A leg's ACK of our 2xx; the B leg was ACKed when it answered
        case .bye:
            await bye(request)
        case .options:
            await request.respond(200, headers: [(.allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"), (.accept, "application/sdp")])
        default:
            if m.toTag != nil { await inDialog(request) } else {
                await request.respond(405, headers: [(.allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO")])
            }
        }
    }

    func newCall(_ request: SIPServerRequest) async {
        let invite = request.message
        guard let callID = invite.callID, calls[callID] == nil else { return }
        let now = Date().timeIntervalSince1970
        let source = request.source.ipAddress ?? ""

        // T12: the trunk by source address, else by digest credentials.
        var trunk = directory.trunk(forSource: source)
        if trunk == nil {
            switch authenticate(invite, now: now) {
            case .trunk(let t): trunk = t
            case .challenge(let stale):
                let challenges = digest.makeChallenges(now: now, stale: stale)
                await request.respond(407, headers: challenges.map { (.proxyAuthenticate, $0.headerValue) })
                return
            case .refuse(let why):
                logger.notice("trunk authentication failed", metadata: ["source": "\(source)", "why": "\(why)"])
                await request.respond(403, reasonPhrase: "Forbidden (authentication failed)")
                return
            }
        }
        guard var trunk else { return }

        let controls: CallControlHeaders
        do { controls = try CallControlHeaders(from: invite) } catch {
            logger.info("bad call control header", metadata: ["source": "\(source)", "error": "\(error)"])
            await request.respond(400, reasonPhrase: "Bad Request (\(error.description.prefix(120)))")
            return
        }
        // T2: a named trunk must be one of the caller's own.
        if let named = controls.trunk {
            guard named.account == trunk.accountID, let t = directory.trunks[named.description] else {
                await reject(request, .invalidTrunk, account: trunk.accountID, trunk: trunk.id, controls: controls, now: now)
                return
            }
            trunk = t
        }
        guard let account = directory.accounts[trunk.accountID] else {
            logger.error("trunk belongs to no account", metadata: ["trunk": "\(trunk.id)"])
            await request.respond(500, reasonPhrase: "Server Internal Error (trunk has no account)")
            return
        }
        let destination = Self.number(invite.parsedRequestURI?.user ?? "")
        let cli = Self.number(Self.callerNumber(invite))
        let attempt = CallAttempt(account: account, accountLimits: directory.accountLimits[account.id] ?? CallLimits(), trunk: trunk,
                                  controls: controls, cli: cli, destination: destination, callType: node.callType(of: destination),
                                  rate: directory.rate(account: account.id, number: destination))
        let admission: Admission
        let (decision, counted) = admit(attempt, now: now)
        switch decision {
        case .reject(let why):
            await reject(request, why, account: account.id, trunk: trunk.id, controls: controls, now: now, attempt: attempt)
            return
        case .admit(let a): admission = a
        }

        let routes = node.gateways(for: destination).compactMap { g in gatewayAddresses[g.name].map { (g, $0) } }
        guard let endpoint else {
            release(admission, account: account.id)
            return
        }
        let caller = SIPDestination(address: request.source, transport: request.transport)
        let localContact = await contactHostPort(for: caller, endpoint: endpoint)
        let machine = B2BUACall(
            invite: invite, gateways: routes.map { GatewayTarget(name: $0.0.name, hostPort: $0.0.address) },
            bCallID: SIPEndpoint.newCallID(host: node.nodeName), bFromTag: SIPEndpoint.newTag(), aToTag: SIPEndpoint.newTag(),
            localContact: localContact, maxDuration: admission.maxDuration, costCapSeconds: admission.maxCostSeconds,
            balanceCapSeconds: admission.balanceSeconds, warning: admission.warning)
        await launch(LiveCallEntry(machine: machine, attempt: attempt, admission: admission, invite: request, caller: caller,
                                   gateways: routes.map(\.1)),
                     live: LiveCall(callID: callID, accountID: account.id, trunkID: trunk.id, tag: controls.tag,
                                    from: cli, to: destination, startAt: now), countedInStore: counted, now: now)
    }

    /// The policy runs here; the limits are counted in this node's memory or,
    /// when the store counts them (a cluster's PostgreSQL), by the store as
    /// the call is launched: those checks are returned. An admitted call
    /// holds its first billing increment on this node (`BalanceHolds`) from
    /// here, before anything is awaited, so calls arriving together see each
    /// other's; `release` gives it back with the channels.
    func admit(_ attempt: CallAttempt, now: Double) -> (AdmissionDecision, [LimitCheck]) {
        var attempt = attempt
        attempt.committed = holds.held(attempt.account.id)
        let decided: (AdmissionDecision, [LimitCheck])
        if store.countsLimits {
            switch LimitBook.plan(attempt, blacklists: directory.blacklists) {
            case .reject(let why): decided = (.reject(why), [])
            case .admit(let plan): decided = (.admit(plan.admission), plan.checks)
            }
        } else {
            decided = (limits.admit(attempt, blacklists: directory.blacklists, now: now), [])
        }
        if case .admit(let a) = decided.0 { holds.hold(a.held, account: attempt.account.id) }
        return decided
    }

    /// Starts an admitted call, trunk or SIP2SIM: counted against the limits
    /// the store counts and recorded as live before anything is sent on (a
    /// crash from then on leaves a trace to record as interrupted), then its B leg.
    func launch(_ entry: LiveCallEntry, live: LiveCall, countedInStore checks: [LimitCheck] = [], now: Double) async {
        let refused: Int?
        do {
            refused = try await store.admitCall(live, node: node.nodeName,
                                                limits: checks.map { StoredLimit(key: $0.key.storeKey, kind: $0.kind) })
        } catch {
            logger.error("could not record the call start; refusing the call", metadata: ["error": "\(error)"])
            release(entry.admission, account: live.accountID)
            await entry.invite.respond(500, reasonPhrase: "Server Internal Error (store unavailable)")
            return
        }
        if let i = refused, i < checks.count {
            release(entry.admission, account: live.accountID)
            await reject(entry.invite, checks[i].rejection, account: live.accountID, trunk: live.trunkID, controls: entry.attempt.controls,
                         now: now, attempt: entry.attempt)
            return
        }
        aCallIDOfB[entry.machine.bLegCallID] = live.callID
        let actions = entry.machine.start(now: now)
        calls[live.callID] = entry
        await perform(actions, callID: live.callID)
    }

    /// What an admitted call took: its channels on this node and its hold on the balance.
    func release(_ admission: Admission, account: String) {
        limits.release(admission.channels)
        holds.release(admission.held, account: account)
    }

    /// Our host:port for Contact headers: fixed per transport and address
    /// family, so asked of the endpoint once rather than on every call.
    func contactHostPort(for destination: SIPDestination, endpoint: SIPEndpoint) async -> String {
        let key = "\(destination.transport)/\(destination.address.ipAddress?.contains(":") == true ? 6 : 4)"
        if let known = localContacts[key] { return known }
        let found = await endpoint.contactHostPort(for: destination) ?? "127.0.0.1"
        localContacts[key] = found
        return found
    }

    enum AuthOutcome { case trunk(Trunk), challenge(stale: Bool), refuse(String) }

    func authenticate(_ invite: SIPMessage, now: Double) -> AuthOutcome {
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

    /// Refuses a call with the T6 code, X-Reason and Reason, and records the attempt.
    func reject(_ request: SIPServerRequest, _ why: CallRejection, account: String, trunk: String?, controls: CallControlHeaders,
                now: Double, attempt: CallAttempt? = nil) async {
        var headers: [(SIPHeaderName, String)] = [(CallControlHeaders.reasonHeader, why.reasonText), (.reason, why.reasonHeader)]
        if let s = why.retryAfterSeconds { headers.append((.retryAfter, String(s))) }
        await request.respond(why.statusCode, reasonPhrase: SIPMessage.standardReasonPhrase(why.statusCode), toTag: SIPEndpoint.newTag(), headers: headers)
        logger.info("call refused", metadata: ["trunk": "\(trunk ?? "-")", "account": "\(account)", "status": "\(why.statusCode)",
                                               "reason": "\(why.reasonText)"])
        let invite = request.message
        let cdr = CDR(callID: invite.callID ?? "", accountID: account, trunkID: trunk, tag: controls.tag,
                      from: attempt?.cli ?? Self.number(Self.callerNumber(invite)),
                      to: attempt?.destination ?? Self.number(invite.parsedRequestURI?.user ?? ""), callType: attempt?.callType,
                      startAt: now, endAt: now, durationSeconds: 0, billedSeconds: 0, cost: 0, finalStatus: why.statusCode,
                      reason: why.reasonText)
        await recordRefusal(cdr)
    }

    /// The CDR of a call refused before it was bridged.
    func recordRefusal(_ cdr: CDR) async {
        do { try await store.recordCall(cdr) } catch {
            logger.error("could not write the CDR of a refused call", metadata: ["call-id": "\(cdr.callID)", "error": "\(error)"])
        }
    }

    func cancelled(_ request: SIPServerRequest) async {
        guard let callID = request.message.callID, let entry = calls[callID] else { return }
        let actions = entry.machine.aLegCancel(now: Date().timeIntervalSince1970)
        await perform(actions, callID: callID)
    }

    func bye(_ request: SIPServerRequest) async {
        guard let callID = request.message.callID else { return }
        let now = Date().timeIntervalSince1970
        if let entry = calls[callID] {
            await request.respond(200)
            let actions = entry.machine.aLegBye(now: now)
            await perform(actions, callID: callID)
        } else if let aCallID = aCallIDOfB[callID], let entry = calls[aCallID] {
            await request.respond(200)
            let actions = entry.machine.bLegBye(now: now)
            await perform(actions, callID: aCallID)
        } else {
            await request.respond(481)
        }
    }

    /// re-INVITE, UPDATE, INFO … from either side: relayed to the other, and its answer back.
    func inDialog(_ request: SIPServerRequest) async {
        guard let callID = request.message.callID, let endpoint else { return }
        let fromA = calls[callID] != nil
        guard let aCallID = fromA ? callID : aCallIDOfB[callID], let entry = calls[aCallID] else {
            await request.respond(481)
            return
        }
        let relayed = fromA ? entry.machine.relayFromA(request.message) : entry.machine.relayFromB(request.message)
        guard let relayed else {
            await request.respond(491, reasonPhrase: "Request Pending")
            return
        }
        let destination = fromA ? entry.gateways[entry.machine.currentGateway] : entry.caller
        let machine = entry.machine
        Task {
            do {
                let response = try await endpoint.send(relayed, to: destination)
                if let code = response.statusCode, (200..<300).contains(code), relayed.method == .invite, let cseq = relayed.cseq?.number {
                    let ack = fromA ? machine.bLegACK(cseq: cseq) : machine.aLegACK(cseq: cseq)
                    try? await endpoint.sendACK(ack, to: destination)
                }
                await request.respond(machine.relayResponse(response, to: request.message))
            } catch {
                await request.respond(machine.relayResponse(SIPMessage(response: 408, reasonPhrase: "Request Timeout"), to: request.message))
            }
        }
    }

    // MARK: B leg events

    func bResponse(_ response: SIPMessage, callID: String) async {
        guard let entry = calls[callID] else { return }
        let wasAnswered = entry.machine.state == .answered
        let actions = entry.machine.bLegResponse(response, now: Date().timeIntervalSince1970)
        if !wasAnswered, entry.machine.state == .answered { recordAnswer(callID, entry) }
        await perform(actions, callID: callID)
    }

    /// With a store shared by a cluster, an answered call is recorded there with
    /// its rate, so that every node can cost the account's calls together
    /// (`clearCallsOutOfMoney`). Not waited for: if it fails, the call is still
    /// held to its own cap.
    func recordAnswer(_ callID: String, _ entry: LiveCallEntry) {
        guard store.countsLimits, entry.spendsBalance, let rate = entry.attempt.rate, let at = entry.machine.answeredAt else { return }
        let store = self.store, logger = self.logger
        Task {
            do { try await store.callAnswered(callID, at: at, rate: rate) } catch {
                logger.error("could not record a call's answer in the store", metadata: ["call-id": "\(callID)", "error": "\(error)"])
            }
        }
    }

    func bTimeout(callID: String) async {
        guard let entry = calls[callID] else { return }
        let actions = entry.machine.bLegTimeout(now: Date().timeIntervalSince1970)
        await perform(actions, callID: callID)
    }

    func missingACK(callID: String) async {
        guard let entry = calls[callID] else { return }
        logger.notice("caller never acknowledged the answer; clearing the call", metadata: ["call-id": "\(callID)"])
        let actions = entry.machine.aLegACKTimeout(now: Date().timeIntervalSince1970)
        await perform(actions, callID: callID)
    }

    func timerFired(_ timer: CallTimer, callID: String) async {
        guard let entry = calls[callID] else { return }
        let actions = entry.machine.timerFired(timer, now: Date().timeIntervalSince1970)
        await perform(actions, callID: callID)
    }

    // MARK: Performing the machine's actions

    func perform(_ actions: [B2BUACall.Action], callID: String) async {
        guard let endpoint else { return }
        for action in actions {
            guard let entry = calls[callID] else { return }
            switch action {
            case .respondToA(let response):
                await entry.invite.respond(response)
            case .sendToB(let request, let gateway):
                guard gateway < entry.gateways.count else { continue }
                let destination = entry.gateways[gateway]
                switch request.method {
                case .invite?:
                    entry.bInviteCSeq = request.cseq?.number ?? 1
                    Task {
                        do {
                            let final = try await endpoint.send(request, to: destination) { provisional in
                                Task { await self.bResponse(provisional, callID: callID) }
                            }
                            await self.bResponse(final, callID: callID)
                        } catch SIPClientError.timeout {
                            await self.bTimeout(callID: callID)
                        } catch {
                            // Unreachable gateway: treated as 503, so the next one is tried.
                            var r = SIPMessage(response: 503, reasonPhrase: "Service Unavailable")
                            r.append(.callID, request.callID ?? "")
                            await self.bResponse(r, callID: callID)
                        }
                    }
                case .cancel?:
                    await endpoint.cancelInvite(callID: request.callID ?? "", cseq: entry.bInviteCSeq)
                case .ack?:
                    try? await endpoint.sendACK(request, to: destination)
                default:
                    Task { _ = try? await endpoint.send(request, to: destination) }
                }
            case .sendToA(let request):
                let caller = entry.caller
                Task { _ = try? await endpoint.send(request, to: caller) }
            case .startTimer(let timer, let seconds):
                // A large balance gives a cap decades away: held to 30 years so the nanoseconds fit.
                let nanos = UInt64(min(max(0, seconds), 946_080_000) * 1_000_000_000)
                callTimers.schedule(CallTimerID(callID: callID, timer: timer), at: NIODeadline.now().uptimeNanoseconds + nanos)
                armEarliestCallTimer()
            case .cancelTimer(let timer):
                callTimers.cancel(CallTimerID(callID: callID, timer: timer))
            case .writeRecord(let record):
                await finish(callID: callID, record: record)
            }
        }
    }

    struct CallTimerID: Hashable, Sendable {
        var callID: String
        var timer: CallTimer
    }

    /// The armed task went off: fire the call timers that are due.
    func callTimersDue() async {
        armedCallTimer = nil
        for id in callTimers.expired(now: NIODeadline.now().uptimeNanoseconds) { await timerFired(id.timer, callID: id.callID) }
        armEarliestCallTimer()
    }

    /// Keeps one event-loop task armed for the earliest call timer, rounded
    /// up to a 5 ms tick (well inside the ±1 s T4/T5/T10 allow) so that calls
    /// set up together share a wake-up.
    func armEarliestCallTimer() {
        guard let at = callTimers.deadlineToArm(armed: armedCallTimer?.deadline) else { return }
        armedCallTimer?.task.cancel()
        let task = timerLoop.scheduleTask(deadline: .uptimeNanoseconds(at)) { [weak self] in
            _ = Task { await self?.callTimersDue() }
        }
        armedCallTimer = (at, task)
    }

    /// The call is over: rate it, write its CDR (debiting the balance in the
    /// same transaction), give its channels back.
    func finish(callID: String, record: CallRecord) async {
        guard let entry = calls.removeValue(forKey: callID) else { return }
        for timer in CallTimer.allCases { callTimers.cancel(CallTimerID(callID: callID, timer: timer)) }
        aCallIDOfB[entry.machine.bLegCallID] = nil
        release(entry.admission, account: entry.attempt.account.id)
        let cdr = entry.attempt.cdr(callID: callID, record: record, onTrunk: entry.simICCID == nil)
        directory.debit(account: cdr.accountID, cdr.cost)
        do {
            try await store.recordCall(cdr)
        } catch {
            // The live_calls row stays, so the next start records it as interrupted.
            logger.error("could not write a CDR", metadata: ["call-id": "\(callID)", "error": "\(error)"])
        }
    }

    // MARK: Helpers

    /// The caller's number: P-Asserted-Identity's user, else From's.
    public static func callerNumber(_ invite: SIPMessage) -> String {
        if let pai = invite.splitValues(.pAssertedIdentity).first, let user = (try? SIPNameAddress(pai))?.uri.user { return user }
        return invite.from?.uri.user ?? ""
    }

    /// A dialled or calling number without visual separators (RFC 3966 allows "-", ".", "(", ")").
    public static func number(_ user: String) -> String {
        let user = user.split(separator: ";", maxSplits: 1).first.map(String.init) ?? user
        return String(user.filter { !"-.() ".contains($0) })
    }

    /// A gateway's address as a UDP destination; a host name is resolved
    /// once, at start.
    public static func resolve(_ address: String) -> SIPDestination? {
        guard let (host, port) = NodeConfiguration.gatewayHostPort(address) else { return nil }
        if let a = try? SocketAddress(ipAddress: host, port: port) { return SIPDestination(address: a, transport: .udp) }
        if let a = try? SocketAddress.makeAddressResolvingHost(host, port: port) { return SIPDestination(address: a, transport: .udp) }
        return nil
    }
}

extension CallAttempt {
    /// The call's CDR: its duration billed and costed at the attempt's rate
    /// (nothing for a call never answered). A SIP2SIM call's (`onTrunk` false) has no trunk.
    public func cdr(callID: String, record: CallRecord, onTrunk: Bool = true) -> CDR {
        let duration = record.durationSeconds
        return CDR(callID: callID, accountID: account.id, trunkID: onTrunk ? trunk.id : nil, tag: controls.tag, from: cli, to: destination,
                   callType: callType, startAt: record.setupAt, answerAt: record.answeredAt, endAt: record.endedAt,
                   durationSeconds: duration, billedSeconds: duration > 0 ? (rate?.increments.billedSeconds(forDuration: duration) ?? 0) : 0,
                   cost: duration > 0 ? (rate?.cost(forDuration: duration) ?? 0) : 0, finalStatus: record.finalStatus, reason: record.reason)
    }
}
