import Foundation
import SIMs
import Store
import Testing
import TestSupport

extension StoreTests {
    /// S9 bookkeeping: a drain marks the drained node's SIMs (and, by
    /// default, unplaced ones) as moving; a finished move places them on the new node.
    @Test(arguments: StoreBackend.allCases)
    func drainMarksSIMsMovingAndAMoveCompletes(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 0, creditLimit: 0))
        for d in [TestICCID.a, TestICCID.b, TestICCID.c] { try await store.upsertSIM(try simRecord(d)) }
        let a = try iccid(TestICCID.a), b = try iccid(TestICCID.b), c = try iccid(TestICCID.c)
        try await store.setPlacement(c, home: "node-c", movingTo: nil)
        #expect(try await store.simPlacements() == [c: SIMPlacementRow(home: "node-c", movingTo: nil)])

        #expect(try await store.drain(from: "node-a", to: "node-b", includeUnplaced: true) == 2)
        let moving = try await store.simPlacements()
        #expect(moving[a] == SIMPlacementRow(home: "node-a", movingTo: "node-b"))
        #expect(moving[b] == SIMPlacementRow(home: "node-a", movingTo: "node-b"))
        #expect(moving[c] == SIMPlacementRow(home: "node-c", movingTo: nil), "another node's SIM stays")

        try await store.recordRegistrationStatuses([
            SIMRegistrationStatus(iccid: a, node: "node-b", state: .registered, updatedAt: Date()),
            SIMRegistrationStatus(iccid: a, node: "node-a", state: .registered, updatedAt: Date()),
            SIMRegistrationStatus(iccid: b, node: "node-b", state: .failing, lastCode: 503, updatedAt: Date()),
        ])
        let registered = try await store.registeredNodes()
        #expect(registered[a] == ["node-a", "node-b"])
        #expect(registered[b] == nil)

        try await store.setPlacement(a, home: "node-b", movingTo: nil)
        #expect(try await store.simPlacements()[a] == SIMPlacementRow(home: "node-b", movingTo: nil))
        await #expect(throws: StoreError.self) { try await store.drain(from: "node-a", to: "node-a", includeUnplaced: true) }
        // Deleting a SIM deletes its placement.
        #expect(try await store.deleteSIM(iccid: b))
        #expect(try await store.simPlacements()[b] == nil)
        try await store.close()
    }
}
