import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The fixed RTP header (RFC 3550 §5.1) for one packet.
public struct RTPHeader: Sendable, Equatable {
    public var marker: Bool
    public var payloadType: UInt8
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32

    public init(marker: Bool = false, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32) {
        self.marker = marker; self.payloadType = payloadType; self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp; self.ssrc = ssrc
    }

    /// Version 2, no padding, no extension, no CSRCs: 12 bytes.
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0x80))
        buffer.writeInteger((marker ? 0x80 : 0) | (payloadType & 0x7F))
        buffer.writeInteger(sequenceNumber)
        buffer.writeInteger(timestamp)
        buffer.writeInteger(ssrc)
    }

    /// The header and where the payload starts, or nil if this is not an RTP
    /// version 2 packet (CSRCs, a header extension and padding are skipped).
    public static func parse(_ bytes: ByteBuffer) -> (header: RTPHeader, payload: Range<Int>)? {
        let start = bytes.readerIndex
        guard bytes.readableBytes >= 12,
              let b0: UInt8 = bytes.getInteger(at: start), b0 >> 6 == 2,
              let b1: UInt8 = bytes.getInteger(at: start + 1),
              let seq: UInt16 = bytes.getInteger(at: start + 2),
              let ts: UInt32 = bytes.getInteger(at: start + 4),
              let ssrc: UInt32 = bytes.getInteger(at: start + 8) else { return nil }
        var offset = 12 + Int(b0 & 0x0F) * 4
        if b0 & 0x10 != 0 {
            guard let words: UInt16 = bytes.getInteger(at: start + offset + 2) else { return nil }
            offset += 4 + Int(words) * 4
        }
        var end = bytes.readableBytes
        if b0 & 0x20 != 0, let padding: UInt8 = bytes.getInteger(at: start + end - 1) { end -= Int(padding) }
        guard offset <= end else { return nil }
        let header = RTPHeader(marker: b1 & 0x80 != 0, payloadType: b1 & 0x7F, sequenceNumber: seq, timestamp: ts, ssrc: ssrc)
        return (header, offset..<end)
    }
}

/// A sine tone as 8 kHz A-law frames of 20 ms (160 samples), continuing
/// the phase from one frame to the next.
public struct ToneGenerator: Sendable {
    public static let samplesPerFrame = 160
    public let frequency: Double
    public let amplitude: Double
    var sampleIndex: UInt64 = 0

    public init(frequency: Double, amplitude: Double = 8_000) {
        self.frequency = frequency; self.amplitude = amplitude
    }

    public mutating func nextFrame() -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: Self.samplesPerFrame)
        for i in 0..<Self.samplesPerFrame {
            let t = Double(sampleIndex) / 8_000
            frame[i] = G711ALaw.encode(Int16((amplitude * sin(2 * Double.pi * frequency * t)).rounded()))
            sampleIndex &+= 1
        }
        return frame
    }
}

/// What a media session has sent and received so far (bytes are RTP payload bytes).
public struct RTPCounters: Sendable, Equatable {
    public var packetsSent = 0
    public var bytesSent = 0
    public var packetsReceived = 0
    public var bytesReceived = 0
}

/// One call's media: a UDP socket on the simulator's RTP port, a 20 ms timer
/// sending the tone to the far end's SDP address, and a handler counting (and,
/// if asked, keeping) the A-law payload that arrives.
final class RTPSession: Sendable {
    struct State {
        var counters = RTPCounters()
        var received: [UInt8] = []
        var keepPayload: Bool
        var sender: RepeatedTask?
    }

    /// At most ten minutes of received audio is kept for recording.
    static let maxRecordedBytes = 8_000 * 600

    let channel: any Channel
    let state: NIOLockedValueBox<State>
    var localPort: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel; self.state = state
    }

    static func bind(host: String, port: Int, record: Bool, group: any EventLoopGroup) async throws -> RTPSession {
        let state = NIOLockedValueBox(State(keepPayload: record))
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RTPReceiveHandler(state: state))
                }
            }
            .bind(host: host, port: port).get()
        return RTPSession(channel: channel, state: state)
    }

    /// Starts sending the tone to `remote` every 20 ms.
    func startSending(to remote: SocketAddress, toneHz: Double) {
        let channel = self.channel
        let sender = NIOLockedValueBox((tone: ToneGenerator(frequency: toneHz), seq: UInt16.random(in: 0...UInt16.max),
                                        timestamp: UInt32.random(in: 0...UInt32.max), ssrc: UInt32.random(in: 1...UInt32.max),
                                        first: true))
        let state = self.state
        let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(20)) { _ in
            let (frame, header) = sender.withLockedValue { s -> ([UInt8], RTPHeader) in
                let h = RTPHeader(marker: s.first, payloadType: 8, sequenceNumber: s.seq, timestamp: s.timestamp, ssrc: s.ssrc)
                s.first = false
                s.seq &+= 1
                s.timestamp &+= UInt32(ToneGenerator.samplesPerFrame)
                return (s.tone.nextFrame(), h)
            }
            var buffer = channel.allocator.buffer(capacity: 12 + frame.count)
            header.write(to: &buffer)
            buffer.writeBytes(frame)
            let size = frame.count
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: buffer), promise: nil)
            state.withLockedValue { $0.counters.packetsSent += 1; $0.counters.bytesSent += size }
        }
        state.withLockedValue { $0.sender?.cancel(); $0.sender = task }
    }

    var counters: RTPCounters { state.withLockedValue { $0.counters } }

    /// Stops sending, closes the socket, and returns the received payload.
    func stop() async -> (RTPCounters, [UInt8]) {
        let (counters, received) = state.withLockedValue { s -> (RTPCounters, [UInt8]) in
            s.sender?.cancel()
            s.sender = nil
            return (s.counters, s.received)
        }
        try? await channel.close()
        return (counters, received)
    }
}

final class RTPReceiveHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let state: NIOLockedValueBox<RTPSession.State>

    init(state: NIOLockedValueBox<RTPSession.State>) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let (_, payload) = RTPHeader.parse(envelope.data) else { return }
        let bytes = payload.count
        state.withLockedValue { s in
            s.counters.packetsReceived += 1
            s.counters.bytesReceived += bytes
            if s.keepPayload, s.received.count + payload.count <= RTPSession.maxRecordedBytes,
               let p = envelope.data.getBytes(at: envelope.data.readerIndex + payload.lowerBound, length: payload.count) {
                s.received.append(contentsOf: p)
            }
        }
    }
}
