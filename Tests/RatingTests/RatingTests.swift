import Foundation
import Rating
import Testing

func money(_ s: String) -> Money { parseMoney(s) ?? -1 }

@Suite struct RatingTests {
    @Test func billingIncrements() throws {
        let perMinute = try BillingIncrements("60/60"), perSecond = try BillingIncrements("1/1"), thirtySix = try BillingIncrements("30/6")
        #expect([0, 1, 59, 60, 61, 121].map(perMinute.billedSeconds) == [0, 60, 60, 60, 120, 180])
        #expect([0, 1, 59, 61].map(perSecond.billedSeconds) == [0, 1, 59, 61])
        #expect([1, 30, 31, 36, 37].map(thirtySix.billedSeconds) == [30, 30, 36, 36, 42])
        #expect(throws: RatingError.invalidIncrements("billing increments must look like 60/60, got '60'")) { try BillingIncrements("60") }
        #expect(throws: RatingError.invalidIncrements("billing increments must be 1…3600 seconds each, got 0/60")) { try BillingIncrements("0/60") }
    }

    @Test func moneyIsDecimal() {
        #expect(money("0.1") + money("0.2") == money("0.3"))
        #expect(parseMoney("-1") == nil && parseMoney("1e3") == nil && parseMoney("1.2.3") == nil && parseMoney("") == nil && parseMoney(".") == nil)
        #expect(parseMoney("12") == Decimal(12))
    }

    @Test func costOfACall() throws {
        let uk = try Rate(prefix: "447", destination: "UK mobile", connectionCharge: money("0.01"), perMinute: money("0.0125"),
                          increments: BillingIncrements("60/60"))
        #expect(uk.cost(forDuration: 0) == 0)  // unanswered: nothing, not even the connection charge
        #expect(uk.cost(forDuration: 1) == money("0.0225"))
        #expect(uk.cost(forDuration: 61) == money("0.035"))
        let perSecond = try Rate(prefix: "1", connectionCharge: 0, perMinute: money("0.007"), increments: BillingIncrements("1/1"))
        #expect(perSecond.cost(forDuration: 7) == money("0.000817"))  // 0.007 * 7 / 60 = 0.0008166… → 6 places
    }

    @Test func longestPrefixWins() throws {
        let deck = try RateDeck(name: "default", currency: "GBP", rates: [
            Rate(prefix: "44", destination: "UK", connectionCharge: 0, perMinute: money("0.01"), increments: .perMinute),
            Rate(prefix: "447", destination: "UK mobile", connectionCharge: 0, perMinute: money("0.05"), increments: .perMinute),
            Rate(prefix: "447700", destination: "UK drama range", connectionCharge: 0, perMinute: money("0.30"), increments: .perMinute),
        ])
        #expect(deck.rate(for: "+447700900123")?.destination == "UK drama range")
        #expect(deck.rate(for: "447912345678")?.destination == "UK mobile")
        #expect(deck.rate(for: "441632960000")?.destination == "UK")
        #expect(deck.rate(for: "33123456789") == nil)
        #expect(throws: RatingError.duplicatePrefix("44")) {
            try RateDeck(name: "x", currency: "GBP", rates: [
                Rate(prefix: "44", connectionCharge: 0, perMinute: 1, increments: .perMinute),
                Rate(prefix: "44", connectionCharge: 0, perMinute: 2, increments: .perMinute),
            ])
        }
        #expect(throws: RatingError.invalidPrefix("+44")) { try Rate(prefix: "+44", connectionCharge: 0, perMinute: 1, increments: .perMinute) }
    }

    @Test func whenTheRunningCostReachesACap() throws {
        // 0.60/min per second billing: 0.01 per second; a cap of 0.05 is reached at second 5.
        let r = try Rate(prefix: "1", connectionCharge: 0, perMinute: money("0.60"), increments: .perSecond)
        #expect(r.secondsUntilCost(reaches: money("0.05")) == 5)
        #expect(r.cost(forDuration: 5) == money("0.05") && r.cost(forDuration: 4) < money("0.05"))
        // 60/60 at 1.00/min with 0.10 connection: the 2nd minute starts at 61 s and takes the cost to 2.10.
        let m = try Rate(prefix: "1", connectionCharge: money("0.10"), perMinute: 1, increments: .perMinute)
        #expect(m.secondsUntilCost(reaches: money("1.5")) == 61)
        #expect(m.cost(forDuration: 61) >= money("1.5") && m.cost(forDuration: 60) < money("1.5"))
        #expect(m.secondsUntilCost(reaches: money("0.05")) == 0)  // the connection charge alone
        #expect(m.secondsUntilCost(reaches: money("0.50")) == 1)  // the first minute is billed at once
        let free = try Rate(prefix: "1", connectionCharge: 0, perMinute: 0, increments: .perSecond)
        #expect(free.secondsUntilCost(reaches: 1) == nil)
    }
}
