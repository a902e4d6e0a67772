import Foundation
import Rating
import Store
import Testing
import TestSupport

extension StoreTests {
    @Test(arguments: StoreBackend.allCases)
    func trunksRoundTripAndAreCheckedOnTheWayIn(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("10"), creditLimit: 0))
        let limits = CallLimits(channels: 4, rate: RateLimitSetting(calls: 10, seconds: 60),
                                callTypes: ["international": CallTypeLimits(channels: 1)])
        let t = Trunk(accountID: "920700", name: "L001", sourceAddresses: ["192.0.2.0/24", "2001:db8::1"], username: "acme-l001",
                      realm: "switchboard", ha1MD5: "0123", ha1SHA256: "4567", limits: limits)
        try await store.putTrunk(t)
        #expect(try await store.trunk(id: "920700-L001") == t)
        var changed = t
        changed.sourceAddresses = ["198.51.100.7"]
        try await store.putTrunk(changed)  // idempotent update, not a second row
        #expect(try await store.trunks(accountID: "920700") == [changed])
        // Unknown account, bad ACL entry, bad name, username without a password: refused, naming the field.
        await #expect(throws: StoreError.notFound("account 999")) { try await store.putTrunk(Trunk(accountID: "999", name: "L1")) }
        await #expect(throws: StoreError.invalid(field: "source_addresses", reason: "'10.0.0.300' is not an IP address or CIDR block")) {
            try await store.putTrunk(Trunk(accountID: "920700", name: "L2", sourceAddresses: ["10.0.0.300"]))
        }
        await #expect(throws: StoreError.self) { try await store.putTrunk(Trunk(accountID: "920700", name: "bad name")) }
        await #expect(throws: StoreError.self) { try await store.putTrunk(Trunk(accountID: "920700", name: "L3", username: "u")) }
        #expect(try await store.deleteTrunk(id: "920700-L001"))
        #expect(try await store.trunk(id: "920700-L001") == nil)

        try await store.setLimits(accountID: "920700", CallLimits(channels: 2, lowBalance: LowBalanceLimits(below: "5.00", channels: 1)))
        #expect(try await store.limits(accountID: "920700").lowBalance?.threshold == m("5"))
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func blacklistsAndAPIKeys(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("10"), creditLimit: 0))
        #expect(try await store.setBlacklist(.platform, prefixes: ["+4490", "4487"]) == (2, 0))
        #expect(try await store.setBlacklist(.platform, prefixes: ["4490", "4487"]) == (0, 0))  // "+" is not part of the prefix
        #expect(try await store.setBlacklist(.account("920700"), prefixes: ["44"]) == (1, 0))
        #expect(try await store.setBlacklist(.platform, prefixes: ["4490"]) == (0, 1))
        let all = try await store.allBlacklists()
        #expect(all[.platform] == ["4490"] && all[.account("920700")] == ["44"])
        await #expect(throws: StoreError.self) { try await store.setBlacklist(.platform, prefixes: ["44x"]) }

        try await store.putAPIKey(id: "k1", secretHash: "abc", accountID: "920700", label: "billing", now: 1)
        let k = try #require(try await store.apiKey(id: "k1"))
        #expect(k.secretHash == "abc" && k.accountID == "920700" && k.label == "billing")
        #expect(try await store.deleteAPIKey(id: "k1"))
        #expect(try await store.apiKey(id: "k1") == nil)
        try await store.close()
    }
}

@Suite struct IPBlockTests {
    @Test func matchesAddressesInsideTheBlockOnly() throws {
        let v4 = try #require(IPBlock("192.0.2.0/25"))
        #expect(v4.contains("192.0.2.1") && v4.contains("192.0.2.127"))
        #expect(!v4.contains("192.0.2.128") && !v4.contains("192.0.3.1") && !v4.contains("nonsense"))
        #expect(v4.contains("::ffff:192.0.2.9"))  // IPv4-mapped source on a dual-stack socket
        let host = try #require(IPBlock("198.51.100.7"))
        #expect(host.contains("198.51.100.7") && !host.contains("198.51.100.8"))
        let v6 = try #require(IPBlock("2001:db8::/32"))
        #expect(v6.contains("2001:db8:1::5") && !v6.contains("2001:db9::1") && !v6.contains("192.0.2.1"))
        #expect(IPBlock("10.0.0.0/33") == nil && IPBlock("10.0.0") == nil && IPBlock("256.1.1.1") == nil && IPBlock("1.2.3.4/x") == nil)
    }
}
