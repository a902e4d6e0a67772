import Foundation
import MobileCoreSimulator
import Testing
import TestSupport

/// The simulator against SIPp playing the switch (uas) or a caller (uac), on real sockets.
@Suite("simulator ⇄ SIPp", .serialized)
struct SimulatorSIPpTests {
    /// A handset dials +447700900123: SIPp (the switch) checks the Request-URI keeps
    /// the digits as dialled and PAI/From carry the ICCID, answers, and echoes RTP.
    @Test func handsetCallIsAnsweredCarriesRTPAndHangsUpWithBye() async throws {
        let sippPort = freePort()
        let sipp = try startSIPp("sim_switch_answer.xml", ["-mi", "127.0.0.1", "-mp", "\(freePort())", "-rtp_echo"], port: sippPort)
        try await Task.sleep(for: .milliseconds(300))
        let sim = try await startSimulator(handsets: [handsetA], switchPort: sippPort)
        let placed = try await sim.placeCall(from: handsetA, to: "+447700900123")
        #expect(placed.direction == .mobileOriginated)
        #expect(try await eventually { try await sim.call(placed.id).state == .answered })
        #expect(try await eventually { try await sim.call(placed.id).rtpReceived > 5 })
        let answered = try await sim.call(placed.id)
        #expect(answered.finalCode == 200)
        #expect(answered.rtpSent > 0)
        _ = try await sim.hangUp(callID: placed.id)
        await finish(sipp)
        let ended = try await sim.call(placed.id)
        #expect(ended.state == .ended)
        #expect(ended.endedBy == "local")
        #expect(try await sim.callList(handset: handsetA).map(\.id) == [placed.id])
        await sim.shutdown()
    }

    /// Withheld: anonymous From and Privacy: id, PAI still the ICCID; the 486's reason phrase and Reason header are kept.
    @Test func withheldCallRejectedBusyKeepsCodeReasonPhraseAndReasonHeader() async throws {
        let sippPort = freePort()
        let sipp = try startSIPp("sim_switch_withheld_busy.xml", [], port: sippPort)
        try await Task.sleep(for: .milliseconds(300))
        let sim = try await startSimulator(handsets: [handsetA], switchPort: sippPort)
        let placed = try await sim.placeCall(from: handsetA, to: "07700900123", withheld: true)
        #expect(try await eventually { try await sim.call(placed.id).state == .ended })
        await finish(sipp)
        let call = try await sim.call(placed.id)
        #expect(call.finalCode == 486)
        #expect(call.reasonPhrase == "Busy Here")
        #expect(call.reason == "Q.850;cause=17;text=\"User busy\"")
        #expect(call.endedBy == "remote")
        #expect(call.withheld)
        await sim.shutdown()
    }

    /// Hanging up a ringing call sends CANCEL; the INVITE ends with 487.
    @Test func hangUpWhileRingingCancels() async throws {
        let sippPort = freePort()
        let sipp = try ExternalProcess("sipp", ["-sf", fixture("sipp/gw_ring_then_cancel.xml"), "-i", "127.0.0.1", "-p", "\(sippPort)",
                                                "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error"])
        try await Task.sleep(for: .milliseconds(300))
        let sim = try await startSimulator(handsets: [handsetA], switchPort: sippPort)
        let placed = try await sim.placeCall(from: handsetA, to: "+447700900123")
        #expect(try await eventually { try await sim.call(placed.id).state == .ringing })
        _ = try await sim.hangUp(callID: placed.id)
        #expect(try await eventually { try await sim.call(placed.id).state == .ended })
        await finish(sipp)
        let call = try await sim.call(placed.id)
        #expect(call.finalCode == 487)
        #expect(call.endedBy == "local")
        #expect(call.rtpSent == 0)
        await sim.shutdown()
    }

    @Test func callerReachesHandsetWhichAutoAnswersAndCallerHangsUp() async throws {
        let sim = try await startSimulator(handsets: [handsetA], switchPort: freePort())
        let sipp = try startSIPp("sim_caller_bye.xml", ["-s", handsetA, "127.0.0.1:\(sim.sipPort)",
                                                        "-mi", "127.0.0.1", "-mp", "\(freePort())", "-rtp_echo"], port: freePort())
        await finish(sipp)
        let calls = try await sim.callList(handset: handsetA)
        try #require(calls.count == 1)
        let call = calls[0]
        #expect(call.direction == .mobileTerminated)
        #expect(call.state == .ended)
        #expect(call.endedBy == "remote")
        #expect(call.finalCode == 200)
        #expect(call.fromDisplay == "Alice Caller")
        #expect(call.fromUser == "+441632960001")
        #expect(call.paiUser == "+441632960001")
        #expect(call.rtpSent > 0)
        await sim.shutdown()
    }

    @Test func unknownICCIDGets404() async throws {
        let sim = try await startSimulator(handsets: [handsetA], switchPort: freePort())
        let sipp = try startSIPp("sim_caller_expect_404.xml", ["-s", strangerICCID, "127.0.0.1:\(sim.sipPort)"], port: freePort())
        await finish(sipp)
        #expect(try await sim.callList().isEmpty)
        await sim.shutdown()
    }

    @Test func manualHandsetRejectsWith486() async throws {
        let sim = try await startSimulator(handsets: [handsetA], switchPort: freePort(), answer: .manual)
        let sipp = try startSIPp("sim_caller_expect_486.xml", ["-s", handsetA, "127.0.0.1:\(sim.sipPort)"], port: freePort())
        #expect(try await eventually { try await sim.callList().first?.state == .ringing })
        let ringing = try #require(try await sim.callList().first)
        let rejected = try await sim.reject(callID: ringing.id, code: 486)
        #expect(rejected.state == .ended)
        #expect(rejected.finalCode == 486)
        await finish(sipp)
        await #expect(throws: SimulatorError.self) { try await sim.answer(callID: ringing.id) }
        await sim.shutdown()
    }

    @Test func textFromSIPpIsStoredAndListed() async throws {
        let sim = try await startSimulator(handsets: [handsetA], switchPort: freePort())
        let sipp = try startSIPp("sim_sender_message.xml", ["-s", handsetA, "127.0.0.1:\(sim.sipPort)"], port: freePort())
        await finish(sipp)
        let texts = try await sim.textList(handset: handsetA)
        try #require(texts.count == 1)
        #expect(texts[0].direction == .received)
        #expect(texts[0].peer == "+441632960001")
        #expect(texts[0].text.hasPrefix("hello handset"))
        await sim.shutdown()
    }

    @Test func handsetTextReachesSIPp() async throws {
        let sippPort = freePort()
        let sipp = try startSIPp("sim_switch_message.xml", [], port: sippPort)
        try await Task.sleep(for: .milliseconds(300))
        let sim = try await startSimulator(handsets: [handsetA], switchPort: sippPort)
        let sent = try await sim.sendText(from: handsetA, to: "+447700900123", text: "hello from the handset")
        #expect(sent.statusCode == 200)
        await finish(sipp)
        #expect(try await sim.textList(handset: handsetA) == [sent])
        await sim.shutdown()
    }
}
