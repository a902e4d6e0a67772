import Foundation
import Rating
import Testing
import TrunkService

/// T10 across an account's parallel calls (pure: no sockets, explicit times).
@Suite struct AccountSpendTests {
    /// 0.01 to connect, 0.01 a second (0.60 a minute, 1/1): with 0.05 available one
    /// call alone lasts 4 s; two answered together have spent 0.06 after 2 s.
    @Test func parallelCallsAreClearedWhenTogetherTheyUseUpTheBalance() throws {
        let r = try rate(connection: "0.01", perMinute: "0.60")
        let calls = [
            AccountSpend.RunningCall(callID: "b", accountID: "920700", rate: r, answeredAt: 100),
            AccountSpend.RunningCall(callID: "a", accountID: "920700", rate: r, answeredAt: 100.5),
            AccountSpend.RunningCall(callID: "other", accountID: "555000", rate: r, answeredAt: 100),
        ]
        let available: (String) -> Money? = { _ in m("0.05") }
        // At 101.2: 0.03 (2 s billed) + 0.02 (1 s) = 0.05 — used up.
        #expect(AccountSpend.exhausted(calls, available: available, now: 101.2) == ["920700": ["a", "b"]])
        // At 100.9 each has 1 s billed: 0.04 < 0.05.
        #expect(AccountSpend.exhausted(calls, available: available, now: 100.9).isEmpty)
        // A lone call (555000) is never cleared here: its own timer holds it to its exact cap.
        #expect(AccountSpend.exhausted(calls, available: available, now: 200)["555000"] == nil)
        // More money: at 103.4, 4 s and 3 s billed (0.05 + 0.04); at 103.6, 4 s each (0.10).
        #expect(AccountSpend.exhausted(calls, available: { _ in m("0.10") }, now: 103.4).isEmpty)
        #expect(AccountSpend.exhausted(calls, available: { _ in m("0.10") }, now: 103.6) == ["920700": ["a", "b"]])
        // An account the node does not know is left alone.
        #expect(AccountSpend.exhausted(calls, available: { _ in nil }, now: 500).isEmpty)
    }

    @Test func perMinuteIncrementsCountWholeFromTheirStart() throws {
        let perMinute = try rate(connection: "0", perMinute: "1.20", increments: "60/60")
        let calls = (0..<3).map { AccountSpend.RunningCall(callID: "c\($0)", accountID: "920700", rate: perMinute, answeredAt: 0) }
        // Three calls each billed a first minute (1.20) as soon as answered: 3.60.
        #expect(AccountSpend.exhausted(calls, available: { _ in m("3.60") }, now: 0.5).count == 1)
        #expect(AccountSpend.exhausted(calls, available: { _ in m("3.61") }, now: 59).isEmpty)
        #expect(AccountSpend.exhausted(calls, available: { _ in m("3.61") }, now: 60.5).count == 1)  // second minutes started
    }
}
