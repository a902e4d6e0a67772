#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers

/// Random 64-bit values for branches, tags and Call-IDs, which must be
/// unique in space and time and hard to guess (RFC 3261 §8.1.1.4, §19.3:
/// tags need at least 32 random bits, so that a stranger cannot forge a
/// BYE). They come from the kernel's generator, as `SystemRandomNumberGenerator`'s
/// do, but 512 at a time: that generator makes one system call per value,
/// about nine per bridged call, a measurable share of the switch's time.
public enum RandomIdentifiers {
    struct Pool {
        var values: [UInt64] = []
        /// /dev/urandom, opened on first use and kept; -1 if it cannot be opened.
        var device: Int32?
    }

    static let pool = NIOLockedValueBox(Pool())
    static let batch = 512

    /// A fresh random value.
    public static func next() -> UInt64 {
        pool.withLockedValue { p in
            if let v = p.values.popLast() { return v }
            refill(&p)
            if let v = p.values.popLast() { return v }
            var g = SystemRandomNumberGenerator()
            return g.next()
        }
    }

    static func refill(_ p: inout Pool) {
        if p.device == nil { p.device = open("/dev/urandom", O_RDONLY | O_CLOEXEC) }
        guard let fd = p.device, fd >= 0 else { return }
        var fresh = [UInt64](repeating: 0, count: batch)
        let wanted = fresh.count * MemoryLayout<UInt64>.size
        let got = fresh.withUnsafeMutableBytes { read(fd, $0.baseAddress, wanted) }
        // A short or failed read is not used at all: a value must be wholly random.
        guard got == wanted else { return }
        p.values = fresh
    }
}
