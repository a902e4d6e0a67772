import SIPTransaction
import Testing

@Suite struct RandomIdentifiersTests {
    /// Values are handed out from batches read from the kernel: across several
    /// refills none repeats and none is zero (an unfilled or reused batch would).
    @Test func valuesDoNotRepeatAcrossBatches() {
        let values = (0..<5_000).map { _ in RandomIdentifiers.next() }
        #expect(Set(values).count == values.count)
        #expect(!values.contains(0))
        // Every bit position varies (not, say, a counter in the low bits).
        let ored = values.reduce(UInt64(0), |), anded = values.reduce(~UInt64(0), &)
        #expect(ored == ~UInt64(0) && anded == 0)
    }

    @Test func branchesCarryTheMagicCookieAndDiffer() {
        let branches = (0..<2_000).map { _ in TransactionKey.newBranch() }
        #expect(branches.allSatisfy { $0.hasPrefix("z9hG4bK") && $0.count > 12 })
        #expect(Set(branches).count == branches.count)
    }
}
