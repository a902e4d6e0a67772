import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SIMs
import SIPMessage
import SIPStack
import Store

/// Texts from handsets (S11): a MESSAGE (RFC 3428) from the mobile core is
/// stored in the outbox before it is answered 202, then POSTed to the SIM's
/// webhook URL as signed JSON, retried with back-off until a 2xx, one SIM's
/// texts in order. What is accepted survives a restart: delivery resumes
/// from the store.
public actor TextService {
    let store: Store
    let logger: Logger
    let mobileCoreSources: Set<String>
    let retry: WebhookRetryPolicy
    let http: HTTPClient
    let nodeName: String
    var deliveryTask: Task<Void, Never>?
    var wake: AsyncStream<Void>.Continuation?

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
            let (kept, inserted) = try await store.acceptText(stored, dedupeKey: dedupe)
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

    func deliverDue() async {
        let now = Date().timeIntervalSince1970
        let due: [StoredText]
        do { due = try await store.dueTexts(.fromHandset, now: now, limit: 50) } catch {
            logger.error("could not read the text outbox", metadata: ["error": "\(error)"])
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for text in due {
                group.addTask { await self.deliver(text, now: now) }
            }
        }
    }

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
