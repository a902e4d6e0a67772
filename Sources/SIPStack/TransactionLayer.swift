import Logging
import NIOCore
import SIPMessage
import SIPTransaction
import SIPTransport

/// Every transaction of an endpoint as one value (RFC 3261 §17, RFC 6026):
/// server and client transactions, INVITEs answered with a 2xx and waiting
/// for their ACK, the ACKs we sent (resent if a 2xx is retransmitted), and one
/// queue of all their timers. Each event returns what to do as data; the
/// owner (`SIPEndpoint`) sends, delivers, resumes its waiting callers and
/// keeps one timer task armed. Tests drive it event by event without
/// sockets; an owner on an event loop can hold it as it is
/// (docs/run-to-completion.md). Times are uptime nanoseconds.
///
/// Its entries are objects (see `ServerEntry`), so a copy of the layer would
/// share them: each owner holds one layer and never copies it.
public struct TransactionLayer {
    public enum Action: Sendable {
        /// A response, sent where RFC 3261 §18.2.2 says for this request.
        case sendResponse(SIPMessage, to: SIPInbound)
        /// A request of our client transaction `client`, or (nil) an ACK for a 2xx, sent outside any transaction.
        case sendRequest(SIPMessage, to: SIPDestination, client: TransactionKey?)
        /// A new request for the transaction user.
        case deliverRequest(SIPInbound, key: TransactionKey)
        /// A provisional response other than 100 to our request.
        case deliverProvisional(SIPMessage, client: TransactionKey)
        /// The final response to our request (the first: retransmissions are absorbed).
        case deliverFinal(SIPMessage, client: TransactionKey)
        /// Our request's transaction ended without a final response.
        case failRequest(SIPClientError, client: TransactionKey)
        /// A CANCEL for our INVITE, to send in a client transaction of its own (RFC 3261 §9.1).
        case sendCancel(SIPMessage, to: SIPDestination)
        /// Our 2xx to an INVITE was never ACKed (64·T1): the TU should end the dialog (§13.3.1.4).
        case missingACK(callID: String)
    }

    /// A timer's owner and which of its timers, in one integer, so the
    /// timer queue hashes and copies no strings (several timer operations a
    /// message): the kind of owner (2 bits), the transaction timer (4 bits),
    /// the owner's slot (26 bits) and the slot's generation (32 bits), which
    /// a timer left over from an earlier occupant of the slot would not match.
    struct TimerID: Hashable, Sendable {
        enum Kind: UInt64 { case client = 0, server = 1, accepted = 2, ackCache = 3 }
        var raw: UInt64

        init(_ kind: Kind, slot: Int, generation: UInt32, timer: TransactionTimer? = nil) {
            let t = UInt64(timer.map { ArmedTimers.bit($0).trailingZeroBitCount + 1 } ?? 0)
            raw = kind.rawValue << 62 | t << 58 | UInt64(slot & 0x3FF_FFFF) << 32 | UInt64(generation)
        }
        var kind: Kind {
            switch raw >> 62 { case 0: .client; case 1: .server; case 2: .accepted; default: .ackCache }
        }
        var timer: TransactionTimer? {
            let t = Int(raw >> 58 & 0xF)
            return t == 0 || t > ArmedTimers.byBit.count ? nil : ArmedTimers.byBit[t - 1]
        }
        var slot: Int { Int(raw >> 32 & 0x3FF_FFFF) }
        var generation: UInt32 { UInt32(truncatingIfNeeded: raw) }
    }

    /// Call-ID + CSeq number: what ties an ACK or retransmitted INVITE to a 2xx.
    struct DialogRequestKey: Hashable, Sendable {
        var callID: String
        var cseq: UInt32

        init(callID: String, cseq: UInt32) { self.callID = callID; self.cseq = cseq }
        init?(_ m: SIPMessage) {
            guard let callID = m.callID, let cseq = m.cseq else { return nil }
            self.init(callID: callID, cseq: cseq.number)
        }
    }

    /// A server transaction: one of the two machines (optionals rather than
    /// an enum, so that each event mutates the machine in place instead of
    /// copying it out of the enum and back), the request as received, and
    /// which of its timers run. Entries are objects, each owned by one slot
    /// of its table: as values, every insert, removal and read through the
    /// table moved or copied a whole entry (messages, Via, addresses: about a
    /// kilobyte), which cost more than the transaction's own work.
    final class ServerEntry {
        let key: TransactionKey
        let generation: UInt32
        var invite: ServerInviteTransaction?
        var nonInvite: ServerNonInviteTransaction?
        let inbound: SIPInbound
        var armedTimers = ArmedTimers()

        init(key: TransactionKey, generation: UInt32, inbound: SIPInbound) {
            self.key = key; self.generation = generation; self.inbound = inbound
        }

        func receivedRequest(_ request: SIPMessage) -> [TransactionAction] {
            invite?.receivedRequest(request) ?? nonInvite?.receivedRequest(request) ?? []
        }
        func tuSend(response: SIPMessage) -> [TransactionAction] {
            invite?.tuSend(response: response) ?? nonInvite?.tuSend(response: response) ?? []
        }
        func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
            invite?.timerFired(timer) ?? nonInvite?.timerFired(timer) ?? []
        }
    }

    /// A client transaction, as `ServerEntry`.
    final class ClientEntry {
        let key: TransactionKey
        let generation: UInt32
        var invite: ClientInviteTransaction?
        var nonInvite: ClientNonInviteTransaction?
        let destination: SIPDestination
        let request: SIPMessage
        /// Whether the TU still waits for the final response (or the failure).
        var awaitingFinal = true
        /// INVITE only: a provisional response has arrived, so CANCEL may be sent (RFC 3261 §9.1).
        var heardProvisional = false
        var cancelWanted = false
        var armedTimers = ArmedTimers()

        init(key: TransactionKey, generation: UInt32, destination: SIPDestination, request: SIPMessage) {
            self.key = key; self.generation = generation; self.destination = destination; self.request = request
        }

        func receivedResponse(_ response: SIPMessage) -> [TransactionAction] {
            invite?.receivedResponse(response) ?? nonInvite?.receivedResponse(response) ?? []
        }
        func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
            invite?.timerFired(timer) ?? nonInvite?.timerFired(timer) ?? []
        }
        func transportError() -> [TransactionAction] {
            invite?.transportError() ?? nonInvite?.transportError() ?? []
        }
    }

    final class AcceptedEntry {
        let key: DialogRequestKey
        let generation: UInt32
        var machine: AcceptedInvite
        let response: SIPMessage
        let inbound: SIPInbound

        init(key: DialogRequestKey, generation: UInt32, machine: AcceptedInvite, response: SIPMessage, inbound: SIPInbound) {
            self.key = key; self.generation = generation; self.machine = machine; self.response = response; self.inbound = inbound
        }
    }

    final class SentACK {
        let key: DialogRequestKey
        let generation: UInt32
        let ack: SIPMessage
        let destination: SIPDestination

        init(key: DialogRequestKey, generation: UInt32, ack: SIPMessage, destination: SIPDestination) {
            self.key = key; self.generation = generation; self.ack = ack; self.destination = destination
        }
    }

    /// The transaction timers a transaction has running, so that ending it
    /// cancels those (one or two) rather than looking up all ten by key.
    struct ArmedTimers {
        /// The timers in the order of their bits.
        static let byBit: [TransactionTimer] = [.A, .B, .D, .E, .F, .G, .H, .I, .J, .K]
        var bits: UInt16 = 0
        static func bit(_ t: TransactionTimer) -> UInt16 {
            switch t {
            case .A: 1 << 0
            case .B: 1 << 1
            case .D: 1 << 2
            case .E: 1 << 3
            case .F: 1 << 4
            case .G: 1 << 5
            case .H: 1 << 6
            case .I: 1 << 7
            case .J: 1 << 8
            case .K: 1 << 9
            }
        }
        mutating func insert(_ t: TransactionTimer) { bits |= Self.bit(t) }
        mutating func remove(_ t: TransactionTimer) { bits &= ~Self.bit(t) }
        var all: [TransactionTimer] { bits == 0 ? [] : Self.byBit.filter { bits & Self.bit($0) != 0 } }
    }

    let configuration: SIPEndpointConfiguration
    let logger: Logger
    /// Each table maps its key to a slot of its slab, where the entry lives
    /// and is mutated in place; timers name the slot (see `TimerID`).
    var servers: [TransactionKey: Int] = [:]
    var serverSlots = Slab<ServerEntry>()
    var clients: [TransactionKey: Int] = [:]
    var clientSlots = Slab<ClientEntry>()
    var accepted: [DialogRequestKey: Int] = [:]
    var acceptedSlots = Slab<AcceptedEntry>()
    /// INVITE client transactions by Call-ID and CSeq, for CANCEL.
    var inviteClients: [DialogRequestKey: Int] = [:]
    /// ACKs sent for 2xx responses, resent if the 2xx is retransmitted (RFC 3261 §13.2.2.4).
    var sentACKs: [DialogRequestKey: Int] = [:]
    var sentACKSlots = Slab<SentACK>()
    var nextGeneration: UInt32 = 0
    /// Every transaction timer, in one queue (see `TimerQueue` for why not one task per timer).
    var timers = TimerQueue<TimerID>()

    public init(configuration: SIPEndpointConfiguration, logger: Logger) {
        self.configuration = configuration; self.logger = logger
    }

    mutating func newGeneration() -> UInt32 {
        nextGeneration &+= 1
        return nextGeneration
    }

    /// Ends every transaction (the endpoint is shutting down; its owner tells
    /// the callers still waiting).
    public mutating func removeAll() {
        servers.removeAll(); clients.removeAll(); accepted.removeAll(); inviteClients.removeAll(); sentACKs.removeAll()
        serverSlots.removeAll(); clientSlots.removeAll(); acceptedSlots.removeAll(); sentACKSlots.removeAll()
        timers.removeAll()
    }

    /// The deadline to arm the owner's one timer task for, if it is not
    /// armed for it already (see `TimerQueue.deadlineToArm`).
    public mutating func timerToArm(armed: UInt64?) -> UInt64? { timers.deadlineToArm(armed: armed) }

    public mutating func timersDue(now: UInt64) -> [Action] {
        var out: [Action] = []
        for id in timers.expired(now: now) { out += timerFired(id, now: now) }
        return out
    }

    mutating func timerFired(_ id: TimerID, now: UInt64) -> [Action] {
        let slot = id.slot
        switch id.kind {
        case .client:
            guard clientSlots[slot]?.generation == id.generation, let t = id.timer else { return [] }
            clientSlots[slot]?.armedTimers.remove(t)
            return performClient(clientSlots[slot]?.timerFired(t) ?? [], slot: slot, now: now)
        case .server:
            guard serverSlots[slot]?.generation == id.generation, let t = id.timer else { return [] }
            serverSlots[slot]?.armedTimers.remove(t)
            return performServer(serverSlots[slot]?.timerFired(t) ?? [], slot: slot, now: now)
        case .accepted:
            guard acceptedSlots[slot]?.generation == id.generation, let actions = acceptedSlots[slot]?.machine.retransmitTimerFired(),
                  let entry = acceptedSlots[slot] else { return [] }
            var out: [Action] = []
            for a in actions {
                switch a {
                case .retransmit: out.append(.sendResponse(entry.response, to: entry.inbound))
                case .scheduleRetransmit(let d): schedule(id, after: d, now: now)
                case .giveUp:
                    logger.warning("no ACK for 2xx", metadata: ["call-id": "\(entry.key.callID)", "cseq": "\(entry.key.cseq)"])
                    removeAccepted(slot)
                    out.append(.missingACK(callID: entry.key.callID))
                default: break
                }
            }
            return out
        case .ackCache:
            guard let sent = sentACKSlots[slot], sent.generation == id.generation else { return [] }
            if sentACKs[sent.key] == slot { sentACKs[sent.key] = nil }
            sentACKSlots.remove(slot)
            return []
        }
    }

    mutating func removeAccepted(_ slot: Int) {
        guard let entry = acceptedSlots.remove(slot) else { return }
        if accepted[entry.key] == slot { accepted[entry.key] = nil }
        timers.cancel(TimerID(.accepted, slot: slot, generation: entry.generation))
    }

    // MARK: - Server side

    public mutating func receivedRequest(_ inbound: SIPInbound, now: UInt64) -> [Action] {
        receivedRequest(inbound, now: now, acceptsNew: { _ in true }) ?? []
    }

    /// A request, if it is this layer's: a retransmission or ACK of one of its
    /// transactions or answered INVITEs, a CANCEL of one of its INVITEs, or a
    /// request that `acceptsNew` takes. `acceptsNew` is asked only of a
    /// request that matches nothing here (a new transaction, or an ACK); nil
    /// when it says no, and nothing is changed. An owner that shares a port
    /// with another layer routes by this, matching each request once.
    public mutating func receivedRequest(_ inbound: SIPInbound, now: UInt64, acceptsNew: (SIPMessage) -> Bool) -> [Action]? {
        let request = inbound.message
        guard let method = request.method else { return acceptsNew(request) ? [] : nil }
        let key = TransactionKey.server(for: request, topVia: inbound.topVia ?? request.topVia)
        let reliable = inbound.transport == .tcp

        if let slot = servers[key] {
            // A retransmission (§17.2.1, §17.2.2): the machine resends its last
            // response; or the ACK for a non-2xx final response, which the
            // INVITE server transaction absorbs.
            return performServer(serverSlots[slot]?.receivedRequest(request) ?? [], slot: slot, now: now)
        }
        if method == .ack {
            if let dk = DialogRequestKey(request), let slot = accepted[dk] {
                if acceptedSlots[slot]?.machine.receivedACK() == .deliverACK {
                    removeAccepted(slot)
                    if configuration.deliversACKsOf2xx { return [.deliverRequest(inbound, key: key)] }
                }
                return []
            }
            // An ACK the TU may still care about.
            guard acceptsNew(request) else { return nil }
            return configuration.deliversACKsOf2xx ? [.deliverRequest(inbound, key: key)] : []
        }
        if method == .invite, let dk = DialogRequestKey(request), let slot = accepted[dk], let entry = acceptedSlots[slot] {
            // RFC 6026 §7.1: an INVITE retransmitted after our 2xx gets the 2xx again.
            return entry.machine.receivedInviteRetransmission() == .retransmit ? [.sendResponse(entry.response, to: entry.inbound)] : []
        }

        // A new server transaction.
        let cancelTarget = method == .cancel ? servers[TransactionKey.cancelTarget(for: request)] : nil
        guard cancelTarget != nil || acceptsNew(request) else { return nil }
        let entry = ServerEntry(key: key, generation: newGeneration(), inbound: inbound)
        var startActions: [TransactionAction]
        if method == .invite {
            var t = ServerInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            startActions = t.start()
            entry.invite = t
        } else {
            var t = ServerNonInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            startActions = t.start()
            entry.nonInvite = t
        }
        let slot = serverSlots.insert(entry)
        servers[key] = slot
        startActions.removeAll { if case .deliverToTU = $0 { return true } else { return false } }
        var out = performServer(startActions, slot: slot, now: now)

        if let rejection = configuration.screening.check(request) {
            var r = request.makeResponse(rejection.statusCode, reasonPhrase: rejection.reasonPhrase, toTag: SIPEndpoint.newTag())
            for h in rejection.headers { r.append(SIPHeaderName(h.name), h.value ?? "") }
            logger.info("rejected request", metadata: ["method": "\(method)", "status": "\(rejection)", "from": "\(inbound.source)"])
            return out + respond(r, slot: slot, now: now)
        }
        if method == .cancel { return out + receivedCancel(inbound, key: key, slot: slot, inviteSlot: cancelTarget, now: now) }
        out.append(.deliverRequest(inbound, key: key))
        return out
    }

    /// CANCEL (RFC 3261 §9.2): 200 to the CANCEL, 487 to the INVITE if it has
    /// no final response yet, and the TU hears of it.
    mutating func receivedCancel(_ inbound: SIPInbound, key: TransactionKey, slot: Int, inviteSlot: Int?, now: UInt64) -> [Action] {
        guard let inviteSlot, let invite = serverSlots[inviteSlot]?.invite, !invite.hasSentFinalResponse else {
            return respond(inbound.message.makeResponse(481, toTag: SIPEndpoint.newTag()), slot: slot, now: now)
        }
        return respond(inbound.message.makeResponse(200, toTag: SIPEndpoint.newTag()), slot: slot, now: now)
            + respond(invite.request.makeResponse(487, toTag: SIPEndpoint.newTag()), slot: inviteSlot, now: now)
            + [.deliverRequest(inbound, key: key)]
    }

    /// The TU's response to the request of server transaction `key`.
    public mutating func respond(_ response: SIPMessage, key: TransactionKey, now: UInt64) -> [Action] {
        guard let slot = servers[key] else {
            logger.debug("response for a finished transaction dropped", metadata: ["status": "\(response.statusCode ?? 0)"])
            return []
        }
        return respond(response, slot: slot, now: now)
    }

    mutating func respond(_ response: SIPMessage, slot: Int, now: UInt64) -> [Action] {
        guard serverSlots[slot] != nil else { return [] }
        var response = response
        if !response.contains(.server), !response.contains(.userAgent) { response.append(.server, configuration.userAgent) }
        if let code = response.statusCode, (200..<300).contains(code), let invite = serverSlots[slot]?.invite,
           let dk = DialogRequestKey(invite.request), let inbound = serverSlots[slot]?.inbound {
            // The 2xx is retransmitted by the TU's side until ACKed (RFC 6026 §8.1).
            var machine = AcceptedInvite(t1: configuration.timers.t1, t2: configuration.timers.t2, reliableTransport: inbound.transport == .tcp)
            let start = machine.start()
            if let old = accepted[dk] { removeAccepted(old) }
            let generation = newGeneration()
            let acceptedSlot = acceptedSlots.insert(AcceptedEntry(key: dk, generation: generation, machine: machine, response: response, inbound: inbound))
            accepted[dk] = acceptedSlot
            if case .scheduleRetransmit(let d) = start { schedule(TimerID(.accepted, slot: acceptedSlot, generation: generation), after: d, now: now) }
        }
        return performServer(serverSlots[slot]?.tuSend(response: response) ?? [], slot: slot, now: now)
    }

    mutating func performServer(_ actions: [TransactionAction], slot: Int, now: UInt64) -> [Action] {
        var out: [Action] = []
        for action in actions {
            guard let generation = serverSlots[slot]?.generation else { break }
            switch action {
            case .send(let message):
                if let inbound = serverSlots[slot]?.inbound { out.append(.sendResponse(message, to: inbound)) }
            case .startTimer(let t, let d):
                serverSlots[slot]?.armedTimers.insert(t)
                schedule(TimerID(.server, slot: slot, generation: generation, timer: t), after: d, now: now)
            case .cancelTimer(let t):
                serverSlots[slot]?.armedTimers.remove(t)
                timers.cancel(TimerID(.server, slot: slot, generation: generation, timer: t))
            case .deliverToTU:
                break
            case .timeout:
                logger.info("server transaction timed out waiting for ACK", metadata: ["key": "\(serverSlots[slot]?.key.description ?? "")"])
            case .transportError:
                logger.info("transport error in server transaction", metadata: ["key": "\(serverSlots[slot]?.key.description ?? "")"])
            case .terminated:
                guard let entry = serverSlots.remove(slot) else { break }
                if servers[entry.key] == slot { servers[entry.key] = nil }
                for t in entry.armedTimers.all { timers.cancel(TimerID(.server, slot: slot, generation: generation, timer: t)) }
            }
        }
        return out
    }

    // MARK: - Client side

    /// A new client transaction for a request whose Via is in place; its key
    /// names it in the actions that follow.
    public mutating func startClient(_ request: SIPMessage, method: SIPMethod, to destination: SIPDestination,
                              now: UInt64) -> (key: TransactionKey, actions: [Action]) {
        let key = TransactionKey.client(branch: request.topVia?.branch ?? "", method: method)
        let reliable = destination.transport == .tcp
        let entry = ClientEntry(key: key, generation: newGeneration(), destination: destination, request: request)
        let actions: [TransactionAction]
        if method == .invite {
            var t = ClientInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            actions = t.start(); entry.invite = t
        } else {
            var t = ClientNonInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            actions = t.start(); entry.nonInvite = t
        }
        if let old = clients[key] { removeClient(old) }
        let slot = clientSlots.insert(entry)
        clients[key] = slot
        if method == .invite, let dk = DialogRequestKey(request) { inviteClients[dk] = slot }
        return (key, performClient(actions, slot: slot, now: now))
    }

    /// Cancels the INVITE we sent with this Call-ID and CSeq (RFC 3261 §9.1):
    /// at once if a provisional response has arrived, else when one does; a
    /// final response makes it moot.
    public mutating func cancelInvite(callID: String, cseq: UInt32) -> [Action] {
        guard let slot = inviteClients[DialogRequestKey(callID: callID, cseq: cseq)], let entry = clientSlots[slot] else { return [] }
        if entry.heardProvisional { return [cancel(for: entry)] }
        clientSlots[slot]?.cancelWanted = true
        return []
    }

    /// The CANCEL copies the INVITE's Request-URI, Call-ID, From, To, CSeq
    /// number and top Via, so it reaches the same server transaction.
    func cancel(for entry: ClientEntry) -> Action {
        let invite = entry.request
        var cancel = SIPMessage(request: .cancel, uri: invite.requestURI ?? "")
        if let v = invite.firstValue(.via) { cancel.append(.via, v) }
        for h: SIPHeaderName in [.from, .to, .callID] { if let v = invite.firstValue(h) { cancel.append(h, v) } }
        cancel.append(.cseq, "\(invite.cseq?.number ?? 1) CANCEL")
        for r in invite.values(.route) { cancel.append(.route, r) }
        cancel.append(.maxForwards, "70")
        return .sendCancel(cancel, to: entry.destination)
    }

    /// The ACK for a 2xx (RFC 3261 §13.2.2.4), its Via in place: sent outside
    /// any transaction and remembered, so that a retransmitted 2xx is ACKed again.
    public mutating func sendACK(_ ack: SIPMessage, to destination: SIPDestination, now: UInt64) -> [Action] {
        if let dk = DialogRequestKey(ack) {
            if let old = sentACKs[dk], let generation = sentACKSlots[old]?.generation {
                timers.cancel(TimerID(.ackCache, slot: old, generation: generation))
                sentACKSlots.remove(old)
            }
            let generation = newGeneration()
            let slot = sentACKSlots.insert(SentACK(key: dk, generation: generation, ack: ack, destination: destination))
            sentACKs[dk] = slot
            schedule(TimerID(.ackCache, slot: slot, generation: generation), after: configuration.timers.t1 * 64, now: now)
        }
        return [.sendRequest(ack, to: destination, client: nil)]
    }

    public mutating func receivedResponse(_ inbound: SIPInbound, now: UInt64) -> [Action] {
        receivedOwnResponse(inbound, now: now) ?? []
    }

    /// A response, if it is this layer's: to one of its client transactions,
    /// or a 2xx it has sent an ACK for. Nil: neither (nothing is changed).
    public mutating func receivedOwnResponse(_ inbound: SIPInbound, now: UInt64) -> [Action]? {
        let response = inbound.message
        guard let key = TransactionKey.client(for: response), let slot = clients[key] else {
            // A 2xx retransmitted after its transaction ended: ACK it again (§13.2.2.4).
            if let dk = DialogRequestKey(response), let slot = sentACKs[dk], let sent = sentACKSlots[slot] {
                guard let code = response.statusCode, (200..<300).contains(code), response.cseq?.method == .invite else { return [] }
                return [.sendRequest(sent.ack, to: sent.destination, client: nil)]
            }
            return nil
        }
        return performClient(clientSlots[slot]?.receivedResponse(response) ?? [], slot: slot, now: now)
    }

    /// Sending a request of client transaction `key` failed.
    public mutating func clientTransportError(_ key: TransactionKey, error: String, now: UInt64) -> [Action] {
        guard let slot = clients[key], let entry = clientSlots[slot] else { return [] }
        var out: [Action] = []
        if entry.awaitingFinal {
            clientSlots[slot]?.awaitingFinal = false
            out.append(.failRequest(.transport(entry.destination, error), client: key))
        }
        return out + performClient(clientSlots[slot]?.transportError() ?? [], slot: slot, now: now)
    }

    /// Ends a client transaction and its timers.
    mutating func removeClient(_ slot: Int) {
        guard let entry = clientSlots.remove(slot) else { return }
        if clients[entry.key] == slot { clients[entry.key] = nil }
        if entry.invite != nil, let dk = DialogRequestKey(entry.request), inviteClients[dk] == slot { inviteClients[dk] = nil }
        for t in entry.armedTimers.all { timers.cancel(TimerID(.client, slot: slot, generation: entry.generation, timer: t)) }
    }

    mutating func performClient(_ actions: [TransactionAction], slot: Int, now: UInt64) -> [Action] {
        var out: [Action] = []
        for action in actions {
            guard let generation = clientSlots[slot]?.generation, let key = clientSlots[slot]?.key,
                  let awaitingFinal = clientSlots[slot]?.awaitingFinal else { break }
            switch action {
            case .send(let message):
                if let destination = clientSlots[slot]?.destination { out.append(.sendRequest(message, to: destination, client: key)) }
            case .startTimer(let t, let d):
                clientSlots[slot]?.armedTimers.insert(t)
                schedule(TimerID(.client, slot: slot, generation: generation, timer: t), after: d, now: now)
            case .cancelTimer(let t):
                clientSlots[slot]?.armedTimers.remove(t)
                timers.cancel(TimerID(.client, slot: slot, generation: generation, timer: t))
            case .deliverToTU(let response):
                if let code = response.statusCode, code < 200 {
                    if clientSlots[slot]?.heardProvisional == false {
                        clientSlots[slot]?.heardProvisional = true
                        if clientSlots[slot]?.cancelWanted == true, let entry = clientSlots[slot] {
                            clientSlots[slot]?.cancelWanted = false
                            out.append(cancel(for: entry))
                        }
                    }
                    // 100 Trying only stops our retransmissions: it is hop-by-hop
                    // (RFC 3261 §16.7) and tells the TU nothing.
                    if code != 100 { out.append(.deliverProvisional(response, client: key)) }
                } else if awaitingFinal {
                    clientSlots[slot]?.awaitingFinal = false
                    out.append(.deliverFinal(response, client: key))
                }
            case .timeout:
                if awaitingFinal, let destination = clientSlots[slot]?.destination {
                    clientSlots[slot]?.awaitingFinal = false
                    out.append(.failRequest(.timeout(destination), client: key))
                }
            case .transportError:
                if awaitingFinal, let destination = clientSlots[slot]?.destination {
                    clientSlots[slot]?.awaitingFinal = false
                    out.append(.failRequest(.transport(destination, "transport error"), client: key))
                }
            case .terminated:
                if awaitingFinal, let destination = clientSlots[slot]?.destination { out.append(.failRequest(.timeout(destination), client: key)) }
                removeClient(slot)
            }
        }
        return out
    }

    // MARK: - Timers

    mutating func schedule(_ id: TimerID, after duration: Duration, now: UInt64) {
        let (s, a) = duration.components
        let nanos = max(0, s * 1_000_000_000 + a / 1_000_000_000)
        timers.schedule(id, at: now + UInt64(nanos))
    }
}

/// Entry objects in reusable slots, found by index (no hashing);
/// a removed entry's slot is taken by the next.
struct Slab<Element: AnyObject> {
    var slots: [Element?] = []
    var free: [Int] = []

    mutating func insert(_ element: Element) -> Int {
        if let slot = free.popLast() {
            slots[slot] = element
            return slot
        }
        slots.append(element)
        return slots.count - 1
    }

    @discardableResult
    mutating func remove(_ slot: Int) -> Element? {
        guard slots.indices.contains(slot), let element = slots[slot] else { return nil }
        slots[slot] = nil
        free.append(slot)
        return element
    }

    mutating func removeAll() { slots.removeAll(); free.removeAll() }

    /// The entry in `slot`, if any. Entries are objects, so an entry's state
    /// changes through this without writing the slab.
    subscript(slot: Int) -> Element? {
        slots.indices.contains(slot) ? slots[slot] : nil
    }
}
