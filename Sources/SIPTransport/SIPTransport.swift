import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SIPMessage

public enum SIPTransportProtocol: String, Sendable, Hashable, CustomStringConvertible {
    case udp = "UDP"
    case tcp = "TCP"
    public var description: String { rawValue }
}

/// An address to listen on.
public struct SIPListenAddress: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var transport: SIPTransportProtocol
    public init(host: String, port: Int, transport: SIPTransportProtocol) {
        self.host = host; self.port = port; self.transport = transport
    }
}

public struct SIPTransportConfiguration: Sendable {
    public var listen: [SIPListenAddress]
    public var limits: SIPParserLimits
    /// Socket receive buffer for UDP; SIP load arrives in bursts.
    public var udpReceiveBufferBytes: Int
    /// UDP sockets bound to each UDP address (SO_REUSEPORT), each on its own
    /// event loop of the group; the kernel spreads datagrams among them by
    /// source address and port.
    public var udpSocketsPerAddress: Int

    public init(listen: [SIPListenAddress], limits: SIPParserLimits = .default, udpReceiveBufferBytes: Int = 4 << 20,
                udpSocketsPerAddress: Int = 1) {
        self.listen = listen; self.limits = limits; self.udpReceiveBufferBytes = udpReceiveBufferBytes
        self.udpSocketsPerAddress = max(1, udpSocketsPerAddress)
    }
}

/// A message that arrived, with where it came from (RFC 3261 §18.2.1 needs both).
public struct SIPInbound: Sendable {
    public var message: SIPMessage
    public var source: SocketAddress
    public var transport: SIPTransportProtocol
    /// The local socket it arrived on.
    public var local: SocketAddress?
    /// For TCP, the connection to send the response on (RFC 3261 §18.2.2).
    let connection: Channel?
    /// A request's top Via as received (with received/rport stamped), parsed
    /// once here rather than again by every transaction lookup and response.
    public var topVia: SIPVia?
    /// Where a UDP response to this request goes (RFC 3261 §18.2.2), worked
    /// out once per request; nil if it cannot be (then each send says why).
    var responseAddress: SocketAddress?
    /// Read from a UDP socket whose receive queue was backing up
    /// (`ReceiveBacklogGate`): a new call in it is refused rather than taken.
    public var readWhileBehind = false

    init(message: SIPMessage, source: SocketAddress, transport: SIPTransportProtocol, local: SocketAddress?, connection: Channel?,
         topVia: SIPVia? = nil, responseAddress: SocketAddress? = nil) {
        self.message = message; self.source = source; self.transport = transport; self.local = local; self.connection = connection
        self.topVia = topVia; self.responseAddress = responseAddress
    }

    /// A UDP message as if it had arrived from `source` (for driving a
    /// transaction layer without sockets, as bench/CallPath does).
    public init(udpMessage message: SIPMessage, from source: SocketAddress) {
        self.init(message: message, source: source, transport: .udp, local: nil, connection: nil, topVia: message.topVia)
    }
}

public enum SIPTransportError: Error, CustomStringConvertible, Sendable {
    case noListener(SIPTransportProtocol, String)
    case cannotRouteResponse(String)
    case connectFailed(String, String)
    case closed

    public var description: String {
        switch self {
        case .noListener(let t, let family): return "no \(t) listener for \(family) addresses is configured"
        case .cannotRouteResponse(let why): return "cannot route response: \(why)"
        case .connectFailed(let to, let why): return "TCP connection to \(to) failed: \(why)"
        case .closed: return "the transport is closed"
        }
    }
}

/// SIP over UDP and TCP on SwiftNIO (RFC 3261 §18, RFC 3581).
///
/// Inbound messages are parsed on the event loop and handed to `onMessage`.
/// Requests that cannot be parsed get a stateless 400/505/513 when a Via can
/// be read; anything else is dropped. Faults are logged, rate-limited.
public final class SIPTransport: Sendable {
    /// Datagrams read per recvmmsg call (see the UDP channel options).
    static let datagramsPerRead = 16
    public typealias Handler = @Sendable (SIPInbound) -> Void

    let group: any EventLoopGroup
    let logger: Logger
    let limits: SIPParserLimits
    let udpChannels: [Channel]
    /// One per UDP channel, in the same order.
    let udpWriters: [DatagramWriteBatch]
    let tcpServers: [Channel]
    let connections: NIOLockedValueBox<[SocketAddress: Channel]>
    let handler: Handler
    let faultLog: RateLimitedLog

    /// Where the listeners are bound (ports resolved when 0 was asked for).
    public let boundAddresses: [(transport: SIPTransportProtocol, address: SocketAddress)]

    public static func start(
        configuration: SIPTransportConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "switchboard.sip.transport"),
        onMessage: @escaping Handler
    ) async throws -> SIPTransport {
        let shared = SharedState(
            limits: configuration.limits, logger: logger,
            connections: NIOLockedValueBox([:]), handler: onMessage,
            faultLog: RateLimitedLog(logger: logger))
        var udp: [Channel] = []
        var tcp: [Channel] = []
        var bound: [(SIPTransportProtocol, SocketAddress)] = []
        do {
            for l in configuration.listen {
                switch l.transport {
                case .udp:
                    let loops = Array(group.makeIterator())
                    var port = l.port
                    for i in 0..<configuration.udpSocketsPerAddress {
                        let several = configuration.udpSocketsPerAddress > 1
                        let ch = try await DatagramBootstrap(group: several ? loops[i % loops.count] : group)
                            .channelOption(.socketOption(.so_reuseaddr), value: 1)
                            .channelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: several ? 1 : 0)
                            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(configuration.udpReceiveBufferBytes))
                            // Up to 16 datagrams per system call (recvmmsg), each in its own
                            // 64 KiB slot of one reused buffer, so no SIP message is truncated.
                            .channelOption(.datagramVectorReadMessageCount, value: Self.datagramsPerRead)
                            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536 * Self.datagramsPerRead))
                            .channelOption(.maxMessagesPerRead, value: 4)
                            .channelInitializer { ch in
                                ch.eventLoop.makeCompletedFuture {
                                    try ch.pipeline.syncOperations.addHandler(UDPHandler(shared: shared))
                                }
                            }
                            .bind(host: l.host, port: port).get()
                        udp.append(ch)
                        if i == 0 { await warnIfReceiveBufferCapped(ch, asked: configuration.udpReceiveBufferBytes, logger: logger) }
                        // The others share the first one's port (resolved if 0 was asked for).
                        if i == 0, let a = ch.localAddress {
                            bound.append((.udp, a))
                            port = a.port ?? port
                        }
                    }
                case .tcp:
                    let ch = try await ServerBootstrap(group: group)
                        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                        .childChannelInitializer { ch in
                            ch.eventLoop.makeCompletedFuture {
                                try TCPHandler.install(on: ch, shared: shared)
                            }
                        }
                        .bind(host: l.host, port: l.port).get()
                    tcp.append(ch)
                    if let a = ch.localAddress { bound.append((.tcp, a)) }
                }
            }
        } catch {
            for ch in udp + tcp { try? await ch.close() }
            throw error
        }
        return SIPTransport(group: group, shared: shared, udp: udp, tcp: tcp, bound: bound)
    }

    /// The kernel caps SO_RCVBUF at net.core.rmem_max (Linux then reports
    /// double what it granted): a small buffer overflows at the first burst,
    /// and the overload refusals (`ReceiveBacklogGate`) start sooner.
    static func warnIfReceiveBufferCapped(_ channel: Channel, asked: Int, logger: Logger) async {
        guard let got = try? await channel.getOption(.socketOption(.so_rcvbuf)).get(), Int(got) < asked else { return }
        logger.warning("UDP receive buffer smaller than configured: the kernel caps it (raise net.core.rmem_max)",
                       metadata: ["asked_bytes": "\(asked)", "granted_bytes": "\(got)"])
    }

    private init(group: any EventLoopGroup, shared: SharedState, udp: [Channel], tcp: [Channel],
                 bound: [(SIPTransportProtocol, SocketAddress)]) {
        self.group = group
        self.logger = shared.logger
        self.limits = shared.limits
        self.udpChannels = udp
        self.udpWriters = udp.map { DatagramWriteBatch(channel: $0, faultLog: shared.faultLog) }
        self.tcpServers = tcp
        self.connections = shared.connections
        self.handler = shared.handler
        self.faultLog = shared.faultLog
        self.boundAddresses = bound.map { (transport: $0.0, address: $0.1) }
        self.shared = shared
    }

    let shared: SharedState

    /// The bound address to advertise in Via/Contact for a destination's family.
    /// The event loops of the UDP listeners, in listening order.
    public var udpEventLoops: [any EventLoop] { udpChannels.map(\.eventLoop) }

    public func localAddress(_ transport: SIPTransportProtocol, for destination: SocketAddress? = nil) -> SocketAddress? {
        let wantV6 = destination.map { if case .v6 = $0 { return true } else { return false } }
        return boundAddresses.first { b in
            guard b.transport == transport else { return false }
            guard let wantV6 else { return true }
            if case .v6 = b.address { return wantV6 } else { return !wantV6 }
        }?.address
    }

    /// Sends a message to `address`. Over TCP an open connection to that
    /// address is reused, else one is opened (RFC 3261 §18.1.1).
    public func send(_ message: SIPMessage, to address: SocketAddress, transport: SIPTransportProtocol) async throws {
        switch transport {
        case .udp:
            try sendDatagram(message, to: address)
        case .tcp:
            let ch = try await tcpConnection(to: address)
            let buf = ch.allocator.buffer(serializing: message)
            try await ch.writeAndFlush(buf)
        }
    }

    /// Sends a message over UDP without waiting for the write: the datagram
    /// is handed to the event loop and a failed write is logged. Waiting
    /// would cost two thread hand-offs per message and tell the transaction
    /// nothing UDP can promise anyway (a datagram that leaves may still be lost).
    public func sendDatagram(_ message: SIPMessage, to address: SocketAddress) throws {
        guard let i = udpChannelIndex(for: address) else {
            throw SIPTransportError.noListener(.udp, address.protocol == .inet6 ? "IPv6" : "IPv4")
        }
        udpWriters[i].enqueue(AddressedEnvelope(remoteAddress: address, data: udpChannels[i].allocator.buffer(serializing: message)))
    }

    /// A response over UDP, sent as `sendDatagram` does; false when the
    /// request came over TCP (use `sendResponse`).
    public func sendResponseDatagram(_ response: SIPMessage, to request: SIPInbound) throws -> Bool {
        guard request.transport == .udp else { return false }
        try sendDatagram(response, to: try Self.responseDestination(for: request))
        return true
    }

    /// Sends a response where RFC 3261 §18.2.2 and RFC 3581 §4 say: back on the
    /// TCP connection the request came on; over UDP to maddr, else to the
    /// source address and port when rport was asked for, else to received
    /// (or sent-by) and the sent-by port.
    public func sendResponse(_ response: SIPMessage, to request: SIPInbound) async throws {
        if request.transport == .tcp, let ch = request.connection, ch.isActive {
            try await ch.writeAndFlush(ch.allocator.buffer(serializing: response))
            return
        }
        try await send(response, to: try Self.responseDestination(for: request), transport: request.transport)
    }

    static func responseDestination(for request: SIPInbound) throws -> SocketAddress {
        if let known = request.responseAddress { return known }
        guard let via = request.topVia ?? request.message.topVia else { throw SIPTransportError.cannotRouteResponse("request has no Via") }
        return try responseDestination(via: via, transport: request.transport, source: request.source)
    }

    static func responseDestination(via: SIPVia, transport: SIPTransportProtocol, source: SocketAddress) throws -> SocketAddress {
        if transport == .udp, case .some(.some(let rport)) = via.rport, let port = Int(rport) {
            return try SocketAddress(ipAddress: via.received ?? source.ipAddress ?? "", port: port)
        }
        let port = Int(via.port ?? 5060)
        if let maddr = via.maddr, let a = try? SocketAddress(ipAddress: maddr, port: port) { return a }
        let host = via.received ?? via.host.trimmingBrackets
        if let a = try? SocketAddress(ipAddress: host, port: port) { return a }
        // A sent-by host name: RFC 3263 §5 would resolve it; the source is the best we know.
        guard let ip = source.ipAddress else { throw SIPTransportError.cannotRouteResponse("no address for \(host)") }
        return try SocketAddress(ipAddress: ip, port: port)
    }

    /// The UDP socket to send from: of the destination's address family, the
    /// one on the calling event loop if there is one (sockets sharing a port
    /// each send from their own loop), else the first.
    func udpChannelIndex(for address: SocketAddress) -> Int? {
        if udpChannels.count > 1,
           let here = udpChannels.firstIndex(where: { $0.eventLoop.inEventLoop && $0.localAddress?.protocol == address.protocol }) {
            return here
        }
        return udpChannels.firstIndex { $0.localAddress?.protocol == address.protocol } ?? (udpChannels.isEmpty ? nil : 0)
    }

    func tcpConnection(to address: SocketAddress) async throws -> Channel {
        if let ch = connections.withLockedValue({ $0[address] }), ch.isActive { return ch }
        let shared = self.shared
        do {
            let ch = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture { try TCPHandler.install(on: ch, shared: shared) }
                }
                .connect(to: address).get()
            return ch
        } catch {
            throw SIPTransportError.connectFailed("\(address)", "\(error)")
        }
    }

    public func close() async {
        let open = connections.withLockedValue { c in let v = Array(c.values); c.removeAll(); return v }
        for ch in udpChannels + tcpServers + open { try? await ch.close() }
    }
}

/// Datagrams sent from other threads, gathered per event-loop turn: the
/// first of a batch asks the channel's loop to write them all and flush once,
/// so a burst costs one wake-up of the loop and, through NIO's vector
/// writes, one `sendmmsg` rather than one `sendmsg` each. A datagram sent on
/// the channel's own loop (the event-loop call path) is written at once, with
/// no lock or queue, and one flush per pass of the loop sends them together.
final class DatagramWriteBatch: Sendable {
    let channel: Channel
    let faultLog: RateLimitedLog
    let pending = NIOLockedValueBox<[AddressedEnvelope<ByteBuffer>]>([])
    /// Whether a flush of datagrams written on the loop is already due this pass.
    let flushDue: NIOLoopBoundBox<Bool>

    init(channel: Channel, faultLog: RateLimitedLog) {
        self.channel = channel; self.faultLog = faultLog
        flushDue = NIOLoopBoundBox.makeBoxSendingValue(false, eventLoop: channel.eventLoop)
    }

    func enqueue(_ datagram: AddressedEnvelope<ByteBuffer>) {
        if channel.eventLoop.inEventLoop {
            write(datagram)
            guard !flushDue.value else { return }
            flushDue.value = true
            // Runs after the datagrams already read in this pass have been handled.
            channel.eventLoop.execute {
                self.flushDue.value = false
                self.channel.flush()
            }
            return
        }
        let first = pending.withLockedValue { p in p.append(datagram); return p.count == 1 }
        guard first else { return }
        channel.eventLoop.execute { self.drain() }
    }

    /// On the channel's event loop.
    func write(_ datagram: AddressedEnvelope<ByteBuffer>) {
        let address = datagram.remoteAddress, faultLog = self.faultLog
        channel.write(datagram).whenFailure { error in faultLog.log("could not send a datagram to \(address): \(error)") }
    }

    /// On the channel's event loop.
    func drain() {
        let batch = pending.withLockedValue { p in
            let b = p
            p.removeAll(keepingCapacity: true)
            return b
        }
        for d in batch { write(d) }
        channel.flush()
    }
}

/// State the channel handlers share with the transport.
struct SharedState: Sendable {
    let limits: SIPParserLimits
    let logger: Logger
    let connections: NIOLockedValueBox<[SocketAddress: Channel]>
    /// Set once at start and never changed, so a plain immutable closure.
    /// (It once lived in a NIOLockedValueBox read with `withLockedValue { $0 }`:
    /// the inout access reabstracted the closure and wrote it back wrapped in
    /// two more thunks per message, so delivery got slower with every message
    /// and the thunk chain finally overflowed the stack.)
    let handler: SIPTransport.Handler
    let faultLog: RateLimitedLog

    func deliver(_ bytes: [UInt8], from source: SocketAddress, local: SocketAddress?, transport: SIPTransportProtocol,
                 connection: Channel?, readWhileBehind: Bool = false, reply: (SIPMessage) -> Void) {
        do {
            var message = try SIPMessage(parsing: bytes, limits: limits)
            var inbound: SIPInbound
            if message.isRequest {
                let via = Self.stampReceived(&message, source: source)
                inbound = SIPInbound(message: message, source: source, transport: transport, local: local, connection: connection, topVia: via)
                inbound.readWhileBehind = readWhileBehind
                if let via { inbound.responseAddress = try? SIPTransport.responseDestination(via: via, transport: transport, source: source) }
            } else {
                inbound = SIPInbound(message: message, source: source, transport: transport, local: local, connection: connection)
            }
            handler(inbound)
        } catch {
            faultLog.log("unparseable \(transport) message from \(source): \(error)")
            if let response = SIPMessageParser.errorResponse(for: bytes, error: error) { reply(response) }
        }
    }

    /// RFC 3261 §18.2.1 received, RFC 3581 §4 rport: record where the request really came from.
    /// Returns the top Via as stamped.
    @discardableResult
    static func stampReceived(_ message: inout SIPMessage, source: SocketAddress) -> SIPVia? {
        guard var via = message.topVia else { return nil }
        guard let ip = source.ipAddress else { return via }
        var changed = false
        if via.rport != nil, let port = source.port {
            via.parameters.set("rport", String(port)); changed = true
        }
        if via.host.trimmingBrackets != ip || changed {
            via.received = ip; changed = true
        }
        if changed { message.replaceTopVia(with: via) }
        return via
    }
}

extension ByteBufferAllocator {
    /// A message's wire bytes in a buffer of its own.
    func buffer(serializing message: SIPMessage) -> ByteBuffer { buffer(bytes: message.serialized()) }
}

extension String {
    var trimmingBrackets: String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}

final class UDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    let shared: SharedState
    let backlog = ReceiveBacklogProbe()
    init(shared: SharedState) { self.shared = shared }

    func channelReadComplete(context: ChannelHandlerContext) {
        backlog.passEnded(on: context.channel, logger: shared.logger)
        context.fireChannelReadComplete()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        // CRLF keep-alives (RFC 5626 §4.4.1) carry no message.
        if bytes.allSatisfy({ $0 == 0x0D || $0 == 0x0A }) { return }
        shared.deliver(bytes, from: envelope.remoteAddress, local: context.channel.localAddress, transport: .udp,
                       connection: nil, readWhileBehind: backlog.gate.behind) { response in
            let buf = context.channel.allocator.buffer(serializing: response)
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buf)), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable and the like: not fatal for a UDP listener.
        shared.faultLog.log("UDP socket error: \(error)")
    }
}

/// Frames a TCP byte stream into messages by Content-Length (RFC 3261 §18.3).
final class TCPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let shared: SharedState
    var buffer: ByteBuffer?

    init(shared: SharedState) { self.shared = shared }

    static func install(on channel: Channel, shared: SharedState) throws {
        try channel.pipeline.syncOperations.addHandler(TCPHandler(shared: shared))
    }

    func channelActive(context: ChannelHandlerContext) {
        if let remote = context.channel.remoteAddress {
            let ch = context.channel
            shared.connections.withLockedValue { $0[remote] = ch }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let remote = context.channel.remoteAddress {
            let ch = context.channel
            shared.connections.withLockedValue { c in if c[remote] === ch { c[remote] = nil } }
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer?.writeBuffer(&incoming) }
        guard let remote = context.channel.remoteAddress else { return }
        while var buf = buffer, buf.readableBytes > 0 {
            let frame: SIPMessageParser.Frame
            do {
                frame = try buf.withUnsafeReadableBytes { raw throws(SIPParseError) in
                    try SIPMessageParser.frame(raw.bindMemory(to: UInt8.self), limits: shared.limits)
                }
            } catch {
                // The stream can no longer be framed: answer if we can, then close.
                let bytes = Array(buf.readableBytesView.prefix(shared.limits.maxMessageSize))
                shared.faultLog.log("closing TCP connection from \(remote): \(error)")
                if let response = SIPMessageParser.errorResponse(for: bytes, error: error) {
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(serializing: response)), promise: nil)
                }
                buffer = nil
                context.close(promise: nil)
                return
            }
            switch frame {
            case .needMore:
                buffer = buf
                return
            case .keepAlive(let n):
                buf.moveReaderIndex(forwardBy: n)
            case .message(let start, let end):
                let bytes = Array(buf.readableBytesView.dropFirst(start).prefix(end - start))
                buf.moveReaderIndex(forwardBy: end)
                buffer = buf
                shared.deliver(bytes, from: remote, local: context.channel.localAddress, transport: .tcp,
                               connection: context.channel) { response in
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(serializing: response)), promise: nil)
                }
            }
            if buf.readableBytes == 0 { buffer = nil } else { buf.discardReadBytes(); buffer = buf }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        shared.faultLog.log("TCP connection error: \(error)")
        context.close(promise: nil)
    }
}

/// Logs at most `burst` lines per `interval` seconds, then a count of what was
/// suppressed, so a flood of garbage cannot flood the log.
final class RateLimitedLog: Sendable {
    struct State { var windowStart: NIODeadline = .now(); var count = 0; var suppressed = 0 }
    let logger: Logger
    let burst: Int
    let interval: TimeAmount
    let state = NIOLockedValueBox(State())

    init(logger: Logger, burst: Int = 20, interval: TimeAmount = .seconds(10)) {
        self.logger = logger; self.burst = burst; self.interval = interval
    }

    func log(_ message: @autoclosure () -> String) {
        let now = NIODeadline.now()
        let (emit, suppressed) = state.withLockedValue { s -> (Bool, Int) in
            var reported = 0
            if now - s.windowStart > interval {
                reported = s.suppressed
                s = State(windowStart: now, count: 0, suppressed: 0)
            }
            s.count += 1
            if s.count > burst { s.suppressed += 1; return (false, reported) }
            return (true, reported)
        }
        if suppressed > 0 { logger.warning("suppressed \(suppressed) similar messages") }
        if emit { logger.warning("\(message())") }
    }
}
