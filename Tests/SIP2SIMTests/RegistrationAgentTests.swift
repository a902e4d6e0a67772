import Foundation
import Logging
import NIOCore
import OutboundRegistration
import SIMs
import SIP2SIM
import SIPMessage
import SIPStack
import SIPTransport
import Testing
import TestSupport

/// The registration agent against Kamailio as the customer's registrar (S1, S2, S9).
@Suite("SIM registration agent against Kamailio", .serialized)
struct RegistrationAgentTests {
    static let sims = [
        try! ICCID("8944101234567890128"), try! ICCID("89441012345678901237"), try! ICCID("8944100000000000000"),
    ]

    /// A node: its SIP endpoint and agent, Contact on its own address.
    struct Node {
        let endpoint: SIPEndpoint
        let agent: RegistrationAgent
        let port: Int
        let runner: Task<Void, Never>

        static func start(host: String = "127.0.0.1", expires: UInt32 = 120, name: String = "node",
                          statusTo board: (any SIMRegistrationSource)? = nil, contactFromEndpoint: Bool = false) async throws -> Node {
            let endpoint = try await SIPEndpoint.start(
                configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: host, port: 0, transport: .udp)])
            ) { request in await request.respond(405) }
            let port = await endpoint.boundAddresses.first?.address.port ?? 0
            var logger = Logger(label: "agent")
            logger.logLevel = .warning
            let agent = RegistrationAgent(
                endpoint: endpoint,
                configuration: RegistrationAgentConfiguration(contactHost: contactFromEndpoint ? nil : host, contactPort: UInt16(port), expires: expires,
                                                              policy: RegistrationPolicy(retryBase: 1, retryCap: 4)),
                logger: logger,
                onStatus: { statuses in try? await board?.recordStatuses(statuses, node: name) })
            let runner = Task { await agent.run() }
            return Node(endpoint: endpoint, agent: agent, port: port, runner: runner)
        }

        func shutdown() async {
            runner.cancel()
            await endpoint.shutdown()
        }
    }

    /// The registrar's bindings for `user` as a REGISTER without Contact
    /// reports them (RFC 3261 §10.2.3): Contact URI → seconds left.
    static func bindings(at registrar: KamailioRegistrar, user: String, password: String) async throws -> [String: Int] {
        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        ) { _ in }
        defer { Task { await endpoint.shutdown() } }
        let destination = SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.1", port: registrar.port), transport: .udp)
        var query = SIPMessage(request: .register, uri: "sip:127.0.0.1:\(registrar.port)")
        query.append(.from, "<sip:\(user)@127.0.0.1>;tag=\(SIPEndpoint.newTag())")
        query.append(.to, "<sip:\(user)@127.0.0.1>")
        query.append(.callID, SIPEndpoint.newCallID(host: "127.0.0.1"))
        query.append(.cseq, "1 REGISTER")
        let response = try await endpoint.send(query, to: destination, credentials: SIPCredentials(username: user, password: password))
        #expect(response.statusCode == 200, "\(response.text)")
        var out: [String: Int] = [:]
        for c in response.contacts {
            guard let a = c.address else { continue }
            out[a.uri.description] = a.parameters.value("expires").flatMap { $0 }.flatMap { Int($0) } ?? -1
        }
        return out
    }

    /// Polls until `condition` holds (at most `seconds`).
    static func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    @Test func simsRegisterFailuresAreReportedAndRemovedSIMsDeregister() async throws {
        let registrar = try await KamailioRegistrar(users: [("1001", "pw-one"), ("1002", "pw-two"), ("1003", "pw-three")])
        let node = try await Node.start()
        let d = "127.0.0.1:\(registrar.port)"
        await node.agent.apply([
            SIMRegistrationTarget(iccid: Self.sims[0], domain: d, username: "1001", password: "pw-one"),
            SIMRegistrationTarget(iccid: Self.sims[1], domain: d, username: "1002", password: "pw-two"),
            SIMRegistrationTarget(iccid: Self.sims[2], domain: d, username: "1003", password: "not-the-password"),
        ])
        let settled = try await Self.eventually(10) {
            let registered = await node.agent.registeredCount
            let failing = await node.agent.status(of: Self.sims[2])?.state
            return registered == 2 && failing == .failing
        }
        #expect(settled)
        let failing = await node.agent.status(of: Self.sims[2])
        #expect(failing?.lastCode == 401)
        #expect(failing?.lastReason?.contains("refused the credentials for user 1003") == true)
        #expect(failing?.nextAttempt != nil)
        let ours = "sip:\(Self.sims[0])@127.0.0.1:\(node.port)"
        let first = try await Self.bindings(at: registrar, user: "1001", password: "pw-one")
        #expect(first.keys.contains(ours), "\(first)")
        #expect((first[ours] ?? 0) > 100 && (first[ours] ?? 0) <= 120)
        #expect(try await Self.bindings(at: registrar, user: "1003", password: "pw-three").isEmpty)

        // The customer fixes the password: registered at the next attempt, no restart.
        await node.agent.apply([
            SIMRegistrationTarget(iccid: Self.sims[0], domain: d, username: "1001", password: "pw-one"),
            SIMRegistrationTarget(iccid: Self.sims[1], domain: d, username: "1002", password: "pw-two"),
            SIMRegistrationTarget(iccid: Self.sims[2], domain: d, username: "1003", password: "pw-three"),
        ])
        #expect(try await Self.eventually(10) { await node.agent.registeredCount == 3 })

        // SIM 0 is removed: its Contact goes, the others stay.
        await node.agent.apply([
            SIMRegistrationTarget(iccid: Self.sims[1], domain: d, username: "1002", password: "pw-two"),
            SIMRegistrationTarget(iccid: Self.sims[2], domain: d, username: "1003", password: "pw-three"),
        ])
        #expect(try await Self.eventually(10) { try await Self.bindings(at: registrar, user: "1001", password: "pw-one").isEmpty })
        #expect(try await Self.bindings(at: registrar, user: "1002", password: "pw-two").count == 1)
        await node.shutdown()
    }

    @Test func aNewUserNameMovesTheBindingAndRemovesTheOldOne() async throws {
        let registrar = try await KamailioRegistrar(users: [("2001", "a"), ("2002", "b")])
        let node = try await Node.start()
        let d = "127.0.0.1:\(registrar.port)"
        await node.agent.apply([SIMRegistrationTarget(iccid: Self.sims[0], domain: d, username: "2001", password: "a")])
        #expect(try await Self.eventually(10) { await node.agent.registeredCount == 1 })
        #expect(try await Self.bindings(at: registrar, user: "2001", password: "a").count == 1)

        await node.agent.apply([SIMRegistrationTarget(iccid: Self.sims[0], domain: d, username: "2002", password: "b")])
        let moved = try await Self.eventually(10) {
            let old = try await Self.bindings(at: registrar, user: "2001", password: "a")
            let new = try await Self.bindings(at: registrar, user: "2002", password: "b")
            return old.isEmpty && new.count == 1
        }
        #expect(moved)
        let state = await node.agent.status(of: Self.sims[0])?.state
        #expect(state == .registered)
        await node.shutdown()
    }

    /// Two nodes hold a binding each for one SIM; the one that stops removes
    /// its own Contact only, never `*` (S9).
    @Test func aStoppingNodeRemovesOnlyItsOwnContact() async throws {
        let registrar = try await KamailioRegistrar(users: [("3001", "c")])
        let a = try await Node.start(host: "127.0.0.2")
        let b = try await Node.start(host: "127.0.0.3")
        let d = "127.0.0.1:\(registrar.port)"
        let target = SIMRegistrationTarget(iccid: Self.sims[0], domain: d, username: "3001", password: "c")
        await a.agent.apply([target])
        #expect(try await Self.eventually(10) { await a.agent.registeredCount == 1 })
        await b.agent.apply([target])
        #expect(try await Self.eventually(10) { await b.agent.registeredCount == 1 })
        let both = try await Self.bindings(at: registrar, user: "3001", password: "c")
        #expect(Set(both.keys) == ["sip:\(Self.sims[0])@127.0.0.2:\(a.port)", "sip:\(Self.sims[0])@127.0.0.3:\(b.port)"])

        await a.agent.deregisterAll(timeout: 5)
        let after = try await Self.bindings(at: registrar, user: "3001", password: "c")
        #expect(Set(after.keys) == ["sip:\(Self.sims[0])@127.0.0.3:\(b.port)"])
        await a.shutdown()
        await b.shutdown()
    }

    /// A node without a configured contact host uses its local address toward the registrar.
    @Test func contactDefaultsToTheLocalAddressTowardTheRegistrar() async throws {
        let registrar = try await KamailioRegistrar(users: [("5001", "e")])
        let node = try await Node.start(contactFromEndpoint: true)
        await node.agent.apply([SIMRegistrationTarget(iccid: Self.sims[1], domain: "127.0.0.1:\(registrar.port)", username: "5001", password: "e")])
        #expect(try await Self.eventually(10) { await node.agent.registeredCount == 1 })
        let bound = try await Self.bindings(at: registrar, user: "5001", password: "e")
        #expect(Array(bound.keys) == ["sip:\(Self.sims[1])@127.0.0.1:\(node.port)"])
        await node.shutdown()
    }
}
