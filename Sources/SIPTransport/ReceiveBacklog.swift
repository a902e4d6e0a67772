import Logging
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Whether a UDP socket's receive queue is backing up: the event loop that
/// reads it is taking datagrams more slowly than they arrive. Once the queue
/// is full the kernel drops what comes next, callers retransmit (RFC 3261
/// §17.1.1.2), and the extra load makes it worse; so an event loop running
/// trunk calls (`TrunkCallLoop`) that is behind refuses new calls with 503
/// (RFC 3261 §21.5.4) — a refusal is four datagrams against a bridged call's
/// fourteen — until the queue drains, and the calls already up keep their answers.
///
/// Pure logic: fed the queue's fill as sampled (`SO_MEMINFO`), it says
/// whether the socket is behind, with hysteresis so that it does not flap
/// at the threshold.
public struct ReceiveBacklogGate: Sendable, Equatable {
    /// Behind from this fraction of the receive buffer in use.
    public var behindFrom: Double
    /// Caught up again at or below this fraction.
    public var caughtUpAt: Double
    public private(set) var behind = false

    /// What a sample changed, for the log.
    public enum Change: Sendable, Equatable { case none, fellBehind, caughtUp }

    public init(behindFrom: Double = 0.5, caughtUpAt: Double = 0.1) {
        self.behindFrom = behindFrom; self.caughtUpAt = min(caughtUpAt, behindFrom)
    }

    /// A sample: `queued` bytes in the receive queue (the kernel's count,
    /// buffer overhead included) out of `capacity` before it drops.
    public mutating func sampled(queued: Int, capacity: Int) -> Change {
        guard capacity > 0 else { return .none }
        let fill = Double(queued) / Double(capacity)
        if !behind, fill >= behindFrom { behind = true; return .fellBehind }
        if behind, fill <= caughtUpAt { behind = false; return .caughtUp }
        return .none
    }
}

/// Samples a UDP socket's receive queue for its gate, at most once per
/// `interval`, on the socket's event loop (the handler that reads it owns it).
final class ReceiveBacklogProbe {
    var gate = ReceiveBacklogGate()
    var nextSample: UInt64 = 0
    let interval: UInt64 = 1_000_000  // 1 ms, in nanoseconds

    /// Linux's `SO_MEMINFO` answer (`SK_MEMINFO_VARS` counters): [0] the bytes
    /// queued for reading, [1] the receive buffer they may fill.
    struct MemoryInfo: Sendable {
        var counters: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
    }

    /// After a pass of reads: samples when due and logs a change of state.
    func passEnded(on channel: Channel, logger: Logger) {
        #if os(Linux)
        let now = NIODeadline.now().uptimeNanoseconds
        guard now >= nextSample, let provider = channel as? SocketOptionProvider else { return }
        nextSample = now + interval
        // On the channel's loop the option is read at once and the future is already complete.
        provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_MEMINFO))
            .assumeIsolated()
            .whenSuccess { (info: MemoryInfo) in
                let queued = Int(info.counters.0), capacity = Int(info.counters.1)
                switch self.gate.sampled(queued: queued, capacity: capacity) {
                case .none: break
                case .fellBehind:
                    logger.warning("UDP receive queue backing up: trunk calls on event loops refuse new calls with 503 until it drains",
                                   metadata: ["socket": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                                              "queued_bytes": "\(queued)", "buffer_bytes": "\(capacity)"])
                case .caughtUp:
                    logger.warning("UDP receive queue drained",
                                   metadata: ["socket": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
                }
            }
        #endif
    }
}
