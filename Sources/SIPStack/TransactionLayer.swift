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

    struct TimerID: Hashable, Sendable {
        enum Owner: Hashable, Sendable { case client(TransactionKey), server(TransactionKey), accepted(DialogRequestKey), ackCache(DialogRequestKey) }
        var owner: Owner
        var timer: TransactionTimer?
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

    enum ServerMachine {
        case invite(ServerInviteTransaction)
        case nonInvite(ServerNonInviteTransaction)

        mutating func receivedRequest(_ request: SIPMessage) -> [TransactionAction] {
            switch self {
            case .invite(var t): let a = t.receivedRequest(request); self = .invite(t); return a
            case .nonInvite(var t): let a = t.receivedRequest(request); self = .nonInvite(t); return a
            }
        }
        mutating func tuSend(response: SIPMessage) -> [TransactionAction] {
            switch self {
            case .invite(var t): let a = t.tuSend(response: response); self = .invite(t); return a
            case .nonInvite(var t): let a = t.tuSend(response: response); self = .nonInvite(t); return a
            }
        }
        mutating func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
            switch self {
            case .invite(var t): let a = t.timerFired(timer); self = .invite(t); return a
            case .nonInvite(var t): let a = t.timerFired(timer); self = .nonInvite(t); return a
            }
        }
    }

    struct ServerEntry {
        var machine: ServerMachine
        var inbound: SIPInbound
        var request: SIPMessage
        var armedTimers = ArmedTimers()
    }

    enum ClientMachine {
        case invite(ClientInviteTransaction)
        case nonInvite(ClientNonInviteTransaction)

        mutating func receivedResponse(_ response: SIPMessage) -> [TransactionAction] {
            switch self {
            case .invite(var t): let a = t.receivedResponse(response); self = .invite(t); return a
            case .nonInvite(var t): let a = t.receivedResponse(response); self = .nonInvite(t); return a
            }
        }
        mutating func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
            switch self {
            case .invite(var t): let a = t.timerFired(timer); self = .invite(t); return a
            case .nonInvite(var t): let a = t.timerFired(timer); self = .nonInvite(t); return a
            }
        }
        mutating func transportError() -> [TransactionAction] {
            switch self {
            case .invite(var t): let a = t.transportError(); self = .invite(t); return a
            case .nonInvite(var t): let a = t.transportError(); self = .nonInvite(t); return a
            }
        }
    }

    struct ClientEntry {
        var machine: ClientMachine
        var destination: SIPDestination
        var request: SIPMessage
        /// Whether the TU still waits for the final response (or the failure).
        var awaitingFinal = true
        /// INVITE only: a provisional response has arrived, so CANCEL may be sent (RFC 3261 §9.1).
        var heardProvisional = false
        var cancelWanted = false
        var armedTimers = ArmedTimers()
    }

    struct AcceptedEntry {
        var machine: AcceptedInvite
        var response: SIPMessage
        var inbound: SIPInbound
    }

    /// The transaction timers a transaction has running, so that ending it
    /// cancels those (one or two) rather than looking up all ten by key.
    struct ArmedTimers {
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
        var all: [TransactionTimer] { bits == 0 ? [] : TransactionTimer.allCases.filter { bits & Self.bit($0) != 0 } }
    }

    let configuration: SIPEndpointConfiguration
    let logger: Logger
    var servers: [TransactionKey: ServerEntry] = [:]
    var clients: [TransactionKey: ClientEntry] = [:]
    var accepted: [DialogRequestKey: AcceptedEntry] = [:]
    /// INVITE client transactions by Call-ID and CSeq, for CANCEL.
    var inviteClients: [DialogRequestKey: TransactionKey] = [:]
    /// ACKs sent for 2xx responses, resent if the 2xx is retransmitted (RFC 3261 §13.2.2.4).
    var sentACKs: [DialogRequestKey: (SIPMessage, SIPDestination)] = [:]
    /// Every transaction timer, in one queue (see `TimerQueue` for why not one task per timer).
    var timers = TimerQueue<TimerID>()

    public init(configuration: SIPEndpointConfiguration, logger: Logger) {
        self.configuration = configuration; self.logger = logger
    }

    /// Ends every transaction (the endpoint is shutting down; its owner tells
    /// the callers still waiting).
    public mutating func removeAll() {
        servers.removeAll(); clients.removeAll(); accepted.removeAll(); inviteClients.removeAll(); sentACKs.removeAll()
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
        switch id.owner {
        case .client(let key):
            guard clients[key] != nil, let t = id.timer else { return [] }
            clients[key]?.armedTimers.remove(t)
            return performClient(clients[key]?.machine.timerFired(t) ?? [], key: key, now: now)
        case .server(let key):
            guard servers[key] != nil, let t = id.timer else { return [] }
            servers[key]?.armedTimers.remove(t)
            return performServer(servers[key]?.machine.timerFired(t) ?? [], key: key, now: now)
        case .accepted(let dk):
            guard var entry = accepted[dk] else { return [] }
            let actions = entry.machine.retransmitTimerFired()
            accepted[dk] = entry
            var out: [Action] = []
            for a in actions {
                switch a {
                case .retransmit: out.append(.sendResponse(entry.response, to: entry.inbound))
                case .scheduleRetransmit(let d): schedule(TimerID(owner: .accepted(dk), timer: nil), after: d, now: now)
                case .giveUp:
                    logger.warning("no ACK for 2xx", metadata: ["call-id": "\(dk.callID)", "cseq": "\(dk.cseq)"])
                    accepted[dk] = nil
                    out.append(.missingACK(callID: dk.callID))
                default: break
                }
            }
            return out
        case .ackCache(let dk):
            sentACKs[dk] = nil
            return []
        }
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

        if method == .ack {
            if servers[key] != nil {
                // ACK for a non-2xx final response: the INVITE server transaction absorbs it.
                return performServer(servers[key]?.machine.receivedRequest(request) ?? [], key: key, now: now)
            }
            if let dk = DialogRequestKey(request), var entry = accepted[dk] {
                let action = entry.machine.receivedACK()
                accepted[dk] = entry
                if action == .deliverACK {
                    timers.cancel(TimerID(owner: .accepted(dk), timer: nil))
                    accepted[dk] = nil
                    if configuration.deliversACKsOf2xx { return [.deliverRequest(inbound, key: key)] }
                }
                return []
            }
            // An ACK the TU may still care about.
            guard acceptsNew(request) else { return nil }
            return configuration.deliversACKsOf2xx ? [.deliverRequest(inbound, key: key)] : []
        }

        if servers[key] != nil {
            // A retransmission (§17.2.1, §17.2.2): the machine resends its last response.
            return performServer(servers[key]?.machine.receivedRequest(request) ?? [], key: key, now: now)
        }
        if method == .invite, let dk = DialogRequestKey(request), let entry = accepted[dk] {
            // RFC 6026 §7.1: an INVITE retransmitted after our 2xx gets the 2xx again.
            return entry.machine.receivedInviteRetransmission() == .retransmit ? [.sendResponse(entry.response, to: entry.inbound)] : []
        }

        // A new server transaction.
        guard (method == .cancel && servers[TransactionKey.cancelTarget(for: request)] != nil) || acceptsNew(request) else { return nil }
        let machine: ServerMachine
        var startActions: [TransactionAction]
        if method == .invite {
            var t = ServerInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            startActions = t.start()
            machine = .invite(t)
        } else {
            var t = ServerNonInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            startActions = t.start()
            machine = .nonInvite(t)
        }
        servers[key] = ServerEntry(machine: machine, inbound: inbound, request: request)
        var out = performServer(startActions.filter { if case .deliverToTU = $0 { return false } else { return true } }, key: key, now: now)

        if let rejection = configuration.screening.check(request) {
            var r = request.makeResponse(rejection.statusCode, reasonPhrase: rejection.reasonPhrase, toTag: SIPEndpoint.newTag())
            for h in rejection.headers { r.append(SIPHeaderName(h.name), h.value ?? "") }
            logger.info("rejected request", metadata: ["method": "\(method)", "status": "\(rejection)", "from": "\(inbound.source)"])
            return out + respond(r, key: key, now: now)
        }
        if method == .cancel { return out + receivedCancel(inbound, key: key, now: now) }
        out.append(.deliverRequest(inbound, key: key))
        return out
    }

    /// CANCEL (RFC 3261 §9.2): 200 to the CANCEL, 487 to the INVITE if it has
    /// no final response yet, and the TU hears of it.
    mutating func receivedCancel(_ inbound: SIPInbound, key: TransactionKey, now: UInt64) -> [Action] {
        let inviteKey = TransactionKey.cancelTarget(for: inbound.message)
        guard let invite = servers[inviteKey], case .invite(let t) = invite.machine, !t.hasSentFinalResponse else {
            return respond(inbound.message.makeResponse(481, toTag: SIPEndpoint.newTag()), key: key, now: now)
        }
        return respond(inbound.message.makeResponse(200, toTag: SIPEndpoint.newTag()), key: key, now: now)
            + respond(invite.request.makeResponse(487, toTag: SIPEndpoint.newTag()), key: inviteKey, now: now)
            + [.deliverRequest(inbound, key: key)]
    }

    /// The TU's response to the request of server transaction `key`.
    public mutating func respond(_ response: SIPMessage, key: TransactionKey, now: UInt64) -> [Action] {
        guard let entry = servers[key] else {
            logger.debug("response for a finished transaction dropped", metadata: ["status": "\(response.statusCode ?? 0)"])
            return []
        }
        var response = response
        if !response.contains(.server), !response.contains(.userAgent) { response.append(.server, configuration.userAgent) }
        if case .invite = entry.machine, let code = response.statusCode, (200..<300).contains(code), let dk = DialogRequestKey(entry.request) {
            // The 2xx is retransmitted by the TU's side until ACKed (RFC 6026 §8.1).
            var machine = AcceptedInvite(t1: configuration.timers.t1, t2: configuration.timers.t2, reliableTransport: entry.inbound.transport == .tcp)
            let start = machine.start()
            accepted[dk] = AcceptedEntry(machine: machine, response: response, inbound: entry.inbound)
            if case .scheduleRetransmit(let d) = start { schedule(TimerID(owner: .accepted(dk), timer: nil), after: d, now: now) }
        }
        return performServer(servers[key]?.machine.tuSend(response: response) ?? [], key: key, now: now)
    }

    mutating func performServer(_ actions: [TransactionAction], key: TransactionKey, now: UInt64) -> [Action] {
        var out: [Action] = []
        for action in actions {
            switch action {
            case .send(let message):
                if let entry = servers[key] { out.append(.sendResponse(message, to: entry.inbound)) }
            case .startTimer(let t, let d):
                servers[key]?.armedTimers.insert(t)
                schedule(TimerID(owner: .server(key), timer: t), after: d, now: now)
            case .cancelTimer(let t):
                servers[key]?.armedTimers.remove(t)
                timers.cancel(TimerID(owner: .server(key), timer: t))
            case .deliverToTU:
                break
            case .timeout:
                logger.info("server transaction timed out waiting for ACK", metadata: ["key": "\(key)"])
            case .transportError:
                logger.info("transport error in server transaction", metadata: ["key": "\(key)"])
            case .terminated:
                let armed = servers.removeValue(forKey: key)?.armedTimers.all ?? []
                for t in armed { timers.cancel(TimerID(owner: .server(key), timer: t)) }
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
        let machine: ClientMachine
        let actions: [TransactionAction]
        if method == .invite {
            var t = ClientInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            actions = t.start(); machine = .invite(t)
        } else {
            var t = ClientNonInviteTransaction(request: request, reliableTransport: reliable, timers: configuration.timers)
            actions = t.start(); machine = .nonInvite(t)
        }
        clients[key] = ClientEntry(machine: machine, destination: destination, request: request)
        if method == .invite, let dk = DialogRequestKey(request) { inviteClients[dk] = key }
        return (key, performClient(actions, key: key, now: now))
    }

    /// Cancels the INVITE we sent with this Call-ID and CSeq (RFC 3261 §9.1):
    /// at once if a provisional response has arrived, else when one does; a
    /// final response makes it moot.
    public mutating func cancelInvite(callID: String, cseq: UInt32) -> [Action] {
        guard let key = inviteClients[DialogRequestKey(callID: callID, cseq: cseq)], let entry = clients[key] else { return [] }
        if entry.heardProvisional { return [cancel(for: entry)] }
        clients[key]?.cancelWanted = true
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
            sentACKs[dk] = (ack, destination)
            schedule(TimerID(owner: .ackCache(dk), timer: nil), after: configuration.timers.t1 * 64, now: now)
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
        guard let key = TransactionKey.client(for: response), clients[key] != nil else {
            // A 2xx retransmitted after its transaction ended: ACK it again (§13.2.2.4).
            if let dk = DialogRequestKey(response), let (ack, destination) = sentACKs[dk] {
                guard let code = response.statusCode, (200..<300).contains(code), response.cseq?.method == .invite else { return [] }
                return [.sendRequest(ack, to: destination, client: nil)]
            }
            return nil
        }
        return performClient(clients[key]?.machine.receivedResponse(response) ?? [], key: key, now: now)
    }

    /// Sending a request of client transaction `key` failed.
    public mutating func clientTransportError(_ key: TransactionKey, error: String, now: UInt64) -> [Action] {
        guard let entry = clients[key] else { return [] }
        var out: [Action] = []
        if entry.awaitingFinal {
            clients[key]?.awaitingFinal = false
            out.append(.failRequest(.transport(entry.destination, error), client: key))
        }
        return out + performClient(clients[key]?.machine.transportError() ?? [], key: key, now: now)
    }

    mutating func performClient(_ actions: [TransactionAction], key: TransactionKey, now: UInt64) -> [Action] {
        var out: [Action] = []
        for action in actions {
            guard let entry = clients[key] else { break }
            switch action {
            case .send(let message):
                out.append(.sendRequest(message, to: entry.destination, client: key))
            case .startTimer(let t, let d):
                clients[key]?.armedTimers.insert(t)
                schedule(TimerID(owner: .client(key), timer: t), after: d, now: now)
            case .cancelTimer(let t):
                clients[key]?.armedTimers.remove(t)
                timers.cancel(TimerID(owner: .client(key), timer: t))
            case .deliverToTU(let response):
                if let code = response.statusCode, code < 200 {
                    if !entry.heardProvisional {
                        clients[key]?.heardProvisional = true
                        if entry.cancelWanted {
                            clients[key]?.cancelWanted = false
                            out.append(cancel(for: entry))
                        }
                    }
                    // 100 Trying only stops our retransmissions: it is hop-by-hop
                    // (RFC 3261 §16.7) and tells the TU nothing.
                    if code != 100 { out.append(.deliverProvisional(response, client: key)) }
                } else if entry.awaitingFinal {
                    clients[key]?.awaitingFinal = false
                    out.append(.deliverFinal(response, client: key))
                }
            case .timeout:
                if entry.awaitingFinal {
                    clients[key]?.awaitingFinal = false
                    out.append(.failRequest(.timeout(entry.destination), client: key))
                }
            case .transportError:
                if entry.awaitingFinal {
                    clients[key]?.awaitingFinal = false
                    out.append(.failRequest(.transport(entry.destination, "transport error"), client: key))
                }
            case .terminated:
                if entry.awaitingFinal { out.append(.failRequest(.timeout(entry.destination), client: key)) }
                if case .invite = entry.machine, let dk = DialogRequestKey(entry.request) { inviteClients[dk] = nil }
                let armed = clients.removeValue(forKey: key)?.armedTimers.all ?? []
                for t in armed { timers.cancel(TimerID(owner: .client(key), timer: t)) }
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
