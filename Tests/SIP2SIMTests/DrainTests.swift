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
        let runners = [Task { await serviceA.run() }, Task { await serviceB.run() }]
        defer { for r in runners { r.cancel() } }

        let contactA = "sip:\(sim)@127.0.0.2:\(a.port)", contactB = "sip:\(sim)@127.0.0.3:\(b.port)"
        let onA = try await RegistrationAgentTests.eventually(10) {
            try await RegistrationAgentTests.bindings(at: registrar, user: "4001", password: "d").keys.sorted() == [contactA]
        }
        #expect(onA)

        await board.drain("a", to: "b")
        // Sample the registrar's location table through the move.
        var samples: [Set<String>] = []
        let end = Date().addingTimeInterval(15)
        while Date() < end {
            let now = Set(try await RegistrationAgentTests.bindings(at: registrar, user: "4001", password: "d").keys)
            samples.append(now)
            if now == [contactB], await board.placement(sim) == SIMPlacement(home: "b") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(samples.allSatisfy { !$0.isEmpty }, "the SIM was unreachable at some moment: \(samples)")
        #expect(samples.contains([contactA, contactB]), "both Contacts should be bound during the overlap")
        #expect(samples.last == [contactB])
        #expect(await board.placement(sim) == SIMPlacement(home: "b"))
        // Make before break: once A's Contact was gone it never came back.
        if let firstWithoutA = samples.firstIndex(where: { !$0.contains(contactA) }) {
            #expect(samples[firstWithoutA...].allSatisfy { !$0.contains(contactA) })
        }
        await a.shutdown()
        await b.shutdown()
    }
}
