import SIPResolver
import Testing

/// A deterministic generator (SplitMix64) so the weighted order can be measured.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct SRVOrderTests {
    let a = SRVRecord(priority: 10, weight: 60, port: 5060, target: "a.example.test")
    let b = SRVRecord(priority: 10, weight: 40, port: 5060, target: "b.example.test")
    let c = SRVRecord(priority: 20, weight: 0, port: 5060, target: "c.example.test")
    let d = SRVRecord(priority: 5, weight: 0, port: 5060, target: "d.example.test")

    @Test func lowerPriorityAlwaysComesFirst() {
        var rng = SeededGenerator(state: 1)
        for _ in 0..<1000 {
            let order = SIPServerLocator.orderSRV([c, a, b, d], using: &rng).map(\.target)
            #expect(order.first == "d.example.test")
            #expect(order.last == "c.example.test")
            #expect(Set(order[1...2]) == ["a.example.test", "b.example.test"])
        }
    }

    @Test func weightsSetTheShareOfFirstPlace() {
        var rng = SeededGenerator(state: 42)
        let trials = 10_000
        var aFirst = 0
        for _ in 0..<trials where SIPServerLocator.orderSRV([a, b], using: &rng).first == a { aFirst += 1 }
        let share = Double(aFirst) / Double(trials)
        #expect(abs(share - 0.6) < 0.03, "a was first in \(share) of trials, expected about 0.6")
    }

    @Test func zeroWeightIsRarelyFirstAmongWeightedPeers() {
        var rng = SeededGenerator(state: 7)
        let zero = SRVRecord(priority: 10, weight: 0, port: 5060, target: "z.example.test")
        var zeroFirst = 0
        for _ in 0..<10_000 where SIPServerLocator.orderSRV([a, zero], using: &rng).first == zero { zeroFirst += 1 }
        // Only when the random pick is exactly 0: 1 in 61, about 164 of 10,000.
        #expect(zeroFirst < 300)
        #expect(zeroFirst > 0)
    }
}
