import Foundation
import Provisioning
import Rating
import SIMs
import SIPAuth
import Store
import Testing
import TestSupport

let provisioningYAML = """
    rate_decks:
      - name: default
        currency: GBP
        rates:
          - { prefix: "44", destination: UK, per_minute: "0.01" }
          - { prefix: "447", destination: UK mobile, connection: "0.005", per_minute: "0.05", increments: "1/1" }
    accounts:
      - id: "920700"
        name: Acme
        currency: GBP
        balance: "25.00"
        credit_limit: "10"
        cli_policy: warn
        rate_deck: default
      - { id: "920701", name: Other, currency: EUR }
    """

extension StoreTests {
    @Test(arguments: StoreBackend.allCases)
    func importIsIdempotentAndUpdatesWhatChanged(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        let file = try ProvisioningFile(yaml: provisioningYAML)
        let first = try await file.apply(to: store)
        #expect(first.accountsCreated == 2 && first.ratesAdded == 2)
        let again = try await file.apply(to: store)
        #expect(!again.changed)
        #expect(again.accountsUnchanged == 2)

        let deck = try #require(try await store.rateDeck(forAccount: "920700"))
        #expect(deck.rate(for: "447700900123")?.destination == "UK mobile")
        #expect(deck.rate(for: "447700900123")?.increments == BillingIncrements.perSecond)
        #expect(try await store.rateDeck(forAccount: "920701")?.name == "default")  // the default deck
        #expect(try await store.account(id: "920700")?.cliPolicy == .warn)

        // A changed rate and a spent balance: re-importing updates the rate, keeps the balance.
        _ = try await store.adjustBalance(accountID: "920700", by: -5)
        let changed = try ProvisioningFile(yaml: provisioningYAML.replacingOccurrences(of: "per_minute: \"0.01\"", with: "per_minute: \"0.012\""))
        let third = try await changed.apply(to: store)
        #expect(third.ratesUpdated == 1 && third.ratesAdded == 0 && third.accountsUnchanged == 2)
        #expect(try await store.rateDeck(named: "default")?.rate(for: "441632960000")?.perMinute == parseMoney("0.012"))
        #expect(try await store.account(id: "920700")?.balance == 20)
        try await store.close()
    }

    @Test func errorsNameTheField() {
        func error(_ yaml: String) -> ProvisioningError? {
            do { _ = try ProvisioningFile(yaml: yaml); return nil } catch { return error }
        }
        #expect(error("accounts:\n  - { id: \"1\", name: A, currency: pounds }\n") == ProvisioningError("accounts[0].currency", "'pounds' is not a currency code such as GBP"))
        #expect(error("accounts:\n  - { id: \"1\", name: A, currency: GBP, balance: 1.5 }\n") == ProvisioningError("accounts[0].balance", "write amounts as strings, e.g. \"0.0125\""))
        #expect(error("rate_decks:\n  - { name: d, currency: GBP, rates: [ { prefix: \"+44\", per_minute: \"1\" } ] }\n")
                == ProvisioningError("rate_decks[0].rates[0].prefix", "rate deck prefix '+44' must be 1–20 digits"))
        #expect(error("rate_decks:\n  - { name: d, currency: GBP, rates: [ { prefix: \"44\" } ] }\n") == ProvisioningError("rate_decks[0].rates[0].per_minute", "is required"))
        #expect(error("trunk: []\n") == ProvisioningError("trunk", "unknown key (known: accounts, blacklists, rate_decks, sims, trunks)"))
        #expect(error("trunks:\n  - { account: \"1\", name: L1, source_addresses: [192.0.2.1, 10.0.0.300] }\n")
                == ProvisioningError("trunks[0].source_addresses[1]", "'10.0.0.300' is not an IP address or CIDR block"))
        #expect(error("trunks:\n  - { account: \"1\", name: L1, username: u1 }\n") == ProvisioningError("trunks[0].password", "is required with a username"))
        #expect(error("trunks:\n  - { account: \"1\", name: L1, password: longenough }\n") == ProvisioningError("trunks[0].username", "is required with a password"))
        #expect(error("trunks:\n  - { account: \"1\", name: \"L 1\" }\n") == ProvisioningError("trunks[0].name", "'L 1' is not a trunk name (1–64 letters, digits, '_' or '-')"))
        #expect(error("trunks:\n  - { account: \"1\", name: L1, limits: { low_balance: { below: \"1\" } } }\n")
                == ProvisioningError("trunks[0].limits.low_balance", "unknown key (known: call_types, channels, rate)"))
        #expect(error("accounts:\n  - { id: \"1\", name: A, currency: GBP, limits: { rate: { calls: 5 } } }\n")
                == ProvisioningError("accounts[0].limits.rate.seconds", "is required"))
        #expect(error("accounts:\n  - { id: \"1\", name: A, currency: GBP, limits: { call_types: { international: { channels: -1 } } } }\n")
                == ProvisioningError("accounts[0].limits.call_types.international.channels", "must be 0…1000000, got -1"))
        #expect(error("accounts:\n  - { id: \"1\", name: A, currency: GBP, limits: { low_balance: { below: 5.5 } } }\n")
                == ProvisioningError("accounts[0].limits.low_balance.below", "write amounts as strings, e.g. \"0.0125\""))
        #expect(error("accounts:\n  - { id: \"1\", name: A, currency: GBP, credit: \"5\" }\n")
                == ProvisioningError("accounts[0].credit", "unknown key (known: balance, cli_policy, credit_limit, currency, id, limits, name, rate_deck)"))
        #expect(error("blacklists:\n  - { scope: everyone, prefixes: [\"4490\"] }\n")
                == ProvisioningError("blacklists[0].scope", "'everyone' is not a blacklist scope (platform, account:ID or trunk:ACCOUNT-NAME)"))
        #expect(error("blacklists:\n  - { scope: platform, prefixes: [\"4490\", \"44-90\"] }\n")
                == ProvisioningError("blacklists[0].prefixes[1]", "'44-90' is not a number prefix (1–20 digits, optional leading +)"))
        #expect(error("blacklists:\n  - { scope: platform }\n") == ProvisioningError("blacklists[0].prefixes", "is required (a list of number prefixes; [] for none)"))
        #expect(error("{\"accounts\": [{\"id\": \"1\", \"name\": \"A\", \"currency\": \"GBP\"}]}") == nil)  // JSON works too
    }
}

let trunkYAML = """
    accounts:
      - id: "920700"
        name: Acme
        currency: GBP
        limits:
          channels: 10
          rate: { calls: 5, seconds: 1 }
          call_types: { international: { channels: 2, rate: { calls: 1, seconds: 10 } } }
          low_balance: { below: "5.00", channels: 1, rate: { calls: 1, seconds: 60 } }
    trunks:
      - account: "920700"
        name: L001
        source_addresses: [192.0.2.0/24, "2001:db8::1"]
        username: acme-l001
        password: correct horse battery
        limits: { channels: 4, rate: { calls: 2, seconds: 1 } }
      - { account: "920700", name: L002, source_addresses: [198.51.100.7] }
    blacklists:
      - { scope: platform, prefixes: ["+4490", "4487"] }
      - { scope: "account:920700", prefixes: ["44"] }
      - { scope: "trunk:920700-L002", prefixes: ["1900"] }
    """

extension StoreTests {
    @Test(arguments: StoreBackend.allCases)
    func trunksLimitsAndBlacklistsImportIdempotently(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        let file = try ProvisioningFile(yaml: trunkYAML)
        let first = try await file.apply(to: store, realm: "sip.example.net")
        #expect(first.accountsCreated == 1 && first.trunksCreated == 2 && first.blacklistPrefixesAdded == 4 && first.changed)
        let again = try await file.apply(to: store, realm: "sip.example.net")
        #expect(!again.changed, "re-importing the same file changed something: \(again)")
        #expect(again.trunksUnchanged == 2 && again.accountsUnchanged == 1)

        let t = try #require(try await store.trunk(id: "920700-L001"))
        #expect(t.sourceAddresses == ["192.0.2.0/24", "2001:db8::1"])
        #expect(t.username == "acme-l001" && t.realm == "sip.example.net")
        // Only the digests are kept, and they are the ones a digest server checks against.
        #expect(t.ha1MD5 == DigestComputation.ha1(algorithm: .md5, username: "acme-l001", realm: "sip.example.net", password: "correct horse battery"))
        #expect(t.ha1SHA256 == DigestComputation.ha1(algorithm: .sha256, username: "acme-l001", realm: "sip.example.net", password: "correct horse battery"))
        #expect(t.limits == CallLimits(channels: 4, rate: RateLimitSetting(calls: 2, seconds: 1)))
        #expect(try await store.trunk(id: "920700-L002")?.username == nil)

        let limits = try await store.limits(accountID: "920700")
        #expect(limits.channels == 10 && limits.rate == RateLimitSetting(calls: 5, seconds: 1))
        #expect(limits.callTypes?["international"] == CallTypeLimits(channels: 2, rate: RateLimitSetting(calls: 1, seconds: 10)))
        #expect(limits.lowBalance?.threshold == m("5") && limits.lowBalance?.channels == 1)

        let lists = try await store.allBlacklists()
        #expect(lists[.platform]?.sorted() == ["4487", "4490"])
        #expect(lists[.account("920700")] == ["44"] && lists[.trunk("920700-L002")] == ["1900"])

        // A new password, another realm, a changed limit, a shorter blacklist: each is an update.
        let changed = try ProvisioningFile(yaml: trunkYAML
            .replacingOccurrences(of: "correct horse battery", with: "another secret")
            .replacingOccurrences(of: "channels: 10", with: "channels: 12")
            .replacingOccurrences(of: "[\"+4490\", \"4487\"]", with: "[\"4490\"]"))
        let third = try await changed.apply(to: store, realm: "sip.example.net")
        #expect(third.trunksUpdated == 1 && third.trunksUnchanged == 1 && third.accountsUpdated == 1)
        #expect(third.blacklistPrefixesRemoved == 1 && third.blacklistPrefixesAdded == 0)
        #expect(try await store.trunk(id: "920700-L001")?.ha1MD5
                == DigestComputation.ha1(algorithm: .md5, username: "acme-l001", realm: "sip.example.net", password: "another secret"))
        let otherRealm = try await changed.apply(to: store)  // "switchboard"
        #expect(otherRealm.trunksUpdated == 1)
        #expect(try await store.trunk(id: "920700-L001")?.realm == "switchboard")
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func applyErrorsNameTheEntry(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        func applyError(_ yaml: String) async throws -> ProvisioningError? {
            do { _ = try await ProvisioningFile(yaml: yaml).apply(to: store); return nil } catch let e as ProvisioningError { return e }
        }
        #expect(try await applyError("trunks:\n  - { account: \"404\", name: L1 }\n")
                == ProvisioningError("trunks[0].account", "account '404' does not exist (define it under accounts)"))
        #expect(try await applyError("blacklists:\n  - { scope: \"trunk:1-L9\", prefixes: [] }\n")
                == ProvisioningError("blacklists[0].scope", "trunk '1-L9' does not exist"))
        #expect(try await applyError("accounts:\n  - { id: \"1\", name: A, currency: GBP, rate_deck: nope }\n")
                == ProvisioningError("accounts[0].rate_deck", "rate deck 'nope' does not exist (define it under rate_decks)"))
        let taken = "accounts:\n  - { id: \"1\", name: A, currency: GBP }\ntrunks:\n  - { account: \"1\", name: L1, username: shared, password: password1 }\n"
        #expect(try await applyError(taken) == nil)
        #expect(try await applyError(taken.replacingOccurrences(of: "name: L1", with: "name: L2"))
                == ProvisioningError("trunks[0].username", "user name 'shared' is already used by trunk 1-L1"))
        try await store.close()
    }
}

let simYAML = """
    accounts:
      - { id: "920700", name: Acme, currency: GBP }
      - { id: "920701", name: Other, currency: GBP }
    sims:
      - iccid: "8944101234567890128"
        account: "920700"
        sip_hostname: pbx.acme.example
        username: sim0128
        password: "first secret"
        webhook_url: https://acme.example/texts
        linked_number: "+447700900123"
        operator_name: Acme Mobile
        call_rate: "0.015"
        text_rate: "0.04"
        texts_out: linked_number
      - { iccid: 89441012345678901237, account: "920701", sip_hostname: "192.0.2.10:5080", username: sim1237, password: p }
    """

extension StoreTests {
    @Test(arguments: StoreBackend.allCases)
    func simsImportIdempotentlyWithEncryptedPasswords(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        let file = try ProvisioningFile(yaml: simYAML)
        let first = try await file.apply(to: store, cipher: testCipher)
        #expect(first.simsCreated == 2 && first.accountsCreated == 2)
        #expect(first.description.hasSuffix("sims: 2 created, 0 updated, 0 unchanged"))
        // GCM ciphertexts differ every time: the comparison is by the decrypted password.
        let again = try await file.apply(to: store, cipher: testCipher)
        #expect(!again.changed, "re-importing the same file changed something: \(again)")
        #expect(again.simsUnchanged == 2)

        let sim = try #require(try await store.sim(iccid: try iccid(TestICCID.a)))
        #expect(sim.accountID == "920700" && sim.sipHostname == "pbx.acme.example" && sim.username == "sim0128")
        #expect(sim.webhookURL == "https://acme.example/texts" && sim.linkedNumber == "447700900123" && sim.operatorName == "Acme Mobile")
        #expect(sim.callRate == m("0.015") && sim.textRate == m("0.04") && sim.textsOut == .linkedNumber)
        #expect(!sim.passwordCiphertext.contains("first secret"))
        #expect(try testCipher.decrypt(sim.passwordCiphertext, iccid: sim.iccid) == "first secret")
        let other = try #require(try await store.sim(iccid: try iccid(TestICCID.c)))  // a bare YAML number that fits exactly
        #expect(other.callRate == nil && other.webhookURL == nil && other.sipHostname == "192.0.2.10:5080")
        #expect(other.textRate == nil && other.textsOut == .webhook)

        // A new password, or a new host: an update; the other SIM stays unchanged.
        let changed = try ProvisioningFile(yaml: simYAML.replacingOccurrences(of: "first secret", with: "second secret"))
        let third = try await changed.apply(to: store, cipher: testCipher)
        #expect(third.simsUpdated == 1 && third.simsUnchanged == 1)
        let after = try #require(try await store.sim(iccid: try iccid(TestICCID.a)))
        #expect(try testCipher.decrypt(after.passwordCiphertext, iccid: after.iccid) == "second secret")

        // Another key: the stored password does not decrypt, so it is re-encrypted (an update), not kept.
        let otherKey = try SIMPasswordCipher(base64Key: SIMPasswordCipher.generateBase64Key())
        #expect(try await changed.apply(to: store, cipher: otherKey).simsUpdated == 2)
        #expect(try await changed.apply(to: store, cipher: otherKey).simsUnchanged == 2)

        // SIMs need the cipher.
        await #expect(throws: ProvisioningError("sims", "storing SIM passwords needs the node's SIM password key (sims.password_key)")) {
            _ = try await file.apply(to: store)
        }
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func simApplyErrorsNameTheEntry(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        let yaml = "sims:\n  - { iccid: \"8944101234567890128\", account: \"404\", sip_hostname: h.example, username: u, password: p }\n"
        await #expect(throws: ProvisioningError("sims[0].account", "account '404' does not exist (define it under accounts)")) {
            _ = try await ProvisioningFile(yaml: yaml).apply(to: store, cipher: testCipher)
        }
        #expect(try await store.sims().isEmpty)
        try await store.close()
    }

    @Test func simErrorsNameTheField() {
        func error(_ fields: String) -> ProvisioningError? {
            let yaml = "sims:\n  - { \(fields) }\n"
            do { _ = try ProvisioningFile(yaml: yaml); return nil } catch { return error }
        }
        let ok = "account: \"1\", sip_hostname: sip.example.com, username: u1, password: secret"
        #expect(error("iccid: \"8944101234567890128\", \(ok)") == nil)
        #expect(error("iccid: \"8944101234567890127\", \(ok)")
                == ProvisioningError("sims[0].iccid", "the ICCID's check digit is 7 but its Luhn check digit is 8; check for a mistyped digit"))
        #expect(error("iccid: \"894410123456789012\", \(ok)") == ProvisioningError("sims[0].iccid", "an ICCID has 19 or 20 digits, not 18"))
        #expect(error("iccid: 8.9441012345678901e19, \(ok)")
                == ProvisioningError("sims[0].iccid", "write the ICCID as a string, e.g. \"8944101234567890128\""))
        #expect(error(ok) == ProvisioningError("sims[0].iccid", "is required"))
        let id = "iccid: \"8944101234567890128\""
        #expect(error("\(id), account: \"1\", sip_hostname: h.example, username: u1") == ProvisioningError("sims[0].password", "is required"))
        #expect(error("\(id), account: \"1\", username: u1, password: p") == ProvisioningError("sims[0].sip_hostname", "is required"))
        for bad in ["\"sip example.com\"", "\"sip..example.com\"", "\"h.example:0\"", "\"h.example:99999\"", "\"300.1.1.1\"", "\"[2001:db8::1\"",
                    "\"-bad.example\""] {
            #expect(error("\(id), account: \"1\", sip_hostname: \(bad), username: u1, password: p")?.key == "sims[0].sip_hostname", "\(bad)")
        }
        for good in ["sip.example.com", "\"sip.example.com:5080\"", "192.0.2.1", "\"[2001:db8::1]:5060\"", "\"[2001:db8::1]\""] {
            #expect(error("\(id), account: \"1\", sip_hostname: \(good), username: u1, password: p") == nil, "\(good)")
        }
        #expect(error("\(id), account: \"1\", sip_hostname: h.example, username: \"a b\", password: p")?.key == "sims[0].username")
        #expect(error("\(id), account: \"1\", sip_hostname: h.example, username: \"a@b\", password: p")?.key == "sims[0].username")
        #expect(error("\(id), \(ok), webhook_url: ftp://x.example/") == ProvisioningError(
            "sims[0].webhook_url", "'ftp://x.example/' is not an http(s) URL such as https://example.com/texts (credentials in the URL are not allowed)"))
        #expect(error("\(id), \(ok), webhook_url: \"https://u:p@x.example/\"")?.key == "sims[0].webhook_url")
        #expect(error("\(id), \(ok), linked_number: \"07700900123\"")?.key == "sims[0].linked_number")
        #expect(error("\(id), \(ok), call_rate: 0.01") == ProvisioningError("sims[0].call_rate", "write amounts as strings, e.g. \"0.0125\""))
        #expect(error("\(id), \(ok), call_rate: \"0.0000001\"") == ProvisioningError("sims[0].call_rate", "'0.0000001' has more than 6 decimal places"))
        #expect(error("\(id), \(ok), colour: red")?.key == "sims[0].colour")
        #expect(error("\(id), \(ok), texts_out: email") == ProvisioningError(
            "sims[0].texts_out", "'email' is not where texts can go: \"webhook\" or \"linked_number\""))
        #expect(error("\(id), \(ok), text_rate: \"-1\"")?.key == "sims[0].text_rate")
        #expect(error("\(id), \(ok) }\n  - { \(id), \(ok)") == ProvisioningError("sims[1].iccid", "SIM 8944101234567890128 appears twice"))
        // The password is never echoed in an error.
        let control = error("\(id), account: \"1\", sip_hostname: h.example, username: u1, password: \"top\\tsecret\"")
        #expect(control?.key == "sims[0].password" && control?.problem.contains("secret") == false)
    }
}
