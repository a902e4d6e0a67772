import CallControl
import Foundation
import Rating
import SQLKit

/// "X calls per Y seconds" as configured (T9).
public struct RateLimitSetting: Sendable, Equatable, Codable {
    public var calls: Int
    public var seconds: Int
    public init(calls: Int, seconds: Int) { self.calls = calls; self.seconds = seconds }
}

/// Limits for one call type (e.g. "international"), T9.
public struct CallTypeLimits: Sendable, Equatable, Codable {
    public var channels: Int?
    public var rate: RateLimitSetting?
    public init(channels: Int? = nil, rate: RateLimitSetting? = nil) { self.channels = channels; self.rate = rate }
}

/// Fewer channels or calls while the balance is low (T10).
public struct LowBalanceLimits: Sendable, Equatable, Codable {
    /// Applies while balance + credit is below this amount (a decimal string, never a float).
    public var below: String
    public var channels: Int?
    public var rate: RateLimitSetting?
    public init(below: String, channels: Int? = nil, rate: RateLimitSetting? = nil) {
        self.below = below; self.channels = channels; self.rate = rate
    }
    public var threshold: Money? { parseMoney(below) }
}

/// Limits of an account or a trunk (T9, T10). Absent means unlimited.
/// Stored as JSON: the set of limit kinds grows without migrations.
public struct CallLimits: Sendable, Equatable, Codable {
    public var channels: Int?
    public var rate: RateLimitSetting?
    public var callTypes: [String: CallTypeLimits]?
    /// Accounts only.
    public var lowBalance: LowBalanceLimits?

    public init(channels: Int? = nil, rate: RateLimitSetting? = nil, callTypes: [String: CallTypeLimits]? = nil,
                lowBalance: LowBalanceLimits? = nil) {
        self.channels = channels; self.rate = rate; self.callTypes = callTypes; self.lowBalance = lowBalance
    }

    public var isEmpty: Bool { self == CallLimits() }

    func json() -> String? {
        guard !isEmpty, let d = try? JSONEncoder.sorted.encode(self) else { return nil }
        return String(decoding: d, as: UTF8.self)
    }

    static func decode(_ text: String?) -> CallLimits {
        guard let text, let l = try? JSONDecoder().decode(CallLimits.self, from: Data(text.utf8)) else { return CallLimits() }
        return l
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

/// A customer's SIP trunk, `ACCOUNT-NAME` (T2, T12): calls are matched to it
/// by source address (ACL) or by digest credentials.
public struct Trunk: Sendable, Equatable {
    public var accountID: String
    public var name: String
    /// IPv4/IPv6 addresses or CIDR blocks calls may come from.
    public var sourceAddresses: [String]
    /// Digest user name; the password is kept only as HA1 digests.
    public var username: String?
    /// The realm the HA1 digests were made with.
    public var realm: String?
    /// hex MD5(username:realm:password), RFC 2617 §3.2.2.2.
    public var ha1MD5: String?
    /// hex SHA-256(username:realm:password), RFC 7616 §3.4.2.
    public var ha1SHA256: String?
    public var limits: CallLimits

    /// `920700-L001`.
    public var id: String { "\(accountID)-\(name)" }

    public init(accountID: String, name: String, sourceAddresses: [String] = [], username: String? = nil, realm: String? = nil,
                ha1MD5: String? = nil, ha1SHA256: String? = nil, limits: CallLimits = CallLimits()) {
        self.accountID = accountID; self.name = name; self.sourceAddresses = sourceAddresses; self.username = username
        self.realm = realm; self.ha1MD5 = ha1MD5; self.ha1SHA256 = ha1SHA256; self.limits = limits
    }
}

/// Who a blacklist belongs to (T8).
public enum BlacklistScope: Sendable, Hashable, CustomStringConvertible {
    case platform
    case account(String)
    case trunk(String)

    public var description: String {
        switch self {
        case .platform: return "platform"
        case .account(let a): return "account:\(a)"
        case .trunk(let t): return "trunk:\(t)"
        }
    }

    public init?(_ text: String) {
        if text == "platform" { self = .platform; return }
        if text.hasPrefix("account:"), text.count > 8 { self = .account(String(text.dropFirst(8))); return }
        if text.hasPrefix("trunk:"), text.count > 6 { self = .trunk(String(text.dropFirst(6))); return }
        return nil
    }
}

extension Store {
    // MARK: Account limits

    public func setLimits(accountID: String, _ limits: CallLimits) async throws {
        let json = limits.json()
        let updated = try await run { try await $0.raw("UPDATE accounts SET limits = \(bind: json) WHERE id = \(bind: accountID) RETURNING id").first() }
        if updated == nil { throw StoreError.notFound("account \(accountID)") }
    }

    public func limits(accountID: String) async throws -> CallLimits {
        try await accountRecord(id: accountID)?.limits ?? CallLimits()
    }

    // MARK: Trunks

    /// Creates or replaces a trunk. The account must exist.
    public func putTrunk(_ t: Trunk) async throws {
        guard let ref = TrunkReference(t.id), ref.account == t.accountID, ref.trunk == t.name else {
            throw StoreError.invalid(field: "name", reason: "'\(t.id)' is not ACCOUNT-NAME (account: letters and digits; name: letters, digits, '_', '-')")
        }
        for a in t.sourceAddresses where IPBlock(a) == nil {
            throw StoreError.invalid(field: "source_addresses", reason: "'\(a)' is not an IP address or CIDR block")
        }
        if t.username != nil, t.ha1MD5 == nil, t.ha1SHA256 == nil {
            throw StoreError.invalid(field: "password", reason: "a trunk with a username needs a password")
        }
        guard try await account(id: t.accountID) != nil else { throw StoreError.notFound("account \(t.accountID)") }
        let sources = t.sourceAddresses.joined(separator: ",")
        let limits = t.limits.json()
        try await run { database in try await database.raw("""
            INSERT INTO trunks (id, account_id, name, source_addresses, username, realm, ha1_md5, ha1_sha256, limits)
            VALUES (\(bind: t.id), \(bind: t.accountID), \(bind: t.name), \(bind: sources), \(bind: t.username), \(bind: t.realm),
                    \(bind: t.ha1MD5), \(bind: t.ha1SHA256), \(bind: limits))
            ON CONFLICT (id) DO UPDATE SET source_addresses = excluded.source_addresses, username = excluded.username,
                realm = excluded.realm, ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256, limits = excluded.limits
            """).run() }
    }

    public func trunk(id: String) async throws -> Trunk? {
        try await trunks(where: "id", id).first
    }

    public func trunks(accountID: String? = nil) async throws -> [Trunk] {
        if let accountID { return try await trunks(where: "account_id", accountID) }
        return try await trunks(where: nil, "")
    }

    /// Trunks whose digest user name is `username` (the account's VoIP
    /// credentials, which the text gateway also accepts).
    public func trunks(username: String) async throws -> [Trunk] {
        try await trunks(where: "username", username)
    }

    /// Returns whether a trunk was deleted.
    @discardableResult
    public func deleteTrunk(id: String) async throws -> Bool {
        try await run { try await $0.raw("DELETE FROM trunks WHERE id = \(bind: id) RETURNING id").first() } != nil
    }

    func trunks(where column: String?, _ value: String) async throws -> [Trunk] {
        var sql = SQLQueryString("SELECT account_id, name, source_addresses, username, realm, ha1_md5, ha1_sha256, limits FROM trunks")
        if let column { sql.appendLiteral(" WHERE \(column) = "); sql.appendInterpolation(bind: value) }
        sql.appendLiteral(" ORDER BY id")
        let query = sql
        return try await run { try await $0.raw(query).all() }.map { row in
            let sources = try row.decode(column: "source_addresses", as: String.self)
            return Trunk(accountID: try row.decode(column: "account_id", as: String.self),
                         name: try row.decode(column: "name", as: String.self),
                         sourceAddresses: sources.split(separator: ",").map(String.init),
                         username: try row.decode(column: "username", as: String?.self),
                         realm: try row.decode(column: "realm", as: String?.self),
                         ha1MD5: try row.decode(column: "ha1_md5", as: String?.self),
                         ha1SHA256: try row.decode(column: "ha1_sha256", as: String?.self),
                         limits: CallLimits.decode(try row.decode(column: "limits", as: String?.self)))
        }
    }

    // MARK: Blacklists

    /// Replaces the prefixes of one scope; returns (added, removed).
    @discardableResult
    public func setBlacklist(_ scope: BlacklistScope, prefixes: [String]) async throws -> (added: Int, removed: Int) {
        for p in prefixes {
            let digits = p.hasPrefix("+") ? p.dropFirst() : Substring(p)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw StoreError.invalid(field: "prefixes", reason: "'\(p)' is not a number prefix (digits, optional leading +)")
            }
        }
        let new = Set(prefixes.map { $0.hasPrefix("+") ? String($0.dropFirst()) : $0 })
        let old = Set(try await blacklist(scope))
        let key = scope.description
        try await transaction { db in
            for p in old.subtracting(new) { try await db.raw("DELETE FROM blacklist WHERE scope = \(bind: key) AND prefix = \(bind: p)").run() }
            for p in new.subtracting(old) { try await db.raw("INSERT INTO blacklist (scope, prefix) VALUES (\(bind: key), \(bind: p))").run() }
        }
        return (new.subtracting(old).count, old.subtracting(new).count)
    }

    public func blacklist(_ scope: BlacklistScope) async throws -> [String] {
        let key = scope.description
        return try await run { try await $0.raw("SELECT prefix FROM blacklist WHERE scope = \(bind: key) ORDER BY prefix").all() }
            .map { try $0.decode(column: "prefix", as: String.self) }
    }

    /// Every blacklist, by scope (for the call path's in-memory copy).
    public func allBlacklists() async throws -> [BlacklistScope: [String]] {
        let rows = try await run { try await $0.raw("SELECT scope, prefix FROM blacklist").all() }
        var out: [BlacklistScope: [String]] = [:]
        for r in rows {
            guard let s = BlacklistScope(try r.decode(column: "scope", as: String.self)) else { continue }
            out[s, default: []].append(try r.decode(column: "prefix", as: String.self))
        }
        return out
    }

    // MARK: API keys

    /// Stores an API key by its id and the SHA-256 of its secret (never the secret).
    /// `accountID` nil is an operator key (every account).
    public func putAPIKey(id: String, secretHash: String, accountID: String?, label: String, now: Double) async throws {
        try await run { try await $0.raw("""
            INSERT INTO api_keys (id, secret_sha256, account_id, label, created_at)
            VALUES (\(bind: id), \(bind: secretHash), \(bind: accountID), \(bind: label), \(bind: now))
            """).run() }
    }

    /// The stored hash and scope of a key id.
    public func apiKey(id: String) async throws -> (secretHash: String, accountID: String?, label: String)? {
        guard let row = try await run({ try await $0.raw("SELECT secret_sha256, account_id, label FROM api_keys WHERE id = \(bind: id)").first() }) else {
            return nil
        }
        return (try row.decode(column: "secret_sha256", as: String.self), try row.decode(column: "account_id", as: String?.self),
                try row.decode(column: "label", as: String.self))
    }

    @discardableResult
    public func deleteAPIKey(id: String) async throws -> Bool {
        try await run { try await $0.raw("DELETE FROM api_keys WHERE id = \(bind: id) RETURNING id").first() } != nil
    }
}

/// An IPv4/IPv6 address or CIDR block, for trunk ACLs.
public struct IPBlock: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let b = Self.parse(String(parts[0])) else { return nil }
        bytes = b
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= b.count * 8, parts[1].allSatisfy(\.isNumber) else { return nil }
            prefixLength = n
        } else {
            prefixLength = b.count * 8
        }
    }

    public var description: String { "\(bytes.count == 4 ? bytes.map(String.init).joined(separator: ".") : "ipv6")/\(prefixLength)" }

    /// Whether `address` (dotted or colon text) is inside the block.
    public func contains(_ address: String) -> Bool {
        guard var a = Self.parse(address) else { return false }
        // An IPv4-mapped IPv6 source (::ffff:a.b.c.d) matches IPv4 blocks.
        if a.count == 16, bytes.count == 4, a[0..<10].allSatisfy({ $0 == 0 }), a[10] == 0xFF, a[11] == 0xFF { a = Array(a[12...]) }
        guard a.count == bytes.count else { return false }
        var bits = prefixLength
        for i in 0..<a.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : UInt8(0xFF << (8 - bits) & 0xFF)
            if a[i] & mask != bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    /// The address's bytes (4 or 16), by the C library's strict parser.
    static func parse(_ s: String) -> [UInt8]? {
        var s = s
        if s.hasPrefix("["), s.hasSuffix("]") { s = String(s.dropFirst().dropLast()) }
        if s.contains(":") {
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, s, &v6) == 1 else { return nil }
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        var v4 = in_addr()
        guard inet_pton(AF_INET, s, &v4) == 1 else { return nil }
        return withUnsafeBytes(of: &v4) { Array($0) }
    }
}
