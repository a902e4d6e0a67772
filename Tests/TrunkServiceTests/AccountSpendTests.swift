import Foundation
import Rating
import Store
import Testing
import TrunkService

/// T10 across an account's calls (pure: no sockets, explicit times).
@Suite struct AccountSpendTests {
    /// 0.01 to connect, 0.01 a second (0.60 a minute, 1/1): with 0.05 available one
    /// call alone lasts 4 s; two answered together have spent 0.05 once they are 2 s and 1 s in.
    @Test func callsAreClearedWhenTogetherTheyUseUpWhatTheAccountHas() throws {
        let r = try rate(connection: "0.01", perMinute: "0.60")
        let calls = [
            AnsweredCall(callID: "b", accountID: "920700", rate: r, answeredAt: 100),
            AnsweredCall(callID: "a", accountID: "920700", rate: r, answeredAt: 100.5),
            AnsweredCall(callID: "other", accountID: "555000", rate: r, answeredAt: 100),
        ]
        let available: (String) -> Money? = { $0 == "920700" ? m("0.05") : m("1") }
        // At 101.9: 1 s and 1 s (at least one each): 0.02 + 0.02.
        #expect(AccountSpend.exhausted(calls, available: available, now: 101.9).isEmpty)
        // At 102.1: 2 s and 1 s: 0.03 + 0.02 = 0.05 — used up; the other account is not.
        #expect(AccountSpend.exhausted(calls, available: available, now: 102.1) == ["920700": ["a", "b"]])
        // A lone call is costed too (what its account has may have dropped since it
        // started): 555000's call reaches 1.00 at 99 s.
        #expect(AccountSpend.exhausted(calls, available: available, now: 198.9)["555000"] == nil)
        #expect(AccountSpend.exhausted(calls, available: available, now: 199.0)["555000"] == ["other"])
        // More money: at 104.4, 4 s and 3 s (0.05 + 0.04); at 104.5, 4 s each (0.10).
        #expect(AccountSpend.exhausted(calls, available: { _ in m("0.10") }, now: 104.4)["920700"] == nil)
        #expect(AccountSpend.exhausted(calls, available: { _ in m("0.10") }, now: 104.5)["920700"] == ["a", "b"])
        // An account the node does not know is left alone.
        #expect(AccountSpend.exhausted(calls, available: { _ in nil }, now: 500).isEmpty)
    }

    /// The same whole seconds as a call's own cap timer: alone, with nothing
    /// changed, the call is found out of money exactly when its timer fires.
    @Test func aLoneCallIsDueWhenItsOwnTimerIs() throws {
        for (connection, perMinute, increments, balance) in [("0.01", "0.60", "1/1", "0.05"), ("0", "1.20", "60/60", "2.40"), ("0.02", "0.36", "30/6", "0.50")] {
            let r = try rate(connection: connection, perMinute: perMinute, increments: increments)
            let due = try #require(r.secondsUntilCost(reaches: m(balance)))
            let call = [AnsweredCall(callID: "c", accountID: "920700", rate: r, answeredAt: 1000)]
            #expect(AccountSpend.exhausted(call, available: { _ in m(balance) }, now: 1000 + Double(due) - 0.01).isEmpty, "\(increments)")
            #expect(AccountSpend.exhausted(call, available: { _ in m(balance) }, now: 1000 + Double(due)) == ["920700": ["c"]], "\(increments)")
        }
    }

    @Test func perMinuteIncrementsCountWholeFromTheirStart() throws {
        let perMinute = try rate(connection: "0", perMinute: "1.20", increments: "60/60")
        let calls = (0..<3).map { AnsweredCall(callID: "c\($0)", accountID: "920700", rate: perMinute, answeredAt: 0) }
        // Three calls each billed a first minute (1.20) as soon as answered: 3.60.
        #expect(AccountSpend.exhausted(calls, available: { _ in m("3.60") }, now: 0.5).count == 1)
        #expect(AccountSpend.exhausted(calls, available: { _ in m("3.61") }, now: 60.9).isEmpty)
        #expect(AccountSpend.exhausted(calls, available: { _ in m("3.61") }, now: 61).count == 1)  // second minutes started
    }
}
