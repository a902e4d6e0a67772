import Foundation
import NIOCore
import SIPMessage
import SIPStack
import SIPTransport
import Testing
import TestSupport

/// `switchboard serve` keeps provisioned SIMs registered with Kamailio as the
/// customer's registrar, and `switchboard drain` moves them between two nodes
/// (127.0.0.2 and 127.0.0.3) on one database without a gap (S1, S2, S9).
@Suite("SIP2SIM registration through switchboard serve", .serialized)
struct SIP2SIMServeTests {
    static let iccid = "8944101234567890128"

    /// The registrar's bindings for `user` (RFC 3261 §10.2.3 query: REGISTER without Contact).
    static func bindings(_ registrar: KamailioRegistrar, user: String, password: String) async throws -> Set<String> {
        let endpoint = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])) { _ in }
        let destination = SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.1", port: registrar.port), transport: .udp)
        var query = SIPMessage(request: .register, uri: "sip:127.0.0.1:\(registrar.port)")
        query.append(.from, "<sip:\(user)@127.0.0.1>;tag=\(SIPEndpoint.newTag())")
        query.append(.to, "<sip:\(user)@127.0.0.1>")
        query.append(.callID, SIPEndpoint.newCallID(host: "127.0.0.1"))
        query.append(.cseq, "1 REGISTER")
        let response = try await endpoint.send(query, to: destination, credentials: SIPCredentials(username: user, password: password))
        await endpoint.shutdown()
        #expect(response.statusCode == 200)
        return Set(response.contacts.compactMap { $0.address?.uri.description })
    }

    static func nodeConfig(name: String, host: String, port: Int, database: String, takesUnplaced: Bool,
                           deregistersOnStop: Bool = true) throws -> String {
        let path = NSTemporaryDirectory() + "switch-\(name)-\(UUID().uuidString).yaml"
        let yaml = """
            node: { name: \(name) }
            sip:
              listen: [udp:\(host):\(port)]
            http:
              listen: 127.0.0.1:\(freeTCPPort())
            database:
              url: "\(database)"
            sims:
              password_key: "\(Data(repeating: 5, count: 32).base64EncodedString())"
              registration: { expires: 120, reload_seconds: 1, takes_unplaced: \(takesUnplaced), deregister_on_stop: \(deregistersOnStop) }
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `switchboard provision` of account 920700 and the test SIM at `registrar` as `username`.
    static func provisionSIM(at registrar: KamailioRegistrar, username: String, password: String, config: String) async throws {
        let file = NSTemporaryDirectory() + "sims-\(UUID().uuidString).yaml"
        try """
            accounts:
              - { id: "920700", name: Acme, currency: GBP, balance: "10" }
            sims:
              - { iccid: "\(iccid)", account: "920700", sip_hostname: "127.0.0.1:\(registrar.port)", username: "\(username)", password: "\(password)" }
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let provision = try ExternalProcess(try switchboardBinary(), ["provision", file, "--config", config])
        let (status, output, _) = await provision.wait(timeout: .seconds(30))
        #expect(status == 0, "\(output)")
    }

    /// Whether `user`'s bindings at the registrar become exactly `contacts` within `timeout`.
    static func bound(_ registrar: KamailioRegistrar, user: String, password: String, to contacts: Set<String>,
                      timeout: Duration = .seconds(15)) async throws -> Bool {
        try await eventually(timeout: timeout) { try await bindings(registrar, user: user, password: password) == contacts }
    }

    @Test(arguments: StoreBackend.allCases)
    func provisionedSIMRegistersAndDrainMovesItWithoutAGap(backend: StoreBackend) async throws {
        let registrar = try await KamailioRegistrar(users: [("7001", "sim-pw")])
        let (database, _) = try await freshDatabase(backend)
        let portA = freePort(), portB = freePort()
        let configA = try Self.nodeConfig(name: "a", host: "127.0.0.2", port: portA, database: database, takesUnplaced: true)
        let configB = try Self.nodeConfig(name: "b", host: "127.0.0.3", port: portB, database: database, takesUnplaced: false)
        try await Self.provisionSIM(at: registrar, username: "7001", password: "sim-pw", config: configA)

        let a = try ExternalProcess(try switchboardBinary(), ["serve", "--config", configA])
        defer { a.kill() }
        let contactA = "sip:\(Self.iccid)@127.0.0.2:\(portA)", contactB = "sip:\(Self.iccid)@127.0.0.3:\(portB)"
        #expect(try await Self.bound(registrar, user: "7001", password: "sim-pw", to: [contactA]), "node a did not register the SIM")

        let b = try ExternalProcess(try switchboardBinary(), ["serve", "--config", configB])
        defer { b.kill() }
        #expect(try await waitUntilAnswersOptions(port: portB, host: "127.0.0.3"))
        #expect(try await Self.bindings(registrar, user: "7001", password: "sim-pw") == [contactA], "b takes no unplaced SIMs")

        let drain = try ExternalProcess(try switchboardBinary(), ["drain", "--from", "a", "--to", "b", "--config", configA])
        let (drained, said, _) = await drain.wait(timeout: .seconds(30))
        #expect(drained == 0 && said.contains("moving 1 SIM from a to b"), "\(said)")

        var samples: [Set<String>] = []
        let end = Date().addingTimeInterval(20)
        while Date() < end {
            let now = try await Self.bindings(registrar, user: "7001", password: "sim-pw")
            samples.append(now)
            if now == [contactB] { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(samples.allSatisfy { !$0.isEmpty }, "the SIM was unreachable at some moment: \(samples)")
        // (Both Contacts are bound during the overlap; with nodes reloading on
        // their own the overlap can be shorter than a sample, so that is
        // asserted in DrainTests, where the old node's reloads are stepped.)
        #expect(samples.last == [contactB])
        // Still only b a few reloads later: a does not take the SIM back.
        try await Task.sleep(for: .seconds(3))
        #expect(try await Self.bindings(registrar, user: "7001", password: "sim-pw") == [contactB])
    }
}

extension SIP2SIMServeTests {
    /// S1: a settings change in the store takes effect within a minute: a new
    /// user name registers there and the old binding is removed.
    @Test func aChangedUserNameReRegistersWithinAMinute() async throws {
        let registrar = try await KamailioRegistrar(users: [("7001", "sim-pw"), ("7002", "new-pw")])
        let (database, _) = try await freshDatabase(.sqlite)
        let port = freePort()
        let config = try Self.nodeConfig(name: "a", host: "127.0.0.2", port: port, database: database, takesUnplaced: true)
        try await Self.provisionSIM(at: registrar, username: "7001", password: "sim-pw", config: config)
        let serve = try ExternalProcess(try switchboardBinary(), ["serve", "--config", config])
        defer { serve.kill() }
        let contact = "sip:\(Self.iccid)@127.0.0.2:\(port)"
        #expect(try await Self.bound(registrar, user: "7001", password: "sim-pw", to: [contact]), "the SIM did not register as 7001")

        try await Self.provisionSIM(at: registrar, username: "7002", password: "new-pw", config: config)
        let moved = try await eventually(timeout: .seconds(60)) {
            let new = try await Self.bindings(registrar, user: "7002", password: "new-pw")
            let old = try await Self.bindings(registrar, user: "7001", password: "sim-pw")
            return new == [contact] && old.isEmpty
        }
        #expect(moved, "within 60 s the SIM is bound as 7002 only")
    }
}

extension SIP2SIMServeTests {
    /// A stopping node (SIGTERM, as `systemctl stop` sends) removes its own
    /// Contact of each SIM from the registrar before it exits, so the
    /// customer's server stops sending calls to it (RFC 3261 §10.2.2); with
    /// `deregister_on_stop: false` the binding is left to outlive a restart.
    @Test(arguments: [true, false])
    func aStoppingNodeRemovesItsSIMBindingsUnlessToldNotTo(deregisters: Bool) async throws {
        let registrar = try await KamailioRegistrar(users: [("7001", "sim-pw")])
        let (database, _) = try await freshDatabase(.sqlite)
        let port = freePort()
        let config = try Self.nodeConfig(name: "a", host: "127.0.0.2", port: port, database: database, takesUnplaced: true,
                                         deregistersOnStop: deregisters)
        try await Self.provisionSIM(at: registrar, username: "7001", password: "sim-pw", config: config)
        let serve = try ExternalProcess(try switchboardBinary(), ["serve", "--config", config])
        defer { serve.kill() }
        let contact = "sip:\(Self.iccid)@127.0.0.2:\(port)"
        #expect(try await Self.bound(registrar, user: "7001", password: "sim-pw", to: [contact]), "the SIM did not register")

        #expect(kill(serve.pid, SIGTERM) == 0)
        let (status, output, timedOut) = await serve.wait(timeout: .seconds(30))
        #expect(status == 0 && !timedOut, "exit \(status): \(output.suffix(3000))")
        let left = try await Self.bindings(registrar, user: "7001", password: "sim-pw")
        if deregisters {
            #expect(left.isEmpty, "the stopped node's Contact is still bound: \(left)")
            #expect(output.contains("SIM registrations removed") && output.contains("sims=1"), "\(output.suffix(3000))")
        } else {
            #expect(left == [contact], "the binding should outlive the stop: \(left)")
            #expect(!output.contains("SIM registrations removed"), "\(output.suffix(3000))")
        }
    }
}
