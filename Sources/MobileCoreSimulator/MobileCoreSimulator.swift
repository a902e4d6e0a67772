import Foundation
import Logging
import NIOCore
import NIOPosix
import SDP
import SIMs
import SIPMessage
import SIPStack
import SIPTransport

/// A mobile core with handsets, for tests and demos: it plays the operator's
/// SIP peer of SIP2SIM. Handsets (ICCIDs) place calls and send texts to the
/// switch, ring and answer when called, and send a tone over RTP while a
/// call is answered.
///
///     let sim = try await MobileCoreSimulator.start(configuration)
///     let call = try await sim.placeCall(from: "89440000000000000010", to: "+447700900123")
///     …
///     await sim.shutdown()
///
/// One actor owns the SIP endpoint, every call's `CallLeg` and RTP socket;
/// `CallLeg` decides, this actor performs.
public actor MobileCoreSimulator {
    struct Call {
        var id: String
        var iccid: String
        var leg: CallLeg
        var peer: String
        var withheld: Bool
        var sipCallID: String
        var localTag: String
        /// Our From (MO) or To (MT) without the tag, and the other party's header with its tag once known.
        var localAddress: String
        var remoteHeader: String
        var remoteTarget: String
        var routeSet: [String] = []
        var nextCSeq: UInt32 = 2
        /// MT: the INVITE, answered through its server transaction.
        var invite: SIPServerRequest?
        var inviteSource: SocketAddress?
        var media: RTPSession?
        var remoteMedia: SocketAddress?
        var counters = RTPCounters()
        var recording: String?
        var fromDisplay: String?
        var fromUser: String?
        var paiUser: String?
        var privacy: String?
        var reasonPhrase: String?
        var reasonHeader: String?
        var startedAt = Date()
        var answeredAt: Date?
        var endedAt: Date?
        var answerTask: Task<Void, Never>?
    }

    public nonisolated let configuration: SimulatorConfiguration
    let logger: Logger
    let endpoint: SIPEndpoint
    let switchDestination: SIPDestination
    /// host and host:port the simulator puts in From, PAI, Contact and SDP.
    let simHost: String
    let contactHostPort: String
    var handsets: [String: AnswerMode] = [:]
    /// Handsets switched off or out of coverage: calls and texts to them get 480.
    var unreachable: Set<String> = []
    var calls: [String: Call] = [:]
    var callOrder: [String] = []
    var texts: [TextRecord] = []
    var sequence = 0
    var rtpCursor: Int
    var rtpInUse: Set<Int> = []
    var httpTask: Task<Void, Never>?
    /// The control API's bound port, when it runs.
    public internal(set) var httpPort: Int?

    /// The SIP port the simulator listens on.
    public nonisolated let sipPort: Int

    init(configuration: SimulatorConfiguration, logger: Logger, endpoint: SIPEndpoint, switchDestination: SIPDestination,
         sipPort: Int, contactHostPort: String) {
        self.configuration = configuration; self.logger = logger; self.endpoint = endpoint
        self.switchDestination = switchDestination; self.sipPort = sipPort; self.contactHostPort = contactHostPort
        var host = contactHostPort
        if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
        simHost = host
        rtpCursor = configuration.rtpPorts?.lowerBound ?? 0
        for h in configuration.handsets { handsets[h.digits] = configuration.answerMode }
    }

    public static func start(_ configuration: SimulatorConfiguration,
                             logger: Logger = Logger(label: "switchboard.simulator")) async throws(SimulatorError) -> MobileCoreSimulator {
        let switchAddress: SocketAddress
        do {
            switchAddress = try SocketAddress.makeAddressResolvingHost(configuration.switchHost, port: configuration.switchPort)
        } catch {
            throw .startFailed("the switch address \(configuration.switchHost):\(configuration.switchPort) does not resolve: \(error)")
        }
        let destination = SIPDestination(address: switchAddress, transport: configuration.sip.transport)
        let endpoint: SIPEndpoint
        do {
            endpoint = try await SIPEndpoint.start(
                configuration: SIPEndpointConfiguration(listen: [configuration.sip], advertisedHost: configuration.advertisedHost,
                                                        userAgent: "Switchboard mobile-core simulator"),
                logger: logger) { _ in }
        } catch {
            throw .startFailed("cannot listen for SIP on \(configuration.sip.transport) \(configuration.sip.host):\(configuration.sip.port): \(error)")
        }
        guard let port = await endpoint.boundAddresses.first?.address.port,
              let contact = await endpoint.contactHostPort(for: destination) else {
            await endpoint.shutdown()
            throw .startFailed("the SIP listener has no address")
        }
        let simulator = MobileCoreSimulator(configuration: configuration, logger: logger, endpoint: endpoint,
                                            switchDestination: destination, sipPort: port, contactHostPort: contact)
        await endpoint.setHandler { [weak simulator] request in await simulator?.received(request) }
        await endpoint.setMissingACKHandler { [weak simulator] callID in await simulator?.missingACK(sipCallID: callID) }
        if let http = configuration.http {
            do { try await simulator.startHTTP(host: http.host, port: http.port) } catch {
                await simulator.shutdown()
                throw error
            }
        }
        logger.info("mobile-core simulator listening", metadata: [
            "sip": "\(configuration.sip.transport) \(contact)", "switch": "\(destination)", "handsets": "\(configuration.handsets.count)",
        ])
        return simulator
    }

    /// Ends every call (BYE/CANCEL/reject), then closes the sockets.
    public func shutdown() async {
        for id in callOrder where calls[id]?.leg.phase != .ended { _ = try? await hangUp(callID: id) }
        for id in callOrder { await closeMedia(id) }
        if let httpTask {
            httpTask.cancel()
            await httpTask.value  // the server has closed its socket
            self.httpTask = nil
            httpPort = nil
        }
        await endpoint.shutdown()
    }

    // MARK: - Handsets

    public func handsetList() -> [HandsetRecord] {
        handsets.keys.sorted().map { handsetRecord($0) }
    }

    func handsetRecord(_ iccid: String) -> HandsetRecord {
        let reachable = !unreachable.contains(iccid)
        switch handsets[iccid] ?? .manual {
        case .manual: return HandsetRecord(iccid: iccid, answer: "manual", answerAfter: nil, reachable: reachable)
        case .auto(let d): return HandsetRecord(iccid: iccid, answer: "auto", answerAfter: Self.seconds(d), reachable: reachable)
        }
    }

    /// Switches a handset off (unreachable: calls and texts to it are
    /// answered 480 Temporarily Unavailable, as a core does for a detached
    /// subscriber) or on again.
    @discardableResult
    public func setReachable(_ iccid: ICCID, _ reachable: Bool) throws(SimulatorError) -> HandsetRecord {
        try requireHandset(iccid.digits)
        if reachable { unreachable.remove(iccid.digits) } else { unreachable.insert(iccid.digits) }
        return handsetRecord(iccid.digits)
    }

    /// Adds a handset, or changes how it answers.
    @discardableResult
    public func setHandset(_ iccid: ICCID, answer mode: AnswerMode) -> HandsetRecord {
        handsets[iccid.digits] = mode
        return handsetRecord(iccid.digits)
    }

    func requireHandset(_ iccid: String) throws(SimulatorError) {
        guard handsets[iccid] != nil else { throw .unknownHandset(iccid) }
    }

    // MARK: - Reading state

    public func callList(handset iccid: String? = nil) throws(SimulatorError) -> [CallRecord] {
        if let iccid { try requireHandset(iccid) }
        return callOrder.compactMap { calls[$0] }.filter { iccid == nil || $0.iccid == iccid }.map(record)
    }

    public func call(_ id: String) throws(SimulatorError) -> CallRecord {
        guard let c = calls[id] else { throw .unknownCall(id) }
        return record(c)
    }

    public func textList(handset iccid: String) throws(SimulatorError) -> [TextRecord] {
        try requireHandset(iccid)
        return texts.filter { $0.iccid == iccid }
    }

    func record(_ c: Call) -> CallRecord {
        let counters = c.media?.counters ?? c.counters
        return CallRecord(
            id: c.id, iccid: c.iccid, direction: c.leg.direction, state: c.leg.phase, peer: c.peer, withheld: c.withheld,
            fromDisplay: c.fromDisplay, fromUser: c.fromUser, paiUser: c.paiUser, privacy: c.privacy,
            finalCode: c.leg.finalCode, reasonPhrase: c.reasonPhrase, reason: c.reasonHeader, endedBy: c.leg.endedBy,
            rtpSent: counters.packetsSent, rtpReceived: counters.packetsReceived, rtpBytesReceived: counters.bytesReceived,
            recording: c.recording, sipCallId: c.sipCallID, startedAt: c.startedAt, answeredAt: c.answeredAt, endedAt: c.endedAt)
    }

    // MARK: - Commands

    /// A call from a handset: an INVITE to the switch for `number`, digits as dialled.
    public func placeCall(from iccid: String, to number: String, withheld: Bool = false) async throws(SimulatorError) -> CallRecord {
        try requireHandset(iccid)
        let dialled = number.trimmingCharacters(in: .whitespaces)
        guard !dialled.isEmpty, dialled.count <= 32,
              dialled.allSatisfy({ $0.isASCII && ($0.isNumber || "+*#".contains($0)) }) else {
            throw .invalidField(field: "to", message: "a number to dial is digits, optionally with a leading + (and * or #), at most 32; got '\(number)'")
        }
        let media = try await openMedia()
        let id = nextID("c")
        let sipCallID = SIPEndpoint.newCallID(host: simHost)
        let tag = SIPEndpoint.newTag()
        let switchHostPort = "\(Self.uriHost(configuration.switchHost)):\(configuration.switchPort)"
        // '#' may not appear unescaped in a URI user part (RFC 3261 §25.1).
        let target = "sip:\(dialled.replacingOccurrences(of: "#", with: "%23"))@\(switchHostPort)"
        let handsetURI = "sip:\(iccid)@\(Self.uriHost(simHost))"
        let from = withheld ? "\"Anonymous\" <sip:anonymous@anonymous.invalid>" : "<\(handsetURI)>"
        var invite = SIPMessage(request: .invite, uri: target)
        invite.append(.from, "\(from);tag=\(tag)")
        invite.append(.to, "<\(target)>")
        invite.append(.callID, sipCallID)
        invite.append(.cseq, "1 INVITE")
        invite.append(.contact, "<sip:\(iccid)@\(contactHostPort)>")
        invite.append(.pAssertedIdentity, "<\(handsetURI)>")
        if withheld { invite.append(.privacy, "id") }
        invite.append(.allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE")
        invite.append(.contentType, "application/sdp")
        invite.body = sdp(port: media.localPort)
        calls[id] = Call(id: id, iccid: iccid, leg: CallLeg(direction: .mobileOriginated), peer: dialled, withheld: withheld,
                         sipCallID: sipCallID, localTag: tag, localAddress: from, remoteHeader: "<\(target)>",
                         remoteTarget: target, media: media)
        callOrder.append(id)
        let endpoint = self.endpoint, destination = switchDestination
        Task {
            do {
                let response = try await endpoint.send(invite, to: destination) { [weak self] provisional in
                    Task { await self?.outgoingProvisional(id, provisional) }
                }
                await self.outgoingFinal(id, response)
            } catch {
                await self.outgoingFailed(id, error)
            }
        }
        logger.info("handset calling", metadata: ["call": "\(id)", "iccid": "\(iccid)", "to": "\(dialled)"])
        return record(calls[id] ?? Call(id: id, iccid: iccid, leg: CallLeg(direction: .mobileOriginated), peer: dialled,
                                        withheld: withheld, sipCallID: sipCallID, localTag: tag, localAddress: from,
                                        remoteHeader: "", remoteTarget: target))
    }

    public func hangUp(callID id: String) async throws(SimulatorError) -> CallRecord {
        calls[id]?.answerTask?.cancel()
        return try await apply(.hangUp, to: id)
    }

    public func answer(callID id: String) async throws(SimulatorError) -> CallRecord {
        calls[id]?.answerTask?.cancel()
        return try await apply(.answer, to: id)
    }

    public func reject(callID id: String, code: Int) async throws(SimulatorError) -> CallRecord {
        guard (300...699).contains(code) else {
            throw .invalidField(field: "code", message: "a rejection is a final SIP status from 300 to 699, e.g. 486; got \(code)")
        }
        calls[id]?.answerTask?.cancel()
        return try await apply(.reject(code: code), to: id)
    }

    /// A text from a handset: a MESSAGE to the switch (RFC 3428). Returns once the switch answers (or the transaction times out).
    public func sendText(from iccid: String, to number: String, text: String) async throws(SimulatorError) -> TextRecord {
        try requireHandset(iccid)
        let dialled = number.trimmingCharacters(in: .whitespaces)
        guard !dialled.isEmpty, dialled.count <= 32, dialled.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "+") }) else {
            throw .invalidField(field: "to", message: "a number to text is digits, optionally with a leading +; got '\(number)'")
        }
        guard !text.isEmpty, text.utf8.count <= 1_300 else {
            throw .invalidField(field: "text", message: "a text is 1 to 1300 bytes of UTF-8 (a MESSAGE must fit a UDP datagram)")
        }
        let target = "sip:\(dialled)@\(Self.uriHost(configuration.switchHost)):\(configuration.switchPort)"
        let handsetURI = "sip:\(iccid)@\(Self.uriHost(simHost))"
        var message = SIPMessage(request: .message, uri: target)
        message.append(.from, "<\(handsetURI)>;tag=\(SIPEndpoint.newTag())")
        message.append(.to, "<\(target)>")
        message.append(.callID, SIPEndpoint.newCallID(host: simHost))
        message.append(.cseq, "1 MESSAGE")
        message.append(.pAssertedIdentity, "<\(handsetURI)>")
        message.append(.contentType, "text/plain;charset=UTF-8")
        message.body = Array(text.utf8)
        var entry = TextRecord(id: nextID("t"), iccid: iccid, direction: .sent, peer: dialled, text: text, at: Date())
        do {
            let response = try await endpoint.send(message, to: switchDestination)
            entry.statusCode = response.statusCode
            entry.reasonPhrase = response.reasonPhrase
        } catch {
            entry.error = "\(error)"
        }
        texts.append(entry)
        return entry
    }

    // MARK: - Driving call legs

    func apply(_ event: CallLeg.Event, to id: String) async throws(SimulatorError) -> CallRecord {
        guard var c = calls[id] else { throw .unknownCall(id) }
        let actions: [CallLeg.Action]
        do { actions = try c.leg.handle(event) } catch {
            switch error {
            case .notAllowed(let what, let phase): throw .callState(call: id, message: "cannot \(what) a \(c.leg.direction.rawValue) call that is \(phase.rawValue)")
            }
        }
        calls[id] = c
        await perform(actions, id: id)
        return try call(id)
    }

    func perform(_ actions: [CallLeg.Action], id: String) async {
        for action in actions {
            guard let c = calls[id] else { return }
            switch action {
            case .sendRinging:
                await c.invite?.respond(180, toTag: c.localTag, headers: [(.contact, "<sip:\(c.iccid)@\(contactHostPort)>")])
            case .sendAnswer:
                calls[id]?.answeredAt = Date()
                await c.invite?.respond(200, toTag: c.localTag, headers: [
                    (.contact, "<sip:\(c.iccid)@\(contactHostPort)>"), (.allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE"),
                ], body: sdp(port: c.media?.localPort ?? 0), contentType: "application/sdp")
            case .sendFinal(let code):
                await c.invite?.respond(code, toTag: c.localTag)
            case .sendACK:
                var ack = SIPMessage(request: .ack, uri: c.remoteTarget)
                ack.append(.from, "\(c.localAddress);tag=\(c.localTag)")
                ack.append(.to, c.remoteHeader)
                ack.append(.callID, c.sipCallID)
                ack.append(.cseq, "1 ACK")
                for r in c.routeSet { ack.append(.route, r) }
                do { try await endpoint.sendACK(ack, to: inDialogDestination(c)) } catch {
                    logger.warning("could not send ACK", metadata: ["call": "\(id)", "error": "\(error)"])
                }
            case .sendCancel:
                await endpoint.cancelInvite(callID: c.sipCallID, cseq: 1)
            case .sendBye:
                sendBye(id)
            case .startMedia:
                if c.leg.direction == .mobileOriginated { calls[id]?.answeredAt = Date() }
                if let media = c.media, let remote = c.remoteMedia { media.startSending(to: remote, toneHz: configuration.toneHz) }
            case .stopMedia:
                await closeMedia(id)
            }
        }
        if let c = calls[id], c.leg.phase == .ended {
            if c.endedAt == nil { calls[id]?.endedAt = Date() }
            await closeMedia(id)
        }
    }

    func sendBye(_ id: String) {
        guard var c = calls[id] else { return }
        var bye = SIPMessage(request: .bye, uri: c.remoteTarget)
        bye.append(.from, "\(c.localAddress);tag=\(c.localTag)")
        bye.append(.to, c.remoteHeader)
        bye.append(.callID, c.sipCallID)
        bye.append(.cseq, "\(c.nextCSeq) BYE")
        for r in c.routeSet { bye.append(.route, r) }
        c.nextCSeq += 1
        calls[id] = c
        let endpoint = self.endpoint, destination = inDialogDestination(c), logger = self.logger
        Task {
            do {
                let r = try await endpoint.send(bye, to: destination)
                logger.info("BYE answered", metadata: ["call": "\(id)", "status": "\(r.statusCode ?? 0)"])
            } catch {
                logger.warning("BYE got no answer", metadata: ["call": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// In-dialog requests go to the first Route when there is a route set
    /// (the switch), else to the remote target if it is an IP address, else
    /// to where the INVITE came from or the switch.
    func inDialogDestination(_ c: Call) -> SIPDestination {
        let transport = configuration.sip.transport
        if c.routeSet.isEmpty, let uri = try? SIPURI(c.remoteTarget) {
            let host = uri.host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            if let address = try? SocketAddress(ipAddress: host, port: Int(uri.port ?? 5060)) {
                return SIPDestination(address: address, transport: transport)
            }
        }
        if let source = c.inviteSource { return SIPDestination(address: source, transport: transport) }
        return switchDestination
    }

    // MARK: - MO call progress

    func outgoingProvisional(_ id: String, _ response: SIPMessage) async {
        guard calls[id] != nil else { return }
        _ = try? await apply(.provisional(code: response.statusCode ?? 100), to: id)
    }

    func outgoingFinal(_ id: String, _ response: SIPMessage) async {
        guard var c = calls[id] else { return }
        let code = response.statusCode ?? 0
        c.reasonPhrase = response.reasonPhrase
        c.reasonHeader = response.firstValue(.reason)
        if (200..<300).contains(code) {
            if let to = response.firstValue(.to) { c.remoteHeader = to }
            if let contact = response.contacts.first?.address?.uri.description { c.remoteTarget = contact }
            c.routeSet = response.values(.recordRoute).reversed()
            c.remoteMedia = Self.remoteMedia(response.body)
        }
        calls[id] = c
        _ = try? await apply(.finalResponse(code: code), to: id)
    }

    func outgoingFailed(_ id: String, _ error: any Error) async {
        guard calls[id] != nil else { return }
        calls[id]?.reasonPhrase = "no final response: \(error)"
        _ = try? await apply(.finalResponse(code: 408), to: id)
    }

    // MARK: - Requests from the network

    func received(_ request: SIPServerRequest) async {
        let m = request.message
        switch m.method {
        case .invite?:
            if m.toTag != nil { await receivedReInvite(request) } else { await receivedInvite(request) }
        case .ack?:
            break
        case .bye?:
            guard let id = dialogCall(m) else { await request.respond(481); return }
            if let reason = m.firstValue(.reason) { calls[id]?.reasonHeader = reason }
            _ = try? await apply(.remoteBye, to: id)
            await request.respond(200)
        case .cancel?:
            // The stack has answered the CANCEL and the INVITE (487).
            if let callID = m.callID,
               let id = callOrder.last(where: { calls[$0]?.sipCallID == callID && calls[$0]?.leg.direction == .mobileTerminated }) {
                calls[id]?.answerTask?.cancel()
                calls[id]?.reasonPhrase = "Request Terminated"
                _ = try? await apply(.remoteCancel, to: id)
            }
        case .message?:
            await receivedMessage(request)
        case .options?:
            await request.respond(200, toTag: SIPEndpoint.newTag(), headers: [(.allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE")])
        default:
            await request.respond(405, toTag: SIPEndpoint.newTag(), headers: [(.allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE")])
        }
    }

    /// The call an in-dialog request belongs to: same Call-ID, our tag in its To.
    func dialogCall(_ m: SIPMessage) -> String? {
        guard let callID = m.callID, let toTag = m.toTag else { return nil }
        return callOrder.last { calls[$0]?.sipCallID == callID && calls[$0]?.localTag == toTag }
    }

    func handsetAddressed(_ m: SIPMessage) -> String? {
        guard let user = m.parsedRequestURI?.decodedUser, handsets[user] != nil else { return nil }
        return user
    }

    func receivedInvite(_ request: SIPServerRequest) async {
        let m = request.message
        guard let iccid = handsetAddressed(m) else {
            await request.respond(404, reasonPhrase: "Not Found", toTag: SIPEndpoint.newTag())
            return
        }
        guard !unreachable.contains(iccid) else {
            await request.respond(480, reasonPhrase: "Temporarily Unavailable (handset not reachable)", toTag: SIPEndpoint.newTag())
            return
        }
        guard let remoteMedia = Self.remoteMedia(m.body) else {
            await request.respond(488, toTag: SIPEndpoint.newTag(), headers: [(.warning, "304 simulator \"offer an audio stream with PCMA (payload type 8)\"")])
            return
        }
        let media: RTPSession
        do { media = try await openMedia() } catch {
            await request.respond(503, reasonPhrase: "No RTP Port", toTag: SIPEndpoint.newTag())
            return
        }
        let from = m.from
        let pai = m.firstValue(.pAssertedIdentity).flatMap { try? SIPNameAddress($0) }
        let id = nextID("c")
        let (leg, actions) = CallLeg.incoming()
        let tag = SIPEndpoint.newTag()
        let localAddress = m.to.map { SIPNameAddress(displayName: $0.displayName, uri: $0.uri).description } ?? "<sip:\(iccid)@\(simHost)>"
        calls[id] = Call(
            id: id, iccid: iccid, leg: leg, peer: from?.uri.decodedUser ?? "", withheld: (m.firstValue(.privacy) ?? "").contains("id"),
            sipCallID: m.callID ?? "", localTag: tag, localAddress: localAddress, remoteHeader: m.firstValue(.from) ?? "",
            remoteTarget: m.contacts.first?.address?.uri.description ?? from?.uri.description ?? "",
            routeSet: m.values(.recordRoute), invite: request, inviteSource: request.source, media: media, remoteMedia: remoteMedia,
            fromDisplay: from?.displayName, fromUser: from?.uri.decodedUser, paiUser: pai?.uri.decodedUser, privacy: m.firstValue(.privacy))
        callOrder.append(id)
        logger.info("handset ringing", metadata: ["call": "\(id)", "iccid": "\(iccid)", "from": "\(from?.uri.description ?? "?")"])
        await perform(actions, id: id)
        if case .auto(let delay) = handsets[iccid] ?? .manual {
            calls[id]?.answerTask = Task { [weak self] in
                try? await Task.sleep(for: delay)
                guard !Task.isCancelled else { return }
                _ = try? await self?.answer(callID: id)
            }
        }
    }

    /// A re-INVITE in an answered call (a session refresh): the same SDP again.
    func receivedReInvite(_ request: SIPServerRequest) async {
        guard let id = dialogCall(request.message), let c = calls[id], c.leg.phase == .answered else {
            await request.respond(481)
            return
        }
        if let remote = Self.remoteMedia(request.message.body), remote != c.remoteMedia, let media = c.media {
            calls[id]?.remoteMedia = remote
            media.startSending(to: remote, toneHz: configuration.toneHz)
        }
        await request.respond(200, headers: [(.contact, "<sip:\(c.iccid)@\(contactHostPort)>")],
                              body: sdp(port: c.media?.localPort ?? 0), contentType: "application/sdp")
    }

    func missingACK(sipCallID: String) async {
        guard let id = callOrder.last(where: { calls[$0]?.sipCallID == sipCallID && calls[$0]?.leg.direction == .mobileTerminated }) else { return }
        calls[id]?.reasonPhrase = "no ACK for our 200 OK"
        _ = try? await apply(.ackTimedOut, to: id)
    }

    func receivedMessage(_ request: SIPServerRequest) async {
        let m = request.message
        guard let iccid = handsetAddressed(m) else {
            await request.respond(404, toTag: SIPEndpoint.newTag())
            return
        }
        guard !unreachable.contains(iccid) else {
            await request.respond(480, reasonPhrase: "Temporarily Unavailable (handset not reachable)", toTag: SIPEndpoint.newTag())
            return
        }
        let type = (m.contentType ?? "text/plain").lowercased()
        guard type.hasPrefix("text/plain") else {
            await request.respond(415, toTag: SIPEndpoint.newTag(), headers: [(.accept, "text/plain")])
            return
        }
        texts.append(TextRecord(id: nextID("t"), iccid: iccid, direction: .received, peer: m.from?.uri.decodedUser ?? "",
                                text: String(decoding: m.body, as: UTF8.self), statusCode: 200, at: Date()))
        await request.respond(200, toTag: SIPEndpoint.newTag())
    }

    // MARK: - Media

    func openMedia() async throws(SimulatorError) -> RTPSession {
        let host = configuration.sip.host
        let record = configuration.recordDirectory != nil
        guard let range = configuration.rtpPorts else {
            do { return try await RTPSession.bind(host: host, port: 0, record: record, group: MultiThreadedEventLoopGroup.singleton) } catch {
                throw .noFreeRTPPort("any port (\(error))")
            }
        }
        for _ in 0..<range.count {
            let port = rtpCursor
            rtpCursor = rtpCursor + 2 > range.upperBound ? range.lowerBound : rtpCursor + 2
            guard !rtpInUse.contains(port) else { continue }
            rtpInUse.insert(port)
            do {
                return try await RTPSession.bind(host: host, port: port, record: record, group: MultiThreadedEventLoopGroup.singleton)
            } catch {
                rtpInUse.remove(port)
            }
        }
        throw .noFreeRTPPort("\(range.lowerBound)-\(range.upperBound)")
    }

    func closeMedia(_ id: String) async {
        guard let media = calls[id]?.media else { return }
        // The counters so far, so that a record read while `stop` runs (the
        // actor is re-entered there) does not show zero.
        calls[id]?.counters = media.counters
        calls[id]?.media = nil
        let port = media.localPort
        let (counters, received) = await media.stop()
        rtpInUse.remove(port)
        calls[id]?.counters = counters
        if let dir = configuration.recordDirectory {
            let path = (dir as NSString).appendingPathComponent("\(id).alaw")
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try Data(received).write(to: URL(fileURLWithPath: path))
                calls[id]?.recording = path
            } catch {
                logger.warning("could not write the recording", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
    }

    func sdp(port: Int) -> [UInt8] {
        let ipVersion = simHost.contains(":") ? "IP6" : "IP4"
        let host = simHost.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let session = UInt64.random(in: 1...UInt64(UInt32.max))
        return Array(("v=0\r\no=- \(session) \(session) IN \(ipVersion) \(host)\r\ns=switchboard-simulator\r\n"
            + "c=IN \(ipVersion) \(host)\r\nt=0 0\r\nm=audio \(port) RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n").utf8)
    }

    /// The far end's RTP address from an SDP offer or answer offering PCMA.
    static func remoteMedia(_ body: [UInt8]) -> SocketAddress? {
        guard !body.isEmpty, let sd = try? SessionDescription(parsing: body),
              let audio = sd.media.first(where: { $0.media == "audio" && $0.port != 0 && $0.payloadTypes.contains(8) }),
              let connection = audio.connection ?? sd.connection else { return nil }
        return try? SocketAddress(ipAddress: connection.address, port: audio.port)
    }

    // MARK: - Helpers

    func nextID(_ prefix: String) -> String {
        sequence += 1
        return "\(prefix)\(sequence)"
    }

    static func uriHost(_ host: String) -> String { host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host }

    static func seconds(_ d: Duration) -> Double {
        let (s, a) = d.components
        return Double(s) + Double(a) / 1e18
    }
}
