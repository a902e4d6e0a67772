import Logging
import NIOConcurrencyHelpers
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
    /// UDP sockets per UDP address, each on its own event loop (`SIPTransportConfiguration`).
    public var udpSocketsPerAddress: Int = 1

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
/// Something in front of an endpoint that takes some inbound messages
/// itself (a trunk call core on the event loop that reads them).
public protocol SIPFront: AnyObject, Sendable {
    /// Called on the event loop that read the message; true: taken, the endpoint never sees it.
    func take(_ inbound: SIPInbound) -> Bool
}

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
        var r = message.makeResponse(statusCode, reasonPhrase: reasonPhrase, toTag: toTag, headers: headers)
        if !body.isEmpty {
            if let contentType { r.append(.contentType, contentType) }
            r.body = body
        }
        await respond(r)
    }
}

/// A SIP endpoint: transport, transactions and (through `SIPServerLocator`)
/// RFC 3263 resolution. The transactions are one value (`TransactionLayer`);
/// this actor owns it, feeds it the transport's messages and the timer, and
/// performs the actions it returns (sends, deliveries to the handler,
/// resuming callers waiting for their final response). The transport's event
/// loops only parse.
public actor SIPEndpoint {
    public typealias RequestHandler = @Sendable (SIPServerRequest) async -> Void

    /// What may take inbound messages before this endpoint sees them: called
    /// on the event loop that read each one; true means taken.
    nonisolated let front = NIOLockedValueBox<(any SIPFront)?>(nil)

    enum Event: Sendable {
        case inbound(SIPInbound)
        /// The armed event-loop task went off: fire what is due.
        case timersDue
    }

    public nonisolated let configuration: SIPEndpointConfiguration
    nonisolated let logger: Logger
    let group: any EventLoopGroup
    nonisolated let events: AsyncStream<Event>.Continuation
    let eventStream: AsyncStream<Event>
    var transport: SIPTransport?
    var handler: RequestHandler
    var onMissingACK: (@Sendable (String) async -> Void)?
    /// Every transaction and its timers; this actor performs what it returns.
    var layer: TransactionLayer
    /// Callers waiting for the final response of their client transaction.
    var waiting: [TransactionKey: CheckedContinuation<SIPMessage, any Error>] = [:]
    var provisionalHandlers: [TransactionKey: @Sendable (SIPMessage) -> Void] = [:]
    /// One event-loop task armed for the layer's earliest timer.
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
        let front = endpoint.front
        let transport = try await SIPTransport.start(
            configuration: SIPTransportConfiguration(listen: configuration.listen, limits: configuration.limits,
                                                     udpSocketsPerAddress: configuration.udpSocketsPerAddress),
            group: group, logger: logger
        ) { inbound in
            if let taker = front.withLockedValue({ $0 }), taker.take(inbound) { return }
            events.yield(.inbound(inbound))
        }
        await endpoint.run(transport: transport)
        return endpoint
    }

    init(configuration: SIPEndpointConfiguration, group: any EventLoopGroup, logger: Logger, handler: @escaping RequestHandler) {
        self.configuration = configuration
        self.group = group
        self.timerLoop = group.next()
        self.logger = logger
        self.handler = handler
        self.layer = TransactionLayer(configuration: configuration, logger: logger)
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

    /// Puts `taker` in front of this endpoint (nil: none): it sees each
    /// inbound message first, on the event loop that read it.
    public nonisolated func setFront(_ taker: (any SIPFront)?) { front.withLockedValue { $0 = taker } }

    /// A message a front took but passes on after all (it belonged to none of its calls).
    public nonisolated func deliver(_ inbound: SIPInbound) { events.yield(.inbound(inbound)) }

    /// The transport, for a front that answers on it.
    public var sipTransport: SIPTransport? { transport }

    /// Called with the Call-ID when a 2xx we sent to an INVITE was never ACKed (64·T1).
    public func setMissingACKHandler(_ handler: @escaping @Sendable (String) async -> Void) { onMissingACK = handler }

    /// Bound listener addresses (ports resolved if 0 was configured).
    public var boundAddresses: [(transport: SIPTransportProtocol, address: SocketAddress)] {
        transport?.boundAddresses ?? []
    }

    public func shutdown() async {
        armedTimer?.task.cancel()
        armedTimer = nil
        layer.removeAll()
        for (_, c) in waiting { c.resume(throwing: SIPClientError.invalidRequest("endpoint shut down")) }
        waiting.removeAll()
        provisionalHandlers.removeAll()
        events.finish()
        await transport?.close()
        transport = nil
    }

    // MARK: - Events

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    func handle(_ event: Event) async {
        switch event {
        case .inbound(let inbound):
            let now = Self.now()
            await perform(inbound.message.isRequest ? layer.receivedRequest(inbound, now: now) : layer.receivedResponse(inbound, now: now))
        case .timersDue:
            armedTimer = nil
            await perform(layer.timersDue(now: Self.now()))
        }
    }

    /// Does what the transaction layer asked, then keeps its timer armed.
    func perform(_ actions: [TransactionLayer.Action]) async {
        for action in actions {
            switch action {
            case .sendResponse(let response, let inbound):
                await sendResponse(response, to: inbound)
            case .sendRequest(let message, let destination, let key):
                do { try await sendRaw(message, to: destination) } catch {
                    // An ACK resent for a retransmitted 2xx has no transaction to tell.
                    if let key { await perform(layer.clientTransportError(key, error: "\(error)", now: Self.now())) }
                }
            case .deliverRequest(let inbound, let key):
                dispatch(inbound, key: key)
            case .deliverProvisional(let response, let key):
                provisionalHandlers[key]?(response)
            case .deliverFinal(let response, let key):
                provisionalHandlers[key] = nil
                waiting.removeValue(forKey: key)?.resume(returning: response)
            case .failRequest(let error, let key):
                provisionalHandlers[key] = nil
                waiting.removeValue(forKey: key)?.resume(throwing: error)
            case .sendCancel(let cancel, let destination):
                startCancel(cancel, to: destination)
            case .missingACK(let callID):
                if let onMissingACK { Task { await onMissingACK(callID) } }
            }
        }
        armEarliestTimer()
    }

    // MARK: - Server side

    func dispatch(_ inbound: SIPInbound, key: TransactionKey) {
        let request = SIPServerRequest(message: inbound.message, source: inbound.source, transport: inbound.transport, key: key, endpoint: self)
        let handler = self.handler
        Task { await handler(request) }
    }

    func respond(_ response: SIPMessage, key: TransactionKey) async {
        await perform(layer.respond(response, key: key, now: Self.now()))
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
        Self.stamp(&request, via: try via(for: destination), userAgent: configuration.userAgent)
        return try await startClientTransaction(request, method: method, to: destination, onProvisional: onProvisional)
    }

    /// Runs a client transaction for a request whose Via is already in place.
    func startClientTransaction(_ request: SIPMessage, method: SIPMethod, to destination: SIPDestination,
                                onProvisional: (@Sendable (SIPMessage) -> Void)?) async throws -> SIPMessage {
        try await withCheckedThrowingContinuation { continuation in
            let (key, actions) = layer.startClient(request, method: method, to: destination, now: Self.now())
            waiting[key] = continuation
            if let onProvisional { provisionalHandlers[key] = onProvisional }
            // Over UDP the first send and the timers need no suspension: done
            // here rather than in a task of their own.
            if performNow(actions) { return }
            Task { await self.perform(actions) }
        }
    }

    /// A client transaction's start (sends over UDP, timers) performed at
    /// once; false (nothing done) if any action needs the async path.
    func performNow(_ actions: [TransactionLayer.Action]) -> Bool {
        guard let transport else { return false }
        for a in actions {
            guard case .sendRequest(_, let destination, _) = a, destination.transport == .udp else { return false }
        }
        for case .sendRequest(let message, let destination, let key) in actions {
            do { try transport.sendDatagram(message, to: destination.address) } catch {
                if let key { Task { await self.clientTransportError(key, error: "\(error)") } }
            }
        }
        armEarliestTimer()
        return true
    }

    func clientTransportError(_ key: TransactionKey, error: String) async {
        await perform(layer.clientTransportError(key, error: error, now: Self.now()))
    }

    /// Cancels the INVITE we sent with this Call-ID and CSeq (RFC 3261 §9.1):
    /// the CANCEL copies its Request-URI, Call-ID, From, To, CSeq number and
    /// top Via, so it reaches the same server transaction. It waits for a
    /// provisional response if none has arrived yet; a final response makes
    /// it moot. Returns without waiting for the CANCEL's own 200.
    public func cancelInvite(callID: String, cseq: UInt32) {
        for case .sendCancel(let cancel, let destination) in layer.cancelInvite(callID: callID, cseq: cseq) {
            startCancel(cancel, to: destination)
        }
    }

    func startCancel(_ cancel: SIPMessage, to destination: SIPDestination) {
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
        Self.stamp(&ack, via: try via(for: destination), userAgent: nil)
        let actions = layer.sendACK(ack, to: destination, now: Self.now())
        armEarliestTimer()
        for case .sendRequest(let message, let to, _) in actions { try await sendRaw(message, to: to) }
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
        try Self.via(for: destination, transport: transport, advertisedHost: configuration.advertisedHost)
    }

    /// A request we originate, made ready to send: our Via on top (RFC 3261
    /// §8.1.1.7), Max-Forwards 70 unless set (§8.1.1.6), and our User-Agent
    /// unless set (none for an ACK).
    public static func stamp(_ request: inout SIPMessage, via: SIPVia, userAgent: String?) {
        request.prepend(.via, via.description)
        if !request.contains(.maxForwards) { request.append(.maxForwards, "70") }
        if let userAgent, !request.contains(.userAgent) { request.append(.userAgent, userAgent) }
    }

    /// Our Via for a request to `destination` sent through `transport`.
    public static func via(for destination: SIPDestination, transport: SIPTransport?, advertisedHost: String?) throws -> SIPVia {
        guard let local = transport?.localAddress(destination.transport, for: destination.address) else {
            throw SIPClientError.transport(destination, "no \(destination.transport) listener")
        }
        var host = advertisedHost ?? local.ipAddress ?? "127.0.0.1"
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

    /// Keeps one event-loop task armed for the earliest timer. A cancelled
    /// earliest timer leaves the task armed: it goes off, finds nothing due
    /// and arms for the next. Deadlines are rounded up to a 5 ms tick, so a
    /// busy endpoint wakes for its timers at most 200 times a second rather
    /// than once per transaction (SIP timers count in units of T1 = 500 ms).
    func armEarliestTimer() {
        guard let at = layer.timerToArm(armed: armedTimer?.deadline) else { return }
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
