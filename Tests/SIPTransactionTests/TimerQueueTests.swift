@testable import SIPTransaction
import Testing

@Suite struct TimerQueueTests {
    @Test func timersFireInDeadlineOrderAndOnlyOnce() {
        var q = TimerQueue<String>()
        q.schedule("B", at: 32_000)
        q.schedule("A", at: 500)
        q.schedule("E", at: 500)
        q.schedule("K", at: 5_000)
        var earliest = q.earliest()
        #expect(earliest == 500)
        var fired = q.expired(now: 499)
        #expect(fired.isEmpty)
        fired = q.expired(now: 500)
        #expect(Set(fired) == ["A", "E"])
        fired = q.expired(now: 500)
        #expect(fired.isEmpty)
        earliest = q.earliest()
        #expect(earliest == 5_000)
        fired = q.expired(now: 40_000)
        #expect(fired == ["K", "B"])
        earliest = q.earliest()
        #expect(q.count == 0 && earliest == nil)
    }

    @Test func cancelledAndRescheduledTimersDoNotFireAtTheirOldDeadline() {
        var q = TimerQueue<String>()
        q.schedule("A", at: 100)
        q.schedule("B", at: 200)
        q.schedule("C", at: 300)
        let cancelled = q.cancel("A"), again = q.cancel("A")
        #expect(cancelled && !again)
        q.schedule("B", at: 1_000)  // a retransmit timer doubled
        let earliest = q.earliest()
        #expect(earliest == 300)
        var fired = q.expired(now: 999)
        #expect(fired == ["C"])
        #expect(q.isScheduled("B") && !q.isScheduled("C"))
        fired = q.expired(now: 1_000)
        #expect(fired == ["B"])
    }

    /// A busy endpoint schedules and cancels far more timers than stay live:
    /// the heap is compacted rather than growing with dead entries.
    @Test func manyCancelledTimersAreCompacted() {
        var q = TimerQueue<Int>()
        for i in 0..<100_000 {
            q.schedule(i, at: UInt64(32_000 + i))
            if i % 100 != 0 { q.cancel(i) }
        }
        #expect(q.count == 1_000)
        #expect(q.heap.count <= 2 * 1_024 + 2_000)
        let fired = q.expired(now: UInt64.max)
        #expect(fired == Array(stride(from: 0, to: 100_000, by: 100)))
    }

    /// The owner's one armed task: set for the earliest timer rounded up to
    /// the tick, left alone when it already goes off by then, moved earlier
    /// when an earlier timer comes, and not armed with no timer left.
    @Test func theArmedDeadlineFollowsTheEarliestTimerOnATick() {
        var q = TimerQueue<String>()
        #expect(q.deadlineToArm(armed: nil, tick: 10) == nil)
        q.schedule("late", at: 95)
        #expect(q.deadlineToArm(armed: nil, tick: 10) == 100)
        #expect(q.deadlineToArm(armed: 100, tick: 10) == nil)  // armed for then already
        #expect(q.deadlineToArm(armed: 40, tick: 10) == nil)   // goes off sooner; re-arms then
        q.schedule("early", at: 20)                             // exactly on a tick: the next one
        #expect(q.deadlineToArm(armed: 100, tick: 10) == 30)
        q.cancel("early")
        q.cancel("late")
        #expect(q.deadlineToArm(armed: 30, tick: 10) == nil)
    }
}
