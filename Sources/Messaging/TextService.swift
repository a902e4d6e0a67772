import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SIMs
import SIPMessage
import SIPStack
import Rating
import Store

/// Texts between handsets and the customer's systems, through the outbox in
/// the store. From a handset (S11): a MESSAGE (RFC 3428) from the mobile core
/// is stored before it is answered 202, then POSTed to the SIM's webhook URL
/// as signed JSON, retried with back-off until a 2xx. To a handset (S10): a
/// text the API accepted is sent to the mobile core as a MESSAGE, retried
/// while the core or handset is unavailable. One SIM's texts go in order in
/// each direction; what is accepted survives a restart. Each text has a CDR
/// charging its segments at the SIM's text rate (S13).
public actor TextService {
    let store: Store
    let logger: Logger
    let mobileCoreSources: Set<String>
    let retry: WebhookRetryPolicy
    let http: HTTPClient
    let nodeName: String
    var deliveryTask: Task<Void, Never>?
    var wake: AsyncStream<Void>.Continuation?
    /// Texts with an attempt under way on this node.
    var inFlight: Set<String> = []
    /// Where texts to handsets go; nil until `enableHandsetDelivery`.
    var mobileCore: (endpoint: SIPEndpoint, destination: SIPDestination, host: String)?
    var endpoint: SIPEndpoint?

    /// Upstream carrier gateways' addresses: their MESSAGEs to a customer's
    /// number are relayed to the SIM linked to it (S12).
    let carrierSources: Set<String>
    /// The carrier gateways to try for a number, in order (the node's prefix
    /// routes): where handsets' texts go out as from the linked number (S12).
    let carrierRoutes: @Sendable (String) -> [CarrierRoute]

    /// A carrier gateway a text can be sent to.
    public struct CarrierRoute: Sendable {
        public var host: String
        public var destination: SIPDestination
        public init(host: String, destination: SIPDestination) { self.host = host; self.destination = destination }
    }

    public init(store: Store, mobileCoreSources: [String], carrierSources: [String] = [],
                carrierRoutes: @escaping @Sendable (String) -> [CarrierRoute] = { _ in [] }, nodeName: String,
                retry: WebhookRetryPolicy = WebhookRetryPolicy(), logger: Logger) {
        self.store = store; self.logger = logger; self.mobileCoreSources = Set(mobileCoreSources)
        self.carrierSources = Set(carrierSources); self.carrierRoutes = carrierRoutes
        self.retry = retry; self.nodeName = nodeName
        http = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    public func start() {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        deliveryTask = Task { [weak self] in
            // Deliver on every new text, and at least twice a second for retries.
            let ticker = Task { while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(500)); continuation.yield() } }
            for await _ in stream {
                guard let self, !Task.isCancelled else { break }
                await self.deliverDue()
                // Wake-ups during a burst (each text taken, each attempt ended)
                // are gathered for a moment: one outbox query serves them all.
                try? await Task.sleep(for: .milliseconds(10))
            }
            ticker.cancel()
        }
    }

    /// Texts to handsets are sent to the mobile core at `address` (`host[:port]`).
    public func enableHandsetDelivery(endpoint: SIPEndpoint, destination: SIPDestination, address: String) {
        mobileCore = (endpoint, destination, address)
        self.endpoint = endpoint
        wake?.yield()
    }

    /// Texts out to the network (S12) are sent from this endpoint.
    public func enableNetworkDelivery(endpoint: SIPEndpoint) {
        self.endpoint = endpoint
        wake?.yield()
    }

    /// Delivers due texts now (a text was just accepted) rather than at the next tick.
    public nonisolated func wakeUp() {
        Task { await self.yieldWake() }
    }

    func yieldWake() { wake?.yield() }

    public func stop() async {
        deliveryTask?.cancel()
        wake?.finish()
        try? await http.shutdown()
    }

    // MARK: MESSAGE from the mobile core

    /// Answers a MESSAGE: 202 once the text is stored, else a 4xx saying why.
    /// From the mobile core it is a handset's text (S11); from a carrier
    /// gateway, a text to a customer's number (S12).
    public func handle(_ request: SIPServerRequest) async {
        guard let ip = request.source.ipAddress, mobileCoreSources.contains(ip) || carrierSources.contains(ip) else {
            logger.notice("MESSAGE from outside the mobile core and the carrier gateways refused", metadata: ["source": "\(request.source)"])
            await request.respond(403, reasonPhrase: "Forbidden (texts come from the mobile core or a carrier gateway only)")
            return
        }
        if mobileCoreSources.contains(ip) { await fromHandset(request) } else { await toLinkedNumber(request) }
    }

    /// The text of a MESSAGE, or the response refusing it (RFC 3428 §7: text/plain, UTF-8, not empty).
    func textBody(_ m: SIPMessage) -> Result<String, Refusal> {
        if let type = m.firstValue(.contentType)?.lowercased(), !type.hasPrefix("text/plain") {
            return .failure(Refusal(code: 415, reason: "Unsupported Media Type (texts are text/plain)", headers: [(.accept, "text/plain")]))
        }
        guard let text = String(validating: m.body, as: UTF8.self) else {
            return .failure(Refusal(code: 400, reason: "Bad Request (the text is not valid UTF-8)"))
        }
        guard !text.isEmpty else { return .failure(Refusal(code: 400, reason: "Bad Request (empty text)")) }
        return .success(text)
    }

    /// Who sent a MESSAGE: the P-Asserted-Identity user, else the From user.
    static func sender(of m: SIPMessage, decoded: Bool) -> String {
        func user(_ uri: SIPURI?) -> String? { decoded ? uri?.decodedUser : uri?.user }
        return user(m.splitValues(.pAssertedIdentity).first.flatMap { try? SIPNameAddress($0) }?.uri) ?? user(m.from?.uri) ?? ""
    }

        struct Refusal: Error {
        var code: Int
        var reason: String
        var headers: [(SIPHeaderName, String)] = []
    }

    /// S12: a text from the network to a customer's number goes to the SIM
    /// linked to it, as a text to the handset (queued, retried, charged on delivery).
    func toLinkedNumber(_ request: SIPServerRequest) async {
        let m = request.message
        let dialled = m.parsedRequestURI?.decodedUser ?? ""
        let number = dialled.hasPrefix("+") ? String(dialled.dropFirst()) : dialled
        let text: String
        switch textBody(m) {
        case .failure(let r): await request.respond(r.code, reasonPhrase: r.reason, headers: r.headers); return
        case .success(let t): text = t
        }
        let sim: SIMRecord?
        do { sim = number.isEmpty || !number.allSatisfy(\.isNumber) ? nil : try await store.sim(linkedNumber: number) } catch {
            logger.error("could not look up a linked number", metadata: ["error": "\(error)"])
            await request.respond(500, reasonPhrase: "Server Internal Error (store unavailable)")
            return
        }
        guard let sim else {
            await request.respond(404, reasonPhrase: "Not Found (no SIM is linked to this number)")
            return
        }
        guard mobileCore != nil else {
            await request.respond(503, reasonPhrase: "Service Unavailable (no mobile core configured to reach the SIM)")
            return
        }
        let sender = Self.sender(of: m, decoded: true)
        let stored = StoredText(id: StoredText.newID(), direction: .toHandset, iccid: sim.iccid.digits, accountID: sim.accountID,
                                peer: sender, body: text, segments: TextSegments(text).segments, receivedAt: Date().timeIntervalSince1970)
        do {
            let (kept, inserted) = try await store.acceptText(stored, dedupeKey: "net/\(m.callID ?? "")/\(m.cseq?.number ?? 0)")
            await request.respond(202, reasonPhrase: "Accepted")
            if inserted {
                logger.info("text to a linked number accepted for its SIM",
                            metadata: ["id": "\(kept.id)", "iccid": "\(kept.iccid)", "segments": "\(kept.segments)"])
                wake?.yield()
            }
        } catch {
            logger.error("could not store a text; not accepted", metadata: ["number": "\(number)", "error": "\(error)"])
            await request.respond(500, reasonPhrase: "Server Internal Error (store unavailable)")
        }
    }

    /// S11: a handset's text, for the SIM's webhook.
    func fromHandset(_ request: SIPServerRequest) async {
        let m = request.message
        let sender = Self.sender(of: m, decoded: false)
        guard let iccid = try? ICCID(sender) else {
            await request.respond(400, reasonPhrase: "Bad Request (the sender is not an ICCID)")
            return
        }
        let text: String
        switch textBody(m) {
        case .failure(let r): await request.respond(r.code, reasonPhrase: r.reason, headers: r.headers); return
        case .success(let t): text = t
        }
        let sim: SIMRecord?
        do { sim = try await store.sim(iccid: iccid) } catch {
            logger.error("could not look up a texting SIM", metadata: ["error": "\(error)"])
            await request.respond(500, reasonPhrase: "Server Internal Error (store unavailable)")
            return
        }
        guard let sim else {
            await request.respond(404, reasonPhrase: "Not Found (the SIM is not provisioned)")
            return
        }
        let to = m.parsedRequestURI?.decodedUser ?? ""
        let now = Date().timeIntervalSince1970
        var stored = StoredText(id: StoredText.newID(), direction: .fromHandset,
                                iccid: iccid.digits, accountID: sim.accountID, peer: to, body: text,
                                segments: TextSegments(text).segments, receivedAt: now)
        // Charged as it is taken (S13): the handset has sent it.
        var charge: CDR? = Self.cdr(stored, rate: sim.textRate, status: 202, at: now)
        if sim.textsOut == .linkedNumber {
            // S12: out to the number as from the linked number; charged once a carrier takes it.
            let digits = to.hasPrefix("+") ? String(to.dropFirst()) : to
            guard !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                await request.respond(484, reasonPhrase: "Address Incomplete (texts go out to numbers only)")
                return
            }
            guard !carrierRoutes(digits).isEmpty else {
                await request.respond(404, reasonPhrase: "Not Found (no carrier gateway routes this number)")
                return
            }
            stored.direction = .toNetwork
            stored.peer = digits
            charge = nil
        } else if (sim.webhookURL ?? "").isEmpty {
            // Taking it would only let it fail unseen: the handset is told it was not sent.
            await request.respond(403, reasonPhrase: "Forbidden (this SIM's texts have nowhere to go: no webhook_url)")
            return
        }
        let dedupe = "\(m.callID ?? "")/\(m.cseq?.number ?? 0)"
        do {
            let (kept, inserted) = try await store.acceptText(stored, dedupeKey: dedupe, charge: charge)
            // RFC 3428 §7: 202, the text is accepted for delivery.
            await request.respond(202, reasonPhrase: "Accepted")
            if inserted {
                logger.info("text from a handset accepted", metadata: ["id": "\(kept.id)", "iccid": "\(kept.iccid)", "segments": "\(kept.segments)"])
                wake?.yield()
            }
        } catch {
            logger.error("could not store a text; not accepted", metadata: ["iccid": "\(iccid)", "error": "\(error)"])
            await request.respond(500, reasonPhrase: "Server Internal Error (store unavailable)")
        }
    }

    // MARK: Webhook delivery

    /// JSON as the receiver gets it (documented in the README).
    struct WebhookBody: Encodable {
        var id: String
        var from: String
        var to: String
        var text: String
        var time: String
        var segments: Int
    }

    /// A text's CDR (S13): its segments charged at the SIM's text rate.
    static func cdr(_ t: StoredText, rate: Money?, status: Int, at: Double, reason: String? = nil) -> CDR {
        let fromHandset = t.direction != .toHandset
        let cost = (rate ?? 0) * Money(t.segments)
        return CDR(callID: t.id, accountID: t.accountID, from: fromHandset ? t.iccid : t.peer, to: fromHandset ? t.peer : t.iccid,
                   callType: "text", startAt: t.receivedAt, endAt: at, durationSeconds: 0, billedSeconds: 0,
                   cost: status < 300 ? cost : 0, finalStatus: status, reason: reason, segments: t.segments)
    }

    func deliverDue() async {
        let now = Date().timeIntervalSince1970
        var due: [StoredText]
        do {
            due = try await store.dueTexts(.fromHandset, now: now, limit: 50)
            if mobileCore != nil { due += try await store.dueTexts(.toHandset, now: now, limit: 50) }
            if endpoint != nil { due += try await store.dueTexts(.toNetwork, now: now, limit: 50) }
        } catch {
            logger.error("could not read the text outbox", metadata: ["error": "\(error)"])
            return
        }
        // Each attempt runs on its own: a mobile core that does not answer
        // (up to Timer F, 32 s) holds up neither webhooks nor other SIMs.
        for text in due where !inFlight.contains(text.id) {
            inFlight.insert(text.id)
            Task {
                switch text.direction {
                case .fromHandset: await self.deliver(text, now: now)
                case .toHandset: await self.sendToHandset(text, now: now)
                case .toNetwork: await self.sendToNetwork(text, now: now)
                }
                self.finished(text.id)
            }
        }
    }

    /// An attempt ended: the SIM's next text may be due at once.
    func finished(_ id: String) {
        inFlight.remove(id)
        wake?.yield()
    }

    // MARK: To handsets

    /// One attempt to hand a text to the mobile core (RFC 3428 MESSAGE to the
    /// ICCID). 2xx: delivered and charged. Timeout, 408, 480, 5xx: retried
    /// with back-off. Any other answer: failed with that code.
    func sendToHandset(_ text: StoredText, now: Double) async {
        guard let core = mobileCore else { return }
        guard let sim = await simRecord(text.iccid) else {
            // Deleted since the text was taken: its ICCID is no longer the customer's to reach.
            guard (try? await store.claimText(id: text.id, now: now, until: now + 40)) == true else { return }
            await record(text, attempts: text.attempts + 1, code: nil, outcome: .failed, why: "the SIM was deleted", rate: nil)
            return
        }
        await attempt(text, now: now, from: text.peer, to: text.iccid, via: [CarrierRoute(host: core.host, destination: core.destination)],
                      endpoint: core.endpoint, rate: sim.textRate)
    }

    /// S12: one attempt to send a handset's text on to the number it
    /// addressed, as from the SIM's linked number, through the carrier
    /// gateways that route the number (the next on a timeout or 503).
    func sendToNetwork(_ text: StoredText, now: Double) async {
        guard let endpoint else { return }
        guard let sim = await simRecord(text.iccid), let linked = sim.linkedNumber, !linked.isEmpty else {
            _ = try? await store.claimText(id: text.id, now: now, until: now + 40)
            await record(text, attempts: text.attempts + 1, code: nil, outcome: .failed,
                         why: "the SIM no longer has a linked number to send from", rate: nil)
            return
        }
        await attempt(text, now: now, from: linked, to: text.peer, via: carrierRoutes(text.peer), endpoint: endpoint, rate: sim.textRate)
    }

    /// Sends the text as a MESSAGE from `from` to `to` at the first of `routes`
    /// that answers, and records the outcome.
    func attempt(_ text: StoredText, now: Double, from: String, to: String, via routes: [CarrierRoute], endpoint: SIPEndpoint,
                 rate: Money?) async {
        // Claimed for longer than a transaction can last (Timer F, 32 s) times the routes tried.
        guard (try? await store.claimText(id: text.id, now: now, until: now + 40 * Double(max(1, min(routes.count, 3))))) == true else { return }
        guard let first = routes.first else {
            // The gateways changed since the text was taken: nothing routes it now.
            await record(text, attempts: text.attempts + 1, code: nil, outcome: .failed, why: "no carrier gateway routes \(to) now",
                         rate: rate)
            return
        }
        let attempts = text.attempts + 1
        var message = SIPMessage(request: .message, uri: "sip:\(Self.uriUser(to))@\(first.host)")
        let localHost = await endpoint.contactHostPort(for: first.destination) ?? "switchboard.invalid"
        message.append(.from, "<sip:\(Self.uriUser(from))@\(localHost)>;tag=\(SIPEndpoint.newTag())")
        message.append(.to, "<sip:\(Self.uriUser(to))@\(first.host)>")
        // The Call-ID is the text's id: a retry after a lost answer is recognisably the same text.
        message.append(.callID, "\(text.id)@\(nodeName)")
        message.append(.cseq, "\(attempts) MESSAGE")
        message.append(.contentType, "text/plain;charset=UTF-8")
        message.body = Array(text.body.utf8)
        let code: Int?
        let why: String
        do {
            let (response, _) = try await endpoint.send(message, toFirstAvailable: Array(routes.prefix(3)).map(\.destination))
            code = response.statusCode
            why = "\(text.direction == .toHandset ? "mobile core" : "carrier") answered \(response.statusCode ?? 0) \(response.reasonPhrase ?? "")"
        } catch {
            code = nil
            why = "no answer from the \(text.direction == .toHandset ? "mobile core" : "carrier"): \(error)"
        }
        await record(text, attempts: attempts, code: code, outcome: code.map(TextGateway.outcome(ofFinalCode:)) ?? .retry, why: why,
                     rate: rate)
    }

    /// Records an attempt's outcome, with the text's CDR once it is final,
    /// charged at `rate` (the SIM's, read once for the attempt).
    func record(_ text: StoredText, attempts: Int, code: Int?, outcome: TextGateway.Outcome, why: String, rate: Money?) async {
        let at = Date().timeIntervalSince1970
        let metadata: Logger.Metadata = ["id": "\(text.id)", "iccid": "\(text.iccid)", "direction": "\(text.direction.rawValue)",
                                         "attempts": "\(attempts)"]
        do {
            switch outcome {
            case .delivered:
                try await store.markTextDelivered(id: text.id, at: at, attempts: attempts, sipCode: code,
                                                  charge: Self.cdr(text, rate: rate, status: code ?? 200, at: at))
                logger.info("text delivered", metadata: metadata)
            case .failed:
                try await store.markTextAttemptFailed(id: text.id, attempts: attempts, error: why, nextAttemptAt: nil, sipCode: code,
                                                      charge: Self.cdr(text, rate: rate, status: code ?? 408, at: at, reason: why))
                logger.warning("text failed", metadata: metadata.merging(["why": "\(why)"]) { $1 })
            case .retry:
                let next = retry.nextAttempt(afterFailures: attempts, receivedAt: text.receivedAt, now: at, unit: Double.random(in: 0..<1))
                try await store.markTextAttemptFailed(id: text.id, attempts: attempts, error: why, nextAttemptAt: next, sipCode: code,
                                                      charge: Self.cdr(text, rate: rate, status: code ?? 408, at: at, reason: why))
                logger.log(level: next == nil ? .warning : .info, next == nil ? "text given up after retries" : "text not taken; will retry",
                           metadata: metadata.merging(["why": "\(why)"]) { $1 })
            }
        } catch {
            logger.error("could not record a text delivery attempt", metadata: ["id": "\(text.id)", "error": "\(error)"])
        }
    }

    /// The SIM now; nil when it is gone (or the store cannot say).
    func simRecord(_ iccid: String) async -> SIMRecord? {
        guard let id = try? ICCID(iccid), let sim = try? await store.sim(iccid: id) else { return nil }
        return sim
    }

    /// A sender as a SIP URI user (RFC 3261 §25.1: a name's spaces escaped).
    static func uriUser(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.!~*'()+"))) ?? s
    }

    // MARK: To webhooks

    func deliver(_ text: StoredText, now: Double) async {
        // Claimed for longer than one attempt (10 s timeout), so no other node sends it meanwhile;
        // after a crash mid-attempt it is due again 15 s later.
        guard (try? await store.claimText(id: text.id, now: now, until: now + 15)) == true else { return }
        let attempts = text.attempts + 1
        let outcome: Result<Void, DeliveryError>
        do {
            let (url, secret) = try await webhookTarget(text)
            try await post(text, to: url, secret: secret)
            outcome = .success(())
        } catch let e as DeliveryError {
            outcome = .failure(e)
        } catch {
            outcome = .failure(.temporary("\(error)"))
        }
        let at = Date().timeIntervalSince1970
        do {
            switch outcome {
            case .success:
                try await store.markTextDelivered(id: text.id, at: at, attempts: attempts)
                logger.info("text delivered to its webhook", metadata: ["id": "\(text.id)", "attempts": "\(attempts)"])
            case .failure(.permanent(let why)):
                try await store.markTextAttemptFailed(id: text.id, attempts: attempts, error: why, nextAttemptAt: nil)
                logger.warning("text not deliverable", metadata: ["id": "\(text.id)", "why": "\(why)"])
            case .failure(.temporary(let why)):
                let next = retry.nextAttempt(afterFailures: attempts, receivedAt: text.receivedAt, now: at, unit: Double.random(in: 0..<1))
                try await store.markTextAttemptFailed(id: text.id, attempts: attempts, error: why, nextAttemptAt: next)
                if next == nil {
                    logger.warning("text given up after retries", metadata: ["id": "\(text.id)", "attempts": "\(attempts)", "why": "\(why)"])
                } else {
                    logger.info("webhook delivery failed; will retry", metadata: ["id": "\(text.id)", "attempts": "\(attempts)", "why": "\(why)"])
                }
            }
        } catch {
            logger.error("could not record a text delivery attempt", metadata: ["id": "\(text.id)", "error": "\(error)"])
        }
    }

    enum DeliveryError: Error { case permanent(String), temporary(String) }

    /// Where a SIM's texts go and the account's secret, read from the store
    /// at most every few seconds per SIM (a burst of texts would otherwise
    /// read them twice per text); a changed webhook_url applies within that.
    var webhookTargets: [String: (url: String?, secret: String, until: Double)] = [:]
    static let webhookTargetSeconds = 5.0

    func webhookTarget(_ text: StoredText) async throws -> (String, String) {
        let now = Date().timeIntervalSince1970
        let cached: (url: String?, secret: String, until: Double)
        if let hit = webhookTargets[text.iccid], hit.until > now {
            cached = hit
        } else {
            guard let iccid = try? ICCID(text.iccid), let sim = try await store.sim(iccid: iccid) else { throw DeliveryError.permanent("the SIM was deleted") }
            let secret = try await store.webhookSecret(account: sim.accountID)
            if webhookTargets.count > 100_000 { webhookTargets.removeAll() }
            cached = (sim.webhookURL, secret, now + Self.webhookTargetSeconds)
            webhookTargets[text.iccid] = cached
        }
        guard let url = cached.url, !url.isEmpty else { throw DeliveryError.permanent("the SIM has no webhook_url") }
        return (url, cached.secret)
    }

    /// `2026-11-29T06:08:06.733Z` (RFC 3339, UTC, milliseconds), without a
    /// DateFormatter: making one per webhook cost more than the HMAC.
    static func rfc3339(_ t: Double) -> String {
        let millis = Int64((t * 1000).rounded())
        var seconds = time_t(millis / 1000)
        var tm = tm()
        gmtime_r(&seconds, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(millis % 1000)
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))."
            + (ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)") + "Z"
    }

    func post(_ text: StoredText, to url: String, secret: String) async throws {
        let body = try JSONEncoder().encode(WebhookBody(
            id: text.id, from: text.iccid, to: text.peer, text: text.body,
            time: Self.rfc3339(text.receivedAt), segments: text.segments))
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "switchboard/\(nodeName)")
        request.headers.add(name: WebhookSignature.header,
                            value: WebhookSignature.sign(secret: Array(secret.utf8), timestamp: Int(Date().timeIntervalSince1970), body: Array(body)))
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await http.execute(request, timeout: .seconds(10))
        _ = try? await response.body.collect(upTo: 64 * 1024)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw DeliveryError.temporary("webhook answered \(response.status.code)")
        }
    }
}
