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
        let billedSeconds = increments.billedSeconds(forDuration: seconds)
        if let c = ExactAmount(connectionCharge), let p = ExactAmount(perMinute),
           let cost = ExactAmount.cost(connection: c, perMinute: p, billedSeconds: billedSeconds) {
            return cost
        }
        let billed = Decimal(billedSeconds)
        return RatingPrecision.round(connectionCharge + perMinute * billed / 60)
    }

    /// The first whole second at which the running cost of the call reaches
    /// `cap` (T4 maximum cost; T10 balance + credit), or nil if it never can
    /// within `limit` seconds. The cost steps up at each billing increment,
    /// so it is reached at the start of the increment that crosses it.
    public func secondsUntilCost(reaches cap: Money, limit: Int = 86_400) -> Int? {
        // Billed seconds needed: (cap - connection) * 60 / perMinute, rounded up.
        let billedNeeded: Int
        if let k = ExactAmount(cap), let c = ExactAmount(connectionCharge), let p = ExactAmount(perMinute),
           let exact = ExactAmount.billedSecondsToReach(k, connection: c, perMinute: p) {
            switch exact {
            case .atOnce: return 0
            case .never: return nil
            case .after(let s): billedNeeded = s
            }
        } else {
            if connectionCharge >= cap { return 0 }
            guard perMinute > 0 else { return nil }
            var needed = (cap - connectionCharge) * 60 / perMinute
            var rounded = Decimal()
            NSDecimalRound(&rounded, &needed, 0, .up)
            billedNeeded = NSDecimalNumber(decimal: rounded).intValue
        }
        // The billed seconds reach `billedNeeded` as soon as an increment starts.
        if billedNeeded <= increments.first { return 1 > limit ? nil : 1 }
        let blocks = (billedNeeded - increments.first + increments.next - 1) / increments.next
        let second = increments.first + (blocks - 1) * increments.next + 1
        return second <= limit ? second : nil
    }
}

/// An amount held exactly as `units / 10^scale` (non-negative, up to 18
/// decimal places), for the sums rating does on every call. Foundation's
/// Decimal allocates on each operation (about 4 µs and some 60 allocations
/// per call cost on the development machine: half the switch's allocations
/// at 3,000 calls/s); the same sums in 64-bit integers are exact and free of
/// allocation. Anything that does not fit falls back to Decimal.
struct ExactAmount: Equatable {
    var units: Int64
    var scale: Int

    static let powersOfTen: [Int64] = (0...18).map { (0..<$0).reduce(Int64(1)) { p, _ in p * 10 } }

    init(units: Int64, scale: Int) { self.units = units; self.scale = scale }

    /// Nil for a negative amount or one that does not fit.
    init?(_ amount: Decimal) {
        if amount.isZero { self.init(units: 0, scale: 0); return }
        guard amount.isFinite, amount.sign == .plus else { return nil }
        let significand = amount.significand
        let whole = NSDecimalNumber(decimal: significand).uint64Value
        guard whole <= UInt64(Int64.max), Decimal(whole) == significand else { return nil }
        var units = Int64(whole)
        let exponent = amount.exponent
        if exponent > 0 {
            guard exponent <= 18 else { return nil }
            let (scaled, overflow) = units.multipliedReportingOverflow(by: Self.powersOfTen[exponent])
            guard !overflow else { return nil }
            units = scaled
        } else if exponent < -18 {
            return nil
        }
        self.init(units: units, scale: max(0, -exponent))
    }

    /// The units at a finer (or equal) scale; nil on overflow.
    func units(atScale s: Int) -> Int64? {
        guard s >= scale, s <= 18 else { return nil }
        let (v, overflow) = units.multipliedReportingOverflow(by: Self.powersOfTen[s - scale])
        return overflow ? nil : v
    }

    /// The same value as a Decimal, in its shortest form (no trailing zeros
    /// after the point), as Decimal's own arithmetic leaves it.
    var decimal: Decimal {
        var m = units, e = -scale
        while e < 0, m != 0, m % 10 == 0 { m /= 10; e += 1 }
        if m == 0 { return 0 }
        return Decimal(sign: .plus, exponent: e, significand: Decimal(m))
    }

    /// connection + perMinute × billed / 60, rounded half up to
    /// `RatingPrecision.places` (NSDecimalRound's `.plain` for amounts ≥ 0).
    static func cost(connection c: ExactAmount, perMinute p: ExactAmount, billedSeconds: Int) -> Decimal? {
        let s = max(c.scale, p.scale), places = RatingPrecision.places
        guard let cs = c.units(atScale: s), let ps = p.units(atScale: s) else { return nil }
        // The exact value is numerator / (60 · 10^s).
        let (a, o1) = cs.multipliedReportingOverflow(by: 60)
        let (b, o2) = ps.multipliedReportingOverflow(by: Int64(billedSeconds))
        let (numerator, o3) = a.addingReportingOverflow(b)
        guard !o1, !o2, !o3 else { return nil }
        // In units of 10^-places: n / d, rounded half up as floor((2n + d) / 2d).
        var n = numerator, d: Int64 = 60
        if s <= places {
            let (v, o) = n.multipliedReportingOverflow(by: powersOfTen[places - s]); guard !o else { return nil }; n = v
        } else {
            let (v, o) = d.multipliedReportingOverflow(by: powersOfTen[s - places]); guard !o else { return nil }; d = v
        }
        let (twiceN, o4) = n.multipliedReportingOverflow(by: 2)
        let (top, o5) = twiceN.addingReportingOverflow(d)
        let (twiceD, o6) = d.multipliedReportingOverflow(by: 2)
        guard !o4, !o5, !o6 else { return nil }
        return ExactAmount(units: top / twiceD, scale: places).decimal
    }

    enum Reach: Equatable { case atOnce, never, after(Int) }

    /// Billed seconds after which connection + perMinute × billed / 60 reaches
    /// `cap`: ⌈(cap − connection) · 60 / perMinute⌉.
    static func billedSecondsToReach(_ cap: ExactAmount, connection c: ExactAmount, perMinute p: ExactAmount) -> Reach? {
        let s = max(cap.scale, c.scale, p.scale)
        guard let ks = cap.units(atScale: s), let cs = c.units(atScale: s), let ps = p.units(atScale: s) else { return nil }
        if cs >= ks { return .atOnce }
        guard ps > 0 else { return .never }
        let (numerator, o1) = (ks - cs).multipliedReportingOverflow(by: 60)
        let (top, o2) = numerator.addingReportingOverflow(ps - 1)
        guard !o1, !o2 else { return nil }
        let needed = top / ps
        return needed <= Int64(Int.max) ? .after(Int(needed)) : nil
    }
}

/// `amount` in millionths (the store's unit), rounded half up, without
/// Decimal arithmetic; nil when the amount is negative or does not fit, and
/// the caller must use Decimal.
public func exactMillionths(_ amount: Money) -> Int64? {
    guard let a = ExactAmount(amount) else { return nil }
    if a.scale <= 6 { return a.units(atScale: 6) }
    let divisor = ExactAmount.powersOfTen[a.scale - 6]
    let (sum, overflow) = a.units.addingReportingOverflow(divisor / 2)
    return overflow ? nil : sum / divisor
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
