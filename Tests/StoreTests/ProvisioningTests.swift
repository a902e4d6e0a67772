import Foundation
import Provisioning
import Rating
import Store
import Testing

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

// Part of the serialized store suite: the PostgreSQL tests share one database.
extension StoreTests {
    @Test(arguments: Backend.allCases)
    func importIsIdempotentAndUpdatesWhatChanged(backend: Backend) async throws {
        let store = try await openStore(backend)
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
                == ProvisioningError("rate_decks[0].rates[0]", "rate deck prefix '+44' must be 1–20 digits"))
        #expect(error("rate_decks:\n  - { name: d, currency: GBP, rates: [ { prefix: \"44\" } ] }\n") == ProvisioningError("rate_decks[0].rates[0].per_minute", "is required"))
        #expect(error("trunks: []\n") == ProvisioningError("trunks", "unknown key (known: accounts, rate_decks)"))
        #expect(error("{\"accounts\": [{\"id\": \"1\", \"name\": \"A\", \"currency\": \"GBP\"}]}") == nil)  // JSON works too
    }
}
