import Logging
import NIOCore
import SIPMessage
@testable import SIPStack
import SIPTransaction
@testable import SIPTransport
import Testing

/// The endpoint's transactions driven event by event, without sockets or
/// sleeps: times are passed in (uptime nanoseconds), actions checked as data.
@Suite struct TransactionLayerTests {
    static let t1: UInt64 = 500_000_000
    static let start: UInt64 = 1_000_000_000_000

    func makeLayer(deliversACKs: Bool = false) -> TransactionLayer {
        TransactionLayer(configuration: SIPEndpointConfiguration(listen: [], deliversACKsOf2xx: deliversACKs),
                         logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    func text(_ method: String, branch: String, callID: String = "call-1@192.0.2.10", cseq: Int = 1, toTag: String? = nil) -> String {
        "\(method) sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=\(branch)\r\nMax-Forwards: 70\r\n"
            + "From: <sip:alice@192.0.2.10>;tag=a1\r\nTo: <sip:bob@192.0.2.20>" + (toTag.map { ";tag=\($0)" } ?? "") + "\r\n"
            + "Call-ID: \(callID)\r\nCSeq: \(cseq) \(method)\r\nContent-Length: 0\r\n\r\n"
    }

    func inbound(_ message: SIPMessage) throws -> SIPInbound {
        SIPInbound(message: message, source: try SocketAddress(ipAddress: "192.0.2.10", port: 5060), transport: .udp, local: nil,
                   connection: nil, topVia: message.topVia)
    }

    func inbound(_ text: String) throws -> SIPInbound { try inbound(try SIPMessage(parsing: text)) }

    /// A request of ours, Via in place, as `SIPEndpoint.send` hands it to the layer.
    func outgoing(_ method: SIPMethod, branch: String, callID: String, cseq: UInt32 = 1, toTag: String? = nil) -> SIPMessage {
        var m = SIPMessage(request: method, uri: "sip:bob@192.0.2.20")
        m.append(.via, "SIP/2.0/UDP 192.0.2.1:5060;branch=\(branch);rport")
        m.append(.from, "<sip:a@192.0.2.1>;tag=x")
        m.append(.to, "<sip:bob@192.0.2.20>" + (toTag.map { ";tag=\($0)" } ?? ""))
        m.append(.callID, callID)
        m.append(.cseq, "\(cseq) \(method)")
        return m
    }

    var gateway: SIPDestination {
        get throws { SIPDestination(address: try SocketAddress(ipAddress: "192.0.2.20", port: 5060), transport: .udp) }
    }

    /// Runs the timers every 100 ms from `from` to `to`, gathering what they asked for.
    func runTimers(_ layer: inout TransactionLayer, from: UInt64, to: UInt64) -> [TransactionLayer.Action] {
        var out: [TransactionLayer.Action] = []
        for now in stride(from: from, through: to, by: 100_000_000) { out += layer.timersDue(now: now) }
        return out
    }

    @Test func inviteWeAnswerIsHandedOverOnceAndIts2xxResentUntilACKed() throws {
        var layer = makeLayer()
        let invite = try inbound(text("INVITE", branch: "z9hG4bKs1"))
        let first = layer.receivedRequest(invite, now: Self.start)
        #expect(first.compactMap(\.sentResponse).map(\.statusCode) == [100])
        #expect(first.compactMap(\.delivered).count == 1)
        let key = try #require(first.compactMap(\.deliveredKey).first)
        // The INVITE again: its last response again, and the TU does not hear it twice.
        let again = layer.receivedRequest(invite, now: Self.start + 10)
        #expect(again.compactMap(\.sentResponse).map(\.statusCode) == [100] && again.compactMap(\.delivered).isEmpty)
        #expect(layer.respond(invite.message.makeResponse(180, toTag: "b1"), key: key, now: Self.start + 20).compactMap(\.sentResponse)
            .map(\.statusCode) == [180])
        let ok = layer.respond(invite.message.makeResponse(200, toTag: "b1"), key: key, now: Self.start + 30)
        #expect(ok.compactMap(\.sentResponse).map(\.statusCode) == [200])
        #expect(ok.compactMap(\.sentResponse).first?.firstValue(.server) == "Switchboard")
        // The INVITE retransmitted after the 2xx gets the 2xx (RFC 6026 §7.1).
        #expect(layer.receivedRequest(invite, now: Self.start + 40).compactMap(\.sentResponse).map(\.statusCode) == [200])
        // No ACK within T1: the 2xx again.
        #expect(layer.timersDue(now: Self.start + 30 + Self.t1 + 5_000_000).compactMap(\.sentResponse).map(\.statusCode) == [200])
        // The ACK stops it, and is not handed over (this endpoint does not deliver ACKs of 2xx).
        let ack = try inbound(text("ACK", branch: "z9hG4bKs1ack", toTag: "b1"))
        #expect(layer.receivedRequest(ack, now: Self.start + Self.t1 * 2).isEmpty)
        let later = runTimers(&layer, from: Self.start + Self.t1 * 2, to: Self.start + Self.t1 * 70)
        #expect(later.compactMap(\.sentResponse).isEmpty && later.compactMap(\.missingACK).isEmpty)
        #expect(layer.accepted.isEmpty && layer.servers.isEmpty)
    }

    @Test func a2xxNeverACKedIsResentThenReportedOnce() throws {
        var layer = makeLayer()
        let invite = try inbound(text("INVITE", branch: "z9hG4bKs2", callID: "lost-ack@192.0.2.10"))
        let key = try #require(layer.receivedRequest(invite, now: Self.start).compactMap(\.deliveredKey).first)
        _ = layer.respond(invite.message.makeResponse(200, toTag: "b2"), key: key, now: Self.start)
        let actions = runTimers(&layer, from: Self.start, to: Self.start + Self.t1 * 90)
        // T1, 2·T1, 4·T1, then every T2 (4 s) until 64·T1 of them (RFC 3261 §13.3.1.4).
        #expect(actions.compactMap(\.sentResponse).count >= 8)
        #expect(actions.compactMap(\.missingACK) == ["lost-ack@192.0.2.10"])
        #expect(layer.accepted.isEmpty)
    }

    @Test func cancelOfAnInviteWeHaveNotAnsweredGets200And487() throws {
        var layer = makeLayer()
        let invite = try inbound(text("INVITE", branch: "z9hG4bKs3"))
        _ = layer.receivedRequest(invite, now: Self.start)
        let cancel = layer.receivedRequest(try inbound(text("CANCEL", branch: "z9hG4bKs3")), now: Self.start + 10)
        let sent = cancel.compactMap(\.sentResponse)
        #expect(sent.map(\.statusCode) == [200, 487])
        #expect(sent.map { $0.cseq?.method } == [.cancel, .invite])
        #expect(cancel.compactMap(\.delivered).map(\.message.method) == [.cancel])
        // A CANCEL matching nothing: 481, and the TU does not hear it.
        let stray = layer.receivedRequest(try inbound(text("CANCEL", branch: "z9hG4bKnone")), now: Self.start + 20)
        #expect(stray.compactMap(\.sentResponse).map(\.statusCode) == [481] && stray.compactMap(\.delivered).isEmpty)
    }

    @Test func inviteWeSendIsRetransmittedAndItsResponsesDeliveredOnce() throws {
        var layer = makeLayer()
        let invite = outgoing(.invite, branch: "z9hG4bKc1", callID: "out-1@192.0.2.1")
        let (key, started) = layer.startClient(invite, method: .invite, to: try gateway, now: Self.start)
        #expect(started.compactMap(\.sentRequest).map(\.method) == [.invite])
        // Timer A: again after T1 with no response.
        #expect(layer.timersDue(now: Self.start + Self.t1 + 5_000_000).compactMap(\.sentRequest).map(\.method) == [.invite])
        // 100 tells the TU nothing; 180 is delivered; 200 is delivered once however often it comes.
        #expect(layer.receivedResponse(try inbound(invite.makeResponse(100)), now: Self.start + Self.t1 + 10).isEmpty)
        let ringing = layer.receivedResponse(try inbound(invite.makeResponse(180, toTag: "g1")), now: Self.start + Self.t1 + 20)
        #expect(ringing.compactMap(\.provisional).map(\.statusCode) == [180] && ringing.compactMap(\.provisionalKey) == [key])
        let ok = try inbound(invite.makeResponse(200, toTag: "g1"))
        let answered = layer.receivedResponse(ok, now: Self.start + Self.t1 + 30)
        #expect(answered.compactMap(\.final).map(\.statusCode) == [200])
        #expect(layer.receivedResponse(ok, now: Self.start + Self.t1 + 40).compactMap(\.final).isEmpty)
        // Nothing more is sent or failed by its timers.
        let later = runTimers(&layer, from: Self.start + Self.t1, to: Self.start + Self.t1 * 70)
        #expect(later.compactMap(\.sentRequest).isEmpty && later.compactMap(\.failure).isEmpty)
    }

    @Test func aRequestWithNoAnswerFailsOnceWhenItsTransactionTimesOut() throws {
        var layer = makeLayer()
        let options = outgoing(.options, branch: "z9hG4bKc2", callID: "out-2@192.0.2.1")
        let (key, _) = layer.startClient(options, method: .options, to: try gateway, now: Self.start)
        let actions = runTimers(&layer, from: Self.start, to: Self.start + Self.t1 * 70)
        #expect(actions.compactMap(\.sentRequest).count >= 5)  // Timer E: T1, 2·T1, 4·T1, T2…
        let failures = actions.compactMap(\.failure)
        #expect(failures.count == 1)
        if case .timeout = failures.first?.0 {} else { Issue.record("expected a timeout, got \(String(describing: failures.first?.0))") }
        #expect(failures.first?.1 == key)
        #expect(layer.clients.isEmpty)
    }

    /// Tables reuse the slots of ended transactions; timers name their slot
    /// and its occupant, so an ended transaction's timers never reach the
    /// one that takes its slot.
    @Test func aTransactionInAnEndedOnesSlotIsLeftAloneByItsTimers() throws {
        var layer = makeLayer()
        let invite = outgoing(.invite, branch: "z9hG4bKr1", callID: "slot-1@192.0.2.1")
        _ = layer.startClient(invite, method: .invite, to: try gateway, now: Self.start)
        #expect(layer.receivedResponse(try inbound(invite.makeResponse(200, toTag: "g1")), now: Self.start + 10).compactMap(\.final).count == 1)
        #expect(layer.clients.isEmpty)
        let options = outgoing(.options, branch: "z9hG4bKr2", callID: "slot-2@192.0.2.1")
        let (key, _) = layer.startClient(options, method: .options, to: try gateway, now: Self.start + 20)
        #expect(layer.clientSlots.slots.count == 1)  // the INVITE's slot, taken again
        let actions = runTimers(&layer, from: Self.start, to: Self.start + Self.t1 * 70)
        #expect(actions.compactMap(\.sentRequest).allSatisfy { $0.method == .options })
        #expect(actions.compactMap(\.failure).map(\.1) == [key])
        #expect(layer.clients.isEmpty && layer.timers.count == 0)
    }

    @Test func timerIDsCarryTheirOwnerSlotGenerationAndTimer() {
        for kind in [TransactionLayer.TimerID.Kind.client, .server, .accepted, .ackCache] {
            for timer in [TransactionTimer?.none] + TransactionTimer.allCases.map(Optional.some) {
                let id = TransactionLayer.TimerID(kind, slot: 0x3FF_FFFF, generation: 0xFFFF_FFFF, timer: timer)
                #expect(id.kind == kind && id.slot == 0x3FF_FFFF && id.generation == 0xFFFF_FFFF && id.timer == timer)
                let other = TransactionLayer.TimerID(kind, slot: 7, generation: 1, timer: timer)
                #expect(other.slot == 7 && other.generation == 1 && other.timer == timer && other != id)
            }
        }
    }

    @Test func aTransportErrorFailsTheRequestOnce() throws {
        var layer = makeLayer()
        let options = outgoing(.options, branch: "z9hG4bKc3", callID: "out-3@192.0.2.1")
        let (key, _) = layer.startClient(options, method: .options, to: try gateway, now: Self.start)
        let failed = layer.clientTransportError(key, error: "network unreachable", now: Self.start + 10)
        let later = runTimers(&layer, from: Self.start, to: Self.start + Self.t1 * 70)
        let failures = (failed + later).compactMap(\.failure)
        #expect(failures.count == 1)
        if case .transport(_, let why) = failures.first?.0 { #expect(why == "network unreachable") } else { Issue.record("expected a transport error") }
    }

    @Test func cancelWaitsForAProvisionalResponse() throws {
        var layer = makeLayer()
        let invite = outgoing(.invite, branch: "z9hG4bKc4", callID: "out-4@192.0.2.1", cseq: 7)
        _ = layer.startClient(invite, method: .invite, to: try gateway, now: Self.start)
        // Before any provisional response a CANCEL may not be sent (RFC 3261 §9.1).
        #expect(layer.cancelInvite(callID: "out-4@192.0.2.1", cseq: 7).isEmpty)
        let trying = layer.receivedResponse(try inbound(invite.makeResponse(100)), now: Self.start + 10)
        let cancel = try #require(trying.compactMap(\.cancel).first)
        #expect(cancel.method == .cancel && cancel.cseq == SIPCSeq(7, .cancel))
        #expect(cancel.topVia?.branch == "z9hG4bKc4" && cancel.callID == "out-4@192.0.2.1")
        // Asked again once a provisional has come: at once.
        #expect(layer.cancelInvite(callID: "out-4@192.0.2.1", cseq: 7).compactMap(\.cancel).count == 1)
        #expect(layer.cancelInvite(callID: "other@192.0.2.1", cseq: 7).isEmpty)
    }

    @Test func ourACKIsResentForA2xxRetransmittedAfterItsTransaction() throws {
        var layer = makeLayer()
        let ack = outgoing(.ack, branch: "z9hG4bKa5", callID: "out-5@192.0.2.1", toTag: "g5")
        #expect(layer.sendACK(ack, to: try gateway, now: Self.start).compactMap(\.sentRequest).map(\.method) == [.ack])
        var ok = SIPMessage(response: 200)
        for (n, v) in [(SIPHeaderName.via, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKgone;rport"), (.from, "<sip:a@192.0.2.1>;tag=x"),
                       (.to, "<sip:bob@192.0.2.20>;tag=g5"), (.callID, "out-5@192.0.2.1"), (.cseq, "1 INVITE")] { ok.append(n, v) }
        let resent = layer.receivedResponse(try inbound(ok), now: Self.start + 10)
        #expect(resent.compactMap(\.sentRequest).map(\.method) == [.ack])
        // Forgotten after 64·T1.
        _ = runTimers(&layer, from: Self.start, to: Self.start + Self.t1 * 65)
        #expect(layer.receivedResponse(try inbound(ok), now: Self.start + Self.t1 * 66).isEmpty)
    }

    /// What a front on the event loop routes by: its own transactions' retransmissions,
    /// ACKs, CANCELs and responses are the layer's; anything else is not.
    @Test func ownsItsTransactionsMessagesAndNothingElse() throws {
        var layer = makeLayer()
        /// Taken by the layer when it accepts no new transaction (asked of a copy, so nothing changes).
        func owns(_ layer: TransactionLayer, _ message: SIPInbound) -> Bool {
            var copy = layer
            return message.message.isRequest ? copy.receivedRequest(message, now: Self.start, acceptsNew: { _ in false }) != nil
                : copy.receivedOwnResponse(message, now: Self.start) != nil
        }
        let invite = try inbound(text("INVITE", branch: "z9hG4bKo1"))
        #expect(!owns(layer, invite))
        let key = try #require(layer.receivedRequest(invite, now: Self.start).compactMap(\.deliveredKey).first)
        #expect(owns(layer, invite))  // a retransmission
        #expect(owns(layer, try inbound(text("CANCEL", branch: "z9hG4bKo1"))))
        #expect(!owns(layer, try inbound(text("BYE", branch: "z9hG4bKo2", toTag: "t"))))
        #expect(!owns(layer, try inbound(text("INVITE", branch: "z9hG4bKo3", callID: "other@192.0.2.10"))))
        // Answered 2xx: its ACK (a new branch, RFC 3261 §17.1.1.3) is the layer's too.
        _ = layer.respond(try SIPMessage(parsing: text("INVITE", branch: "z9hG4bKo1")).makeResponse(200, toTag: "t"), key: key, now: Self.start)
        #expect(owns(layer, try inbound(text("ACK", branch: "z9hG4bKo4", toTag: "t"))))
        #expect(!owns(layer, try inbound(text("ACK", branch: "z9hG4bKo5", callID: "other@192.0.2.10", toTag: "t"))))

        let request = outgoing(.invite, branch: "z9hG4bKc1", callID: "b-1@switch")
        _ = layer.startClient(request, method: .invite, to: try gateway, now: Self.start)
        #expect(owns(layer, try inbound(request.makeResponse(180, toTag: "g"))))
        #expect(!owns(layer, try inbound(outgoing(.invite, branch: "z9hG4bKc2", callID: "b-2@switch").makeResponse(180, toTag: "g"))))
    }
}

extension TransactionLayer.Action {
    var sentResponse: SIPMessage? { if case .sendResponse(let m, _) = self { m } else { nil } }
    var sentRequest: SIPMessage? { if case .sendRequest(let m, _, _) = self { m } else { nil } }
    var delivered: SIPInbound? { if case .deliverRequest(let i, _) = self { i } else { nil } }
    var deliveredKey: TransactionKey? { if case .deliverRequest(_, let k) = self { k } else { nil } }
    var provisional: SIPMessage? { if case .deliverProvisional(let m, _) = self { m } else { nil } }
    var provisionalKey: TransactionKey? { if case .deliverProvisional(_, let k) = self { k } else { nil } }
    var final: SIPMessage? { if case .deliverFinal(let m, _) = self { m } else { nil } }
    var failure: (SIPClientError, TransactionKey)? { if case .failRequest(let e, let k) = self { (e, k) } else { nil } }
    var cancel: SIPMessage? { if case .sendCancel(let m, _) = self { m } else { nil } }
    var missingACK: String? { if case .missingACK(let c) = self { c } else { nil } }
}
