import Testing
import TrunkService

/// The admission rate of new calls while a loop's socket is behind, driven
/// call by call on a simulated clock (no sockets, no sleeps).
@Suite struct OverloadAdmissionTests {
    static let ms: UInt64 = 1_000_000
    static let start: UInt64 = 10_000 * ms

    /// Offers one call a millisecond (1,000 calls/s) from `from` for `count` ms; returns how many were admitted.
    static func offer(_ admission: inout OverloadAdmission, from: UInt64, count: Int, behind: Bool) -> Int {
        (0..<count).reduce(0) { n, i in n + (admission.admits(behind: behind, now: from + UInt64(i) * ms) ? 1 : 0) }
    }

    @Test func aLoopThatIsNeverBehindTakesEveryCall() {
        var admission = OverloadAdmission()
        #expect(Self.offer(&admission, from: Self.start, count: 5_000, behind: false) == 5_000)
        #expect(admission.limit == nil && admission.refused == 0)
    }

    /// Behind after taking 1,000 calls/s: the limit starts at 80 % of that and
    /// is cut by 15 % every 250 ms while still behind; calls above it are refused.
    @Test func behindTheLimitStartsBelowWhatWasTakenAndIsCutWhileBehind() throws {
        var admission = OverloadAdmission()
        _ = Self.offer(&admission, from: Self.start, count: 1_000, behind: false)
        #expect(admission.admits(behind: true, now: Self.start + 1_000 * Self.ms) == false)  // no tokens yet
        let first = try #require(admission.limit)
        #expect((750...850).contains(first))
        let taken = Self.offer(&admission, from: Self.start + 1_001 * Self.ms, count: 1_000, behind: true)
        // Four cuts in the second: 800 → 680 → 578 → 491 → 418 calls/s; about 640 taken.
        let after = try #require(admission.limit)
        #expect((first * 0.5...first * 0.55).contains(after), "limit \(after) after a second behind, from \(first)")
        #expect((500...750).contains(taken), "\(taken) taken in a second behind")
        #expect(admission.refused == 1_001 - taken)
    }

    /// Caught up: the limit grows by 30 % a second (so calls still have to
    /// fit under it), and after 5 s without falling behind it is lifted.
    @Test func caughtUpTheLimitGrowsAndIsLiftedAfterFiveSeconds() throws {
        var admission = OverloadAdmission()
        _ = Self.offer(&admission, from: Self.start, count: 1_000, behind: false)
        _ = Self.offer(&admission, from: Self.start + 1_000 * Self.ms, count: 10, behind: true)
        let low = try #require(admission.limit)
        let taken = Self.offer(&admission, from: Self.start + 1_010 * Self.ms, count: 2_000, behind: false)
        let grown = try #require(admission.limit)
        #expect(grown > low * 1.7 && grown < low * 1.95, "\(low) grew to \(grown) in 2 s")
        #expect(taken < 2_000 && Double(taken) > low * 2)
        #expect(admission.refusalsOnceLifted() == nil, "still limiting: nothing to report yet")
        _ = Self.offer(&admission, from: Self.start + 3_010 * Self.ms, count: 3_000, behind: false)
        #expect(admission.limit == nil)
        // What the loop logs once lifted: every refusal since it was limited, then counted afresh.
        let refused = admission.refused
        #expect(refused >= 2_000 - taken)
        #expect(admission.refusalsOnceLifted() == refused)
        #expect(admission.refusalsOnceLifted() == nil && admission.refused == 0)
        #expect(Self.offer(&admission, from: Self.start + 6_010 * Self.ms, count: 1_000, behind: false) == 1_000)
    }

    /// Behind with nothing taken just before (a loop that was stopped): the limit is the floor, 50 calls/s, not zero.
    @Test func theLimitNeverFallsBelowTheFloor() throws {
        var admission = OverloadAdmission()
        let taken = Self.offer(&admission, from: Self.start, count: 4_000, behind: true)
        #expect(admission.limit == OverloadAdmission.minimum)
        #expect((150...250).contains(taken), "\(taken) taken in 4 s at the floor")
    }
}
