import Foundation
import Rating
import Store
import Yams

/// What `switchboard provision FILE` imports: accounts and rate decks, from
/// YAML or JSON (JSON is YAML). Importing the same file twice changes nothing;
/// a changed entry is updated. Balances are set when an account is created
/// only — afterwards calls and top-ups move them.
public struct ProvisioningFile: Sendable {
    public var accounts: [(account: Account, rateDeck: String?)]
    public var rateDecks: [RateDeck]

    public init(yaml text: String) throws(ProvisioningError) {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw ProvisioningError("file", "not valid YAML or JSON: \(String(describing: error).prefix(200))")
        }
        guard let root = loaded as? [String: Any] else { throw ProvisioningError("file", "the top level must be a mapping") }
        for key in root.keys.sorted() where !["accounts", "rate_decks"].contains(key) {
            throw ProvisioningError(key, "unknown key (known: accounts, rate_decks)")
        }
        var decks: [RateDeck] = []
        for (i, item) in try Self.list(root["rate_decks"], "rate_decks").enumerated() {
            let key = "rate_decks[\(i)]"
            let d = try Self.mapping(item, key)
            let name = try Self.string(d["name"], "\(key).name")
            let currency = try Self.currency(d["currency"], "\(key).currency")
            var rates: [Rate] = []
            for (j, r) in try Self.list(d["rates"], "\(key).rates").enumerated() {
                let rk = "\(key).rates[\(j)]"
                let m = try Self.mapping(r, rk)
                let prefix = try Self.string(m["prefix"], "\(rk).prefix")
                do {
                    rates.append(try Rate(
                        prefix: prefix, destination: (try? Self.string(m["destination"], "")) ?? "",
                        connectionCharge: try Self.money(m["connection"] ?? "0", "\(rk).connection"),
                        perMinute: try Self.money(m["per_minute"], "\(rk).per_minute"),
                        increments: BillingIncrements(try Self.string(m["increments"] ?? "60/60", "\(rk).increments"))))
                } catch let e as RatingError {
                    throw ProvisioningError(rk, e.description)
                } catch let e as ProvisioningError {
                    throw e
                } catch {
                    throw ProvisioningError(rk, "\(error)")
                }
            }
            do { decks.append(try RateDeck(name: name, currency: currency, rates: rates)) } catch {
                throw ProvisioningError("\(key).rates", error.description)
            }
        }
        var accounts: [(Account, String?)] = []
        for (i, item) in try Self.list(root["accounts"], "accounts").enumerated() {
            let key = "accounts[\(i)]"
            let a = try Self.mapping(item, key)
            let policyText = try Self.string(a["cli_policy"] ?? "reject", "\(key).cli_policy")
            guard let policy = CLIPolicy(rawValue: policyText) else { throw ProvisioningError("\(key).cli_policy", "must be reject or warn") }
            let deck = try a["rate_deck"].map { v throws(ProvisioningError) in try Self.string(v, "\(key).rate_deck") }
            accounts.append((Account(
                id: try Self.string(a["id"], "\(key).id"), name: try Self.string(a["name"], "\(key).name"),
                currency: try Self.currency(a["currency"], "\(key).currency"),
                balance: try Self.money(a["balance"] ?? "0", "\(key).balance"),
                creditLimit: try Self.money(a["credit_limit"] ?? "0", "\(key).credit_limit"), cliPolicy: policy), deck))
        }
        self.accounts = accounts
        self.rateDecks = decks
    }

    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var accountsCreated = 0, accountsUpdated = 0, accountsUnchanged = 0
        public var ratesAdded = 0, ratesUpdated = 0, ratesRemoved = 0
        public var changed: Bool { accountsCreated + accountsUpdated + ratesAdded + ratesUpdated + ratesRemoved > 0 }
        public var description: String {
            "accounts: \(accountsCreated) created, \(accountsUpdated) updated, \(accountsUnchanged) unchanged; "
                + "rates: \(ratesAdded) added, \(ratesUpdated) updated, \(ratesRemoved) removed"
        }
    }

    /// Applies the file; decks first, so accounts can name them.
    public func apply(to store: Store) async throws -> Report {
        var report = Report()
        for deck in rateDecks {
            let (a, u, r) = try await store.putRateDeck(deck)
            report.ratesAdded += a; report.ratesUpdated += u; report.ratesRemoved += r
        }
        for (account, deck) in accounts {
            if let deck, try await store.rateDeck(named: deck) == nil {
                throw ProvisioningError("accounts[\(account.id)].rate_deck", "rate deck '\(deck)' does not exist")
            }
            let before = try await store.account(id: account.id)
            let beforeDeck = before == nil ? nil : try await store.rateDeckName(accountID: account.id)
            try await store.upsertAccount(account)
            try await store.setRateDeck(accountID: account.id, deck: deck)
            if let before {
                var expected = account
                expected.balance = before.balance  // never reset by provisioning
                if before == expected && beforeDeck == deck { report.accountsUnchanged += 1 } else { report.accountsUpdated += 1 }
            } else {
                report.accountsCreated += 1
            }
        }
        return report
    }

    // MARK: Field parsers

    static func list(_ v: Any?, _ key: String) throws(ProvisioningError) -> [Any] {
        guard let v else { return [] }
        guard let l = v as? [Any] else { throw ProvisioningError(key, "must be a list") }
        return l
    }

    static func mapping(_ v: Any, _ key: String) throws(ProvisioningError) -> [String: Any] {
        guard let m = v as? [String: Any] else { throw ProvisioningError(key, "must be a mapping") }
        return m
    }

    static func string(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        guard let v else { throw ProvisioningError(key, "is required") }
        if let s = v as? String, !s.isEmpty { return s }
        if let i = v as? Int { return String(i) }
        throw ProvisioningError(key, "must be a non-empty string")
    }

    static func currency(_ v: Any?, _ key: String) throws(ProvisioningError) -> String {
        let s = try string(v, key)
        guard s.count == 3, s.allSatisfy({ $0.isUppercase && $0.isLetter }) else { throw ProvisioningError(key, "'\(s)' is not a currency code such as GBP") }
        return s
    }

    /// Amounts are strings ("0.0125") so that YAML never turns them into binary floats;
    /// a bare whole number is accepted too.
    static func money(_ v: Any?, _ key: String) throws(ProvisioningError) -> Money {
        guard let v else { throw ProvisioningError(key, "is required") }
        if let i = v as? Int, i >= 0 { return Decimal(i) }
        guard let s = v as? String else { throw ProvisioningError(key, "write amounts as strings, e.g. \"0.0125\"") }
        guard let m = parseMoney(s) else { throw ProvisioningError(key, "'\(s)' is not a non-negative decimal amount") }
        return m
    }
}

public struct ProvisioningError: Error, Equatable, Sendable, CustomStringConvertible {
    public var key: String
    public var problem: String
    public init(_ key: String, _ problem: String) { self.key = key; self.problem = problem }
    public var description: String { "\(key): \(problem)" }
}
