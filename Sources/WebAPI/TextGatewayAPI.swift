import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Messaging
import NIOCore
import Rating
import SIMs
import SIPAuth
import Store

/// The text gateway's settings (S10), from the node's configuration.
public struct TextGatewaySettings: Sendable {
    /// The longest text taken, in concatenated segments (`texts.max_segments`).
    public var maxSegments: Int
    /// Whether a mobile core is configured; without one texts to handsets are refused (503).
    public var mobileCoreConfigured: Bool
    /// Called after a text is accepted, so delivery starts at once.
    public var accepted: @Sendable () -> Void

    public init(maxSegments: Int = 6, mobileCoreConfigured: Bool, accepted: @escaping @Sendable () -> Void = {}) {
        self.maxSegments = maxSegments; self.mobileCoreConfigured = mobileCoreConfigured; self.accepted = accepted
    }
}

/// The account's VoIP credentials (a trunk's digest user name and password),
/// which simple scripts may use for the text gateway instead of an API key.
enum VoIPCredentials {
    /// The caller the credentials belong to, or 401. The password is checked
    /// against the trunk's stored HA1 (the plaintext is never kept).
    static func authenticate(username: String, password: String, store: Store) async throws -> Caller {
        guard !username.isEmpty, username.count <= 128, password.count <= 256 else {
            throw APIError.unauthorized("the VoIP username or password is wrong", error: nil)
        }
        for trunk in try await store.trunks(username: username) {
            let realm = trunk.realm ?? ""
            let a1 = Array("\(username):\(realm):\(password)".utf8)
            let matches: Bool
            if let sha = trunk.ha1SHA256 {
                matches = constantTimeEqual(Array(hex(SHA256.hash(data: a1)).utf8), Array(sha.lowercased().utf8))
            } else if let md5 = trunk.ha1MD5 {
                matches = constantTimeEqual(Array(hex(Insecure.MD5.hash(data: a1)).utf8), Array(md5.lowercased().utf8))
            } else {
                matches = false
            }
            if matches { return .account(trunk.accountID, keyID: "voip:\(username)") }
        }
        throw APIError.unauthorized("the VoIP username or password is wrong", error: nil)
    }

    /// `Authorization: Basic base64(user:password)` (RFC 7617), nil if the header is another scheme.
    static func basic(_ header: String?) throws(APIError) -> (username: String, password: String)? {
        guard let header, header.count > 6, header.prefix(6).lowercased() == "basic " else { return nil }
        guard let data = Data(base64Encoded: header.dropFirst(6).trimmingCharacters(in: .whitespaces)),
              let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else {
            throw APIError.unauthorized("the Basic credentials are not base64 of 'username:password'", error: nil)
        }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }
}

extension Handlers {
    /// Fields a text request may have, JSON or form-encoded.
    static let textFields: Set<String> = ["to", "text", "from", "username", "password"]
    /// A text request is small: a generous bound for a 10-segment text in any encoding.
    static let maxTextRequestBytes = 16 * 1024
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")

    /// POST /api/v1/texts (S10): a text to a SIM's handset, queued for the
    /// mobile core; 202 with its id, or a 4xx naming the field at fault.
    func postText(_ request: inout Request, _ context: APIRequestContext) async throws -> Response {
        let bytes: ByteBuffer
        do { bytes = try await request.collectBody(upTo: Self.maxTextRequestBytes) } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, field: "body", "a text request is at most \(Self.maxTextRequestBytes / 1024) KiB")
        }
        let type = (request.headers[.contentType] ?? "").lowercased()
        let fields: [String: String]
        if type.hasPrefix("application/x-www-form-urlencoded") {
            fields = try FormBody.fields(Array(bytes.readableBytesView))
        } else if type.hasPrefix("application/json") {
            if String(validating: bytes.readableBytesView, as: UTF8.self) == nil {
                throw APIError.malformed("the body is not valid UTF-8")
            }
            var strings: [String: String] = [:]
            for (key, value) in try JSONIn.object(bytes) {
                guard let v = value as? String else {
                    if value is NSNull { continue }
                    throw APIError.invalid(key, "must be a string")
                }
                strings[key] = v
            }
            fields = strings
        } else {
            throw APIError(.unsupportedMediaType, field: "Content-Type",
                           "send the text as application/json or application/x-www-form-urlencoded, not '\(type.prefix(60))'")
        }
        for key in fields.keys.sorted() where !Self.textFields.contains(key) {
            throw APIError.invalid(key, "unknown field (known: \(Self.textFields.sorted().joined(separator: ", ")))")
        }
        // Credentials: the API key or Basic header (checked by the middleware), else username/password fields.
        let caller: Caller
        if let known = context.caller {
            caller = known
        } else if let user = fields["username"], let password = fields["password"] {
            caller = try await VoIPCredentials.authenticate(username: user, password: password, store: store)
        } else {
            throw APIError.unauthorized(
                "credentials are required: 'Authorization: Bearer sbk_…', Basic with the account's VoIP username and password, "
                    + "or the username and password fields", error: nil)
        }
        guard texts.mobileCoreConfigured else {
            throw APIError(.serviceUnavailable, field: "to", "this node has no mobile core configured (mobile_core.address); texts to handsets cannot be sent")
        }
        let iccid: ICCID
        let segments: TextSegments
        do { iccid = try TextGateway.destination(fields["to"]) } catch { throw APIError.invalid(error.field, error.message) }
        guard let sim = try await store.sim(iccid: iccid) else { throw APIError.notFound("to", "SIM \(iccid) does not exist") }
        if let own = caller.accountID, own != sim.accountID {
            throw APIError.forbidden("to", "SIM \(iccid) is not one of account \(own)'s SIMs")
        }
        let sender: String
        do {
            segments = try TextGateway.segments(of: fields["text"], maxSegments: texts.maxSegments)
            sender = try TextGateway.sender(fields["from"], linkedNumber: sim.linkedNumber)
        } catch { throw APIError.invalid(error.field, error.message) }
        // The charge must be covered now (S13), as a call's set-up is.
        let charge = (sim.textRate ?? 0) * Money(segments.segments)
        if charge > 0, let account = try await store.account(id: sim.accountID), account.balance + account.creditLimit < charge {
            throw APIError(HTTPResponse.Status(code: 402, reasonPhrase: "Payment Required"), field: "to",
                           "account \(account.id)'s balance and credit do not cover this text (\(segments.segments) segments, \(charge) \(account.currency))")
        }
        let now = Date().timeIntervalSince1970
        let id = StoredText.newID()
        let text = StoredText(id: id, direction: .toHandset, iccid: iccid.digits, accountID: sim.accountID, peer: sender,
                              body: fields["text"] ?? "", segments: segments.segments, receivedAt: now)
        // A client that retries with the same Idempotency-Key gets the same text, not a second one.
        let key = Self.idempotencyKey.flatMap { request.headers[$0] }.map { "api/\(sim.accountID)/\($0.prefix(200))" } ?? "api/\(id)"
        let (kept, inserted) = try await store.acceptText(text, dedupeKey: key)
        if inserted {
            texts.accepted()
        } else if kept.iccid != text.iccid || kept.peer != text.peer || (kept.state == .queued && kept.body != text.body) {
            // (Once delivered or failed a text's body is erased, so only its SIM and sender can be compared.)
            throw APIError.invalid("Idempotency-Key", "was used for a different text (\(kept.id)); use a new key for a new text")
        }
        var response = try JSONOut.response(Out.Text(kept), status: .accepted)
        response.headers[.location] = "/api/v1/texts/\(kept.id)"
        return response
    }
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.1): `+` is a space,
/// `%XX` a byte; every value must then be UTF-8.
enum FormBody {
    static func fields(_ bytes: [UInt8]) throws(APIError) -> [String: String] {
        var out: [String: String] = [:]
        for pair in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = try decode(parts[0], field: "body")
            let value = try decode(parts.count > 1 ? parts[1] : [], field: name)
            guard out[name] == nil else { throw APIError.invalid(name, "is given more than once") }
            out[name] = value
        }
        return out
    }

    static func decode(_ raw: ArraySlice<UInt8>, field: String) throws(APIError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.count)
        var i = raw.startIndex
        while i < raw.endIndex {
            let b = raw[i]
            if b == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if b == UInt8(ascii: "%") {
                guard i + 2 < raw.endIndex, let hi = hexValue(raw[i + 1]), let lo = hexValue(raw[i + 2]) else {
                    throw APIError.malformed("the form body has a '%' not followed by two hex digits (in \(field))")
                }
                bytes.append(hi << 4 | lo)
                i += 2
            } else {
                bytes.append(b)
            }
            i += 1
        }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw APIError.invalid(field, "is not valid UTF-8 once percent-decoded")
        }
        return s
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
