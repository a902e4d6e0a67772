import Foundation

/// An amount of money in the account's currency. Decimal, never binary
/// floating point: 0.1 + 0.2 must be 0.3 on an invoice.
public typealias Money = Decimal

/// Parses a non-negative decimal amount as written in headers, APIs and
/// rate decks ("0.0125", "12", "3."): digits with at most one point; no
/// sign, exponent or thousands separators.
public func parseMoney(_ text: String) -> Money? {
    var digits = 0, points = 0
    for c in text.utf8 {
        if c >= 0x30 && c <= 0x39 { digits += 1 } else if c == UInt8(ascii: ".") { points += 1 } else { return nil }
    }
    guard digits > 0, points <= 1, text.utf8.count <= 32 else { return nil }
    return Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
}

/// Billing increments "first/next" (T11): the first `first` seconds are billed
/// whole, then blocks of `next` seconds (60/60 per-minute, 1/1 per-second, 30/6 …).
public struct BillingIncrements: Sendable, Hashable, CustomStringConvertible {
    public var first: Int
    public var next: Int

    public init(first: Int, next: Int) throws(RatingError) {
        guard first >= 1, next >= 1, first <= 3600, next <= 3600 else {
            throw .invalidIncrements("billing increments must be 1…3600 seconds each, got \(first)/\(next)")
        }
        self.first = first; self.next = next
    }

    /// "60/60" form.
    public init(_ text: String) throws(RatingError) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let f = Int(parts[0]), let n = Int(parts[1]) else {
            throw .invalidIncrements("billing increments must look like 60/60, got '\(text)'")
        }
        try self.init(first: f, next: n)
    }

    public static let perMinute = BillingIncrementsConstants.perMinute
    public static let perSecond = BillingIncrementsConstants.perSecond

    /// Seconds billed for a call that lasted `seconds` (0 for an unanswered call).
    public func billedSeconds(forDuration seconds: Int) -> Int {
        guard seconds > 0 else { return 0 }
        if seconds <= first { return first }
        let rest = seconds - first
        return first + ((rest + next - 1) / next) * next
    }

    public var description: String { "\(first)/\(next)" }
}

enum BillingIncrementsConstants {
    // Valid by construction; built without the throwing initialiser.
    static let perMinute = BillingIncrements(unchecked: 60, 60)
    static let perSecond = BillingIncrements(unchecked: 1, 1)
}

extension BillingIncrements {
    init(unchecked first: Int, _ next: Int) { self.first = first; self.next = next }
}

public enum RatingError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidIncrements(String)
    case invalidPrefix(String)
    case invalidAmount(field: String, value: String)
    case duplicatePrefix(String)

    public var description: String {
        switch self {
        case .invalidIncrements(let why): return why
        case .invalidPrefix(let p): return "rate deck prefix '\(p)' must be 1–20 digits"
        case .invalidAmount(let f, let v): return "\(f) '\(v)' is not a non-negative decimal amount"
        case .duplicatePrefix(let p): return "rate deck has prefix '\(p)' twice"
        }
    }
}

/// The price of calls to one destination prefix (T11).
public struct Rate: Sendable, Hashable {
    public var prefix: String
    public var destination: String
    public var connectionCharge: Money
    public var perMinute: Money
    public var increments: BillingIncrements

    public init(prefix: String, destination: String = "", connectionCharge: Money, perMinute: Money, increments: BillingIncrements) throws(RatingError) {
        guard (1...20).contains(prefix.utf8.count), prefix.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw .invalidPrefix(prefix) }
        guard connectionCharge >= 0 else { throw .invalidAmount(field: "connection charge", value: "\(connectionCharge)") }
        guard perMinute >= 0 else { throw .invalidAmount(field: "per-minute rate", value: "\(perMinute)") }
        self.prefix = prefix; self.destination = destination; self.connectionCharge = connectionCharge
        self.perMinute = perMinute; self.increments = increments
    }

    /// Cost of an answered call of `seconds`: connection charge plus the
    /// per-minute rate over the billed seconds, rounded to `RatingPrecision.places`.
    public func cost(forDuration seconds: Int) -> Money {
        guard seconds > 0 else { return 0 }
        let billed = Decimal(increments.billedSeconds(forDuration: seconds))
        return RatingPrecision.round(connectionCharge + perMinute * billed / 60)
    }

    /// The first whole second at which the running cost of the call reaches
    /// `cap` (T4 maximum cost; T10 balance + credit), or nil if it never can
    /// within `limit` seconds. The cost steps up at each billing increment,
    /// so it is reached at the start of the increment that crosses it.
    public func secondsUntilCost(reaches cap: Money, limit: Int = 86_400) -> Int? {
        if connectionCharge >= cap { return 0 }
        guard perMinute > 0 else { return nil }
        // Billed seconds needed: (cap - connection) * 60 / perMinute, rounded up.
        var needed = (cap - connectionCharge) * 60 / perMinute
        var rounded = Decimal()
        NSDecimalRound(&rounded, &needed, 0, .up)
        let billedNeeded = NSDecimalNumber(decimal: rounded).intValue
        // The billed seconds reach `billedNeeded` as soon as an increment starts.
        if billedNeeded <= increments.first { return 1 > limit ? nil : 1 }
        let blocks = (billedNeeded - increments.first + increments.next - 1) / increments.next
        let second = increments.first + (blocks - 1) * increments.next + 1
        return second <= limit ? second : nil
    }
}

public enum RatingPrecision {
    /// Costs are kept to 6 decimal places (rates are often quoted to 4 or 5).
    public static let places = 6

    public static func round(_ value: Money) -> Money {
        var v = value, r = Decimal()
        NSDecimalRound(&r, &v, places, .plain)
        return r
    }
}

/// A rate deck: rates by destination prefix, chosen by longest match (T11).
public struct RateDeck: Sendable {
    public var name: String
    public var currency: String
    var byPrefix: [String: Rate] = [:]
    var longest = 0

    public init(name: String, currency: String, rates: [Rate]) throws(RatingError) {
        self.name = name; self.currency = currency
        for r in rates {
            guard byPrefix[r.prefix] == nil else { throw .duplicatePrefix(r.prefix) }
            byPrefix[r.prefix] = r
            longest = max(longest, r.prefix.utf8.count)
        }
    }

    public var rates: [Rate] { byPrefix.values.sorted { $0.prefix < $1.prefix } }

    /// The rate of the longest prefix of `number` (digits; a leading "+" is ignored).
    public func rate(for number: String) -> Rate? {
        var digits = Substring(number)
        if digits.first == "+" { digits = digits.dropFirst() }
        var length = min(digits.utf8.count, longest)
        while length > 0 {
            if let r = byPrefix[String(digits.prefix(length))] { return r }
            length -= 1
        }
        return nil
    }
}
