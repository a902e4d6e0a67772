import Foundation
@testable import Rating
import Testing

/// Rating's integer path must give exactly what Decimal arithmetic gives
/// (the formula it replaced on the hot path), and fall back where it cannot.
@Suite struct ExactAmountTests {
    static func decimalCost(_ rate: Rate, _ seconds: Int) -> Money {
        guard seconds > 0 else { return 0 }
        return RatingPrecision.round(rate.connectionCharge + rate.perMinute * Decimal(rate.increments.billedSeconds(forDuration: seconds)) / 60)
    }

    static func decimalSecondsUntil(_ rate: Rate, _ cap: Money, limit: Int = 86_400) -> Int? {
        if rate.connectionCharge >= cap { return 0 }
        guard rate.perMinute > 0 else { return nil }
        var needed = (cap - rate.connectionCharge) * 60 / rate.perMinute
        var rounded = Decimal()
        NSDecimalRound(&rounded, &needed, 0, .up)
        let billedNeeded = NSDecimalNumber(decimal: rounded).intValue
        let i = rate.increments
        if billedNeeded <= i.first { return 1 > limit ? nil : 1 }
        let second = i.first + ((billedNeeded - i.first + i.next - 1) / i.next - 1) * i.next + 1
        return second <= limit ? second : nil
    }

    static let amounts = ["0", "0.01", "0.0125", "0.007", "0.6", "1", "12.5", "0.000001", "0.1234567", "3.333333333", "100000000", "0.00000000000000001"]
    static let increments = ["60/60", "1/1", "30/6", "60/1"]

    @Test func costMatchesDecimalArithmetic() throws {
        var compared = 0
        for c in Self.amounts { for p in Self.amounts { for inc in Self.increments {
            let rate = try Rate(prefix: "44", connectionCharge: money(c), perMinute: money(p), increments: BillingIncrements(inc))
            for seconds in [0, 1, 7, 29, 30, 31, 59, 60, 61, 119, 3_599, 86_400] {
                let fast = rate.cost(forDuration: seconds), reference = Self.decimalCost(rate, seconds)
                #expect(fast == reference, "connection \(c), per minute \(p), \(inc), \(seconds) s")
                #expect(fast.description == reference.description)
                compared += 1
            }
        } } }
        #expect(compared == 12 * 12 * 4 * 12)
    }

    @Test func secondsUntilCostMatchesDecimalArithmetic() throws {
        for c in Self.amounts { for p in Self.amounts { for inc in ["60/60", "1/1", "30/6"] {
            let rate = try Rate(prefix: "44", connectionCharge: money(c), perMinute: money(p), increments: BillingIncrements(inc))
            for cap in ["0", "0.01", "0.0225", "0.5", "1", "7.123456", "100000000.01"] {
                #expect(rate.secondsUntilCost(reaches: money(cap)) == Self.decimalSecondsUntil(rate, money(cap)),
                        "connection \(c), per minute \(p), \(inc), cap \(cap)")
            }
        } } }
    }

    /// Millionths (the store's unit) as Decimal rounding gives them: half up.
    @Test func millionthsMatchDecimalRounding() {
        for text in Self.amounts + ["0.0000005", "0.00000049", "0.0000015", "2.9999995", "12.345678", "922337203685.477580"] {
            var scaled = money(text) * 1_000_000, rounded = Decimal()
            NSDecimalRound(&rounded, &scaled, 0, .plain)
            #expect(exactMillionths(money(text)) == NSDecimalNumber(decimal: rounded).int64Value, "\(text)")
        }
        #expect(exactMillionths(Decimal(-1)) == nil)
        #expect(exactMillionths(money("10000000000000")) == nil)  // 10^19 millionths: past Int64
    }

    @Test func amountsThatDoNotFitUseDecimal() throws {
        #expect(ExactAmount(money("0.0125")) == ExactAmount(units: 125, scale: 4))
        #expect(ExactAmount(money("12")) == ExactAmount(units: 12, scale: 0))
        #expect(ExactAmount(Decimal(string: "1e5")!) == ExactAmount(units: 100_000, scale: 0))
        #expect(ExactAmount(money("0.0000000000000000001")) == nil)  // 19 places
        #expect(ExactAmount(money("123456789012345678901234")) == nil)
        #expect(ExactAmount(Decimal(-1)) == nil)
        // A rate with more places than fit falls back, and still rates.
        let fine = try Rate(prefix: "1", connectionCharge: money("0.0000000000000000001"), perMinute: money("0.6"), increments: .perSecond)
        #expect(fine.cost(forDuration: 60) == Self.decimalCost(fine, 60))
        #expect(fine.secondsUntilCost(reaches: money("1")) == Self.decimalSecondsUntil(fine, money("1")))
        let huge = try Rate(prefix: "1", connectionCharge: 0, perMinute: money("900000000000000"), increments: .perSecond)
        #expect(huge.cost(forDuration: 86_400) == Self.decimalCost(huge, 86_400))
    }
}
