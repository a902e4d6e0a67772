import Foundation
import MobileCoreSimulator
import NIOCore
import Rating
import SIMs
import SIPMessage
import SIPStack
import SIPTransport
import Store
import Testing
import TestSupport

/// SIP2SIM calls through `switchboard serve` (S3–S8): Kamailio plays the
/// customer's SIP server (registrar, and proxy to a SIPp PBX), the project's
/// simulator plays the mobile core with one handset, SIPp plays the PBX and
/// the emergency gateway. Addresses keep the parties apart: Kamailio and SIPp
/// on 127.0.0.1, the switch on 127.0.0.2, the mobile core on 127.0.0.4.
@Suite("SIP2SIM calls through switchboard serve", .serialized)
struct SIMCallTests {
    // These constants are also in the SIPp scenarios pbx_answers_sim.xml and customer_calls_sim.xml.
    static let iccid = "8944101234567890128"
    static let simUser = "7001", simPassword = "sim-pw"

    final class Setup {
        let kamailio: KamailioRegistrar
        let serve: ExternalProcess
        let simulator: MobileCoreSimulator
        let database: String
        let location: StoreLocation
        let switchPort: Int
        let config: String
        let pbxPort: Int
        let emergencyPort: Int
        let httpPort: Int

        init(backend: StoreBackend = .sqlite, webhookURL: String? = nil, simExtras: String = "", configExtras: String = "") async throws {
            pbxPort = freePort()
            emergencyPort = freePort()
            kamailio = try await KamailioRegistrar(users: [(SIMCallTests.simUser, SIMCallTests.simPassword)],
                                                   config: "customer-server.cfg", replacements: ["PBX_PORT": "\(pbxPort)"])
            (database, location) = try await freshDatabase(backend)
            switchPort = freePort()
            httpPort = freeTCPPort()
            // The simulator first: the switch's config names its address.
            simulator = try await MobileCoreSimulator.start(SimulatorConfiguration(
                sip: SIPListenAddress(host: "127.0.0.4", port: 0, transport: .udp), http: nil,
                switchHost: "127.0.0.2", switchPort: switchPort,
                handsets: [try ICCID(SIMCallTests.iccid)], recordDirectory: nil, answerMode: .auto(after: .milliseconds(200))))
            let simulatorPort = simulator.sipPort
            config = NSTemporaryDirectory() + "switch-simcalls-\(UUID().uuidString).yaml"
            try """
                node: { name: a }
                sip:
                  listen: [udp:127.0.0.2:\(switchPort)]
                http:
                  listen: 127.0.0.1:\(httpPort)
                database:
                  url: "\(database)"
                mobile_core: { address: "127.0.0.4:\(simulatorPort)" }
                emergency: { gateway: "127.0.0.1:\(emergencyPort)", numbers: ["999", "112", "911", "901"] }
                texts: { retry_first_seconds: 0.5, retry_max_seconds: 2 }
                sims:
                  password_key: "\(Data(repeating: 7, count: 32).base64EncodedString())"
                  registration: { expires: 120, reload_seconds: 1 }
                \(configExtras)
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let sims = NSTemporaryDirectory() + "simcalls-\(UUID().uuidString).yaml"
            try """
                accounts:
                  - { id: "920700", name: Acme, currency: GBP, balance: "10" }
                sims:
                  - { iccid: "\(SIMCallTests.iccid)", account: "920700", sip_hostname: "127.0.0.1:\(kamailio.port)",
                      username: "\(SIMCallTests.simUser)", password: "\(SIMCallTests.simPassword)", call_rate: "0.06"\(webhookURL.map { ", webhook_url: \"\($0)\"" } ?? "")\(simExtras) }
                """.write(toFile: sims, atomically: true, encoding: .utf8)
            let provision = try ExternalProcess(try switchboardBinary(), ["provision", sims, "--config", config])
            let (status, output, _) = await provision.wait(timeout: .seconds(30))
            #expect(status == 0, "\(output)")
            // Trunk calls on the event loop: SIM calls must still reach the actor service.
            serve = try ExternalProcess(try switchboardBinary(), ["serve", "--config", config], environment: ["SWITCHBOARD_TRUNK_CALLS_ON_LOOP": "2"])
        }

        func restartServe() throws -> ExternalProcess {
            try ExternalProcess(try switchboardBinary(), ["serve", "--config", config], environment: ["SWITCHBOARD_TRUNK_CALLS_ON_LOOP": "2"])
        }

        /// Waits until the SIM's Contact on the switch is bound at Kamailio.
        func registered() async throws -> Bool {
            try await SIP2SIMServeTests.bound(kamailio, user: SIMCallTests.simUser, password: SIMCallTests.simPassword,
                                              to: ["sip:\(SIMCallTests.iccid)@127.0.0.2:\(switchPort)"])
        }

        func cdrs() async throws -> [CDR] {
            let store = try await Store.open(location)
            let rows = try await store.cdrs(CDRQuery(accountID: "920700"))
            try await store.close()
            return rows
        }

        func stop() async {
            serve.kill()
            await simulator.shutdown()
        }
    }

    static func sipp(_ scenario: String, _ arguments: [String], port: Int) throws -> ExternalProcess {
        try ExternalProcess("sipp", ["-sf", fixture("sipp/\(scenario)"), "-i", "127.0.0.1", "-p", "\(port)", "-m", "1",
                                     "-nostdin", "-timeout", "30s", "-timeout_error"] + tolerateRetransmissions + arguments)
    }

    static func finished(_ sipp: ExternalProcess) async -> (Bool, String) {
        let (status, output, timedOut) = await sipp.wait(timeout: .seconds(40))
        return (status == 0 && !timedOut, String(output.suffix(3000)))
    }

    @Test func customerAndHandsetCallEachOtherThroughKamailio() async throws {
        let setup = try await Setup()
        defer { setup.serve.kill() }
        #expect(try await setup.registered(), "the SIM did not register with Kamailio")

        // S3: the customer's PBX calls the SIM's user at its own server; Kamailio
        // sends it to the switch's Contact; the handset rings, answers, and is
        // shown the caller in international form with '+'.
        let caller = try Self.sipp("customer_calls_sim.xml", ["-s", Self.simUser, "127.0.0.1:\(setup.kamailio.port)"], port: freePort())
        let (callerOK, callerOutput) = await Self.finished(caller)
        #expect(callerOK, "SIPp as the customer's PBX: \(callerOutput)")
        if !callerOK { setup.serve.kill(); let (_, o, _) = await setup.serve.wait(timeout: .seconds(5)); print("SERVE LOG\n\(o.suffix(4000))") }
        let inbound = try await setup.simulator.callList(handset: Self.iccid).first { $0.direction == .mobileTerminated }
        #expect(inbound?.fromUser == "+447700900999", "\(String(describing: inbound))")
        #expect(inbound?.answeredAt != nil)
        #expect(await eventually { (try? await setup.simulator.callList(handset: Self.iccid).first { $0.direction == .mobileTerminated })?.state == .ended })

        // S4: the handset dials +447700900123; the PBX behind Kamailio gets
        // 447700900123 from the ICCID, after Kamailio checked the SIM's credentials
        // (the scenario fails the call otherwise).
        let pbx = try Self.sipp("pbx_answers_sim.xml", [], port: setup.pbxPort)
        try await Task.sleep(for: .milliseconds(500))  // let SIPp bind
        let outbound = try await setup.simulator.placeCall(from: Self.iccid, to: "+447700900123")
        #expect(await eventually { (try? await setup.simulator.call(outbound.id))?.state == .answered })
        try await Task.sleep(for: .milliseconds(1200))
        _ = try await setup.simulator.hangUp(callID: outbound.id)
        let (pbxOK, pbxOutput) = await Self.finished(pbx)
        #expect(pbxOK, "SIPp as the PBX: \(pbxOutput)")

        // Both calls have CDRs with the SIM's call rate, no trunk, the final code.
        var rows: [CDR] = []
        #expect(try await eventually { rows = try await setup.cdrs(); return rows.count >= 2 })
        let toHandset = rows.first { $0.to == Self.iccid }
        let fromHandset = rows.first { $0.from == Self.iccid }
        #expect(toHandset?.from == "447700900999" && toHandset?.finalStatus == 200 && toHandset?.trunkID == nil, "\(rows)")
        #expect(fromHandset?.to == "447700900123" && fromHandset?.finalStatus == 200 && fromHandset?.trunkID == nil, "\(rows)")
        for cdr in [toHandset, fromHandset].compactMap({ $0 }) {
            #expect(cdr.durationSeconds >= 1 && cdr.answerAt != nil)
            // 0.06 a minute, per second.
            #expect(cdr.cost == Decimal(cdr.billedSeconds) * Decimal(string: "0.001")!, "\(cdr)")
        }
        await setup.stop()
    }

    @Test func emergencyNetworkCodesWithheldAndStrangers() async throws {
        let setup = try await Setup()
        defer { setup.serve.kill() }
        #expect(try await setup.registered(), "the SIM did not register with Kamailio")

        // S5: 999 goes to the emergency gateway, never the customer (no PBX runs).
        let gateway = try ExternalProcess("sipp", ["-sn", "uas", "-i", "127.0.0.1", "-p", "\(setup.emergencyPort)", "-m", "1", "-nostdin",
                                                   "-timeout", "30s", "-timeout_error"] + tolerateRetransmissions)
        try await Task.sleep(for: .milliseconds(500))
        let emergency = try await setup.simulator.placeCall(from: Self.iccid, to: "999")
        #expect(await eventually { (try? await setup.simulator.call(emergency.id))?.state == .answered })
        _ = try await setup.simulator.hangUp(callID: emergency.id)
        let (gatewayOK, gatewayOutput) = await Self.finished(gateway)
        #expect(gatewayOK, "SIPp as the emergency gateway: \(gatewayOutput)")

        // S6: a GSM code is not passed on; S7: a withheld number is a clear failure.
        let imei = try await setup.simulator.placeCall(from: Self.iccid, to: "*#06#")
        #expect(await eventually { (try? await setup.simulator.call(imei.id))?.state == .ended })
        let imeiCall = try await setup.simulator.call(imei.id)
        #expect(imeiCall.finalCode == 403 && imeiCall.reasonPhrase?.contains("network service code *#06#") == true, "\(imeiCall)")
        #expect(imeiCall.reason?.contains("cause=403") == true)

        let withheld = try await setup.simulator.placeCall(from: Self.iccid, to: "447700900123", withheld: true)
        #expect(await eventually { (try? await setup.simulator.call(withheld.id))?.state == .ended })
        let withheldCall = try await setup.simulator.call(withheld.id)
        #expect(withheldCall.finalCode == 433 && withheldCall.reasonPhrase?.contains("withheld") == true, "\(withheldCall)")

        // A stranger who knows the ICCID cannot ring the SIM: only its server may.
        let stranger = try await SIPEndpoint.start(
            configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(host: "127.0.0.5", port: 0, transport: .udp)])) { _ in }
        var invite = SIPMessage(request: .invite, uri: "sip:\(Self.iccid)@127.0.0.2:\(setup.switchPort)")
        invite.append(.from, "<sip:447700900666@127.0.0.5>;tag=\(SIPEndpoint.newTag())")
        invite.append(.to, "<sip:\(Self.iccid)@127.0.0.2>")
        invite.append(.callID, SIPEndpoint.newCallID(host: "127.0.0.5"))
        invite.append(.cseq, "1 INVITE")
        invite.append(.contact, "<sip:stranger@127.0.0.5>")
        let refused = try await stranger.send(invite, to: SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.2", port: setup.switchPort), transport: .udp))
        #expect(refused.statusCode == 403)
        await stranger.shutdown()
        #expect(try await setup.simulator.callList(handset: Self.iccid).allSatisfy { $0.direction == .mobileOriginated })

        // Refusals have CDRs too.
        var rows: [CDR] = []
        #expect(try await eventually { rows = try await setup.cdrs(); return rows.count >= 4 })
        #expect(Set(rows.map(\.finalStatus)) == [200, 403, 433], "\(rows)")
        #expect(rows.first { $0.to == "999" }?.cost == 0)
        await setup.stop()
    }

    /// S11: texts from the handset are answered 202 once stored, then POSTed
    /// to the SIM's webhook signed with the account's secret, retried while the
    /// receiver fails, in order; a `kill -9` of the switch loses none and
    /// sends none twice.
    @Test func textsFromTheHandsetReachTheSignedWebhookInOrderAcrossAKill() async throws {
        let receiverPort = freeTCPPort()
        let out = NSTemporaryDirectory() + "webhook-\(UUID().uuidString).jsonl"
        let setup = try await Setup(webhookURL: "http://127.0.0.1:\(receiverPort)/texts", simExtras: #", text_rate: "0.05""#)
        var serve = setup.serve
        defer { serve.kill() }
        #expect(try await waitUntilAnswersOptions(port: setup.switchPort, host: "127.0.0.2"))
        let secretTool = try ExternalProcess(try switchboardBinary(), ["webhook-secret", "920700", "--config", setup.config])
        let (status, printed, _) = await secretTool.wait(timeout: .seconds(30))
        let secret = printed.split(separator: "\n").last.map(String.init) ?? ""
        #expect(status == 0 && secret.hasPrefix("whsec_"), "\(printed)")

        // The receiver is down: texts are accepted (202) and kept.
        let first = try await setup.simulator.sendText(from: Self.iccid, to: "+447700900123", text: "first")
        let second = try await setup.simulator.sendText(from: Self.iccid, to: "+447700900123", text: "second, 5 €")
        #expect(first.statusCode == 202 && second.statusCode == 202, "\(first) \(second)")
        try await Task.sleep(for: .seconds(1))
        serve.kill()  // SIGKILL
        _ = await serve.wait(timeout: .seconds(5))
        serve = try setup.restartServe()
        #expect(try await waitUntilAnswersOptions(port: setup.switchPort, host: "127.0.0.2"))
        let third = try await setup.simulator.sendText(from: Self.iccid, to: "+447700900123", text: "third ✓")
        #expect(third.statusCode == 202)

        // The receiver comes up and fails its first two requests on purpose.
        let receiver = try ExternalProcess("python3", [fixture("webhook_receiver.py"), "--port", "\(receiverPort)", "--secret", secret,
                                                       "--fail-first", "2", "--out", out])
        defer { receiver.kill() }
        var lines: [[String: Any]] = []
        let delivered = await eventually(timeout: .seconds(40)) {
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return lines.count >= 3
        }
        #expect(delivered, "webhook got \(lines)")
        try await Task.sleep(for: .seconds(2))  // nothing more comes: no duplicates
        let final = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(final.count == 3, "\(final)")
        #expect(lines.allSatisfy { $0["ok"] as? Bool == true }, "signatures: \(lines)")
        let bodies = lines.compactMap { $0["body"] as? [String: Any] }
        #expect(bodies.map { $0["text"] as? String ?? "" } == ["first", "second, 5 €", "third ✓"])
        #expect(bodies.allSatisfy { $0["from"] as? String == Self.iccid && $0["to"] as? String == "+447700900123" })
        #expect(Set(bodies.compactMap { $0["id"] as? String }).count == 3)
        // The receiver goes away and comes back: a text sent meanwhile arrives once it is back.
        receiver.kill()
        _ = await receiver.wait(timeout: .seconds(5))
        let fourth = try await setup.simulator.sendText(from: Self.iccid, to: "+447700900123", text: "fourth")
        #expect(fourth.statusCode == 202)
        try await Task.sleep(for: .seconds(2))  // attempts fail meanwhile (connection refused)
        let back = try ExternalProcess("python3", [fixture("webhook_receiver.py"), "--port", "\(receiverPort)", "--secret", secret, "--out", out])
        defer { back.kill() }
        #expect(await eventually(timeout: .seconds(20)) {
            ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").count >= 4
        })
        try await Task.sleep(for: .seconds(1))
        let afterReturn = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(afterReturn.compactMap { ($0["body"] as? [String: Any])?["text"] as? String } == ["first", "second, 5 €", "third ✓", "fourth"])

        // S13: each text from the handset has a CDR charging its segment as it was taken.
        let charged = try await setup.cdrs().filter { $0.callType == "text" }
        #expect(Set(charged.map(\.callID)) == Set(afterReturn.compactMap { ($0["body"] as? [String: Any])?["id"] as? String }), "\(charged)")
        #expect(charged.allSatisfy { $0.from == Self.iccid && $0.finalStatus == 202 && $0.segments == 1 && $0.cost == parseMoney("0.05") })
        await setup.stop()
    }
}
