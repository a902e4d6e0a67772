import SIP2SIM
import Testing

@Suite("SIM placement (S9 drain decisions)")
struct PlacementPolicyTests {
    let a = PlacementPolicy(node: "a")
    let b = PlacementPolicy(node: "b", registersUnplaced: false)

    @Test func unplacedSIMsGoToNodesThatTakeThem() {
        #expect(a.decide(SIMPlacement(), registeredNodes: []) == .register)
        #expect(b.decide(SIMPlacement(), registeredNodes: []) == .ignore)
        #expect(b.decide(SIMPlacement(home: "b"), registeredNodes: []) == .register)
        #expect(a.decide(SIMPlacement(home: "b"), registeredNodes: []) == .ignore)
    }

    @Test func theOldNodeHoldsOnUntilTheNewNodeIsRegistered() {
        let moving = SIMPlacement(home: "a", movingTo: "b")
        #expect(b.decide(moving, registeredNodes: []) == .register)
        #expect(a.decide(moving, registeredNodes: []) == .register)
        #expect(a.decide(moving, registeredNodes: ["a"]) == .register)
        #expect(a.decide(moving, registeredNodes: ["a", "b"]) == .release(to: "b"))
        #expect(PlacementPolicy(node: "c").decide(moving, registeredNodes: ["b"]) == .ignore)
    }
}
