import CallControl
import Foundation
import Rating
import SIMs
import SIPAuth
import Store
import Yams

/// What `switchboard provision FILE` imports: accounts (with their limits),
/// rate decks, trunks, blacklists and SIMs, from YAML or JSON (JSON is YAML).
/// Importing the same file twice changes nothing; a changed entry is updated.
/// Each entry describes its object whole (an account without `limits` has
/// none). Balances are set when an account is created only — afterwards calls
/// and top-ups move them. Trunk passwords are never stored: only their HA1
/// digests (MD5 and SHA-256) for the realm given to `apply(to:realm:cipher:)`;
/// SIM passwords are stored encrypted with the cipher given to it.
public struct ProvisioningFile: Sendable {
    public struct AccountEntry: Sendable {
        public var account: Account
        public var rateDeck: String?
        public var limits: CallLimits
    }

    public struct TrunkEntry: Sendable {
        public var accountID: String
        public var name: String
        public var sourceAddresses: [String]
        public var username: String?
        /// Held in memory only until `apply` hashes it.
        var password: String?
        public var limits: CallLimits

        public var id: String { "\(accountID)-\(name)" }

        /// The trunk as stored: the password replaced by its HA1 digests for `realm`.
        public func trunk(realm: String) -> Trunk {
            let t = Trunk(accountID: accountID, name: name, sourceAddresses: sourceAddresses, limits: limits)
            guard let username, let password else { return t }
            return Self.hashed(t, username: username, password: password, realm: realm)
        }

        /// `t` with digest credentials: the user name, the realm and the
        /// password's HA1 digests (MD5 and SHA-256), never the password itself.
        public static func hashed(_ t: Trunk, username: String, password: String, realm: String) -> Trunk {
            var t = t
            t.username = username
            t.realm = realm
            t.ha1MD5 = DigestComputation.ha1(algorithm: .md5, username: username, realm: realm, password: password)
            t.ha1SHA256 = DigestComputation.ha1(algorithm: .sha256, username: username, realm: realm, password: password)
            return t
        }
    }

    /// A SIP2SIM SIM's settings (SPEC.md S1).
    public struct SIMEntry: Sendable {
        public var iccid: ICCID
        public var accountID: String
        public var sipHostname: String
        public var username: String
        /// Held in memory only until `apply` encrypts it.
        var password: String
        public var webhookURL: String?
        public var linkedNumber: String?
        public var operatorName: String?
        public var callRate: Money?
        public var textRate: Money?
        public var textsOut: SIMTextsOut

        static let keys = ["account", "call_rate", "iccid", "linked_number", "operator_name", "password", "sip_hostname", "text_rate",
                           "texts_out", "username", "webhook_url"]
    }

    public var accounts: [AccountEntry]
    public var rateDecks: [RateDeck]
    public var trunks: [TrunkEntry]
    public var blacklists: [(scope: BlacklistScope, prefixes: [String])]
    public var sims: [SIMEntry]

    static let topLevelKeys = ["accounts", "blacklists", "rate_decks", "sims", "trunks"]

    public init(yaml text: String) throws(ProvisioningError) {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw ProvisioningError("file", "not valid YAML or JSON: \(String(describing: error).prefix(200))")
        }
        guard let root = loaded as? [String: Any] else { throw ProvisioningError("file", "the top level must be a mapping") }
        try FieldParser.onlyKnownKeys(root, Self.topLevelKeys, "")

        var decks: [RateDeck] = []
        for (i, item) in try FieldParser.list(root["rate_decks"], "rate_decks").enumerated() {
            let key = "rate_decks[\(i)]"
            let d = try FieldParser.mapping(item, key)
            try FieldParser.onlyKnownKeys(d, ["currency", "name", "rates"], key)
            decks.append(try FieldParser.rateDeck(name: try FieldParser.string(d["name"], "\(key).name"), d, key))
        }
        var names = Set<String>()
        for (i, d) in decks.enumerated() where !names.insert(d.name).inserted {
            throw ProvisioningError("rate_decks[\(i)].name", "rate deck '\(d.name)' appears twice")
        }

        var accounts: [AccountEntry] = []
        for (i, item) in try FieldParser.list(root["accounts"], "accounts").enumerated() {
            let key = "accounts[\(i)]"
            let a = try FieldParser.mapping(item, key)
            try FieldParser.onlyKnownKeys(a, ["balance", "cli_policy", "credit_limit", "currency", "id", "limits", "name", "rate_deck"], key)
            let id = try FieldParser.accountID(a["id"], "\(key).id")
            guard !accounts.contains(where: { $0.account.id == id }) else { throw ProvisioningError("\(key).id", "account '\(id)' appears twice") }
            accounts.append(AccountEntry(
                account: Account(
                    id: id, name: try FieldParser.string(a["name"], "\(key).name"),
                    currency: try FieldParser.currency(a["currency"], "\(key).currency"),
                    balance: try FieldParser.money(a["balance"] ?? "0", "\(key).balance"),
                    creditLimit: try FieldParser.money(a["credit_limit"] ?? "0", "\(key).credit_limit"),
                    cliPolicy: try FieldParser.cliPolicy(a["cli_policy"], "\(key).cli_policy")),
                rateDeck: try FieldParser.optionalString(a["rate_deck"], "\(key).rate_deck"),
                limits: try FieldParser.limits(a["limits"], "\(key).limits", account: true)))
        }

        var trunks: [TrunkEntry] = []
        for (i, item) in try FieldParser.list(root["trunks"], "trunks").enumerated() {
            let key = "trunks[\(i)]"
            let t = try FieldParser.mapping(item, key)
            try FieldParser.onlyKnownKeys(t, ["account", "limits", "name", "password", "source_addresses", "username"], key)
            let account = try FieldParser.accountID(t["account"], "\(key).account")
            let name = try FieldParser.trunkName(t["name"], "\(key).name")
            let credentials = try FieldParser.credentials(username: t["username"], password: t["password"], key)
            let entry = TrunkEntry(
                accountID: account, name: name,
                sourceAddresses: try FieldParser.sourceAddresses(t["source_addresses"], "\(key).source_addresses"),
                username: credentials?.username, password: credentials?.password,
                limits: try FieldParser.limits(t["limits"], "\(key).limits", account: false))
            if trunks.contains(where: { $0.id == entry.id }) { throw ProvisioningError("\(key).name", "trunk '\(entry.id)' appears twice") }
            if let u = entry.username, trunks.contains(where: { $0.username == u }) {
                throw ProvisioningError("\(key).username", "user name '\(u)' is already used by another trunk in this file")
            }
            trunks.append(entry)
        }

        var blacklists: [(BlacklistScope, [String])] = []
        for (i, item) in try FieldParser.list(root["blacklists"], "blacklists").enumerated() {
            let key = "blacklists[\(i)]"
            let b = try FieldParser.mapping(item, key)
            try FieldParser.onlyKnownKeys(b, ["prefixes", "scope"], key)
            let scope = try FieldParser.blacklistScope(b["scope"], "\(key).scope")
            guard !blacklists.contains(where: { $0.0 == scope }) else { throw ProvisioningError("\(key).scope", "scope '\(scope)' appears twice") }
            blacklists.append((scope, try FieldParser.prefixes(b["prefixes"], "\(key).prefixes")))
        }

        var sims: [SIMEntry] = []
        for (i, item) in try FieldParser.list(root["sims"], "sims").enumerated() {
            let key = "sims[\(i)]"
            let m = try FieldParser.mapping(item, key)
            try FieldParser.onlyKnownKeys(m, SIMEntry.keys, key)
            let iccid = try FieldParser.iccid(m["iccid"], "\(key).iccid")
            guard !sims.contains(where: { $0.iccid == iccid }) else { throw ProvisioningError("\(key).iccid", "SIM \(iccid) appears twice") }
            sims.append(SIMEntry(
                iccid: iccid,
                accountID: try FieldParser.accountID(m["account"], "\(key).account"),
                sipHostname: try FieldParser.sipHostname(m["sip_hostname"], "\(key).sip_hostname"),
                username: try FieldParser.sipUsername(m["username"], "\(key).username"),
                password: try FieldParser.simPassword(m["password"], "\(key).password"),
                webhookURL: FieldParser.isNull(m["webhook_url"]) ? nil : try FieldParser.webhookURL(m["webhook_url"], "\(key).webhook_url"),
                linkedNumber: FieldParser.isNull(m["linked_number"]) ? nil : try FieldParser.phoneNumber(m["linked_number"], "\(key).linked_number"),
                operatorName: FieldParser.isNull(m["operator_name"]) ? nil : try FieldParser.operatorName(m["operator_name"], "\(key).operator_name"),
                callRate: FieldParser.isNull(m["call_rate"]) ? nil : try FieldParser.money(m["call_rate"], "\(key).call_rate"),
                textRate: FieldParser.isNull(m["text_rate"]) ? nil : try FieldParser.money(m["text_rate"], "\(key).text_rate"),
                textsOut: FieldParser.isNull(m["texts_out"]) ? .webhook : try FieldParser.textsOut(m["texts_out"], "\(key).texts_out")))
        }

        self.accounts = accounts
        self.rateDecks = decks
        self.trunks = trunks
        self.blacklists = blacklists
        self.sims = sims
    }

    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var accountsCreated = 0, accountsUpdated = 0, accountsUnchanged = 0
        public var ratesAdded = 0, ratesUpdated = 0, ratesRemoved = 0
        public var trunksCreated = 0, trunksUpdated = 0, trunksUnchanged = 0
        public var blacklistPrefixesAdded = 0, blacklistPrefixesRemoved = 0
        public var simsCreated = 0, simsUpdated = 0, simsUnchanged = 0
        public var changed: Bool {
            accountsCreated + accountsUpdated + ratesAdded + ratesUpdated + ratesRemoved + trunksCreated + trunksUpdated
                + blacklistPrefixesAdded + blacklistPrefixesRemoved + simsCreated + simsUpdated > 0
        }
        public var description: String {
            "accounts: \(accountsCreated) created, \(accountsUpdated) updated, \(accountsUnchanged) unchanged; "
                + "rates: \(ratesAdded) added, \(ratesUpdated) updated, \(ratesRemoved) removed; "
                + "trunks: \(trunksCreated) created, \(trunksUpdated) updated, \(trunksUnchanged) unchanged; "
                + "blacklist prefixes: \(blacklistPrefixesAdded) added, \(blacklistPrefixesRemoved) removed; "
                + "sims: \(simsCreated) created, \(simsUpdated) updated, \(simsUnchanged) unchanged"
        }
    }

    /// Applies the file: rate decks first (accounts name them), then accounts,
    /// trunks (they belong to accounts), blacklists (their scopes name accounts
    /// and trunks), SIMs (they belong to accounts). Trunk passwords are hashed
    /// with `realm`, which must be the realm the node challenges with. SIM
    /// passwords are encrypted with `cipher` (the node's `sims.password_key`),
    /// needed only when the file has SIMs.
    public func apply(to store: Store, realm: String = "switchboard", cipher: SIMPasswordCipher? = nil) async throws -> Report {
        var report = Report()
        for deck in rateDecks {
            let (a, u, r) = try await store.putRateDeck(deck)
            report.ratesAdded += a; report.ratesUpdated += u; report.ratesRemoved += r
        }
        for (i, entry) in accounts.enumerated() {
            let account = entry.account
            if let deck = entry.rateDeck, try await store.rateDeck(named: deck) == nil {
                throw ProvisioningError("accounts[\(i)].rate_deck", "rate deck '\(deck)' does not exist (define it under rate_decks)")
            }
            let stored = try await store.accountRecord(id: account.id)
            let before = stored?.account
            let beforeDeck = stored?.rateDeck
            let beforeLimits = stored?.limits ?? CallLimits()
            try await Self.storing("accounts[\(i)]") {
                try await store.upsertAccount(account)
                try await store.setRateDeck(accountID: account.id, deck: entry.rateDeck)
                try await store.setLimits(accountID: account.id, entry.limits)
            }
            if let before {
                var expected = account
                expected.balance = before.balance  // never reset by provisioning
                if before == expected && beforeDeck == entry.rateDeck && beforeLimits == entry.limits {
                    report.accountsUnchanged += 1
                } else {
                    report.accountsUpdated += 1
                }
            } else {
                report.accountsCreated += 1
            }
        }
        if !trunks.isEmpty {
            let existing = try await store.trunks()
            for (i, entry) in trunks.enumerated() {
                let key = "trunks[\(i)]"
                guard try await store.account(id: entry.accountID) != nil else {
                    throw ProvisioningError("\(key).account", "account '\(entry.accountID)' does not exist (define it under accounts)")
                }
                if let u = entry.username, let other = existing.first(where: { $0.username == u && $0.id != entry.id }) {
                    throw ProvisioningError("\(key).username", "user name '\(u)' is already used by trunk \(other.id)")
                }
                let trunk = entry.trunk(realm: realm)
                let before = existing.first { $0.id == trunk.id }
                try await Self.storing(key) { try await store.putTrunk(trunk) }
                if before == nil { report.trunksCreated += 1 } else if before == trunk { report.trunksUnchanged += 1 } else { report.trunksUpdated += 1 }
            }
        }
        for (i, (scope, prefixes)) in blacklists.enumerated() {
            let key = "blacklists[\(i)]"
            switch scope {
            case .platform: break
            case .account(let id):
                guard try await store.account(id: id) != nil else { throw ProvisioningError("\(key).scope", "account '\(id)' does not exist") }
            case .trunk(let id):
                guard try await store.trunk(id: id) != nil else { throw ProvisioningError("\(key).scope", "trunk '\(id)' does not exist") }
            }
            let (added, removed) = try await Self.storing(key) { try await store.setBlacklist(scope, prefixes: prefixes) }
            report.blacklistPrefixesAdded += added; report.blacklistPrefixesRemoved += removed
        }
        if !sims.isEmpty {
            guard let cipher else {
                throw ProvisioningError("sims", "storing SIM passwords needs the node's SIM password key (sims.password_key)")
            }
            for (i, entry) in sims.enumerated() {
                let key = "sims[\(i)]"
                guard try await store.account(id: entry.accountID) != nil else {
                    throw ProvisioningError("\(key).account", "account '\(entry.accountID)' does not exist (define it under accounts)")
                }
                let before = try await store.sim(iccid: entry.iccid)
                let record = SIMRecord(
                    iccid: entry.iccid, accountID: entry.accountID, sipHostname: entry.sipHostname, username: entry.username,
                    passwordCiphertext: try Self.storedPassword(entry.password, iccid: entry.iccid, before: before?.passwordCiphertext,
                                                                cipher: cipher, key: "\(key).password"),
                    webhookURL: entry.webhookURL, linkedNumber: entry.linkedNumber, operatorName: entry.operatorName, callRate: entry.callRate,
                    textRate: entry.textRate, textsOut: entry.textsOut)
                switch try await Self.storing(key, { try await store.upsertSIM(record) }) {
                case .created: report.simsCreated += 1
                case .updated: report.simsUpdated += 1
                case .unchanged: report.simsUnchanged += 1
                }
            }
        }
        return report
    }

    /// The stored form of a SIM password: the stored one when it already holds
    /// `password` (GCM ciphertexts differ each time, so re-encrypting would make
    /// every import an update), else a fresh encryption. A stored password that
    /// does not decrypt (another key) is replaced.
    public static func storedPassword(_ password: String, iccid: ICCID, before: String?, cipher: SIMPasswordCipher,
                                      key: String = "password") throws(ProvisioningError) -> String {
        if let before, let old = try? cipher.decrypt(before, iccid: iccid), old == password { return before }
        do { return try cipher.encrypt(password, iccid: iccid) } catch { throw ProvisioningError(key, error.description) }
    }

    /// Store validation errors become errors naming the entry's key.
    static func storing<R>(_ key: String, _ body: () async throws -> R) async throws -> R {
        do { return try await body() } catch StoreError.invalid(let field, let reason) {
            throw ProvisioningError("\(key).\(field)", reason)
        }
    }
}

public struct ProvisioningError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Where the problem is: a key path such as `trunks[0].source_addresses[1]`.
    public var key: String
    public var problem: String
    public init(_ key: String, _ problem: String) { self.key = key; self.problem = problem }
    public var description: String { "\(key): \(problem)" }
}

/// Field checks shared by the provisioning file and the REST API: each takes
/// a value as YAML/JSON decoding gives it (String, Int, Double, Bool, [Any],
/// [String: Any], nil or NSNull for null) and the key path to name in errors.
public enum FieldParser {
    public static func isNull(_ v: Any?) -> Bool { v == nil || v is NSNull }

    public static func list(_ v: Any?, _ key: String) throws(ProvisioningError) -> [Any] {
        guard let v, !(v is NSNull) else { return [] }
        guard let l = v as? [Any] else { throw ProvisioningError(key, "must be a list") }
        return l
    }

    public static func mapping(_ v: Any, _ key: String) throws(ProvisioningError) -> [String: Any] {
        guard let m = v as? [String: Any] else { throw ProvisioningError(key, "must be a mapping (an object)") }
        return m
    }

    /// Refuses keys outside `known` (a typo would otherwise be silently ignored).
    public static func onlyKnownKeys(_ m: [String: Any], _ known: [String], _ key: String) throws(ProvisioningError) {
        for k in m.keys.sorted() where !known.contains(k) {
            throw ProvisioningError(key.isEmpty ? k : "\(key).\(k)", "unknown key (known: \(known.joined(separator: ", ")))")
        }
    }

    public static func string(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        guard let v, !(v is NSNull) else { throw ProvisioningError(key, "is required") }
        if let s = v as? String, !s.isEmpty { return s }
        if let i = v as? Int, !(v is Bool) { return String(i) }
        throw ProvisioningError(key, "must be a non-empty string")
    }

    public static func optionalString(_ v: Any?, _ key: String) throws(ProvisioningError) -> String? {
        isNull(v) ? nil : try string(v, key)
    }

    /// Account IDs: letters and digits (trunks are named `ACCOUNT-NAME`).
    public static func accountID(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        guard s.count <= 64, s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw ProvisioningError(key, "'\(s.prefix(64))' is not an account ID (1–64 letters and digits)")
        }
        return s
    }

    /// Trunk names: letters, digits, '_' and '-'.
    public static func trunkName(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        guard s.count <= 64, s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
            throw ProvisioningError(key, "'\(s.prefix(64))' is not a trunk name (1–64 letters, digits, '_' or '-')")
        }
        return s
    }

    public static func currency(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        guard s.count == 3, s.allSatisfy({ $0.isASCII && $0.isUppercase && $0.isLetter }) else {
            throw ProvisioningError(key, "'\(s.prefix(64))' is not a currency code such as GBP")
        }
        return s
    }

    public static func cliPolicy(_ v: Any?, _ key: String) throws(ProvisioningError) -> CLIPolicy {
        if isNull(v) { return .reject }
        let text = try string(v, key)
        guard let policy = CLIPolicy(rawValue: text) else { throw ProvisioningError(key, "must be reject or warn") }
        return policy
    }

    /// Amounts are strings ("0.0125") so that YAML and JSON never turn them
    /// into binary floats; a bare whole number is accepted too. At most six
    /// decimal places: the store keeps millionths.
    public static func money(_ v: Any?, _ key: String, allowNegative: Bool = false) throws(ProvisioningError) -> Money {
        guard let v, !(v is NSNull) else { throw ProvisioningError(key, "is required") }
        if let i = v as? Int, !(v is Bool) {
            guard i >= 0 || allowNegative else { throw ProvisioningError(key, "must not be negative") }
            return Decimal(i)
        }
        guard let s = v as? String else { throw ProvisioningError(key, "write amounts as strings, e.g. \"0.0125\"") }
        let negative = allowNegative && s.hasPrefix("-")
        let digits = negative ? String(s.dropFirst()) : s
        guard let m = parseMoney(digits) else {
            throw ProvisioningError(key, "'\(s.prefix(64))' is not a\(allowNegative ? "" : " non-negative") decimal amount such as \"12.50\"")
        }
        if let point = digits.firstIndex(of: "."), digits[digits.index(after: point)...].count > 6 {
            throw ProvisioningError(key, "'\(s.prefix(64))' has more than 6 decimal places")
        }
        return negative ? -m : m
    }

    /// A whole number in `range`.
    public static func integer(_ v: Any?, _ key: String, _ range: ClosedRange<Int>) throws(ProvisioningError) -> Int {
        guard let v, !(v is NSNull) else { throw ProvisioningError(key, "is required") }
        guard let i = v as? Int, !(v is Bool) else { throw ProvisioningError(key, "must be a whole number") }
        guard range.contains(i) else { throw ProvisioningError(key, "must be \(range.lowerBound)…\(range.upperBound), got \(i)") }
        return i
    }

    public static func sourceAddresses(_ v: Any?, _ key: String) throws(ProvisioningError) -> [String] {
        var out: [String] = []
        for (i, item) in try list(v, key).enumerated() {
            let s = try string(item, "\(key)[\(i)]")
            guard IPBlock(s) != nil else { throw ProvisioningError("\(key)[\(i)]", "'\(s.prefix(64))' is not an IP address or CIDR block") }
            if !out.contains(s) { out.append(s) }
        }
        return out
    }

    /// Blacklist prefixes: digits with an optional leading '+'.
    public static func prefixes(_ v: Any?, _ key: String) throws(ProvisioningError) -> [String] {
        if isNull(v) { throw ProvisioningError(key, "is required (a list of number prefixes; [] for none)") }
        var out: [String] = []
        for (i, item) in try list(v, key).enumerated() {
            let s = try string(item, "\(key)[\(i)]")
            let digits = s.hasPrefix("+") ? s.dropFirst() : Substring(s)
            guard (1...20).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw ProvisioningError("\(key)[\(i)]", "'\(s.prefix(64))' is not a number prefix (1–20 digits, optional leading +)")
            }
            out.append(s)
        }
        return out
    }

    public static func blacklistScope(_ v: Any?, _ key: String) throws(ProvisioningError) -> BlacklistScope {
        let s = try string(v, key)
        guard let scope = BlacklistScope(s) else {
            throw ProvisioningError(key, "'\(s.prefix(64))' is not a blacklist scope (platform, account:ID or trunk:ACCOUNT-NAME)")
        }
        if case .trunk(let t) = scope, TrunkReference(t) == nil {
            throw ProvisioningError(key, "'\(t.prefix(64))' is not a trunk ID (ACCOUNT-NAME)")
        }
        return scope
    }

    /// A user name and password, both or neither. The password is returned
    /// for hashing only.
    public static func credentials(username: Any?, password: Any?, _ key: String) throws(ProvisioningError)
        -> (username: String, password: String)? {
        let uk = key.isEmpty ? "username" : "\(key).username", pk = key.isEmpty ? "password" : "\(key).password"
        let u = try optionalString(username, uk)
        let p = try optionalString(password, pk)
        switch (u, p) {
        case (nil, nil): return nil
        case (let u?, let p?):
            guard !u.contains(where: { $0 == "\"" || $0 == ":" || $0.isWhitespace || $0.isNewline }) else {
                throw ProvisioningError(uk, "must not contain spaces, quotes or ':'")
            }
            guard p.count >= 8 else { throw ProvisioningError(pk, "must be at least 8 characters") }
            return (u, p)
        case (nil, _?): throw ProvisioningError(uk, "is required with a password")
        case (_?, nil): throw ProvisioningError(pk, "is required with a username")
        }
    }

    // MARK: SIMs

    /// An ICCID: 19 or 20 digits with a Luhn check digit. A bare YAML/JSON
    /// number is accepted only when it is exact (20 digits do not fit).
    public static func iccid(_ v: Any?, _ key: String) throws(ProvisioningError) -> ICCID {
        guard let v, !(v is NSNull) else { throw ProvisioningError(key, "is required") }
        let text: String
        if let s = v as? String { text = s } else if let i = v as? Int, !(v is Bool) { text = String(i) } else {
            throw ProvisioningError(key, "write the ICCID as a string, e.g. \"8944101234567890128\"")
        }
        do { return try ICCID(text) } catch { throw ProvisioningError(key, error.description) }
    }

    /// The customer's SIP server: a domain name (resolved per RFC 3263), an
    /// IPv4 address or a bracketed IPv6 address, with an optional port.
    public static func sipHostname(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        let problem = "'\(s.prefix(64))' is not a host name (sip.example.com, 192.0.2.1 or [2001:db8::1], optionally with :port)"
        guard s.utf8.count <= 260 else { throw ProvisioningError(key, problem) }
        var host = Substring(s)
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw ProvisioningError(key, problem) }
            host = s[s.index(after: s.startIndex)..<close]
            guard !host.contains("/"), host.contains(":"), IPBlock(String(host)) != nil else { throw ProvisioningError(key, problem) }
            let rest = s[s.index(after: close)...]
            if !rest.isEmpty { try port(rest, s, key, problem) }
            return s
        }
        if let colon = s.firstIndex(of: ":") {
            host = s[..<colon]
            try port(s[colon...], s, key, problem)
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard !host.isEmpty, host.utf8.count <= 253, labels.allSatisfy({ label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }) else { throw ProvisioningError(key, problem) }
        // All-numeric labels must make a valid IPv4 address (no 300.1.1.1).
        if labels.allSatisfy({ $0.allSatisfy(\.isNumber) }), IPBlock(String(host)) == nil { throw ProvisioningError(key, problem) }
        return s
    }

    private static func port(_ rest: Substring, _ s: String, _ key: String, _ problem: String) throws(ProvisioningError) {
        guard rest.first == ":", let p = Int(rest.dropFirst()), (1...65535).contains(p), rest.dropFirst().allSatisfy(\.isNumber) else {
            throw ProvisioningError(key, problem)
        }
    }

    /// A SIP user name for digest authentication.
    public static func sipUsername(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        let refused = s.unicodeScalars.contains { scalar in
            scalar.value <= 0x20 || scalar.value == 0x7F || "\"':@<>".unicodeScalars.contains(scalar) || scalar.properties.isWhitespace
        }
        guard s.count <= 128, !refused else {
            throw ProvisioningError(key, "must be 1–128 characters without spaces, quotes, ':', '@', '<' or '>'")
        }
        return s
    }

    /// A SIM's SIP password (the customer's server's, so any characters but
    /// control characters). Never echoed in an error.
    public static func simPassword(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        guard let v, !(v is NSNull) else { throw ProvisioningError(key, "is required") }
        guard let s = v as? String, !s.isEmpty else { throw ProvisioningError(key, "must be a non-empty string") }
        guard s.count <= 128, !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw ProvisioningError(key, "must be 1–128 characters without control characters")
        }
        return s
    }

    /// An absolute http or https URL with a host.
    public static func webhookURL(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        guard s.utf8.count <= 2048, let c = URLComponents(string: s), let scheme = c.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = c.host, !host.isEmpty, c.user == nil, c.password == nil else {
            throw ProvisioningError(key, "'\(s.prefix(64))' is not an http(s) URL such as https://example.com/texts (credentials in the URL are not allowed)")
        }
        return s
    }

    /// A number in international form, digits only (a leading '+' is dropped): E.164, 6–15 digits.
    public static func phoneNumber(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        let digits = s.hasPrefix("+") ? String(s.dropFirst()) : s
        guard (6...15).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }), digits.first != "0" else {
            throw ProvisioningError(key, "'\(s.prefix(64))' is not a number in international form such as 447700900123 (6–15 digits, optional leading +)")
        }
        return digits
    }

    /// Where a SIM's texts go: "webhook" or "linked_number".
    public static func textsOut(_ v: Any?, _ key: String) throws(ProvisioningError) -> SIMTextsOut {
        let s = try string(v, key)
        guard let out = SIMTextsOut(rawValue: s) else {
            throw ProvisioningError(key, "'\(s.prefix(40))' is not where texts can go: \"webhook\" or \"linked_number\"")
        }
        return out
    }

    /// The network name shown on the handset.
    public static func operatorName(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        guard s.count <= 64, !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw ProvisioningError(key, "must be 1–64 characters without control characters")
        }
        return s
    }

    public static func rate(_ v: Any?, _ key: String) throws(ProvisioningError) -> RateLimitSetting? {
        if isNull(v) { return nil }
        let m = try mapping(v as Any, key)
        try onlyKnownKeys(m, ["calls", "seconds"], key)
        return RateLimitSetting(calls: try integer(m["calls"], "\(key).calls", 0...1_000_000),
                                seconds: try integer(m["seconds"], "\(key).seconds", 1...86_400))
    }

    /// `limits` of an account (`account: true`, may have `low_balance`) or a trunk.
    public static func limits(_ v: Any?, _ key: String, account: Bool) throws(ProvisioningError) -> CallLimits {
        if isNull(v) { return CallLimits() }
        let m = try mapping(v as Any, key)
        try onlyKnownKeys(m, account ? ["call_types", "channels", "low_balance", "rate"] : ["call_types", "channels", "rate"], key)
        var limits = CallLimits()
        if !isNull(m["channels"]) { limits.channels = try integer(m["channels"], "\(key).channels", 0...1_000_000) }
        limits.rate = try rate(m["rate"], "\(key).rate")
        if !isNull(m["call_types"]) {
            let types = try mapping(m["call_types"] as Any, "\(key).call_types")
            var out: [String: CallTypeLimits] = [:]
            for (name, value) in types {
                let tk = "\(key).call_types.\(name)"
                guard !name.isEmpty, name.count <= 32, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                    throw ProvisioningError(tk, "call type names are 1–32 letters, digits or '_'")
                }
                let t = try mapping(value, tk)
                try onlyKnownKeys(t, ["channels", "rate"], tk)
                out[name] = CallTypeLimits(
                    channels: isNull(t["channels"]) ? nil : try integer(t["channels"], "\(tk).channels", 0...1_000_000),
                    rate: try rate(t["rate"], "\(tk).rate"))
            }
            if !out.isEmpty { limits.callTypes = out }
        }
        if account, !isNull(m["low_balance"]) {
            let lk = "\(key).low_balance"
            let l = try mapping(m["low_balance"] as Any, lk)
            try onlyKnownKeys(l, ["below", "channels", "rate"], lk)
            let below = try money(l["below"], "\(lk).below")
            limits.lowBalance = LowBalanceLimits(
                below: "\(below)",
                channels: isNull(l["channels"]) ? nil : try integer(l["channels"], "\(lk).channels", 0...1_000_000),
                rate: try rate(l["rate"], "\(lk).rate"))
        }
        return limits
    }

    /// A rate deck's `currency` and `rates` from a mapping.
    public static func rateDeck(name: String, _ d: [String: Any], _ key: String) throws(ProvisioningError) -> RateDeck {
        let currency = try currency(d["currency"], key.isEmpty ? "currency" : "\(key).currency")
        let ratesKey = key.isEmpty ? "rates" : "\(key).rates"
        var rates: [Rate] = []
        for (j, r) in try list(d["rates"], ratesKey).enumerated() {
            let rk = "\(ratesKey)[\(j)]"
            let m = try mapping(r, rk)
            try onlyKnownKeys(m, ["connection", "destination", "increments", "per_minute", "prefix"], rk)
            let prefix = try string(m["prefix"], "\(rk).prefix")
            let destination = try optionalString(m["destination"], "\(rk).destination") ?? ""
            let connection = try money(isNull(m["connection"]) ? "0" : m["connection"], "\(rk).connection")
            let perMinute = try money(m["per_minute"], "\(rk).per_minute")
            let incrementsText = try string(isNull(m["increments"]) ? "60/60" : m["increments"], "\(rk).increments")
            let increments: BillingIncrements
            do { increments = try BillingIncrements(incrementsText) } catch { throw ProvisioningError("\(rk).increments", error.description) }
            do {
                rates.append(try Rate(prefix: prefix, destination: destination, connectionCharge: connection, perMinute: perMinute,
                                      increments: increments))
            } catch {
                throw ProvisioningError("\(rk).prefix", error.description)
            }
        }
        do { return try RateDeck(name: name, currency: currency, rates: rates) } catch {
            throw ProvisioningError(ratesKey, error.description)
        }
    }
}
