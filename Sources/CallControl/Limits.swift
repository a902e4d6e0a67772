/// "X calls per Y seconds" (T9), as an exact sliding window: a call is
/// admitted if fewer than X calls were admitted in the last Y seconds.
/// A value type driven with explicit times, so tests need no clock.
public struct SlidingWindowLimit: Sendable, Equatable {
    public let calls: Int
    public let seconds: Int
    /// Admission times still inside the window, oldest first (at most `calls`).
    var admitted: [Double] = []
    var head = 0

    public init(calls: Int, seconds: Int) {
        self.calls = max(0, calls); self.seconds = max(1, seconds)
    }

    /// Whether a call at `now` (seconds) fits; if it does, it is counted.
    public mutating func admit(now: Double) -> Bool {
        expire(now: now)
        guard inWindow < calls else { return false }
        admitted.append(now)
        return true
    }

    /// Whether a call would fit, without counting it (to check every limit before committing any).
    public func wouldAdmit(now: Double) -> Bool {
        // Counted without expiring anything: expiring a copy could compact,
        // and so copy, the shared array.
        var first = head
        while first < admitted.count, now - admitted[first] >= Double(seconds) { first += 1 }
        return admitted.count - first < calls
    }

    public var inWindow: Int { admitted.count - head }

    mutating func expire(now: Double) {
        while head < admitted.count, now - admitted[head] >= Double(seconds) { head += 1 }
        if head > 64, head * 2 > admitted.count {
            admitted.removeFirst(head); head = 0
        }
    }
}

/// Concurrent calls per key (account, trunk, call type): T9 channel limits.
public struct ChannelCounter<Key: Hashable & Sendable>: Sendable {
    var live: [Key: Int] = [:]
    public init() {}

    public func count(_ key: Key) -> Int { live[key] ?? 0 }

    /// Takes a channel if fewer than `limit` are in use.
    public mutating func acquire(_ key: Key, limit: Int) -> Bool {
        let n = live[key] ?? 0
        guard n < limit else { return false }
        live[key] = n + 1
        return true
    }

    public mutating func release(_ key: Key) {
        guard let n = live[key] else { return }
        live[key] = n > 1 ? n - 1 : nil
    }
}

/// Destination prefixes refused for a scope (account, trunk or the platform), T8.
public struct Blacklist: Sendable, Equatable {
    var prefixes: Set<String>
    var longest: Int

    public init(_ prefixes: [String]) {
        let clean = prefixes.map { $0.hasPrefix("+") ? String($0.dropFirst()) : $0 }.filter { !$0.isEmpty }
        self.prefixes = Set(clean)
        self.longest = clean.map(\.count).max() ?? 0
    }

    /// The longest listed prefix of `number`, if any.
    public func match(_ number: String) -> String? {
        var digits = Substring(number)
        if digits.first == "+" { digits = digits.dropFirst() }
        var n = min(digits.count, longest)
        while n > 0 {
            let p = String(digits.prefix(n))
            if prefixes.contains(p) { return p }
            n -= 1
        }
        return nil
    }
}

/// T7: a CLI is a valid number when it is an E.164 number (with or without
/// "+", 7 to 15 digits) or a national number starting with 0 (10 or 11 digits).
public enum CLIValidation {
    public static func isValid(_ cli: String) -> Bool {
        var s = Substring(cli)
        let plus = s.first == "+"
        if plus { s = s.dropFirst() }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        if s.first == "0" { return !plus && (10...11).contains(s.count) }
        return (7...15).contains(s.count)
    }
}
