import Foundation
import Logging
import OutboundRegistration
import SIMs
import SIP2SIM
import Testing
import TestSupport

/// The store's part, held in memory so this test is about the protocol
/// exchange with the registrar; the store's own tables are tested in StoreTests.
actor PlacementBoard: SIMRegistrationSource {
    var targets: [SIMRegistrationTarget]
    var placements: [ICCID: SIMPlacement] = [:]
    var states: [ICCID: [String: RegistrationState]] = [:]

    init(_ targets: [SIMRegistrationTarget]) { self.targets = targets }

    func registrationRecords() -> [SIMRegistrationRecord] {
        targets.map { t in
            let nodes = Set((states[t.iccid] ?? [:]).filter { $0.value == .registered }.keys)
            return SIMRegistrationRecord(target: t, placement: placements[t.iccid] ?? SIMPlacement(), registeredNodes: nodes)
        }
    }
    func recordStatuses(_ statuses: [(ICCID, RegistrationStatus)], node: String) {
        for (iccid, s) in statuses { states[iccid, default: [:]][node] = s.state }
    }
    func completeMove(_ iccid: ICCID, to node: String) { placements[iccid] = SIMPlacement(home: node) }
    func drain(_ from: String, to: String) {
        for t in targets { placements[t.iccid] = SIMPlacement(home: from, movingTo: to) }
    }
    func placement(_ iccid: ICCID) -> SIMPlacement? { placements[iccid] }
}

@Suite("drain: a SIM moves between nodes without a gap (S9)", .serialized)
struct DrainTests {
    @Test func theNewNodeRegistersBeforeTheOldOneLetsGo() async throws {
        let registrar = try await KamailioRegistrar(users: [("4001", "d")])
        let sim = try ICCID("8944101234567890128")
        let board = PlacementBoard([SIMRegistrationTarget(iccid: sim, domain: "127.0.0.1:\(registrar.port)", username: "4001", password: "d")])
        let a = try await RegistrationAgentTests.Node.start(host: "127.0.0.2", name: "a", statusTo: board)
        let b = try await RegistrationAgentTests.Node.start(host: "127.0.0.3", name: "b", statusTo: board)
        var logger = Logger(label: "drain")
        logger.logLevel = .warning
        let serviceA = SIMRegistrationService(agent: a.agent, source: board, policy: PlacementPolicy(node: "a"), reloadInterval: 0.2, logger: logger)
        let serviceB = SIMRegistrationService(agent: b.agent, source: board, policy: PlacementPolicy(node: "b", registersUnplaced: false),
                                              reloadInterval: 0.2, logger: logger)
        // B runs on its own once the drain is set; A's reloads are stepped by the test, so the
        // overlap is checked at a known moment rather than caught by sampling.
        let contactA = "sip:\(sim)@127.0.0.2:\(a.port)", contactB = "sip:\(sim)@127.0.0.3:\(b.port)"
        func bound() async throws -> Set<String> {
            Set(try await RegistrationAgentTests.bindings(at: registrar, user: "4001", password: "d").keys)
        }
        await serviceA.reload()
        #expect(try await RegistrationAgentTests.eventually(10) { try await bound() == [contactA] })

        await board.drain("a", to: "b")
        // A reloads while B has not registered yet: A keeps its binding.
        await serviceA.reload()
        #expect(try await bound() == [contactA])
        let runnerB = Task { await serviceB.run() }
        defer { runnerB.cancel() }
        // B registers its own Contact: both are bound (make before break).
        #expect(try await RegistrationAgentTests.eventually(10) { try await bound() == [contactA, contactB] })
        #expect(try await RegistrationAgentTests.eventually(5) { await board.registrationRecords().first?.registeredNodes.contains("b") == true })
        // A's next reload sees B registered and removes its own Contact only.
        await serviceA.reload()
        #expect(try await RegistrationAgentTests.eventually(10) { try await bound() == [contactB] })
        // Once A's de-registration has finished, the SIM is placed on B.
        let placed = try await RegistrationAgentTests.eventually(10) {
            await serviceA.reload()
            return await board.placement(sim) == SIMPlacement(home: "b")
        }
        #expect(placed)
        #expect(try await bound() == [contactB])
        await a.shutdown()
        await b.shutdown()
    }
}
