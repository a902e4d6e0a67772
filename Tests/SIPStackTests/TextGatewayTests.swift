import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Rating
import MobileCoreSimulator
import SIMs
import Store
import Testing
import TestSupport

/// An HTTP call on `switchboard serve`'s REST API.
struct ServeAPI {
    let port: Int

    func call(_ method: String, _ path: String, key: String?, body: String? = nil,
              contentType: String = "application/json") async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.httpMethod = method
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(body.utf8)
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    /// Until the API answers (serve is up).
    func up() async -> Bool {
        await eventually(timeout: .seconds(30)) { (try? await call("GET", "/api/v1/openapi.yaml", key: nil).status) == 200 }
    }
}

extension SIMCallTests {
    /// A key made with `switchboard api-key create`, as an operator would.
    static func apiKey(_ setup: Setup, account: String?) async throws -> String {
        let tool = try ExternalProcess(try switchboardBinary(), ["api-key", "create", "--label", "e2e", "--config", setup.config]
                                           + (account.map { ["--account", $0] } ?? []))
        let (status, output, _) = await tool.wait(timeout: .seconds(30))
        #expect(status == 0, "api-key create: \(output)")
        return output.split(separator: "\n").map(String.init).first { $0.hasPrefix("sbk_") } ?? ""
    }

    /// S10 end to end: POST /api/v1/texts → switch → MESSAGE → simulator
    /// handset. A handset that is off (480) gets its texts when it is back,
    /// in order and once, across a kill -9 of the switch; a text the core
    /// refuses for good (404) fails with that code; each text has a CDR
    /// charging its segments (S13).
    @Test func textsToTheHandsetThroughTheGatewayAcrossAKill() async throws {
        let setup = try await Setup(simExtras: #", text_rate: "0.04", linked_number: "447700900123""#)
        var serve = setup.serve
        defer { serve.kill() }
        let api = ServeAPI(port: setup.httpPort)
        #expect(await api.up())
        let key = try await Self.apiKey(setup, account: "920700")
        let handset = Self.iccid
        func texts() async throws -> [TextRecord] { try await setup.simulator.textList(handset: handset).filter { $0.direction == .received } }

        // A text reaches the handset from the SIM's linked number.
        let first = try await api.call("POST", "/api/v1/texts", key: key, body: #"{"to": "\#(handset)", "text": "Your code is 4711"}"#)
        #expect(first.status == 202, "\(first.json)")
        let firstID = try #require(first.json["id"] as? String)
        #expect(await eventually(timeout: .seconds(10)) { ((try? await texts()) ?? []).count == 1 })
        let got = try await texts()
        #expect(got.first?.text == "Your code is 4711" && got.first?.peer == "447700900123", "\(got)")
        var state: [String: Any] = [:]
        #expect(await eventually(timeout: .seconds(10)) {
            state = (try? await api.call("GET", "/api/v1/texts/\(firstID)", key: key).json) ?? [:]
            return state["state"] as? String == "delivered"
        }, "\(state)")
        #expect(state["sip_code"] as? Int == 200 && state["attempts"] as? Int == 1 && state["direction"] as? String == "to_handset")

        // The handset is switched off: texts are accepted and retried (480), kept across a kill -9.
        try await setup.simulator.setReachable(try ICCID(handset), false)
        let second = try await api.call("POST", "/api/v1/texts", key: key, body: "to=\(handset)&text=second&from=Acme",
                                        contentType: "application/x-www-form-urlencoded")
        let third = try await api.call("POST", "/api/v1/texts", key: key, body: #"{"to": "\#(handset)", "text": "third: 5 € ✓"}"#)
        #expect(second.status == 202 && third.status == 202, "\(second.json) \(third.json)")
        let secondID = try #require(second.json["id"] as? String)
        #expect(await eventually(timeout: .seconds(10)) {
            state = (try? await api.call("GET", "/api/v1/texts/\(secondID)", key: key).json) ?? [:]
            return state["sip_code"] as? Int == 480
        }, "\(state)")
        #expect(state["state"] as? String == "queued" && (state["last_error"] as? String)?.contains("480") == true, "\(state)")
        serve.kill()  // SIGKILL
        _ = await serve.wait(timeout: .seconds(5))
        serve = try setup.restartServe()
        #expect(await api.up())
        try await setup.simulator.setReachable(try ICCID(handset), true)
        #expect(await eventually(timeout: .seconds(20)) { ((try? await texts()) ?? []).count >= 3 })
        try await Task.sleep(for: .seconds(2))  // nothing more comes: no duplicates
        let all = try await texts()
        #expect(all.map(\.text) == ["Your code is 4711", "second", "third: 5 € ✓"], "\(all)")
        #expect(all.map(\.peer) == ["447700900123", "Acme", "447700900123"])

        // This SIM has no webhook_url: its handset's texts are refused (403), not taken to fail unseen.
        let nowhere = try await setup.simulator.sendText(from: handset, to: "+447700900123", text: "to nowhere")
        #expect(nowhere.statusCode == 403, "\(nowhere)")

        // A SIM the mobile core does not know: the text fails with the core's 404.
        let operatorKey = try await Self.apiKey(setup, account: nil)
        let stranger = "89441012345678901237"
        let put = try await api.call("PUT", "/api/v1/sims/\(stranger)", key: operatorKey,
                                     body: #"{"account": "920700", "sip_hostname": "127.0.0.1:9", "username": "x", "password": "y", "text_rate": "0.04"}"#)
        #expect(put.status == 201, "\(put.json)")
        let lost = try await api.call("POST", "/api/v1/texts", key: key, body: #"{"to": "\#(stranger)", "text": "hello?", "from": "Acme"}"#)
        let lostID = try #require(lost.json["id"] as? String)
        #expect(await eventually(timeout: .seconds(10)) {
            state = (try? await api.call("GET", "/api/v1/texts/\(lostID)", key: key).json) ?? [:]
            return state["state"] as? String == "failed"
        }, "\(state)")
        #expect(state["sip_code"] as? Int == 404, "\(state)")

        // CDRs: one per text, delivered ones charged 0.04 per segment, the failed one free with its code.
        let cdrs = try await setup.cdrs().filter { $0.callType == "text" }
        #expect(cdrs.count == 4, "\(cdrs)")
        let delivered = cdrs.filter { $0.finalStatus == 200 }
        #expect(delivered.count == 3 && delivered.allSatisfy { $0.to == handset && $0.segments == 1 && $0.cost == parseMoney("0.04") }, "\(cdrs)")
        #expect(cdrs.contains { $0.callID == lostID && $0.finalStatus == 404 && $0.cost == 0 && $0.to == stranger })
        await setup.stop()
    }

    /// S12: a text from the network to the customer's number (a MESSAGE from a
    /// carrier gateway) reaches the SIM linked to it; a stranger's is refused;
    /// a text from the handset goes out through the carrier as from the
    /// number; a call to the number rings the SIM.
    @Test func linkedNumberTextsAndCallsReachTheSIM() async throws {
        let carrierPort = freePort()
        let setup = try await Setup(simExtras: #", text_rate: "0.04", linked_number: "447700900123", texts_out: linked_number"#,
                                    configExtras: #"gateways: [{ name: carrier, address: "127.0.0.1:\#(carrierPort)", prefixes: ["44"] }]"#)
        defer { setup.serve.kill() }
        #expect(try await waitUntilAnswersOptions(port: setup.switchPort, host: "127.0.0.2"))
        let carrier = try ExternalProcess("sipp", ["-sf", fixture("sipp/carrier_texts_number.xml"), "-i", "127.0.0.1", "-p", "\(carrierPort)",
                                                   "-m", "1", "-s", "+447700900123", "127.0.0.2:\(setup.switchPort)",
                                                   "-nostdin", "-timeout", "20s", "-timeout_error"])
        let (ok, output) = await Self.finished(carrier)
        #expect(ok, "the switch did not take the carrier's text with 202: \(output)")
        var got: [TextRecord] = []
        #expect(await eventually(timeout: .seconds(10)) {
            got = ((try? await setup.simulator.textList(handset: Self.iccid)) ?? []).filter { $0.direction == .received }
            return !got.isEmpty
        })
        #expect(got.map { $0.text.trimmingCharacters(in: .newlines) } == ["from the network to your number"], "\(got)")  // SIPp ends its body with CRLF
        #expect(got.first?.peer == "+441632960001", "\(got)")

        let stranger = try ExternalProcess("sipp", ["-sf", fixture("sipp/stranger_texts_number.xml"), "-i", "127.0.0.5", "-p", "\(freePort())",
                                                    "-m", "1", "-s", "447700900123", "127.0.0.2:\(setup.switchPort)",
                                                    "-nostdin", "-timeout", "20s", "-timeout_error"])
        let (refused, strangerOutput) = await Self.finished(stranger)
        #expect(refused, "a stranger's text to the linked number was not refused with 403: \(strangerOutput)")
        try await Task.sleep(for: .seconds(1))
        #expect(try await setup.simulator.textList(handset: Self.iccid).filter { $0.direction == .received }.count == 1)

        // The handset texts a number: out through the carrier gateway, from the linked number.
        let gateway = try ExternalProcess("sipp", ["-sf", fixture("sipp/carrier_receives_text.xml"), "-i", "127.0.0.1", "-p", "\(carrierPort)",
                                                   "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"] + tolerateRetransmissions)
        try await Task.sleep(for: .milliseconds(300))
        let sent = try await setup.simulator.sendText(from: Self.iccid, to: "+441632960001", text: "out through the carrier")
        #expect(sent.statusCode == 202, "\(sent)")
        let (taken, gatewayOutput) = await Self.finished(gateway)
        #expect(taken, "the carrier did not get the text from the linked number: \(gatewayOutput)")

        // Each charged when it is delivered (the outgoing one: once the carrier took it).
        var cdrs: [CDR] = []
        #expect(await eventually(timeout: .seconds(10)) {
            cdrs = ((try? await setup.cdrs()) ?? []).filter { $0.callType == "text" }
            return cdrs.count == 2
        }, "\(cdrs)")
        #expect(cdrs.contains { $0.from == "+441632960001" && $0.to == Self.iccid && $0.cost == parseMoney("0.04") && $0.finalStatus == 200 }, "\(cdrs)")
        #expect(cdrs.contains { $0.from == Self.iccid && $0.to == "441632960001" && $0.cost == parseMoney("0.04") && $0.finalStatus == 202 }, "\(cdrs)")

        // A call from the carrier to the number rings the SIM's handset, which answers.
        let call = try Self.sipp("customer_calls_sim.xml", ["-s", "+447700900123", "127.0.0.2:\(setup.switchPort)"], port: carrierPort)
        let (callOK, callOutput) = await Self.finished(call)
        #expect(callOK, "the carrier's call to the linked number: \(callOutput)")
        let inbound = try await setup.simulator.callList(handset: Self.iccid).first { $0.direction == .mobileTerminated }
        #expect(inbound?.fromUser == "+447700900999" && inbound?.answeredAt != nil, "\(String(describing: inbound))")
        await setup.stop()
    }
}
