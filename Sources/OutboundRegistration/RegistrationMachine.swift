import SIPAuth
import SIPMessage

/// One address of record's registration, as a pure state machine: events in,
/// actions out, no sockets and no clocks (RFC 3261 §10.2).
///
/// - One Call-ID per binding, CSeq incremented on every REGISTER, refreshes
///   included (§10.2.4), and never a second REGISTER for the binding while
///   one is outstanding (§10.2).
/// - 401/407 answered with digest (RFC 7616/8760); a second challenge is
///   answered only when it says the nonce was stale.
/// - 423 raises the expiry to Min-Expires (§10.2.8).
/// - Failures back off exponentially with jitter and are retried for ever.
/// - De-registration removes our Contact alone (`expires=0` on it), never `*`,
///   so another node's binding for the same SIM survives (S9).
/// - A new registrar, AOR or user name is a new binding (new Call-ID),
///   registered at once while the old one is de-registered from the old
///   server with the old credentials.
public struct RegistrationMachine: Sendable {
    public private(set) var settings: RegistrationSettings
    public let policy: RegistrationPolicy
    private var random: SplitMix64
    private var active: Binding
    /// Bindings being removed from a previous registrar or AOR.
    private var retiring: [Binding] = []
    private var stopped = false
    private var finishedReported = false
    private var timer: Double?

    public init(settings: RegistrationSettings, policy: RegistrationPolicy = RegistrationPolicy(), random: SplitMix64 = SplitMix64()) {
        self.settings = settings
        self.policy = policy
        var random = random
        active = Self.newBinding(settings, random: &random)
        self.random = random
    }

    public enum Event: Sendable {
        case start(now: Double)
        /// A final response to a REGISTER this machine asked to send.
        case response(SIPMessage, now: Double)
        /// The REGISTER with this Call-ID and CSeq got no final response
        /// (timer F, transport error, nothing resolvable).
        case transactionFailed(callID: String, cseq: UInt32, reason: String, now: Double)
        case timerFired(now: Double)
        case settingsChanged(RegistrationSettings, now: Double)
        /// De-register and finish.
        case stop(now: Double)
        /// De-register and finish because another node's Contact has taken
        /// over the AOR (S9): our removal must leave that Contact bound, and a
        /// registrar that answers with no bindings at all is reported.
        case handOver(now: Double)
    }

    public var status: RegistrationStatus { active.status }
    public var callID: String { active.callID }
    /// Call-IDs of every binding this machine still owns (active first).
    public var callIDs: [String] { [active.callID] + retiring.map(\.callID) }
    public var isFinished: Bool { finishedReported }

    public mutating func event(_ event: Event) -> [RegistrationAction] {
        var out: [RegistrationAction] = []
        let statusBefore = active.status
        switch event {
        case .start(let now):
            if !stopped, active.phase == .idle {
                active.goal = .registered
                active.send(.register, now: now, out: &out)
            }
        case .response(let response, let now):
            guard let callID = response.callID, let cseq = response.cseq?.number, let code = response.statusCode, code >= 200 else { break }
            if active.callID == callID, active.inFlight == cseq {
                active.handle(response, code: code, now: now, policy: policy, random: &random, out: &out)
            } else if let i = retiring.firstIndex(where: { $0.callID == callID && $0.inFlight == cseq }) {
                retiring[i].handle(response, code: code, now: now, policy: policy, random: &random, out: &out)
            }
        case .transactionFailed(let callID, let cseq, let reason, let now):
            if active.callID == callID, active.inFlight == cseq {
                active.fail(code: nil, reason: reason, retryAfter: nil, now: now, policy: policy, random: &random)
            } else if let i = retiring.firstIndex(where: { $0.callID == callID && $0.inFlight == cseq }) {
                retiring[i].fail(code: nil, reason: reason, retryAfter: nil, now: now, policy: policy, random: &random)
            }
        case .timerFired(let now):
            active.fireIfDue(now: now, out: &out)
            for i in retiring.indices { retiring[i].fireIfDue(now: now, out: &out) }
        case .settingsChanged(let new, let now):
            guard !stopped, new != settings else { break }
            changeSettings(to: new, now: now, out: &out)
        case .stop(let now):
            guard !stopped else { break }
            stopped = true
            active.retire(now: now, out: &out)
        case .handOver(let now):
            guard !stopped else { break }
            stopped = true
            active.othersExpected = true
            active.retire(now: now, out: &out)
        }
        retiring.removeAll { $0.phase == .removed }
        if active.status != statusBefore { out.append(.reportStatus(active.status)) }
        if stopped, active.phase == .removed, retiring.isEmpty, !finishedReported {
            finishedReported = true
            out.append(.finished)
        }
        let next = nextDeadline
        if next != timer {
            timer = next
            out.append(next.map { .setTimer(at: $0) } ?? .cancelTimer)
        }
        return out
    }

    /// The earliest time any binding needs the timer.
    public var nextDeadline: Double? {
        ([active] + retiring).compactMap { $0.inFlight == nil ? $0.deadline : nil }.min()
    }

    private mutating func changeSettings(to new: RegistrationSettings, now: Double, out: inout [RegistrationAction]) {
        settings = new
        if new.sameBinding(as: active.settings) {
            active.refresh(with: new, now: now, out: &out)
            return
        }
        // Another server, AOR or user: register the new binding straight
        // away and take the old one off the old server.
        var old = active
        active = Self.newBinding(new, random: &random)
        active.goal = .registered
        active.send(.register, now: now, out: &out)
        old.retire(now: now, out: &out)
        if old.phase != .removed { retiring.append(old) }
    }

    private static func newBinding(_ s: RegistrationSettings, random: inout SplitMix64) -> Binding {
        let host = s.contact.host.isEmpty ? "switchboard" : s.contact.host
        let callID = hex(random.next()) + hex(random.next() & 0xFFFF_FFFF) + "@" + host
        return Binding(settings: s, callID: callID, fromTag: hex(random.next() & 0xFFFF_FFFF_FFFF))
    }
}

/// One Call-ID's worth of registration: a Contact bound to an AOR at one registrar.
struct Binding: Sendable {
    enum Goal: Sendable { case registered, removed }
    enum Phase: Sendable, Equatable { case idle, active, removed }
    enum Purpose: Sendable { case register, deregister }

    var settings: RegistrationSettings
    let callID: String
    let fromTag: String
    var cseq: UInt32 = 0
    var digest: DigestClient
    var goal: Goal = .registered
    var phase: Phase = .idle
    /// CSeq of the REGISTER awaiting its final response.
    var inFlight: UInt32?
    var purpose: Purpose = .register
    var challengeAnswered = false
    var minExpiresApplied = false
    var requestedExpires: UInt32
    /// Time to send the next REGISTER.
    var deadline: Double?
    var registeredUntil: Double?
    var failures = 0
    var deregistrationFailures = 0
    /// Settings changed while a REGISTER was out: send again when it ends.
    var refreshWanted = false
    /// Being handed over to another node's Contact (S9).
    var othersExpected = false
    var status = RegistrationStatus(state: .pending)

    init(settings: RegistrationSettings, callID: String, fromTag: String) {
        self.settings = settings; self.callID = callID; self.fromTag = fromTag
        digest = DigestClient(username: settings.username, password: settings.password)
        requestedExpires = settings.expires
    }

    mutating func fireIfDue(now: Double, out: inout [RegistrationAction]) {
        guard let d = deadline, d <= now, inFlight == nil, phase != .removed else { return }
        deadline = nil
        send(goal == .registered ? .register : .deregister, now: now, out: &out)
    }

    /// New password or expiry for the same binding: refresh now with them.
    mutating func refresh(with new: RegistrationSettings, now: Double, out: inout [RegistrationAction]) {
        settings = new
        digest = DigestClient(username: new.username, password: new.password)
        requestedExpires = new.expires
        failures = 0
        guard goal == .registered else { return }
        if inFlight != nil {
            refreshWanted = true
        } else {
            send(.register, now: now, out: &out)
        }
    }

    /// Takes the binding off its registrar if it may be there; otherwise drops it.
    mutating func retire(now: Double, out: inout [RegistrationAction]) {
        goal = .removed
        refreshWanted = false
        if inFlight != nil { return }  // decided when the answer comes
        if registeredUntil.map({ $0 > now }) ?? false {
            send(.deregister, now: now, out: &out)
        } else {
            remove(code: nil, reason: nil)
        }
    }

    mutating func remove(code: Int?, reason: String?) {
        phase = .removed
        deadline = nil
        inFlight = nil
        registeredUntil = nil
        status = RegistrationStatus(state: .unregistered, lastCode: code ?? status.lastCode, lastReason: reason ?? status.lastReason)
    }

    // MARK: Requests

    mutating func send(_ purpose: Purpose, now: Double, out: inout [RegistrationAction],
                       authorization: (header: SIPHeaderName, value: String)? = nil, continuing: Bool = false) {
        if !continuing {
            // A new attempt: its own challenge and Min-Expires rounds.
            challengeAnswered = false
            minExpiresApplied = false
        }
        cseq &+= 1
        phase = .active
        self.purpose = purpose
        inFlight = cseq
        deadline = nil
        let s = settings
        let expires: UInt32 = purpose == .register ? requestedExpires : 0
        var m = SIPMessage(request: .register, uri: "sip:" + s.domain)
        let aor = "<sip:\(s.aorUser)@\(s.domain)>"
        m.append(.from, aor + ";tag=" + fromTag)
        m.append(.to, aor)
        m.append(.callID, callID)
        m.append(.cseq, "\(cseq) REGISTER")
        // Our Contact alone, with its own expiry: `expires=0` on it removes
        // this node's binding and no other (RFC 3261 §10.2.2; never `*`).
        m.append(.contact, "<\(s.contact)>;expires=\(expires)")
        m.append(.expires, "\(expires)")
        if let authorization { m.append(authorization.header, authorization.value) }
        out.append(.send(m, domain: s.domain))
    }

    // MARK: Responses

    mutating func handle(_ r: SIPMessage, code: Int, now: Double, policy: RegistrationPolicy, random: inout SplitMix64,
                         out: inout [RegistrationAction]) {
        inFlight = nil
        if code == 401 || code == 407, answerChallenge(r, code: code, now: now, out: &out) { return }
        if code == 423, purpose == .register, !minExpiresApplied,
           let min = r.firstValue(.minExpires).flatMap({ UInt32($0.trimmingSpaces) }),
           min > requestedExpires, min <= policy.maximumExpires {
            // §10.2.8: ask again with at least Min-Expires.
            requestedExpires = min
            minExpiresApplied = true
            challengeAnswered = false
            send(.register, now: now, out: &out, continuing: true)
            return
        }
        guard (200..<300).contains(code) else {
            let retryAfter = r.firstValue(.retryAfter).flatMap { v in
                Double(v.split(separator: ";").first.map { String($0).trimmingSpaces } ?? "")
            }
            fail(code: code, reason: reasonText(code: code, response: r), retryAfter: retryAfter, now: now, policy: policy, random: &random)
            return
        }
        if purpose == .deregister {
            // RFC 3261 §10.3 step 8: the 200 lists the AOR's remaining bindings.
            // None, when another node's Contact should remain, means the
            // registrar removed them all for our single `expires=0` (S9).
            if othersExpected, r.contacts.isEmpty {
                out.append(.registrarDroppedOtherContacts(
                    "registrar for \(settings.domain) answered the removal of our Contact alone (expires=0 on <\(settings.contact)>) "
                        + "with no bindings left for \(settings.aorUser): it removed the new node's Contact too, which RFC 3261 §10.3 "
                        + "does not allow; the SIM is unreachable until the new node refreshes. Report it to the registrar's operator."))
            }
            remove(code: code, reason: r.reasonPhrase)
            return
        }
        let granted = grantedExpires(r)
        guard granted > 0 else {
            fail(code: code, reason: "the registrar granted no time to our Contact", retryAfter: nil, now: now, policy: policy,
                 random: &random)
            return
        }
        failures = 0
        registeredUntil = now + Double(granted)
        if goal == .removed {
            send(.deregister, now: now, out: &out)
            return
        }
        if refreshWanted {
            refreshWanted = false
            send(.register, now: now, out: &out)
            return
        }
        let fraction = Double.random(in: policy.refreshFraction, using: &random)
        let refreshAt = now + max(1, Double(granted) * fraction)
        deadline = refreshAt
        status = RegistrationStatus(state: .registered, lastCode: code, lastReason: r.reasonPhrase, registeredUntil: registeredUntil,
                                    nextAttempt: refreshAt)
    }

    /// Answers a digest challenge; false when it cannot or should not.
    mutating func answerChallenge(_ r: SIPMessage, code: Int, now: Double, out: inout [RegistrationAction]) -> Bool {
        let header: SIPHeaderName = code == 401 ? .wwwAuthenticate : .proxyAuthenticate
        let challenges = r.values(header).compactMap { try? DigestChallenge(parsing: $0) }
        guard let challenge = DigestClient.preferred(challenges) else { return false }
        // Answered once already and not told the nonce was stale: wrong credentials.
        if challengeAnswered, !challenge.stale { return false }
        guard let credentials = try? digest.authorization(for: challenge, method: "REGISTER", uri: "sip:" + settings.domain) else {
            return false
        }
        send(purpose, now: now, out: &out, authorization: (code == 401 ? .authorization : .proxyAuthorization, credentials.headerValue),
             continuing: true)
        challengeAnswered = true
        return true
    }

    mutating func fail(code: Int?, reason: String, retryAfter: Double?, now: Double, policy: RegistrationPolicy,
                       random: inout SplitMix64) {
        inFlight = nil
        if registeredUntil.map({ $0 <= now }) ?? false { registeredUntil = nil }
        if goal == .removed {
            deregistrationFailures += 1
            if deregistrationFailures >= policy.deregistrationAttempts {
                // Left to expire at the registrar; nothing more we can do.
                remove(code: code, reason: reason)
                return
            }
        }
        failures += 1
        let doublings = UInt64(min(failures - 1, 30))
        var delay = min(policy.retryCap, policy.retryBase * Double(UInt64(1) << doublings))
        delay *= Double.random(in: 0.5...1.0, using: &random)
        if let retryAfter, retryAfter > delay { delay = min(retryAfter, policy.retryCap * 6) }
        deadline = now + delay
        refreshWanted = false
        if goal == .registered {
            status = RegistrationStatus(state: .failing, lastCode: code, lastReason: reason, registeredUntil: registeredUntil,
                                        nextAttempt: deadline)
        }
    }

    func reasonText(code: Int, response: SIPMessage) -> String {
        let phrase = response.reasonPhrase ?? SIPMessage.standardReasonPhrase(code)
        switch code {
        case 401, 407:
            if challengeAnswered { return "\(phrase): the registrar refused the credentials for user \(settings.username)" }
            return "\(phrase): no digest challenge we can answer"
        default:
            return phrase
        }
    }

    /// The expiry the registrar gave our Contact: its `expires` parameter in
    /// the 2xx, else the Expires header, else what we asked for (§10.2.4).
    func grantedExpires(_ r: SIPMessage) -> UInt32 {
        let ours = settings.contact
        for c in r.contacts {
            guard let a = c.address, a.uri.user == ours.user, a.uri.host.lowercased() == ours.host.lowercased(),
                  (a.uri.port ?? 5060) == (ours.port ?? 5060) else { continue }
            if let v = a.parameters.value("expires"), let text = v, let n = UInt32(text) { return n }
        }
        return r.expires ?? requestedExpires
    }
}

private func hex(_ v: UInt64) -> String { String(v, radix: 16) }

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
