import Foundation
import Rating
import SIMs
import Store

typealias StoreAccount = Account
typealias StoreTrunk = Trunk
typealias StoreCDR = CDR
typealias StoreRateDeck = RateDeck

/// What the API sends. Money is always a decimal string ("0.123456"), never
/// a JSON number; times are RFC 3339 UTC strings.
enum Out {
    static func money(_ m: Money) -> String {
        let micros = MoneyColumn.micros(m)
        let magnitude = micros.magnitude
        var fraction = String(magnitude % 1_000_000)
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.count > 2, fraction.hasSuffix("0") { fraction.removeLast() }
        return (micros < 0 ? "-" : "") + "\(magnitude / 1_000_000).\(fraction)"
    }

    static func time(_ t: Double) -> String { RFC3339.format(t) }

    struct Rate: Encodable {
        var calls: Int
        var seconds: Int
        init(_ r: RateLimitSetting) { calls = r.calls; seconds = r.seconds }
    }

    struct CallType: Encodable {
        var channels: Int?
        var rate: Rate?
    }

    struct LowBalance: Encodable {
        var below: String
        var channels: Int?
        var rate: Rate?
    }

    struct Limits: Encodable {
        var channels: Int?
        var rate: Rate?
        var callTypes: [String: CallType]?
        var lowBalance: LowBalance?
        enum CodingKeys: String, CodingKey { case channels, rate, callTypes = "call_types", lowBalance = "low_balance" }

        init(_ l: CallLimits) {
            channels = l.channels
            rate = l.rate.map(Rate.init)
            callTypes = l.callTypes?.mapValues { CallType(channels: $0.channels, rate: $0.rate.map(Rate.init)) }
            lowBalance = l.lowBalance.map {
                LowBalance(below: $0.threshold.map(money) ?? $0.below, channels: $0.channels, rate: $0.rate.map(Rate.init))
            }
        }
    }

    struct Account: Encodable {
        var id, name, currency, balance, creditLimit, cliPolicy: String
        var rateDeck: String?
        var limits: Limits
        enum CodingKeys: String, CodingKey {
            case id, name, currency, balance, creditLimit = "credit_limit", cliPolicy = "cli_policy", rateDeck = "rate_deck", limits
        }
        init(_ r: AccountRecord) { self.init(r.account, rateDeck: r.rateDeck, limits: r.limits) }

        init(_ a: StoreAccount, rateDeck: String?, limits: CallLimits) {
            id = a.id; name = a.name; currency = a.currency; balance = money(a.balance); creditLimit = money(a.creditLimit)
            cliPolicy = a.cliPolicy.rawValue; self.rateDeck = rateDeck; self.limits = Limits(limits)
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id); try c.encode(name, forKey: .name); try c.encode(currency, forKey: .currency)
            try c.encode(balance, forKey: .balance); try c.encode(creditLimit, forKey: .creditLimit); try c.encode(cliPolicy, forKey: .cliPolicy)
            try c.encode(rateDeck, forKey: .rateDeck)  // null when the default deck applies
            try c.encode(limits, forKey: .limits)
        }
    }

    struct Accounts: Encodable { var accounts: [Account] }

    struct Balance: Encodable { var account, currency, balance: String }

    /// A trunk as the API shows it: the HA1 digests are password equivalents
    /// and never leave the store.
    struct Trunk: Encodable {
        var id, account, name: String
        var sourceAddresses: [String]
        var username: String?
        var realm: String?
        var hasPassword: Bool
        var limits: Limits
        enum CodingKeys: String, CodingKey {
            case id, account, name, sourceAddresses = "source_addresses", username, realm, hasPassword = "has_password", limits
        }
        init(_ t: StoreTrunk) {
            id = t.id; account = t.accountID; name = t.name; sourceAddresses = t.sourceAddresses; username = t.username
            realm = t.realm; hasPassword = t.ha1MD5 != nil || t.ha1SHA256 != nil; limits = Limits(t.limits)
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id); try c.encode(account, forKey: .account); try c.encode(name, forKey: .name)
            try c.encode(sourceAddresses, forKey: .sourceAddresses); try c.encode(username, forKey: .username)
            try c.encode(realm, forKey: .realm); try c.encode(hasPassword, forKey: .hasPassword); try c.encode(limits, forKey: .limits)
        }
    }

    struct Trunks: Encodable { var trunks: [Trunk] }

    struct RateOut: Encodable {
        var prefix, destination, connection, perMinute, increments: String
        enum CodingKeys: String, CodingKey { case prefix, destination, connection, perMinute = "per_minute", increments }
    }

    struct RateDeck: Encodable {
        var name, currency: String
        var rates: [RateOut]
        init(_ d: StoreRateDeck) {
            name = d.name; currency = d.currency
            rates = d.rates.map {
                RateOut(prefix: $0.prefix, destination: $0.destination, connection: money($0.connectionCharge),
                        perMinute: money($0.perMinute), increments: $0.increments.description)
            }
        }
    }

    struct Blacklist: Encodable { var scope: String; var prefixes: [String] }

    struct CDR: Encodable {
        var id: Int64?
        var callID, account: String
        var trunk, tag: String?
        var from, to: String
        var callType: String?
        var startAt: String
        var answerAt: String?
        var endAt: String
        var durationSeconds, billedSeconds: Int
        var cost: String
        var finalStatus: Int
        var reason: String?
        var interrupted: Bool
        var segments: Int?
        enum CodingKeys: String, CodingKey {
            case id, callID = "call_id", account, trunk, tag, from, to, callType = "call_type", startAt = "start_at", answerAt = "answer_at"
            case endAt = "end_at", durationSeconds = "duration_seconds", billedSeconds = "billed_seconds", cost, finalStatus = "final_status"
            case reason, interrupted, segments
        }
        init(_ c: StoreCDR) {
            id = c.id; callID = c.callID; account = c.accountID; trunk = c.trunkID; tag = c.tag; from = c.from; to = c.to
            callType = c.callType; startAt = time(c.startAt); answerAt = c.answerAt.map(time); endAt = time(c.endAt)
            durationSeconds = c.durationSeconds; billedSeconds = c.billedSeconds; cost = money(c.cost); finalStatus = c.finalStatus
            reason = c.reason; interrupted = c.interrupted; segments = c.segments
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id); try c.encode(callID, forKey: .callID); try c.encode(account, forKey: .account)
            try c.encode(trunk, forKey: .trunk); try c.encode(tag, forKey: .tag); try c.encode(from, forKey: .from)
            try c.encode(to, forKey: .to); try c.encode(callType, forKey: .callType); try c.encode(startAt, forKey: .startAt)
            try c.encode(answerAt, forKey: .answerAt); try c.encode(endAt, forKey: .endAt)
            try c.encode(durationSeconds, forKey: .durationSeconds); try c.encode(billedSeconds, forKey: .billedSeconds)
            try c.encode(cost, forKey: .cost); try c.encode(finalStatus, forKey: .finalStatus); try c.encode(reason, forKey: .reason)
            try c.encode(interrupted, forKey: .interrupted); try c.encode(segments, forKey: .segments)
        }
    }

    struct CDRs: Encodable { var cdrs: [CDR] }

    /// A SIM as the API shows it: never its password, in any form.
    struct SIM: Encodable {
        var iccid, account, sipHostname, username: String
        var webhookURL, linkedNumber, operatorName, callRate, textRate: String?
        var textsOut: String
        var updatedAt: String
        enum CodingKeys: String, CodingKey {
            case iccid, account, sipHostname = "sip_hostname", username, webhookURL = "webhook_url", linkedNumber = "linked_number"
            case operatorName = "operator_name", callRate = "call_rate", textRate = "text_rate", textsOut = "texts_out"
            case updatedAt = "updated_at"
        }
        init(_ s: SIMRecord) {
            iccid = s.iccid.digits; account = s.accountID; sipHostname = s.sipHostname; username = s.username
            webhookURL = s.webhookURL; linkedNumber = s.linkedNumber; operatorName = s.operatorName
            callRate = s.callRate.map(money); textRate = s.textRate.map(money); textsOut = s.textsOut.rawValue; updatedAt = time(s.updatedAt.timeIntervalSince1970)
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(iccid, forKey: .iccid); try c.encode(account, forKey: .account); try c.encode(sipHostname, forKey: .sipHostname)
            try c.encode(username, forKey: .username); try c.encode(webhookURL, forKey: .webhookURL)
            try c.encode(linkedNumber, forKey: .linkedNumber); try c.encode(operatorName, forKey: .operatorName)
            try c.encode(callRate, forKey: .callRate); try c.encode(textRate, forKey: .textRate); try c.encode(textsOut, forKey: .textsOut)
            try c.encode(updatedAt, forKey: .updatedAt)
        }
    }

    struct SIMs: Encodable { var sims: [SIM] }

    struct SIMRegistration: Encodable {
        var node, state: String
        var lastCode: Int?
        var lastReason, registeredUntil, nextAttempt: String?
        var updatedAt: String
        enum CodingKeys: String, CodingKey {
            case node, state, lastCode = "last_code", lastReason = "last_reason", registeredUntil = "registered_until"
            case nextAttempt = "next_attempt", updatedAt = "updated_at"
        }
        init(_ r: SIMRegistrationStatus) {
            node = r.node; state = r.state.rawValue; lastCode = r.lastCode; lastReason = r.lastReason
            registeredUntil = r.registeredUntil.map { time($0.timeIntervalSince1970) }
            nextAttempt = r.nextAttempt.map { time($0.timeIntervalSince1970) }; updatedAt = time(r.updatedAt.timeIntervalSince1970)
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(node, forKey: .node); try c.encode(state, forKey: .state); try c.encode(lastCode, forKey: .lastCode)
            try c.encode(lastReason, forKey: .lastReason); try c.encode(registeredUntil, forKey: .registeredUntil)
            try c.encode(nextAttempt, forKey: .nextAttempt); try c.encode(updatedAt, forKey: .updatedAt)
        }
    }

    struct SIMRegistrations: Encodable {
        var iccid: String
        var registrations: [SIMRegistration]
    }

    struct Texts: Encodable { var texts: [Text] }

    struct Text: Encodable {
        var id, direction, iccid, account, peer, state: String
        var segments, attempts: Int
        var receivedAt: String
        var deliveredAt, nextAttemptAt, lastError: String?
        var sipCode: Int?
        enum CodingKeys: String, CodingKey {
            case id, direction, iccid, account, peer, state, segments, attempts, receivedAt = "received_at"
            case deliveredAt = "delivered_at", nextAttemptAt = "next_attempt_at", lastError = "last_error", sipCode = "sip_code"
        }
        init(_ t: StoredText) {
            id = t.id; direction = t.direction.rawValue; iccid = t.iccid; account = t.accountID; peer = t.peer; state = t.state.rawValue
            segments = t.segments; attempts = t.attempts; receivedAt = time(t.receivedAt); deliveredAt = t.deliveredAt.map(time)
            nextAttemptAt = t.state == .queued ? t.nextAttemptAt.map(time) : nil; lastError = t.lastError; sipCode = t.sipCode
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id); try c.encode(direction, forKey: .direction); try c.encode(iccid, forKey: .iccid)
            try c.encode(account, forKey: .account); try c.encode(peer, forKey: .peer); try c.encode(state, forKey: .state)
            try c.encode(segments, forKey: .segments); try c.encode(attempts, forKey: .attempts)
            try c.encode(receivedAt, forKey: .receivedAt); try c.encode(deliveredAt, forKey: .deliveredAt)
            try c.encode(nextAttemptAt, forKey: .nextAttemptAt); try c.encode(lastError, forKey: .lastError)
            try c.encode(sipCode, forKey: .sipCode)
        }
    }
}

/// RFC 3339 date-times (UTC out; any offset in).
public enum RFC3339 {
    /// `2024-03-01T12:00:00Z`, with milliseconds when the time has a fraction.
    public static func format(_ t: Double) -> String {
        let whole = Int64(t.rounded(.down))
        let millis = Int(((t - Double(whole)) * 1000).rounded())
        var days = whole >= 0 ? whole / 86_400 : (whole - 86_399) / 86_400
        let secs = whole - days * 86_400
        // Civil from days (H. Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var out = "\(y)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs % 3600 / 60)):\(two(secs % 60))"
        if millis > 0, millis < 1000 {
            let ms = String(millis)
            out += "." + String(repeating: "0", count: 3 - ms.count) + ms
        }
        return out + "Z"
    }

    /// Seconds since 1970 from `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; nil if it is not that.
    public static func parse(_ text: String) -> Double? {
        let s = Array(text.utf8)
        func num(_ r: Range<Int>) -> Int64? {
            guard r.upperBound <= s.count else { return nil }
            var v: Int64 = 0
            for i in r { guard s[i] >= 0x30, s[i] <= 0x39 else { return nil }; v = v * 10 + Int64(s[i] - 0x30) }
            return v
        }
        guard s.count >= 20, let y = num(0..<4), s[4] == UInt8(ascii: "-"), let mo = num(5..<7), s[7] == UInt8(ascii: "-"),
              let d = num(8..<10), s[10] == UInt8(ascii: "T") || s[10] == UInt8(ascii: "t") || s[10] == UInt8(ascii: " "),
              let h = num(11..<13), s[13] == UInt8(ascii: ":"), let mi = num(14..<16), s[16] == UInt8(ascii: ":"),
              let sec = num(17..<19) else { return nil }
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
        let monthDays: [Int64] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(mo), d >= 1, d <= monthDays[Int(mo - 1)], h <= 23, mi <= 59, sec <= 60 else { return nil }
        var i = 19
        var fraction = 0.0
        if s[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < s.count, s[i] >= 0x30, s[i] <= 0x39 { fraction += Double(s[i] - 0x30) * scale; scale /= 10; i += 1 }
            guard i > start else { return nil }
        }
        guard i < s.count else { return nil }
        var offset: Int64 = 0
        if s[i] == UInt8(ascii: "Z") || s[i] == UInt8(ascii: "z") {
            guard i + 1 == s.count else { return nil }
        } else if s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") {
            guard i + 6 == s.count, let oh = num(i + 1..<i + 3), s[i + 3] == UInt8(ascii: ":"), let om = num(i + 4..<i + 6),
                  oh <= 23, om <= 59 else { return nil }
            offset = (oh * 3600 + om * 60) * (s[i] == UInt8(ascii: "+") ? 1 : -1)
        } else {
            return nil
        }
        // Days from civil (H. Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86_400 + h * 3600 + mi * 60 + min(sec, 59) - offset) + fraction
    }
}
