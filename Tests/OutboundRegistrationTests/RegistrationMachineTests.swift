import OutboundRegistration
import SIPAuth
import SIPMessage
import Testing

/// Drives the machine event by event against a registrar written out in the
/// test (digest via SIPAuth's DigestServer), with no sockets and no clock.
@Suite("Outbound registration state machine")
struct RegistrationMachineTests {
    static let iccid = "8944101234567890128"
    static func settings(domain: String = "pbx.example.com", password: String = "s3cret", user: String = "1001",
                         expires: UInt32 = 3600) -> RegistrationSettings {
        RegistrationSettings(domain: domain, aorUser: user, username: user, password: password,
                             contact: SIPURI(user: iccid, host: "10.0.0.2", port: 5060), expires: expires)
    }

    /// A registrar that challenges every REGISTER without credentials.
    struct Registrar {
        var server = DigestServer(realm: "pbx.example.com", secret: Array("test secret".utf8), nonceLifetime: 30)
        var password = "s3cret"

        /// The wire form re-parsed, so what we check is what a registrar would read.
        static func wire(_ m: SIPMessage) throws -> SIPMessage { try SIPMessageParser.parse(m.serialized()) }

        mutating func answer(_ request: SIPMessage, now: Double, grant: UInt32? = nil) throws -> SIPMessage {
            let r = try Self.wire(request)
            guard let value = r.firstValue(.authorization) else {
                var c = r.makeResponse(401)
                for ch in server.makeChallenges(now: now) { c.append(.wwwAuthenticate, ch.headerValue) }
                return c
            }
            let credentials = try DigestCredentials(parsing: value)
            switch server.verify(credentials, method: "REGISTER", password: password, now: now) {
            case .accepted:
                var ok = r.makeResponse(200)
                let asked = r.expires ?? 3600
                let given = asked == 0 ? 0 : (grant ?? asked)
                if given > 0, let contact = r.firstValue(.contact) {
                    let bare = contact.split(separator: ";").first.map(String.init) ?? contact
                    ok.append(.contact, "\(bare);expires=\(given)")
                }
                return ok
            case .stale:
                var c = r.makeResponse(401)
                for ch in server.makeChallenges(now: now, stale: true) { c.append(.wwwAuthenticate, ch.headerValue) }
                return c
            case .rejected:
                var c = r.makeResponse(401)
                for ch in server.makeChallenges(now: now) { c.append(.wwwAuthenticate, ch.headerValue) }
                return c
            }
        }
    }

    static func sent(_ actions: [RegistrationAction]) -> [(SIPMessage, String)] {
        actions.compactMap { if case .send(let m, let d) = $0 { return (m, d) } else { return nil } }
    }
    static func timer(_ actions: [RegistrationAction]) -> Double? {
        actions.compactMap { if case .setTimer(let t) = $0 { return t } else { return nil } }.last
    }
    static func statuses(_ actions: [RegistrationAction]) -> [RegistrationStatus] {
        actions.compactMap { if case .reportStatus(let s) = $0 { return s } else { return nil } }
    }
    static func finished(_ actions: [RegistrationAction]) -> Bool {
        actions.contains { if case .finished = $0 { return true } else { return false } }
    }

    /// Runs one REGISTER through its challenge to the final answer.
    static func exchange(_ m: inout RegistrationMachine, _ registrar: inout Registrar, request: SIPMessage, now: Double,
                         grant: UInt32? = nil) throws -> (requests: [SIPMessage], actions: [RegistrationAction]) {
        var requests = [request]
        var actions: [RegistrationAction] = []
        var next: SIPMessage? = request
        var rounds = 0
        while let req = next, rounds < 5 {
            rounds += 1
            let response = try registrar.answer(req, now: now, grant: grant)
            let a = m.event(.response(try Registrar.wire(response), now: now))
            actions += a
            next = sent(a).first?.0
            if let n = next { requests.append(n) }
        }
        return (requests, actions)
    }

    @Test func registersWithDigestAndRefreshesAtAboutHalfTheGrantedExpiry() throws {
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 1))
        var registrar = Registrar()
        let first = m.event(.start(now: 1000))
        let (request, domain) = try #require(Self.sent(first).first)
        #expect(domain == "pbx.example.com")
        let wire = try Registrar.wire(request)
        #expect(wire.requestURI == "sip:pbx.example.com")
        #expect(wire.to?.uri.description == "sip:1001@pbx.example.com")
        #expect(wire.cseq?.number == 1)
        #expect(wire.firstValue(.contact) == "<sip:\(Self.iccid)@10.0.0.2:5060>;expires=3600")
        #expect(wire.firstValue(.authorization) == nil)

        let (requests, actions) = try Self.exchange(&m, &registrar, request: request, now: 1000, grant: 1800)
        #expect(requests.count == 2)
        let authenticated = try Registrar.wire(requests[1])
        #expect(authenticated.cseq?.number == 2)
        #expect(authenticated.callID == wire.callID)
        #expect(authenticated.firstValue(.authorization)?.contains("username=\"1001\"") == true)
        let status = try #require(Self.statuses(actions).last)
        #expect(status.state == .registered)
        #expect(status.lastCode == 200)
        #expect(status.registeredUntil == 2800)
        let refresh = try #require(Self.timer(actions))
        #expect(refresh >= 1000 + 1800 * 0.45 && refresh <= 1000 + 1800 * 0.55)
        #expect(status.nextAttempt == refresh)

        // The refresh keeps Call-ID and From tag and goes on counting CSeq (RFC 3261 §10.2.4).
        let again = m.event(.timerFired(now: refresh))
        let refreshRequest = try Registrar.wire(try #require(Self.sent(again).first).0)
        #expect(refreshRequest.callID == wire.callID)
        #expect(refreshRequest.fromTag == wire.fromTag)
        #expect(refreshRequest.cseq?.number == 3)
        let (_, refreshed) = try Self.exchange(&m, &registrar, request: refreshRequest, now: refresh)
        #expect(m.status.state == .registered)
        #expect(m.status.registeredUntil == refresh + 3600)
        #expect(Self.timer(refreshed) != nil)
    }

    @Test func wrongPasswordFailsWithTheCodeAndBacksOffWithoutGivingUp() throws {
        var m = RegistrationMachine(settings: Self.settings(password: "wrong"), random: SplitMix64(seed: 2))
        var registrar = Registrar()
        var now = 0.0
        var request = try #require(Self.sent(m.event(.start(now: now))).first).0
        var previousCeiling = 0.0
        for attempt in 1...10 {
            let (requests, actions) = try Self.exchange(&m, &registrar, request: request, now: now)
            #expect(requests.count == 2, "one answer to the challenge, no more")
            let status = m.status
            #expect(status.state == .failing)
            #expect(status.lastCode == 401)
            #expect(status.lastReason?.contains("refused the credentials for user 1001") == true)
            let retry = try #require(Self.timer(actions))
            let ceiling = min(600, 10 * Double(1 << (attempt - 1)))
            #expect(retry - now >= ceiling * 0.5 && retry - now <= ceiling, "attempt \(attempt) waits \(retry - now) s")
            #expect(ceiling >= previousCeiling)
            previousCeiling = ceiling
            #expect(status.nextAttempt == retry)
            now = retry
            request = try #require(Self.sent(m.event(.timerFired(now: now))).first, "retried after attempt \(attempt)").0
        }
        #expect(previousCeiling == 600)
    }

    @Test func staleNonceIsAnsweredAgain() throws {
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 3))
        var registrar = Registrar()
        let request = try #require(Self.sent(m.event(.start(now: 0))).first).0
        let challenge = try registrar.answer(request, now: 0)
        let answered = try #require(Self.sent(m.event(.response(try Registrar.wire(challenge), now: 0))).first).0
        // The registrar judges the answer 100 s later: past the nonce's 30 s life, so stale=true.
        let stale = try registrar.answer(answered, now: 100)
        #expect(stale.firstValue(.wwwAuthenticate)?.lowercased().contains("stale=true") == true)
        let again = try #require(Self.sent(m.event(.response(try Registrar.wire(stale), now: 100))).first).0
        #expect(again.cseq?.number == 3)
        let ok = try registrar.answer(again, now: 100)
        _ = m.event(.response(try Registrar.wire(ok), now: 100))
        #expect(m.status.state == .registered)
    }

    @Test func intervalTooBriefRaisesTheExpiryToMinExpires() throws {
        var m = RegistrationMachine(settings: Self.settings(expires: 60), random: SplitMix64(seed: 4))
        let request = try Registrar.wire(try #require(Self.sent(m.event(.start(now: 0))).first).0)
        var tooBrief = request.makeResponse(423)
        tooBrief.append(.minExpires, "900")
        let retry = try Registrar.wire(try #require(Self.sent(m.event(.response(tooBrief, now: 0))).first).0)
        #expect(retry.expires == 900)
        #expect(retry.firstValue(.contact)?.hasSuffix(";expires=900") == true)
        #expect(retry.cseq?.number == 2)
        // A second 423 with the same minimum is not chased round in circles.
        var again = retry.makeResponse(423)
        again.append(.minExpires, "900")
        let actions = m.event(.response(again, now: 0))
        #expect(Self.sent(actions).isEmpty)
        #expect(m.status.state == .failing)
        #expect(m.status.lastCode == 423)
    }

    @Test func noAnswerIsAFailureWithNoCode() throws {
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 5))
        let request = try #require(Self.sent(m.event(.start(now: 50))).first).0
        let actions = m.event(.transactionFailed(callID: request.callID ?? "", cseq: 1, reason: "no answer (timer F)", now: 82))
        #expect(m.status.state == .failing)
        #expect(m.status.lastCode == nil)
        #expect(m.status.lastReason == "no answer (timer F)")
        let retry = try #require(Self.timer(actions))
        #expect(retry >= 87 && retry <= 92)
        // A late answer to a transaction already given up on changes nothing.
        let late = m.event(.response(request.makeResponse(200), now: 83))
        #expect(late.isEmpty)
    }

    @Test func retryAfterIsHonoured() throws {
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 6))
        let request = try Registrar.wire(try #require(Self.sent(m.event(.start(now: 0))).first).0)
        var busy = request.makeResponse(503)
        busy.append(.retryAfter, "120")
        let actions = m.event(.response(busy, now: 0))
        #expect(Self.timer(actions) == 120)
        #expect(m.status.lastCode == 503)
    }

    @Test func stopRemovesOnlyOurContact() throws {
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 7))
        var registrar = Registrar()
        let request = try #require(Self.sent(m.event(.start(now: 0))).first).0
        _ = try Self.exchange(&m, &registrar, request: request, now: 0)
        #expect(m.status.state == .registered)
        let stop = m.event(.stop(now: 10))
        let deregister = try Registrar.wire(try #require(Self.sent(stop).first).0)
        #expect(deregister.firstValue(.contact) == "<sip:\(Self.iccid)@10.0.0.2:5060>;expires=0")
        #expect(deregister.contacts.contains(.wildcard) == false)
        #expect(deregister.expires == 0)
        #expect(deregister.callID == (try Registrar.wire(request)).callID)
        let (_, actions) = try Self.exchange(&m, &registrar, request: deregister, now: 10)
        #expect(m.status.state == .unregistered)
        #expect(Self.finished(actions))
        #expect(m.isFinished)
    }

    /// S9: handing a SIM over to another node removes our Contact alone; a
    /// registrar whose 200 then lists no bindings at all (it dropped the new
    /// node's Contact too) is reported, one that keeps the new Contact is not.
    @Test func handOverReportsARegistrarThatDropsTheOtherNodesContact() throws {
        func dropped(_ actions: [RegistrationAction]) -> [String] {
            actions.compactMap { if case .registrarDroppedOtherContacts(let m) = $0 { return m } else { return nil } }
        }
        for keepsOthers in [false, true] {
            var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 11))
            var registrar = Registrar()
            let request = try #require(Self.sent(m.event(.start(now: 0))).first).0
            _ = try Self.exchange(&m, &registrar, request: request, now: 0)
            let handOver = m.event(.handOver(now: 10))
            let deregister = try Registrar.wire(try #require(Self.sent(handOver).first).0)
            #expect(deregister.firstValue(.contact) == "<sip:\(Self.iccid)@10.0.0.2:5060>;expires=0")
            var ok = deregister.makeResponse(200)
            if keepsOthers { ok.append(.contact, "<sip:\(Self.iccid)@10.0.0.3:5060>;expires=3000") }
            let answered = m.event(.response(try Registrar.wire(ok), now: 10))
            #expect(Self.finished(answered))
            if keepsOthers {
                #expect(dropped(answered).isEmpty)
            } else {
                let message = try #require(dropped(answered).first)
                #expect(message.contains("pbx.example.com") && message.contains("expires=0"))
            }
        }
        // A plain stop (the SIM deleted) expects nothing else to remain.
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 12))
        var registrar = Registrar()
        let request = try #require(Self.sent(m.event(.start(now: 0))).first).0
        _ = try Self.exchange(&m, &registrar, request: request, now: 0)
        let deregister = try Registrar.wire(try #require(Self.sent(m.event(.stop(now: 10))).first).0)
        #expect(dropped(m.event(.response(try Registrar.wire(deregister.makeResponse(200)), now: 10))).isEmpty)
    }

    @Test func stopWhileTheFirstRegisterIsOutDeregistersAfterItsAnswer() throws {
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 8))
        let request = try Registrar.wire(try #require(Self.sent(m.event(.start(now: 0))).first).0)
        #expect(Self.sent(m.event(.stop(now: 0))).isEmpty, "one REGISTER at a time per Call-ID (RFC 3261 §10.2)")
        var ok = request.makeResponse(200)
        ok.append(.contact, "<sip:\(Self.iccid)@10.0.0.2:5060>;expires=3600")
        let actions = m.event(.response(ok, now: 1))
        let deregister = try Registrar.wire(try #require(Self.sent(actions).first).0)
        #expect(deregister.expires == 0)
        #expect(deregister.cseq?.number == 2)
    }

    @Test func stopBeforeEverRegisteringFinishesAtOnce() {
        var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: 9))
        let actions = m.event(.stop(now: 0))
        #expect(Self.finished(actions))
        #expect(Self.sent(actions).isEmpty)
    }

    @Test func newPasswordReregistersAtOnceOnTheSameCallID() throws {
        var m = RegistrationMachine(settings: Self.settings(password: "old"), random: SplitMix64(seed: 10))
        var registrar = Registrar(password: "old")
        let request = try #require(Self.sent(m.event(.start(now: 0))).first).0
        _ = try Self.exchange(&m, &registrar, request: request, now: 0)
        #expect(m.status.state == .registered)
        registrar.password = "new"
        let change = m.event(.settingsChanged(Self.settings(password: "new"), now: 30))
        let refresh = try Registrar.wire(try #require(Self.sent(change).first).0)
        #expect(refresh.callID == (try Registrar.wire(request)).callID)
        #expect(refresh.cseq?.number == 3)
        _ = try Self.exchange(&m, &registrar, request: refresh, now: 30)
        #expect(m.status.state == .registered)
        #expect(m.status.registeredUntil == 3630)
    }

    @Test func aChangeWhileARegisterIsOutIsSentWhenItIsAnswered() throws {
        var m = RegistrationMachine(settings: Self.settings(expires: 3600), random: SplitMix64(seed: 11))
        let request = try Registrar.wire(try #require(Self.sent(m.event(.start(now: 0))).first).0)
        #expect(Self.sent(m.event(.settingsChanged(Self.settings(expires: 600), now: 1))).isEmpty)
        var ok = request.makeResponse(200)
        ok.append(.contact, "<sip:\(Self.iccid)@10.0.0.2:5060>;expires=3600")
        let next = try Registrar.wire(try #require(Self.sent(m.event(.response(ok, now: 2))).first).0)
        #expect(next.expires == 600)
    }

    @Test func newServerRegistersThereAndDeregistersFromTheOldOne() throws {
        var m = RegistrationMachine(settings: Self.settings(domain: "old.example.com", password: "a"), random: SplitMix64(seed: 12))
        var old = Registrar(server: DigestServer(realm: "old.example.com", secret: Array("x".utf8)), password: "a")
        var new = Registrar(server: DigestServer(realm: "new.example.com", secret: Array("y".utf8)), password: "b")
        let first = try #require(Self.sent(m.event(.start(now: 0))).first).0
        _ = try Self.exchange(&m, &old, request: first, now: 0)
        #expect(m.status.state == .registered)
        let oldCallID = try Registrar.wire(first).callID

        let change = Self.sent(m.event(.settingsChanged(Self.settings(domain: "new.example.com", password: "b"), now: 100)))
        #expect(change.count == 2)
        let toNew = try #require(change.first { $0.1 == "new.example.com" }).0
        let toOld = try #require(change.first { $0.1 == "old.example.com" }).0
        #expect(toNew.callID != oldCallID)
        #expect(try Registrar.wire(toNew).expires == 3600)
        #expect(toOld.callID == oldCallID)
        #expect(try Registrar.wire(toOld).expires == 0)
        #expect(try Registrar.wire(toOld).cseq?.number == 3)

        // Each server answers in its own time; the old one with the old credentials.
        _ = try Self.exchange(&m, &new, request: toNew, now: 100)
        #expect(m.status.state == .registered)
        #expect(m.callIDs.count == 2, "the old binding is still being removed")
        let (oldRequests, _) = try Self.exchange(&m, &old, request: toOld, now: 100)
        #expect(oldRequests.count == 2)
        #expect(m.callIDs == [toNew.callID ?? ""])
        #expect(m.status.state == .registered)
    }

    @Test func refreshTimesAreSpreadAcrossSIMs() throws {
        var times: Set<Int> = []
        for seed in 0..<200 {
            var m = RegistrationMachine(settings: Self.settings(), random: SplitMix64(seed: UInt64(seed)))
            let request = try Registrar.wire(try #require(Self.sent(m.event(.start(now: 0))).first).0)
            var ok = request.makeResponse(200)
            ok.append(.contact, "<sip:\(Self.iccid)@10.0.0.2:5060>;expires=3600")
            let t = try #require(Self.timer(m.event(.response(ok, now: 0))))
            #expect(t >= 1620 && t <= 1980)
            times.insert(Int(t))
        }
        // 200 SIMs over a 360 s window: no second holds more than a handful.
        #expect(times.count > 150)
    }
}
