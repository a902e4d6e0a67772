import CallControl
import CallCore
import Foundation
import Logging
import Rating
import NIOConcurrencyHelpers
import NIOCore
import NodeConfiguration
import SIPMessage
import SIPStack
import SIPTransaction
import SIPTransport
import Store

/// Which new INVITEs are SIP2SIM calls (SPEC.md S3, S4, S12), and which
/// way: the one place that decides it, for the actor service (which takes
/// them) and the event loops (which leave them to it).
struct SIMRouting: Sendable {
    /// SIM calls are enabled (`TrunkCallService.enableSIMCalls`).
    var enabled = false
    /// The mobile core, trusted by source address.
    var mobileCoreSources: Set<String> = []
    /// The carrier gateways, trusted by source address (as for texts).
    var gatewaySources: Set<String> = []
    var sims: [String: SIMCallProfile] = [:]
    /// The same SIMs by linked number (S12: calls to the customer's number).
    var simsByLinkedNumber: [String: SIMCallProfile] = [:]

    /// From the mobile core: a handset dialled out; from a carrier to a SIM's
    /// linked number; or to a SIM's Contact (Request-URI user = ICCID). Nil: a trunk call.
    func direction(of invite: SIPMessage, source: String?) -> SIMCallDirection? {
        guard enabled else { return nil }
        if let source, mobileCoreSources.contains(source) { return .fromHandset }
        if let source, gatewaySources.contains(source), let user = invite.parsedRequestURI?.decodedUser,
           let sim = simsByLinkedNumber[user.hasPrefix("+") ? String(user.dropFirst()) : user] {
            return .toLinkedNumber(sim)
        }
        if let user = invite.parsedRequestURI?.user, user.count >= 19, let sim = sims[user] { return .toHandset(sim) }
        return nil
    }

    func isSIMCall(_ invite: SIPMessage, source: String?) -> Bool { direction(of: invite, source: source) != nil }
}

/// Trunk calls over UDP run to completion on the event loop that reads them
/// (docs/run-to-completion.md, slice 3): a datagram is parsed, fed to this
/// loop's transaction layer and call core, and the answers are sent, without
/// leaving the loop. Only the store is waited for, off the loop (the live
/// call row before the B leg, the CDR after the call); its answers come back
/// to the loop as events. It sits in front of the actor endpoint
/// (`SIPFront`) and takes new trunk INVITEs and everything belonging to its
/// own transactions and calls; the rest — SIP2SIM calls, texts,
/// registrations, OPTIONS, TCP — goes on to the endpoint as before.
///
/// Its state is confined to `loop`: every method but `take` runs there, and
/// `take` is called there (`SIPFront`), so no lock guards it.
public final class TrunkCallLoop: SIPFront, @unchecked Sendable {
    struct LoopRequest: CallRequest {
        var inbound: SIPInbound
        var key: TransactionKey
        var message: SIPMessage { inbound.message }
        var source: SocketAddress { inbound.source }
        var transport: SIPTransportProtocol { inbound.transport }
        var readWhileBehind: Bool { inbound.readWhileBehind }
    }

    typealias Core = TrunkCallCore<LoopRequest>

    let loop: any EventLoop
    let transport: SIPTransport
    let configuration: SIPEndpointConfiguration
    let writes: CallStoreWrites
    let logger: Logger
    var layer: TransactionLayer
    var core: Core
    var active = false
    var simRouting = SIMRouting()
    /// The B legs' INVITEs and the relayed requests, by client transaction.
    var bInvites: [TransactionKey: String] = [:]
    var relays: [TransactionKey: Core.Relay] = [:]
    var layerTimer: (deadline: UInt64, task: Scheduled<Void>)?
    var callTimer: Scheduled<Void>?
    var localHostPorts: [Bool: (host: String, port: UInt16?)] = [:]
    /// Datagrams read here that another loop's calls own, by that loop: handed over once per pass.
    var handOvers: [Int: [SIPInbound]] = [:]
    var handOverScheduled = false
    var storeDue = StoreWork()
    var storeHandOverScheduled = false
    /// Hand-overs to the store not finished yet (read by a stop from off the loop).
    let storeWritesInFlight = NIOLockedValueBox(0)
    /// While stopping: the requests sent for calls (BYEs) not yet answered, so the stop can wait for them.
    var stoppingSends: Set<TransactionKey> = []

    init(loop: any EventLoop, transport: SIPTransport, configuration: SIPEndpointConfiguration, store: Store, node: NodeConfiguration,
         nonceSecret: [UInt8], accounting: CallAccounting, callIDMarker: String? = nil, logger: Logger) {
        self.loop = loop; self.transport = transport; self.configuration = configuration
        writes = CallStoreWrites(store: store, node: node.nodeName, logger: logger); self.logger = logger
        layer = TransactionLayer(configuration: configuration, logger: logger)
        core = Core(node: node, storeCountsLimits: store.countsLimits, nonceSecret: nonceSecret, accounting: accounting, logger: logger)
        core.callIDMarker = callIDMarker
    }

    /// Passes a datagram read here to the loop of the calls that own it,
    /// with the others of this pass for that loop (one hand-over, one wake-up).
    func handOver(_ inbound: SIPInbound, to owner: Int, of loops: TrunkCallLoops) {
        handOvers[owner, default: []].append(inbound)
        guard !handOverScheduled else { return }
        handOverScheduled = true
        loop.execute {
            self.handOverScheduled = false
            let batches = self.handOvers
            self.handOvers = [:]
            for (owner, batch) in batches { loops.received(batch, on: owner) }
        }
    }

    // MARK: From the actor service (each runs on the loop)

    func update(directory: TrunkDirectory? = nil, gateways: [String: SIPDestination]? = nil, simRouting: SIMRouting? = nil,
                activate: Bool = false) {
        loop.execute {
            if let directory { self.core.directory = directory }
            if let gateways { self.core.gatewayAddresses = gateways }
            if let simRouting { self.simRouting = simRouting }
            if activate { self.active = true }
        }
    }

    func answeredCalls() async -> [AnsweredCall] {
        (try? await loop.submit { self.core.answeredCalls() }.get()) ?? []
    }

    /// T10 across calls: these calls' account has used up its money (those of other loops are not here).
    func clearOutOfMoney(_ callIDs: [String]) {
        loop.execute {
            for callID in callIDs where self.core.hasCall(callID) {
                self.perform(self.core.timerFired(.balanceCap, callID: callID, at: .now()))
            }
        }
    }

    /// The node is stopping: new calls are refused from now on.
    func beginStopping() {
        loop.execute { self.core.stopping = true }
    }

    func callsInProgress() async -> Int {
        (try? await loop.submit { self.core.callsInProgress }.get()) ?? 0
    }

    /// The drain period is over: the calls still up are cleared (`TrunkCallCore.clearAll`).
    func clearAll(_ why: CallRejection) {
        loop.execute { self.perform(self.core.clearAll(why, at: .now())) }
    }

    /// No call left here, and every request sent for them answered or given up.
    func isQuiet() async -> Bool {
        (try? await loop.submit { self.core.callsInProgress == 0 && self.core.cancelledBLegsUnanswered == 0
                && self.stoppingSends.isEmpty && self.relays.isEmpty }.get()) ?? true
    }

    /// Stops taking datagrams, hands what is gathered for the store over now
    /// (not at the end of the window), and returns once the store has it all.
    func stop() async {
        try? await loop.submit {
            self.active = false
            if self.storeHandOverScheduled { self.handOverToStore() }
            self.layerTimer?.task.cancel()
            self.layerTimer = nil
            self.callTimer?.cancel()
            self.callTimer = nil
        }.get()
        let by = ContinuousClock.now + .seconds(30)
        while storeWritesInFlight.withLockedValue({ $0 }) > 0, ContinuousClock.now < by {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    // MARK: Inbound

    public func take(_ inbound: SIPInbound) -> Bool {
        guard inbound.transport == .udp, loop.inEventLoop, active else { return false }
        let m = inbound.message
        let now = NIODeadline.now().uptimeNanoseconds
        let actions = m.isRequest
            ? layer.receivedRequest(inbound, now: now, acceptsNew: { self.isOurs($0, source: inbound.source.ipAddress) })
            : layer.receivedOwnResponse(inbound, now: now)
        guard let actions else { return false }
        perform(actions)
        return true
    }

    /// A request none of this loop's transactions match that is still its
    /// own: a new trunk INVITE, or a request in one of its calls.
    func isOurs(_ m: SIPMessage, source: String?) -> Bool {
        if m.method == .invite, m.toTag == nil { return !simRouting.isSIMCall(m, source: source) }
        guard let callID = m.callID, m.method != .options, m.method != .message, m.method != .register else { return false }
        return core.knows(callID)
    }

    // MARK: Performing the layer's and the core's actions

    func perform(_ actions: [TransactionLayer.Action]) {
        let now = NIODeadline.now().uptimeNanoseconds
        for action in actions {
            switch action {
            case .sendResponse(let response, let inbound):
                do { _ = try transport.sendResponseDatagram(response, to: inbound) } catch {
                    logger.warning("could not send response", metadata: ["to": "\(inbound.source)", "error": "\(error)"])
                }
            case .sendRequest(let message, let destination, let key):
                do { try transport.sendDatagram(message, to: destination.address) } catch {
                    if let key { perform(layer.clientTransportError(key, error: "\(error)", now: now)) }
                }
            case .deliverRequest(let inbound, let key):
                let contact = inbound.message.method == .invite ? contactHostPort(for: inbound.source) : ""
                perform(core.received(LoopRequest(inbound: inbound, key: key), contact: contact, at: .now()))
                if let refused = core.overloadAdmission.refusalsOnceLifted() {
                    logger.warning("new calls refused with 503 while this loop was overloaded", metadata: ["refused": "\(refused)"])
                }
            case .deliverProvisional(let response, let key):
                if let callID = bInvites[key] { perform(core.bResponse(response, callID: callID, at: .now())) }
            case .deliverFinal(let response, let key):
                if let callID = bInvites.removeValue(forKey: key) {
                    perform(core.bResponse(response, callID: callID, at: .now()))
                } else if let relay = relays.removeValue(forKey: key) {
                    perform(relay.answered(response))
                } else if core.stopping {
                    stoppingSends.remove(key)
                }
            case .failRequest(let error, let key):
                if let callID = bInvites.removeValue(forKey: key) {
                    if case .timeout = error { perform(core.bTimeout(callID: callID, at: .now())) } else {
                        perform(core.bUnreachable(callID: callID, at: .now()))
                    }
                } else if let relay = relays.removeValue(forKey: key) {
                    perform(relay.answered(nil))
                } else if core.stopping {
                    stoppingSends.remove(key)
                }
            case .sendCancel(let cancel, let destination):
                _ = startClient(cancel, method: .cancel, to: destination, addVia: false)
            case .missingACK(let callID):
                perform(core.missingACK(callID: callID, at: .now()))
            }
        }
        armLayerTimer()
    }

    func perform(_ actions: [Core.Action]) {
        for action in actions {
            switch action {
            case .respond(let request, let response):
                perform(layer.respond(response, key: request.key, now: NIODeadline.now().uptimeNanoseconds))
            case .admit(let live, let limits):
                storeDue.admissions.append((live, limits))
                scheduleStoreHandOver()
            case .sendInvite(let request, let destination, let callID):
                if let key = startClient(request, method: .invite, to: destination) { bInvites[key] = callID } else {
                    perform(core.bUnreachable(callID: callID, at: .now()))
                }
            case .cancelInvite(let bCallID, let cseq):
                perform(layer.cancelInvite(callID: bCallID, cseq: cseq))
            case .sendACK(let ack, let destination):
                var ack = ack
                guard let via = via(for: destination) else { continue }
                SIPEndpoint.stamp(&ack, via: via, userAgent: nil)
                perform(layer.sendACK(ack, to: destination, now: NIODeadline.now().uptimeNanoseconds))
            case .send(let request, let destination):
                let key = startClient(request, method: request.method ?? .bye, to: destination)
                if core.stopping, let key { stoppingSends.insert(key) }
            case .relay(let relay):
                if let key = startClient(relay.request, method: relay.request.method ?? .info, to: relay.destination) {
                    relays[key] = relay
                } else {
                    perform(relay.answered(nil))
                }
            case .recordCDR(let cdr, let refused):
                storeDue.cdrs.append((cdr, refused))
                scheduleStoreHandOver()
            case .recordAnswer(let callID, let at, let rate):
                storeDue.answers.append((callID, at, rate))
                scheduleStoreHandOver()
            case .armTimer(let at):
                callTimer?.cancel()
                callTimer = loop.scheduleTask(deadline: .uptimeNanoseconds(at)) { [weak self] in
                    guard let self else { return }
                    self.perform(self.core.timersDue(at: .now()))
                }
            }
        }
    }

    // MARK: The store, behind

    /// What the calls of the loop's passes (bursts of datagrams) want of the
    /// store: handed over together, in one task, `storeWindow` after the
    /// first (a task and a wake-up of the loop per call cost more than the store's own work).
    struct StoreWork {
        var admissions: [(LiveCall, [StoredLimit])] = []
        var cdrs: [(CDR, refused: Bool)] = []
        var answers: [(callID: String, at: Double, rate: Rate)] = []
        var isEmpty: Bool { admissions.isEmpty && cdrs.isEmpty && answers.isEmpty }
    }

    func scheduleStoreHandOver() {
        guard !storeHandOverScheduled else { return }
        storeHandOverScheduled = true
        // Gathers the passes of the next `storeWindow` into one hand-over.
        _ = loop.scheduleTask(in: Self.storeWindow) { self.handOverToStore() }
    }

    /// How long a loop gathers its passes' store work before handing it over.
    /// Each hand-over is a task and two cross-thread wake-ups, and at a few
    /// thousand calls a second a pass holds only a call or two: handed over
    /// every pass, they cost more than the writes (two loops at 1,750 calls/s:
    /// 1,190–1,242 ticks per 17,500 calls; gathered for 2 ms no different,
    /// for 5 ms 856, for 10 ms 786–924). It delays a call's B leg by at most
    /// that (its live-call row comes first) and its CDR's commit likewise.
    static let storeWindow = TimeAmount.milliseconds(10)

    func handOverToStore() {
        storeHandOverScheduled = false
        let work = storeDue
        storeDue = StoreWork()
        guard !work.isEmpty else { return }
        let writes = self.writes, loop = self.loop, inFlight = storeWritesInFlight
        inFlight.withLockedValue { $0 += 1 }
        // One task for the pass, one wait per kind of write (`GroupCommit.submitAll`).
        Task {
            defer { inFlight.withLockedValue { $0 -= 1 } }
            async let cdrs: Void = work.cdrs.isEmpty ? () : writes.record(work.cdrs)
            async let answers: Void = work.answers.isEmpty ? () : writes.recordAnswers(work.answers)
            if !work.admissions.isEmpty {
                let results = await writes.admit(work.admissions)
                loop.execute { self.admissionsRecorded(results) }
            }
            _ = await (cdrs, answers)
        }
    }

    func admissionsRecorded(_ results: [(callID: String, result: CallStoreWrites.AdmissionResult)]) {
        for (callID, result) in results { perform(core.admissionAnswered(callID: callID, result, at: .now())) }
    }

    /// A request in a new client transaction, with our Via (sent-by, a fresh
    /// branch, rport) unless it has one (a CANCEL copies its INVITE's).
    /// Nil when it cannot be sent (no UDP listener for the destination's family).
    func startClient(_ request: SIPMessage, method: SIPMethod, to destination: SIPDestination, addVia: Bool = true) -> TransactionKey? {
        var request = request
        if addVia {
            guard let via = via(for: destination) else {
                logger.warning("no UDP listener for a request", metadata: ["to": "\(destination)"])
                return nil
            }
            SIPEndpoint.stamp(&request, via: via, userAgent: configuration.userAgent)
        }
        let (key, actions) = layer.startClient(request, method: method, to: destination, now: NIODeadline.now().uptimeNanoseconds)
        perform(actions)
        return key
    }

    /// Our host and port on the UDP socket as a peer of this address family
    /// sees them (Via sent-by, Contact): worked out once per family.
    func localHostPort(for address: SocketAddress) -> (host: String, port: UInt16?)? {
        let v6 = address.protocol == .inet6
        if let known = localHostPorts[v6] { return known }
        let destination = SIPDestination(address: address, transport: .udp)
        guard let via = try? SIPEndpoint.via(for: destination, transport: transport, advertisedHost: configuration.advertisedHost) else { return nil }
        localHostPorts[v6] = (via.host, via.port)
        return (via.host, via.port)
    }

    /// Our Via for a request to `destination`: the fixed sent-by, a new branch.
    func via(for destination: SIPDestination) -> SIPVia? {
        localHostPort(for: destination.address).map { SIPVia(transport: "UDP", host: $0.host, port: $0.port, branch: TransactionKey.newBranch()) }
    }

    /// Keeps one loop task armed for the layer's earliest timer.
    func armLayerTimer() {
        guard let at = layer.timerToArm(armed: layerTimer?.deadline) else { return }
        layerTimer?.task.cancel()
        let task = loop.scheduleTask(deadline: .uptimeNanoseconds(at)) { [weak self] in
            guard let self else { return }
            self.layerTimer = nil
            self.perform(self.layer.timersDue(now: NIODeadline.now().uptimeNanoseconds))
        }
        layerTimer = (at, task)
    }

    /// Our host:port for the Contact of our answers.
    func contactHostPort(for source: SocketAddress) -> String {
        guard let local = localHostPort(for: source) else { return "127.0.0.1" }
        return "\(local.host):\(local.port ?? 5060)"
    }
}

/// UDP trunk calls on several event loops (docs/run-to-completion.md, slice
/// 4): one UDP socket per loop on the same port (SO_REUSEPORT), each loop
/// with its own `TrunkCallLoop`. The kernel spreads datagrams among the
/// sockets by source, which does not follow calls (the caller and the
/// gateway are different sources), so each call belongs to one loop, told by
/// its Call-ID: the caller's Call-ID hashed, and the B leg's Call-ID, made by
/// that loop, marked with it. A datagram read on another loop is handed over.
public final class TrunkCallLoops: SIPFront, Sendable {
    let loops: [TrunkCallLoop]
    let endpoint: SIPEndpoint

    init(_ loops: [TrunkCallLoop], endpoint: SIPEndpoint) {
        self.loops = loops; self.endpoint = endpoint
    }

    public func take(_ inbound: SIPInbound) -> Bool {
        guard loops.count > 1 else { return loops.first?.take(inbound) ?? false }
        guard inbound.transport == .udp, let callID = inbound.message.callID else { return false }
        let owner = Self.owner(of: callID, loops: loops.count)
        if loops[owner].loop.inEventLoop { return loops[owner].take(inbound) }
        if let here = loops.first(where: { $0.loop.inEventLoop }) {
            here.handOver(inbound, to: owner, of: self)
        } else {
            received([inbound], on: owner)
        }
        return true
    }

    /// On the owner's loop: what its calls do not take goes on to the endpoint.
    func received(_ batch: [SIPInbound], on owner: Int) {
        let target = loops[owner], endpoint = self.endpoint
        target.loop.execute {
            for inbound in batch where !target.take(inbound) { endpoint.deliver(inbound) }
        }
    }

    /// Which loop's calls a Call-ID belongs to: the loop named by a B leg's
    /// marker (".l<n>" before the "@"), else the Call-ID hashed (FNV-1a, the
    /// same in every loop).
    static func owner(of callID: String, loops: Int) -> Int {
        guard loops > 1 else { return 0 }
        // One pass over the bytes, no copy: the marker is the three bytes before the first "@".
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var last3: (UInt8, UInt8, UInt8) = (0, 0, 0)
        var seen = 0, markerChecked = false
        for b in callID.utf8 {
            if !markerChecked, b == UInt8(ascii: "@") {
                markerChecked = true
                if seen >= 3, last3.0 == UInt8(ascii: "."), last3.1 == UInt8(ascii: "l"),
                   case let d = Int(last3.2) - Int(UInt8(ascii: "0")), (0..<min(loops, 10)).contains(d) {
                    return d
                }
            }
            last3 = (last3.1, last3.2, b)
            seen += 1
            hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(loops))
    }

    static func marker(loop index: Int) -> String { ".l\(index)" }

    func update(directory: TrunkDirectory? = nil, gateways: [String: SIPDestination]? = nil, simRouting: SIMRouting? = nil,
                activate: Bool = false) {
        for l in loops { l.update(directory: directory, gateways: gateways, simRouting: simRouting, activate: activate) }
    }

    func answeredCalls() async -> [AnsweredCall] {
        var all: [AnsweredCall] = []
        for l in loops { all += await l.answeredCalls() }
        return all
    }

    func clearOutOfMoney(_ callIDs: [String]) {
        for l in loops { l.clearOutOfMoney(callIDs) }
    }

    func beginStopping() { for l in loops { l.beginStopping() } }

    func callsInProgress() async -> Int {
        var n = 0
        for l in loops { n += await l.callsInProgress() }
        return n
    }

    func clearAll(_ why: CallRejection) { for l in loops { l.clearAll(why) } }

    func isQuiet() async -> Bool {
        for l in loops where !(await l.isQuiet()) { return false }
        return true
    }

    func stop() async { for l in loops { await l.stop() } }
}
