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

    public init(store: Store, mobileCoreSources: [String], nodeName: String, retry: WebhookRetryPolicy = WebhookRetryPolicy(),
                logger: Logger) {
        self.store = store; self.logger = logger; self.mobileCoreSources = Set(mobileCoreSources)
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
            }
            ticker.cancel()
        }
    }

    /// Texts to handsets are sent to the mobile core at `address` (`host[:port]`).
    public func enableHandsetDelivery(endpoint: SIPEndpoint, destination: SIPDestination, address: String) {
        mobileCore = (endpoint, destination, address)
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
    public func handle(_ request: SIPServerRequest) async {
        let m = request.message
        guard let ip = request.source.ipAddress, mobileCoreSources.contains(ip) else {
            logger.notice("MESSAGE from outside the mobile core refused", metadata: ["source": "\(request.source)"])
            await request.respond(403, reasonPhrase: "Forbidden (texts come from the mobile core only)")
            return
        }
        let pai = m.splitValues(.pAssertedIdentity).first.flatMap { try? SIPNameAddress($0) }?.uri.user
        let sender = pai ?? m.from?.uri.user ?? ""
        guard let iccid = try? ICCID(sender) else {
            await request.respond(400, reasonPhrase: "Bad Request (the sender is not an ICCID)")
            return
        }
        if let type = m.firstValue(.contentType)?.lowercased(), !type.hasPrefix("text/plain") {
            await request.respond(415, reasonPhrase: "Unsupported Media Type (texts are text/plain)",
                                  headers: [(.accept, "text/plain")])
            return
        }
        guard let text = String(validating: m.body, as: UTF8.self) else {
            await request.respond(400, reasonPhrase: "Bad Request (the text is not valid UTF-8)")
            return
        }
        guard !text.isEmpty else {
            await request.respond(400, reasonPhrase: "Bad Request (empty text)")
            return
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
        let stored = StoredText(id: "txt_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""), direction: .fromHandset,
                                iccid: iccid.digits, accountID: sim.accountID, peer: to, body: text,
                                segments: TextSegments(text).segments, receivedAt: now)
        let dedupe = "\(m.callID ?? "")/\(m.cseq?.number ?? 0)"
        do {
            // Charged as it is taken (S13): the handset has sent it.
            let (kept, inserted) = try await store.acceptText(stored, dedupeKey: dedupe,
                                                              charge: Self.cdr(stored, rate: sim.textRate, status: 202, at: now))
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
        let fromHandset = t.direction == .fromHandset
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
        } catch {
            logger.error("could not read the text outbox", metadata: ["error": "\(error)"])
            return
        }
        // Each attempt runs on its own: a mobile core that does not answer
        // (up to Timer F, 32 s) holds up neither webhooks nor other SIMs.
        for text in due where !inFlight.contains(text.id) {
            inFlight.insert(text.id)
            Task {
                if text.direction == .fromHandset { await self.deliver(text, now: now) } else { await self.sendToHandset(text, now: now) }
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
        // Claimed for longer than a transaction can last (Timer F, 32 s).
        guard (try? await store.claimText(id: text.id, now: now, until: now + 40)) == true else { return }
        let attempts = text.attempts + 1
        var message = SIPMessage(request: .message, uri: "sip:\(text.iccid)@\(core.host)")
        let localHost = await core.endpoint.contactHostPort(for: core.destination) ?? "switchboard.invalid"
        message.append(.from, "<sip:\(Self.uriUser(text.peer))@\(localHost)>;tag=\(SIPEndpoint.newTag())")
        message.append(.to, "<sip:\(text.iccid)@\(core.host)>")
        // The Call-ID is the text's id: a retry after a lost answer is recognisably the same text.
        message.append(.callID, "\(text.id)@\(nodeName)")
        message.append(.cseq, "\(attempts) MESSAGE")
        message.append(.contentType, "text/plain;charset=UTF-8")
        message.body = Array(text.body.utf8)
        let code: Int?
        let why: String
        do {
            let response = try await core.endpoint.send(message, to: core.destination)
            code = response.statusCode
            why = "mobile core answered \(response.statusCode ?? 0) \(response.reasonPhrase ?? "")"
        } catch {
            code = nil
            why = "no answer from the mobile core: \(error)"
        }
        let outcome = code.map(TextGateway.outcome(ofFinalCode:)) ?? .retry
        let at = Date().timeIntervalSince1970
        do {
            let rate = await textRate(of: text.iccid)
            switch outcome {
            case .delivered:
                try await store.markTextDelivered(id: text.id, at: at, attempts: attempts, sipCode: code,
                                                  charge: Self.cdr(text, rate: rate, status: code ?? 200, at: at))
                logger.info("text delivered to a handset", metadata: ["id": "\(text.id)", "iccid": "\(text.iccid)", "attempts": "\(attempts)"])
            case .failed:
                try await store.markTextAttemptFailed(id: text.id, attempts: attempts, error: why, nextAttemptAt: nil, sipCode: code,
                                                      charge: Self.cdr(text, rate: rate, status: code ?? 408, at: at, reason: why))
                logger.warning("text to a handset failed", metadata: ["id": "\(text.id)", "iccid": "\(text.iccid)", "why": "\(why)"])
            case .retry:
                let next = retry.nextAttempt(afterFailures: attempts, receivedAt: text.receivedAt, now: at, unit: Double.random(in: 0..<1))
                try await store.markTextAttemptFailed(id: text.id, attempts: attempts, error: why, nextAttemptAt: next, sipCode: code,
                                                      charge: Self.cdr(text, rate: rate, status: code ?? 408, at: at, reason: why))
                if next == nil {
                    logger.warning("text to a handset given up after retries", metadata: ["id": "\(text.id)", "attempts": "\(attempts)", "why": "\(why)"])
                } else {
                    logger.info("text to a handset not taken; will retry", metadata: ["id": "\(text.id)", "attempts": "\(attempts)", "why": "\(why)"])
                }
            }
        } catch {
            logger.error("could not record a text delivery attempt", metadata: ["id": "\(text.id)", "error": "\(error)"])
        }
    }

    /// The SIM's per-segment text rate now (nil: free, or the SIM is gone).
    func textRate(of iccid: String) async -> Money? {
        guard let id = try? ICCID(iccid) else { return nil }
        return (try? await store.sim(iccid: id))??.textRate
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
            guard let iccid = try? ICCID(text.iccid), let sim = try await store.sim(iccid: iccid) else { throw DeliveryError.permanent("the SIM was deleted") }
            guard let url = sim.webhookURL, !url.isEmpty else { throw DeliveryError.permanent("the SIM has no webhook_url") }
            let secret = try await store.webhookSecret(account: text.accountID)
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

    func post(_ text: StoredText, to url: String, secret: String) async throws {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let body = try JSONEncoder().encode(WebhookBody(
            id: text.id, from: text.iccid, to: text.peer, text: text.body,
            time: formatter.string(from: Date(timeIntervalSince1970: text.receivedAt)), segments: text.segments))
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
