import Logging
import NIOCore
import NIOPosix
import SIPMessage
import SIPTransaction
import SIPTransport

/// Where a request goes: an address and the transport to use.
public struct SIPDestination: Sendable, Hashable, CustomStringConvertible {
    public var address: SocketAddress
    public var transport: SIPTransportProtocol
    public init(address: SocketAddress, transport: SIPTransportProtocol) {
        self.address = address; self.transport = transport
    }
    public var description: String { "\(transport) \(address.ipAddress ?? "?"):\(address.port ?? 0)" }
}

public struct SIPEndpointConfiguration: Sendable {
    public var listen: [SIPListenAddress]
    public var timers: TransactionTimers
    public var limits: SIPParserLimits
    /// What this element checks on requests before the handler sees them.
    public var screening: RequestScreening
    /// Host written into Via and Contact; the bound address when nil.
    public var advertisedHost: String?
    public var userAgent: String
    /// Whether the handler hears the ACKs of 2xx responses it sent. A
    /// handler that ignores them (the call service: the B leg is ACKed when
    /// it answers) saves a task per call by saying no.
    public var deliversACKsOf2xx: Bool

    public init(
        listen: [SIPListenAddress],
        timers: TransactionTimers = TransactionTimers(),
        limits: SIPParserLimits = .default,
        screening: RequestScreening = RequestScreening(role: .userAgentServer),
        advertisedHost: String? = nil,
        userAgent: String = "Switchboard",
        deliversACKsOf2xx: Bool = true
    ) {
        self.listen = listen; self.timers = timers; self.limits = limits; self.screening = screening
        self.advertisedHost = advertisedHost; self.userAgent = userAgent; self.deliversACKsOf2xx = deliversACKsOf2xx
    }
}

public enum SIPClientError: Error, Sendable, CustomStringConvertible {
    /// No final response within Timer B / Timer F (RFC 3261 §17.1.1.2, §17.1.2.2).
    case timeout(SIPDestination)
    case transport(SIPDestination, String)
    case noDestinations
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .timeout(let d): return "no final response from \(d) before the transaction timed out"
        case .transport(let d, let why): return "could not send to \(d): \(why)"
        case .noDestinations: return "no destination to send the request to"
        case .invalidRequest(let why): return "request cannot be sent: \(why)"
        }
    }
}

/// A request received by the endpoint, to be answered by the handler.
public struct SIPServerRequest: Sendable {
    public let message: SIPMessage
    public let source: SocketAddress
    public let transport: SIPTransportProtocol
    let key: TransactionKey
    let endpoint: SIPEndpoint

    /// Sends a response through the request's server transaction.
    public func respond(_ response: SIPMessage) async {
        await endpoint.respond(response, key: key)
    }

    /// Builds and sends a response with the transaction headers copied.
    public func respond(_ statusCode: Int, reasonPhrase: String? = nil, toTag: String? = nil,
                        headers: [(SIPHeaderName, String)] = [], body: [UInt8] = [], contentType: String? = nil) async {
        var r = message.makeResponse(statusCode, reasonPhrase: reasonPhrase, toTag: toTag)
        for (n, v) in headers { r.append(n, v) }
        if !body.isEmpty {
            if let contentType { r.append(.contentType, contentType) }
            r.body = body
        }
        await respond(r)
    }
}

/// A SIP endpoint: transport, transactions and (through `SIPServerLocator`)
/// RFC 3263 resolution. One actor owns every transaction state machine and
/// performs the actions they return; the transport's event loops only parse.
public actor SIPEndpoint {
    public typealias RequestHandler = @Sendable (SIPServerRequest) async -> Void

    enum Event: Sendable {
        case inbound(SIPInbound)
        /// The armed event-loop task went off: fire what is due.
        case timersDue
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
    }

    enum ServerMachine {
        case invite(ServerInviteTransaction)
        case nonInvite(ServerNonInviteTransaction)
    }

    struct ServerEntry {
        var machine: ServerMachine
        var inbound: SIPInbound
        var request: SIPMessage
        var armedTimers = ArmedTimers()
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

    enum ClientMachine {
        case invite(ClientInviteTransaction)
        case nonInvite(ClientNonInviteTransaction)
    }

    struct ClientEntry {
        var machine: ClientMachine
        var destination: SIPDestination
        var request: SIPMessage
        var continuation: CheckedContinuation<SIPMessage, any Error>?
        var onProvisional: (@Sendable (SIPMessage) -> Void)?
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

    public nonisolated let configuration: SIPEndpointConfiguration
    nonisolated let logger: Logger
    let group: any EventLoopGroup
    nonisolated let events: AsyncStream<Event>.Continuation
    let eventStream: AsyncStream<Event>
    var transport: SIPTransport?
    var handler: RequestHandler
    var onMissingACK: (@Sendable (String) async -> Void)?
    var servers: [TransactionKey: ServerEntry] = [:]
    var clients: [TransactionKey: ClientEntry] = [:]
    var accepted: [DialogRequestKey: AcceptedEntry] = [:]
    /// INVITE client transactions by Call-ID and CSeq, for CANCEL.
    var inviteClients: [DialogRequestKey: TransactionKey] = [:]
    /// ACKs sent for 2xx responses, resent if the 2xx is retransmitted (RFC 3261 §13.2.2.4).
    var sentACKs: [DialogRequestKey: (SIPMessage, SIPDestination)] = [:]
    /// Every transaction timer, in one queue; one event-loop task is armed for
    /// the earliest (see `TimerQueue` for why not one task per timer).
    var timers = TimerQueue<TimerID>()
    var armedTimer: (deadline: UInt64, task: Scheduled<Void>)?
    let timerLoop: any EventLoop
    var loop: Task<Void, Never>?

    public static func start(
        configuration: SIPEndpointConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "switchboard.sip"),
        handler: @escaping RequestHandler
    ) async throws -> SIPEndpoint {
        let endpoint = SIPEndpoint(configuration: configuration, group: group, logger: logger, handler: handler)
        let events = endpoint.events
        let transport = try await SIPTransport.start(
            configuration: SIPTransportConfiguration(listen: configuration.listen, limits: configuration.limits),
            group: group, logger: logger
        ) { inbound in events.yield(.inbound(inbound)) }
        await endpoint.run(transport: transport)
        return endpoint
    }

    init(configuration: SIPEndpointConfiguration, group: any EventLoopGroup, logger: Logger, handler: @escaping RequestHandler) {
        self.configuration = configuration
        self.group = group
        self.timerLoop = group.next()
        self.logger = logger
        self.handler = handler
        (eventStream, events) = AsyncStream.makeStream(of: Event.self)
    }

    func run(transport: SIPTransport) {
        self.transport = transport
        let stream = eventStream
        loop = Task { [weak self] in
            for await event in stream {
                guard let self else { return }
                await self.handle(event)
            }
        }
    }

    public func setHandler(_ handler: @escaping RequestHandler) { self.handler = handler }

    /// Called with the Call-ID when a 2xx we sent to an INVITE was never ACKed (64·T1).
    public func setMissingACKHandler(_ handler: @escaping @Sendable (String) async -> Void) { onMissingACK = handler }

    /// Bound listener addresses (ports resolved if 0 was configured).
    public var boundAddresses: [(transport: SIPTransportProtocol, address: SocketAddress)] {
        transport?.boundAddresses ?? []
    }

    public func shutdown() async {
        armedTimer?.task.cancel()
        armedTimer = nil
        timers.removeAll()
        for (_, c) in clients { c.continuation?.resume(throwing: SIPClientError.invalidRequest("endpoint shut down")) }
        clients.removeAll()
        inviteClients.removeAll()
        events.finish()
        await transport?.close()
        transport = nil
    }

    // MARK: - Events

    func handle(_ event: Event) async {
        switch event {
        case .inbound(let inbound):
            if inbound.message.isRequest { await receivedRequest(inbound) } else { await receivedResponse(inbound) }
        case .timersDue:
            armedTimer = nil
            for id in timers.expired(now: NIODeadline.now().uptimeNanoseconds) { await timerFired(id) }
            armEarliestTimer()
        }
    }

    func timerFired(_ id: TimerID) async {
        switch id.owner {
        case .client(let key):
            guard var entry = clients[key], let t = id.timer else { return }
            entry.armedTimers.remove(t)
            let actions: [TransactionAction]
            switch entry.machine {
            case .invite(var m): actions = m.timerFired(t); entry.machine = .invite(m)
            case .nonInvite(var m): actions = m.timerFired(t); entry.machine = .nonInvite(m)
            }
            clients[key] = entry
            await performClient(actions, key: key)
        case .server(let key):
            guard var entry = servers[key], let t = id.timer else { return }
            entry.armedTimers.remove(t)
            let actions: [TransactionAction]
            switch entry.machine {
            case .invite(var m): actions = m.timerFired(t); entry.machine = .invite(m)
            case .nonInvite(var m): actions = m.timerFired(t); entry.machine = .nonInvite(m)
            }
            servers[key] = entry
            await performServer(actions, key: key)
        case .accepted(let dk):
            guard var entry = accepted[dk] else { return }
            let actions = entry.machine.retransmitTimerFired()
            accepted[dk] = entry
            for a in actions {
                switch a {
                case .retransmit: await sendResponse(entry.response, to: entry.inbound)
                case .scheduleRetransmit(let d): schedule(TimerID(owner: .accepted(dk), timer: nil), after: d)
                case .giveUp:
                    logger.warning("no ACK for 2xx", metadata: ["call-id": "\(dk.callID)", "cseq": "\(dk.cseq)"])
                    accepted[dk] = nil
                    // RFC 3261 §13.3.1.4: the UAS should end the dialog; the TU sends the BYE.
                    if let onMissingACK { let callID = dk.callID; Task { await onMissingACK(callID) } }
                default: break
                }
            }
        case .ackCache(let dk):
            sentACKs[dk] = nil
        }
    }

    // MARK: - Server side

    func receivedRequest(_ inbound: SIPInbound) async {
        let request = inbound.message
        guard let method = request.method else { return }
        let key = TransactionKey.server(for: request, topVia: inbound.topVia ?? request.topVia)
        let reliable = inbound.transport == .tcp

        if method == .ack {
            if servers[key] != nil {
                // ACK for a non-2xx final response: the INVITE server transaction absorbs it.
                await feedServer(key) { m in
                    switch m {
                    case .invite(var t): let a = t.receivedRequest(request); return (.invite(t), a)
                    case .nonInvite(var t): let a = t.receivedRequest(request); return (.nonInvite(t), a)
                    }
                }
                return
            }
            if let dk = dialogRequestKey(request), var entry = accepted[dk] {
                let action = entry.machine.receivedACK()
                accepted[dk] = entry
                if action == .deliverACK {
                    cancelTimer(TimerID(owner: .accepted(dk), timer: nil))
                    accepted[dk] = nil
                    if configuration.deliversACKsOf2xx { dispatch(inbound, key: key) }
                }
                return
            }
            if configuration.deliversACKsOf2xx { dispatch(inbound, key: key) }  // ACK the TU may still care about
            return
        }

        if servers[key] != nil {
            // A retransmission (§17.2.1, §17.2.2): the machine resends its last response.
            await feedServer(key) { m in
                switch m {
                case .invite(var t): let a = t.receivedRequest(request); return (.invite(t), a)
                case .nonInvite(var t): let a = t.receivedRequest(request); return (.nonInvite(t), a)
                }
            }
            return
        }
        if method == .invite, let dk = dialogRequestKey(request), let entry = accepted[dk] {
            // RFC 6026 §7.1: an INVITE retransmitted after our 2xx gets the 2xx again.
            if entry.machine.receivedInviteRetransmission() == .retransmit { await sendResponse(entry.response, to: entry.inbound) }
            return
        }

        // A new server transaction.
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
        await performServer(startActions.filter { if case .deliverToTU = $0 { return false } else { return true } }, key: key)

        if let rejection = configuration.screening.check(request) {
            var r = request.makeResponse(rejection.statusCode, reasonPhrase: rejection.reasonPhrase, toTag: Self.newTag())
            for h in rejection.headers { r.append(SIPHeaderName(h.name), h.value ?? "") }
            logger.info("rejected request", metadata: ["method": "\(method)", "status": "\(rejection)", "from": "\(inbound.source)"])
            await respond(r, key: key)
            return
        }

        if method == .cancel {
            await receivedCancel(inbound, key: key)
            return
        }
        dispatch(inbound, key: key)
    }

    /// CANCEL (RFC 3261 §9.2): 200 to the CANCEL, 487 to the INVITE if it has
    /// no final response yet, and the TU hears of it.
    func receivedCancel(_ inbound: SIPInbound, key: TransactionKey) async {
        let inviteKey = TransactionKey.cancelTarget(for: inbound.message)
        guard let invite = servers[inviteKey], case .invite(let t) = invite.machine, !t.hasSentFinalResponse else {
            await respond(inbound.message.makeResponse(481, toTag: Self.newTag()), key: key)
            return
        }
        await respond(inbound.message.makeResponse(200, toTag: Self.newTag()), key: key)
        await respond(invite.request.makeResponse(487, toTag: Self.newTag()), key: inviteKey)
        dispatch(inbound, key: key)
    }

    func dispatch(_ inbound: SIPInbound, key: TransactionKey) {
        let request = SIPServerRequest(message: inbound.message, source: inbound.source, transport: inbound.transport, key: key, endpoint: self)
        let handler = self.handler
        Task { await handler(request) }
    }

    func respond(_ response: SIPMessage, key: TransactionKey) async {
        guard servers[key] != nil else {
            logger.debug("response for a finished transaction dropped", metadata: ["status": "\(response.statusCode ?? 0)"])
            return
        }
        var response = response
        if !response.contains(.server), !response.contains(.userAgent) { response.append(.server, configuration.userAgent) }
        let isInvite2xx: Bool
        if case .invite = servers[key]?.machine, let code = response.statusCode, (200..<300).contains(code) { isInvite2xx = true } else { isInvite2xx = false }
        if isInvite2xx, let entry = servers[key], let dk = dialogRequestKey(entry.request) {
            var machine = AcceptedInvite(t1: configuration.timers.t1, t2: configuration.timers.t2, reliableTransport: entry.inbound.transport == .tcp)
            let start = machine.start()
            accepted[dk] = AcceptedEntry(machine: machine, response: response, inbound: entry.inbound)
            if case .scheduleRetransmit(let d) = start { schedule(TimerID(owner: .accepted(dk), timer: nil), after: d) }
        }
        let sendingResponse = response
        await feedServer(key) { m in
            switch m {
            case .invite(var t): let a = t.tuSend(response: sendingResponse); return (.invite(t), a)
            case .nonInvite(var t): let a = t.tuSend(response: sendingResponse); return (.nonInvite(t), a)
            }
        }
    }

    func feedServer(_ key: TransactionKey, _ body: (ServerMachine) -> (ServerMachine, [TransactionAction])) async {
        guard var entry = servers[key] else { return }
        let (m, actions) = body(entry.machine)
        entry.machine = m
        servers[key] = entry
        await performServer(actions, key: key)
    }

    func performServer(_ actions: [TransactionAction], key: TransactionKey) async {
        for action in actions {
            switch action {
            case .send(let message):
                if let entry = servers[key] { await sendResponse(message, to: entry.inbound) }
            case .startTimer(let t, let d):
                servers[key]?.armedTimers.insert(t)
                schedule(TimerID(owner: .server(key), timer: t), after: d)
            case .cancelTimer(let t):
                servers[key]?.armedTimers.remove(t)
                cancelTimer(TimerID(owner: .server(key), timer: t))
            case .deliverToTU:
                break
            case .timeout:
                logger.info("server transaction timed out waiting for ACK", metadata: ["key": "\(key)"])
            case .transportError:
                logger.info("transport error in server transaction", metadata: ["key": "\(key)"])
            case .terminated:
                let armed = servers.removeValue(forKey: key)?.armedTimers.all ?? []
                for t in armed { cancelTimer(TimerID(owner: .server(key), timer: t)) }
            }
        }
    }

    func sendResponse(_ response: SIPMessage, to inbound: SIPInbound) async {
        do {
            // Over UDP without suspending the actor (see `SIPTransport.sendDatagram`).
            if try transport?.sendResponseDatagram(response, to: inbound) == true { return }
            try await transport?.sendResponse(response, to: inbound)
        } catch {
            logger.warning("could not send response", metadata: ["to": "\(inbound.source)", "error": "\(error)"])
        }
    }

    // MARK: - Client side

    /// Sends a request in a new client transaction and returns its final
    /// response; provisional responses other than 100 go to `onProvisional`.
    /// Via is added here (sent-by, a fresh branch, rport — RFC 3581 §3).
    public func send(
        _ request: SIPMessage, to destination: SIPDestination,
        onProvisional: (@Sendable (SIPMessage) -> Void)? = nil
    ) async throws -> SIPMessage {
        guard let method = request.method else { throw SIPClientError.invalidRequest("not a request") }
        guard method != .ack else { throw SIPClientError.invalidRequest("ACK is sent without a transaction: use sendACK") }
        var request = request
        request.prepend(.via, try via(for: destination).description)
        if !request.contains(.maxForwards) { request.append(.maxForwards, "70") }
        if !request.contains(.userAgent) { request.append(.userAgent, configuration.userAgent) }
        return try await startClientTransaction(request, method: method, to: destination, onProvisional: onProvisional)
    }

    /// Runs a client transaction for a request whose Via is already in place.
    func startClientTransaction(_ request: SIPMessage, method: SIPMethod, to destination: SIPDestination,
                                onProvisional: (@Sendable (SIPMessage) -> Void)?) async throws -> SIPMessage {
        let key = TransactionKey.client(branch: request.topVia?.branch ?? "", method: method)
        let reliable = destination.transport == .tcp
        let message = request
        return try await withCheckedThrowingContinuation { continuation in
            let machine: ClientMachine
            let actions: [TransactionAction]
            if method == .invite {
                var t = ClientInviteTransaction(request: message, reliableTransport: reliable, timers: configuration.timers)
                actions = t.start(); machine = .invite(t)
            } else {
                var t = ClientNonInviteTransaction(request: message, reliableTransport: reliable, timers: configuration.timers)
                actions = t.start(); machine = .nonInvite(t)
            }
            clients[key] = ClientEntry(machine: machine, destination: destination, request: message, continuation: continuation,
                                       onProvisional: onProvisional)
            if method == .invite, let dk = dialogRequestKey(message) { inviteClients[dk] = key }
            // Over UDP the first send and the timers need no suspension: done
            // here rather than in a task of their own.
            if destination.transport == .udp, startClientNow(actions, key: key) { return }
            Task { await self.performClient(actions, key: key) }
        }
    }

    /// A client transaction's start actions (send, start timers) performed
    /// at once over UDP; false (nothing done) if any needs the async path.
    func startClientNow(_ actions: [TransactionAction], key: TransactionKey) -> Bool {
        for a in actions {
            switch a {
            case .send, .startTimer, .cancelTimer: continue
            default: return false
            }
        }
        guard let transport, let entry = clients[key] else { return false }
        for a in actions {
            switch a {
            case .send(let message):
                do { try transport.sendDatagram(message, to: entry.destination.address) } catch {
                    Task { await self.clientTransportError(key, error: error) }
                    return true
                }
            case .startTimer(let t, let d): startTimer(t, after: d, client: key)
            case .cancelTimer(let t): cancelTimer(t, client: key)
            default: break
            }
        }
        return true
    }

    /// Cancels the INVITE we sent with this Call-ID and CSeq (RFC 3261 §9.1):
    /// the CANCEL copies its Request-URI, Call-ID, From, To, CSeq number and
    /// top Via, so it reaches the same server transaction. It waits for a
    /// provisional response if none has arrived yet; a final response makes
    /// it moot. Returns without waiting for the CANCEL's own 200.
    public func cancelInvite(callID: String, cseq: UInt32) {
        guard let key = inviteClients[DialogRequestKey(callID: callID, cseq: cseq)], let entry = clients[key] else { return }
        if entry.heardProvisional {
            sendCancel(for: entry)
        } else {
            clients[key]?.cancelWanted = true
        }
    }

    func sendCancel(for entry: ClientEntry) {
        let invite = entry.request
        var cancel = SIPMessage(request: .cancel, uri: invite.requestURI ?? "")
        if let v = invite.firstValue(.via) { cancel.append(.via, v) }
        for h: SIPHeaderName in [.from, .to, .callID] { if let v = invite.firstValue(h) { cancel.append(h, v) } }
        cancel.append(.cseq, "\(invite.cseq?.number ?? 1) CANCEL")
        for r in invite.values(.route) { cancel.append(.route, r) }
        cancel.append(.maxForwards, "70")
        let destination = entry.destination
        let logger = self.logger
        Task {
            do { _ = try await self.startClientTransaction(cancel, method: .cancel, to: destination, onProvisional: nil) } catch {
                logger.info("CANCEL got no answer", metadata: ["to": "\(destination)", "error": "\(error)"])
            }
        }
    }

    /// Tries each destination in turn, moving on after a timeout, a transport
    /// failure or a 503 (RFC 3263 §4.3). Each attempt is a new transaction.
    public func send(
        _ request: SIPMessage, toFirstAvailable destinations: [SIPDestination],
        onProvisional: (@Sendable (SIPMessage) -> Void)? = nil
    ) async throws -> (response: SIPMessage, destination: SIPDestination) {
        var lastError: any Error = SIPClientError.noDestinations
        for (i, d) in destinations.enumerated() {
            do {
                let r = try await send(request, to: d, onProvisional: onProvisional)
                if r.statusCode == 503, i < destinations.count - 1 {
                    logger.info("503 from destination, trying the next", metadata: ["destination": "\(d)"])
                    lastError = SIPClientError.transport(d, "503 Service Unavailable")
                    continue
                }
                return (r, d)
            } catch {
                logger.info("destination failed, trying the next", metadata: ["destination": "\(d)", "error": "\(error)"])
                lastError = error
            }
        }
        throw lastError
    }

    /// Sends the ACK for a 2xx (RFC 3261 §13.2.2.4) outside any transaction and
    /// remembers it, so that a retransmitted 2xx is ACKed again.
    public func sendACK(_ ack: SIPMessage, to destination: SIPDestination) async throws {
        var ack = ack
        ack.prepend(.via, try via(for: destination).description)
        if !ack.contains(.maxForwards) { ack.append(.maxForwards, "70") }
        if let dk = dialogRequestKey(ack) {
            sentACKs[dk] = (ack, destination)
            schedule(TimerID(owner: .ackCache(dk), timer: nil), after: configuration.timers.t1 * 64)
        }
        try await sendRaw(ack, to: destination)
    }

    func receivedResponse(_ inbound: SIPInbound) async {
        let response = inbound.message
        guard let key = TransactionKey.client(for: response), var entry = clients[key] else {
            // A 2xx retransmitted after its transaction ended: ACK it again (§13.2.2.4).
            if let code = response.statusCode, (200..<300).contains(code), response.cseq?.method == .invite,
               let dk = dialogRequestKey(response), let (ack, destination) = sentACKs[dk] {
                try? await sendRaw(ack, to: destination)
            }
            return
        }
        let actions: [TransactionAction]
        switch entry.machine {
        case .invite(var m): actions = m.receivedResponse(response); entry.machine = .invite(m)
        case .nonInvite(var m): actions = m.receivedResponse(response); entry.machine = .nonInvite(m)
        }
        clients[key] = entry
        await performClient(actions, key: key)
    }

    /// A client transaction's timer, recorded as running (see `ArmedTimers`).
    func startTimer(_ t: TransactionTimer, after d: Duration, client key: TransactionKey) {
        clients[key]?.armedTimers.insert(t)
        schedule(TimerID(owner: .client(key), timer: t), after: d)
    }

    func cancelTimer(_ t: TransactionTimer, client key: TransactionKey) {
        clients[key]?.armedTimers.remove(t)
        cancelTimer(TimerID(owner: .client(key), timer: t))
    }

    func performClient(_ actions: [TransactionAction], key: TransactionKey) async {
        for action in actions {
            guard let entry = clients[key] else { return }
            switch action {
            case .send(let message):
                do {
                    try await sendRaw(message, to: entry.destination)
                } catch {
                    await clientTransportError(key, error: error)
                }
            case .startTimer(let t, let d): startTimer(t, after: d, client: key)
            case .cancelTimer(let t): cancelTimer(t, client: key)
            case .deliverToTU(let response):
                if let code = response.statusCode, code < 200 {
                    if !entry.heardProvisional {
                        clients[key]?.heardProvisional = true
                        if entry.cancelWanted { clients[key]?.cancelWanted = false; sendCancel(for: entry) }
                    }
                    // 100 Trying only stops our retransmissions: it is hop-by-hop
                    // (RFC 3261 §16.7) and tells the TU nothing.
                    if code != 100 { entry.onProvisional?(response) }
                } else {
                    clients[key]?.continuation = nil
                    entry.continuation?.resume(returning: response)
                }
            case .timeout:
                clients[key]?.continuation = nil
                entry.continuation?.resume(throwing: SIPClientError.timeout(entry.destination))
            case .transportError:
                clients[key]?.continuation = nil
                entry.continuation?.resume(throwing: SIPClientError.transport(entry.destination, "transport error"))
            case .terminated:
                if let c = clients[key]?.continuation {
                    c.resume(throwing: SIPClientError.timeout(entry.destination))
                }
                if case .invite = entry.machine, let dk = dialogRequestKey(entry.request) { inviteClients[dk] = nil }
                let armed = clients.removeValue(forKey: key)?.armedTimers.all ?? []
                for t in armed { cancelTimer(TimerID(owner: .client(key), timer: t)) }
            }
        }
    }

    func clientTransportError(_ key: TransactionKey, error: any Error) async {
        guard var entry = clients[key] else { return }
        let actions: [TransactionAction]
        switch entry.machine {
        case .invite(var m): actions = m.transportError(); entry.machine = .invite(m)
        case .nonInvite(var m): actions = m.transportError(); entry.machine = .nonInvite(m)
        }
        if let c = entry.continuation {
            entry.continuation = nil
            c.resume(throwing: SIPClientError.transport(entry.destination, "\(error)"))
        }
        clients[key] = entry
        await performClient(actions, key: key)
    }

    func sendRaw(_ message: SIPMessage, to destination: SIPDestination) async throws {
        guard let transport else { throw SIPClientError.transport(destination, "endpoint is shut down") }
        if destination.transport == .udp {
            try transport.sendDatagram(message, to: destination.address)
        } else {
            try await transport.send(message, to: destination.address, transport: destination.transport)
        }
    }

    // MARK: - Helpers

    /// Our Via for a request to `destination`: the listener's address, a new branch, rport.
    func via(for destination: SIPDestination) throws -> SIPVia {
        guard let local = transport?.localAddress(destination.transport, for: destination.address) else {
            throw SIPClientError.transport(destination, "no \(destination.transport) listener")
        }
        var host = configuration.advertisedHost ?? local.ipAddress ?? "127.0.0.1"
        if host.contains(":"), !host.hasPrefix("[") { host = "[\(host)]" }
        return SIPVia(transport: destination.transport.rawValue, host: host, port: local.port.map { UInt16($0) },
                      branch: TransactionKey.newBranch(), rport: true)
    }

    /// host:port to put in a Contact for requests sent to `destination`.
    public func contactHostPort(for destination: SIPDestination) -> String? {
        guard let local = transport?.localAddress(destination.transport, for: destination.address) else { return nil }
        var host = configuration.advertisedHost ?? local.ipAddress ?? "127.0.0.1"
        if host.contains(":"), !host.hasPrefix("[") { host = "[\(host)]" }
        return "\(host):\(local.port ?? 5060)"
    }

    func dialogRequestKey(_ m: SIPMessage) -> DialogRequestKey? {
        guard let callID = m.callID, let cseq = m.cseq else { return nil }
        return DialogRequestKey(callID: callID, cseq: cseq.number)
    }

    func schedule(_ id: TimerID, after duration: Duration) {
        let (s, a) = duration.components
        let nanos = max(0, s * 1_000_000_000 + a / 1_000_000_000)
        timers.schedule(id, at: NIODeadline.now().uptimeNanoseconds + UInt64(nanos))
        armEarliestTimer()
    }

    func cancelTimer(_ id: TimerID) {
        timers.cancel(id)
    }

    /// Keeps one event-loop task armed for the earliest timer. A cancelled
    /// earliest timer leaves the task armed: it goes off, finds nothing due
    /// and arms for the next. Deadlines are rounded up to a 5 ms tick, so a
    /// busy endpoint wakes for its timers at most 200 times a second rather
    /// than once per transaction (SIP timers count in units of T1 = 500 ms).
    func armEarliestTimer() {
        guard let at = timers.deadlineToArm(armed: armedTimer?.deadline) else { return }
        armedTimer?.task.cancel()
        let events = self.events
        let task = timerLoop.scheduleTask(deadline: .uptimeNanoseconds(at)) { _ = events.yield(.timersDue) }
        armedTimer = (at, task)
    }

    public static func newTag() -> String {
        String(RandomIdentifiers.next() & 0xFFFF_FFFF_FFFF, radix: 36)
    }

    public static func newCallID(host: String) -> String {
        String(RandomIdentifiers.next(), radix: 36) + String(RandomIdentifiers.next() & 0xFFFF_FFFF, radix: 36) + "@" + host
    }
}
