import CallControl
import Rating
import Store

/// The call path's in-memory copy of what the store says about customers:
/// accounts, trunks (by source address and by digest user name), rate decks
/// and blacklists. Reloaded every few seconds, so changes made through the
/// API or `switchboard provision` take effect without a restart, and no call
/// waits on a database read to be admitted.
public struct TrunkDirectory: Sendable {
    public var accounts: [String: Account] = [:]
    public var accountLimits: [String: CallLimits] = [:]
    public var trunks: [String: Trunk] = [:]
    var acl: [(block: IPBlock, trunk: String)] = []
    var byUsername: [String: String] = [:]
    var decks: [String: RateDeck] = [:]
    var deckOfAccount: [String: String] = [:]
    public var blacklists = Blacklists()

    public init() {}

    public static func load(from store: Store) async throws -> TrunkDirectory {
        var d = TrunkDirectory()
        for r in try await store.accountRecords() {
            d.accounts[r.account.id] = r.account
            d.accountLimits[r.account.id] = r.limits
            if let deck = r.rateDeck { d.deckOfAccount[r.account.id] = deck }
        }
        for t in try await store.trunks() { d.add(t) }
        for name in Set(d.deckOfAccount.values).union(["default"]) {
            if let deck = try await store.rateDeck(named: name) { d.decks[name] = deck }
        }
        d.blacklists = Blacklists(try await store.allBlacklists())
        return d
    }

    /// Indexes a trunk by its ACL blocks and its digest user name.
    public mutating func add(_ t: Trunk) {
        trunks[t.id] = t
        for s in t.sourceAddresses { if let b = IPBlock(s) { acl.append((b, t.id)) } }
        if let u = t.username { byUsername[u] = t.id }
    }

    /// The trunk whose ACL holds `address` (the most specific block wins).
    public func trunk(forSource address: String) -> Trunk? {
        var best: (prefix: Int, id: String)?
        for (block, id) in acl where block.contains(address) {
            if let b = best, block.prefixLength < b.prefix || (block.prefixLength == b.prefix && id >= b.id) { continue }
            best = (block.prefixLength, id)
        }
        return best.flatMap { trunks[$0.id] }
    }

    public func trunk(forUsername name: String) -> Trunk? { byUsername[name].flatMap { trunks[$0] } }

    /// The account's rate for a number: its own deck, else the "default" deck (T11).
    public func rate(account: String, number: String) -> Rate? {
        let deck = deckOfAccount[account].flatMap { decks[$0] } ?? decks["default"]
        return deck?.rate(for: number)
    }

    /// A call's cost taken off the cached balance until the next reload.
    public mutating func debit(account: String, _ amount: Money) {
        accounts[account]?.balance -= amount
    }
}
