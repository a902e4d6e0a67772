import Rating
import SIPMessage

/// `ACCOUNT-TRUNK`, e.g. `920700-L001` (T2).
public struct TrunkReference: Sendable, Hashable, CustomStringConvertible {
    public var account: String
    public var trunk: String

    public init?(_ text: String) {
        guard let dash = text.firstIndex(of: "-") else { return nil }
        let a = text[..<dash], t = text[text.index(after: dash)...]
        guard !a.isEmpty, !t.isEmpty, a.allSatisfy({ $0.isLetter || $0.isNumber }),
              t.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else { return nil }
        account = String(a); trunk = String(t)
    }

    public var description: String { "\(account)-\(trunk)" }
}

public enum CallControlError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidValue(header: String, value: String, expected: String)

    public var description: String {
        switch self {
        case .invalidValue(let h, let v, let e): return "\(h) '\(v.prefix(64))' is not \(e)"
        }
    }
}

/// The per-call controls a customer sends as `X-simwood-*` headers on the
/// initial INVITE (SPEC.md T1–T5). Names are case-insensitive.
public struct CallControlHeaders: Sendable, Equatable {
    public static let tagHeader = SIPHeaderName("X-simwood-tag")
    public static let trunkHeader = SIPHeaderName("X-simwood-trunk")
    public static let maxCPCHeader = SIPHeaderName("X-simwood-maxcpc")
    public static let maxCPMHeader = SIPHeaderName("X-simwood-maxcpm")
    public static let maxCostHeader = SIPHeaderName("X-simwood-maxcost")
    public static let maxDurationHeader = SIPHeaderName("X-simwood-maxdur")
    public static let reasonHeader = SIPHeaderName("X-Reason")
    public static let warningHeader = SIPHeaderName("X-Warning")

    /// T1: stored on the CDR as given.
    public var tag: String?
    /// T2: the trunk to place the call on.
    public var trunk: TrunkReference?
    /// T3: maximum connection charge; 0 when only maxcpm is given.
    public var maxConnectionCharge: Money?
    /// T3: maximum per-minute rate.
    public var maxPerMinute: Money?
    /// T4: clear the call when its running cost reaches this.
    public var maxCost: Money?
    /// T5: clear the call after this many seconds.
    public var maxDuration: Int?

    public init(tag: String? = nil, trunk: TrunkReference? = nil, maxConnectionCharge: Money? = nil,
                maxPerMinute: Money? = nil, maxCost: Money? = nil, maxDuration: Int? = nil) {
        self.tag = tag; self.trunk = trunk; self.maxConnectionCharge = maxConnectionCharge
        self.maxPerMinute = maxPerMinute; self.maxCost = maxCost; self.maxDuration = maxDuration
    }

    public init(from invite: SIPMessage) throws(CallControlError) {
        func value(_ name: SIPHeaderName) -> String? {
            invite.firstValue(name).map { String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
        }
        func amount(_ name: SIPHeaderName) throws(CallControlError) -> Money? {
            guard let v = value(name) else { return nil }
            guard let m = parseMoney(v) else {
                throw .invalidValue(header: name.canonical, value: v, expected: "a decimal amount such as 0.05")
            }
            return m
        }
        if let t = value(Self.tagHeader) {
            guard !t.isEmpty, t.utf8.count <= 128 else {
                throw .invalidValue(header: Self.tagHeader.canonical, value: t, expected: "a tag of 1 to 128 characters")
            }
            tag = t
        }
        if let t = value(Self.trunkHeader) {
            guard let ref = TrunkReference(t) else {
                throw .invalidValue(header: Self.trunkHeader.canonical, value: t, expected: "ACCOUNT-TRUNK such as 920700-L001")
            }
            trunk = ref
        }
        maxConnectionCharge = try amount(Self.maxCPCHeader)
        maxPerMinute = try amount(Self.maxCPMHeader)
        // T3: maxcpm without maxcpc means no connection charge is acceptable.
        if maxPerMinute != nil, maxConnectionCharge == nil { maxConnectionCharge = 0 }
        maxCost = try amount(Self.maxCostHeader)
        if let d = value(Self.maxDurationHeader) {
            guard let s = Int(d), s > 0, s <= 86_400 * 7, d.allSatisfy(\.isNumber) else {
                throw .invalidValue(header: Self.maxDurationHeader.canonical, value: d, expected: "a whole number of seconds (1 to 604800)")
            }
            maxDuration = s
        }
    }

    /// T3: why the destination's rate breaks the caller's caps, if it does.
    public func rateViolation(_ rate: Rate) -> String? {
        if let cap = maxConnectionCharge, rate.connectionCharge > cap {
            return "connection charge \(rate.connectionCharge) exceeds maxcpc \(cap)"
        }
        if let cap = maxPerMinute, rate.perMinute > cap {
            return "per-minute rate \(rate.perMinute) exceeds maxcpm \(cap)"
        }
        return nil
    }

    /// T1: the terms a tag is found by — split on single "-" (a run of two or
    /// more dashes is part of a term). `CUST001-AB384720` → CUST001, AB384720.
    public static func searchTerms(ofTag tag: String) -> [String] {
        var terms: [String] = []
        var current = ""
        var dashes = ""
        for ch in tag {
            if ch == "-" { dashes.append(ch); continue }
            if dashes.count == 1 {
                if !current.isEmpty { terms.append(current) }
                current = ""
            } else {
                current += dashes
            }
            dashes = ""
            current.append(ch)
        }
        if dashes.count != 1 { current += dashes }
        if !current.isEmpty { terms.append(current) }
        return terms
    }

    /// T13: removes `X-simwood-*` and `X-Reason` before a message goes to a third party.
    public static func strip(_ message: inout SIPMessage) {
        message.removeAll { $0.hasPrefix("x-simwood-") || $0 == "x-reason" }
    }
}
