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
/// CDR when it ends. The calls are one value (`TrunkCallCore`) that decides;
/// this actor is its shell: it feeds the core the endpoint's requests and
/// responses, the store's answers and the timer, and performs the actions
/// the core returns. The SIP endpoint does the transactions.
public actor TrunkCallService {
    typealias Core = TrunkCallCore<SIPServerRequest>

    let store: Store
    let node: NodeConfiguration
    let logger: Logger
    var endpoint: SIPEndpoint?
    var core: Core
    let writes: CallStoreWrites
    /// UDP trunk calls, run on the event loop that reads them (nil: all calls here).
    var loopCalls: TrunkCallLoops?
    let accounting = CallAccounting()
    let nonceSecret: [UInt8]
    var localContacts: [String: String] = [:]
    var refreshTask: Task<Void, Never>?
    var spendTask: Task<Void, Never>?
    /// One event-loop task armed for the core's earliest call timer (a
    /// sleeping task per call cost a task, its continuation and a dispatch
    /// timer for every call).
    var armedCallTimer: Scheduled<Void>?
    let timerLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()
    // SIP2SIM calls (SIMCalls.swift).
    var simSource: (@Sendable () async throws -> [SIMCallProfile])?
    /// Which INVITEs are SIM calls; a copy is pushed to the event loops.
    var simRouting = SIMRouting()
    var mobileCoreDestination: SIPDestination?
    var customerServers: [String: (destinations: [SIPDestination], until: Double)] = [:]
    let dialPlan: HandsetDialPlan
    /// In-dialog requests sent (BYEs) whose answers are awaited, and store
    /// writes under way: a stop waits for both.
    var sendsInFlight = 0
    var storeWritesInFlight = 0
    var clearRequested = false

    public init(store: Store, node: NodeConfiguration, nonceSecret: [UInt8], logger: Logger) {
        self.store = store; self.node = node; self.logger = logger
        dialPlan = HandsetDialPlan(emergencyNumbers: node.emergencyNumbers, networkServiceCodes: node.networkServiceCodes)
        self.nonceSecret = nonceSecret
        writes = CallStoreWrites(store: store, node: node.nodeName, logger: logger)
        core = Core(node: node, storeCountsLimits: store.countsLimits, nonceSecret: nonceSecret, accounting: accounting, logger: logger)
    }

    /// Loads the directory, resolves the gateways and starts the periodic
    /// reload. `callsOnEventLoop`: UDP trunk calls are handled on the event
    /// loops of the endpoint's UDP sockets (`TrunkCallLoop`, one per socket
    /// of the first UDP address), the rest here.
    public func start(endpoint: SIPEndpoint, reloadEvery seconds: Double = 5, callsOnEventLoop: Bool = true) async throws {
        self.endpoint = endpoint
        await endpoint.setMissingACKHandler { [weak self] callID in await self?.missingACK(callID: callID) }
        core.directory = try await TrunkDirectory.load(from: store)
        var named = node.gateways.map { ($0.name, $0.address) }
        if let e = node.emergencyGateway { named.append(("emergency", e)) }
        for (name, address) in named {
            if let d = Self.resolve(address) { core.gatewayAddresses[name] = d } else {
                logger.error("gateway address does not resolve; calls will not be routed to it", metadata: ["gateway": "\(name)", "address": "\(address)"])
            }
        }
        routeSIMCalls()
        if callsOnEventLoop, let transport = await endpoint.sipTransport, !transport.udpEventLoops.isEmpty {
            let loops = Array(transport.udpEventLoops.prefix(endpoint.configuration.udpSocketsPerAddress))
            let onLoops = TrunkCallLoops(loops.enumerated().map { i, loop in
                TrunkCallLoop(loop: loop, transport: transport, configuration: endpoint.configuration, store: store, node: node,
                              nonceSecret: nonceSecret, accounting: accounting,
                              callIDMarker: loops.count > 1 ? TrunkCallLoops.marker(loop: i) : nil, logger: logger)
            }, endpoint: endpoint)
            onLoops.update(directory: core.directory, gateways: core.gatewayAddresses, activate: true)
            endpoint.setFront(onLoops)
            loopCalls = onLoops
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
        let answeredOnLoops = await loopCalls?.answeredCalls() ?? []
        let onLoops = Set(answeredOnLoops.map(\.callID))
        let running = core.answeredCalls() + answeredOnLoops
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
            exhausted = AccountSpend.exhausted(running, available: { [directory = core.directory] id in
                directory.accounts[id].map { $0.balance + $0.creditLimit }
            }, now: now)
        }
        for (account, callIDs) in exhausted.sorted(by: { $0.key < $1.key }) {
            let here = callIDs.filter { core.hasCall($0) }
            let mine = here + callIDs.filter { onLoops.contains($0) }
            guard !mine.isEmpty else { continue }
            logger.notice("account's calls together used up its balance and credit: clearing them",
                          metadata: ["account": "\(account)", "calls": "\(callIDs.count)", "on this node": "\(mine.count)"])
            for callID in here { await perform(core.timerFired(.balanceCap, callID: callID, at: .now())) }
            loopCalls?.clearOutOfMoney(callIDs.filter { onLoops.contains($0) })
        }
    }

    // MARK: Stopping

    /// What a stop did, for the log.
    public struct StopReport: Sendable, Equatable {
        /// Calls up (or being set up) when the stop began.
        public var live: Int
        /// Of those, still up at the end of the drain period and cleared by the platform.
        public var cleared: Int
        /// Whether every clearing BYE (and relayed request) was answered before the endpoint closed.
        public var answered: Bool
    }

    /// Stops the service as an operator's SIGTERM asks: new calls are refused
    /// at once (503, `X-Reason: Node Shutting Down`, Retry-After); the live
    /// calls have `drain` to end on their own; any still up then are cleared
    /// (`TrunkCallCore.clearAll`) and their BYEs given up to `answersWithin`
    /// to be answered; finally every CDR and live-call row still on its way
    /// is written before this returns, so the store can be closed after it.
    /// `clearNow()` (a second signal) cuts the drain short.
    public func stop(drainingFor drain: Duration, answersWithin grace: Duration = .seconds(4)) async -> StopReport {
        core.stopping = true
        loopCalls?.beginStopping()
        let live = await callsInProgress()
        var left = live
        let drainEnds = ContinuousClock.now + drain
        if live > 0, drain > .zero {
            logger.notice("stopping: new calls are refused; waiting for the live calls to end",
                          metadata: ["calls": "\(live)", "drain_seconds": "\(drain.components.seconds)"])
        }
        while left > 0, !clearRequested, ContinuousClock.now < drainEnds {
            try? await Task.sleep(for: .milliseconds(100))
            left = await callsInProgress()
        }
        var answered = true
        if left > 0 {
            logger.notice("stopping: clearing the calls still up", metadata: ["calls": "\(left)", "reason": "\(CallRejection.nodeStopping.reasonText)"])
            await perform(core.clearAll(.nodeStopping, at: .now()))
            loopCalls?.clearAll(.nodeStopping)
            let answersBy = ContinuousClock.now + grace
            while !(await isQuiet()) {
                guard ContinuousClock.now < answersBy else { answered = false; break }
                try? await Task.sleep(for: .milliseconds(20))
            }
            if !answered { logger.warning("stopping: not every clearing BYE was answered in time; closing anyway") }
        }
        stop()
        await loopCalls?.stop()
        // The actor's own writes (CDRs, live-call rows) still on their way.
        let writesBy = ContinuousClock.now + .seconds(30)
        while storeWritesInFlight > 0, ContinuousClock.now < writesBy { try? await Task.sleep(for: .milliseconds(10)) }
        return StopReport(live: live, cleared: left, answered: answered)
    }

    /// A second stop signal: the drain period ends now.
    public func clearNow() { clearRequested = true }

    func callsInProgress() async -> Int {
        core.callsInProgress + (await loopCalls?.callsInProgress() ?? 0)
    }

    /// No call left, every request sent for them answered (or given up), and
    /// every cancelled B leg's INVITE answered (a 2xx crossing the CANCEL is hung up).
    func isQuiet() async -> Bool {
        guard core.callsInProgress == 0, core.cancelledBLegsUnanswered == 0, sendsInFlight == 0 else { return false }
        return await loopCalls?.isQuiet() ?? true
    }

    /// Stops at once: no drain, nothing cleared (the live calls stay live in the
    /// store and are recorded as interrupted on the next start).
    public func stop() {
        endpoint?.setFront(nil)
        refreshTask?.cancel()
        spendTask?.cancel()
        armedCallTimer?.cancel()
        armedCallTimer = nil
    }

    func reload() async {
        do {
            core.directory = try await TrunkDirectory.load(from: store)
            loopCalls?.update(directory: core.directory)
        } catch is CancellationError {
            // The node is stopping: the reload was cut short, nothing is wrong.
        } catch {
            logger.error("could not reload accounts and trunks from the store; keeping the last copy", metadata: ["error": "\(error)"])
        }
        await reloadSIMs()
    }

    // MARK: Requests

    public func handle(_ request: SIPServerRequest) async {
        let m = request.message
        var contact = ""
        if m.method == .invite, m.toTag == nil {
            if let direction = simDirection(of: request) { return await newSIMCall(request, direction) }
            guard let endpoint else { return }
            contact = await contactHostPort(for: SIPDestination(address: request.source, transport: request.transport), endpoint: endpoint)
        }
        await perform(core.received(request, contact: contact, at: .now()))
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

    // MARK: Performing the core's actions

    func perform(_ actions: [Core.Action]) async {
        guard let endpoint else { return }
        for action in actions {
            switch action {
            case .respond(let request, let response):
                await request.respond(response)
            case .admit(let live, let limits):
                storeWritesInFlight += 1
                let result = await writes.admit(live, limits: limits)
                storeWritesInFlight -= 1
                await perform(core.admissionAnswered(callID: live.callID, result, at: .now()))
            case .sendInvite(let request, let destination, let callID):
                Task {
                    do {
                        let final = try await endpoint.send(request, to: destination) { provisional in
                            Task { await self.bEvent { $0.bResponse(provisional, callID: callID, at: .now()) } }
                        }
                        await self.bEvent { $0.bResponse(final, callID: callID, at: .now()) }
                    } catch SIPClientError.timeout {
                        await self.bEvent { $0.bTimeout(callID: callID, at: .now()) }
                    } catch {
                        await self.bEvent { $0.bUnreachable(callID: callID, at: .now()) }
                    }
                }
            case .cancelInvite(let bCallID, let cseq):
                await endpoint.cancelInvite(callID: bCallID, cseq: cseq)
            case .sendACK(let request, let destination):
                try? await endpoint.sendACK(request, to: destination)
            case .send(let request, let destination):
                sendsInFlight += 1
                Task {
                    _ = try? await endpoint.send(request, to: destination)
                    self.sendAnswered()
                }
            case .relay(let relay):
                Task {
                    let response = try? await endpoint.send(relay.request, to: relay.destination)
                    await self.perform(relay.answered(response))
                }
            case .recordCDR(let cdr, let refused):
                storeWritesInFlight += 1
                await writes.record(cdr, refused: refused)
                storeWritesInFlight -= 1
            case .recordAnswer(let callID, let at, let rate):
                let writes = self.writes
                Task { await writes.recordAnswer(callID: callID, at: at, rate: rate) }
            case .armTimer(let at):
                armedCallTimer?.cancel()
                armedCallTimer = timerLoop.scheduleTask(deadline: .uptimeNanoseconds(at)) { [weak self] in
                    _ = Task { await self?.callTimersDue() }
                }
            }
        }
    }

    /// An event for the core from outside the actor (a B-leg task, the endpoint's missing-ACK report).
    func bEvent(_ feed: (inout Core) -> [Core.Action]) async {
        await perform(feed(&core))
    }

    func sendAnswered() { sendsInFlight -= 1 }

    func missingACK(callID: String) async {
        await perform(core.missingACK(callID: callID, at: .now()))
    }

    /// The armed task went off: fire the call timers that are due.
    func callTimersDue() async {
        armedCallTimer = nil
        await perform(core.timersDue(at: .now()))
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
