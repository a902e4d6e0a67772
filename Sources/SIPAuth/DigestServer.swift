import Crypto

/// Why credentials were refused; the caller answers with a fresh challenge.
public enum DigestRejection: Sendable, Equatable, CustomStringConvertible {
    case wrongRealm(String)
    /// The nonce was not made by this server (bad format or HMAC): forged, or from another secret or realm.
    case unknownNonce
    case wrongResponse
    case replayedNonceCount(UInt32)
    case unsupportedAlgorithm(DigestAlgorithm)
    case unsupportedQop(String)
    case missingParameter(String)

    public var description: String {
        switch self {
        case .wrongRealm(let realm): return "credentials are for realm '\(realm)', not this server's"
        case .unknownNonce: return "the nonce was not issued by this server (forged, or another secret or realm)"
        case .wrongResponse: return "the digest response does not match (wrong password, method or uri?)"
        case .replayedNonceCount(let nc):
            return "nonce count \(DigestComputation.nonceCountText(nc)) is not above the last one seen for this nonce (replay)"
        case .unsupportedAlgorithm(let algorithm): return "digest algorithm \(algorithm.rawValue) was not offered"
        case .unsupportedQop(let qop): return "qop '\(qop)' was not offered"
        case .missingParameter(let name): return "the credentials lack the '\(name)' parameter"
        }
    }
}

public enum DigestVerdict: Sendable, Equatable {
    case accepted
    /// The response is right but the nonce has expired: challenge again with stale=true (RFC 7616 §3.3),
    /// so that the client retries without asking its user for the password.
    case stale
    case rejected(DigestRejection)
}

/// Server side of digest authentication (RFC 7616; RFC 8760 for SIP).
///
/// Nonces are stateless — issue time, salt and an HMAC of both under a server
/// secret — so age and authenticity are checked without storing them, on any
/// node sharing the secret. Only the highest nonce count seen per nonce is
/// kept, to refuse replays (RFC 7616 §3.4 and §5 on replays), in a table bounded by
/// expiry and by `maxTrackedNonces`.
public struct DigestServer: Sendable {
    public var realm: String
    /// Seconds a nonce is good for; after that a correct response gets `.stale`.
    public var nonceLifetime: Double
    /// Offered in this order, one challenge each, most preferred first (RFC 8760 §2.3): SHA-256, then MD5.
    public var algorithms: [DigestAlgorithm]
    /// ["auth"] by default; empty offers the RFC 2069 form.
    public var qopOptions: [String]
    public var maxTrackedNonces: Int
    let secret: [UInt8]
    var nonceCounts = NonceCountTable()

    public init(realm: String, secret: [UInt8], nonceLifetime: Double = 300, algorithms: [DigestAlgorithm] = [.sha256, .md5],
                qopOptions: [String] = ["auth"], maxTrackedNonces: Int = 100_000) {
        self.realm = realm; self.secret = secret; self.nonceLifetime = nonceLifetime
        self.algorithms = algorithms; self.qopOptions = qopOptions; self.maxTrackedNonces = maxTrackedNonces
    }

    /// How many nonces' counts are remembered (for metrics and tests).
    public var trackedNonceCount: Int { nonceCounts.count }

    public func makeChallenges(now: Double, stale: Bool = false) -> [DigestChallenge] {
        var generator = SystemRandomNumberGenerator()
        return makeChallenges(now: now, stale: stale, using: &generator)
    }

    /// All challenges share one nonce: the client answers one of them. The
    /// random salt makes nonces unique, so two clients challenged in the same
    /// millisecond do not share a nonce count.
    public func makeChallenges<G: RandomNumberGenerator>(now: Double, stale: Bool = false, using generator: inout G) -> [DigestChallenge] {
        let nonce = makeNonce(issuedMilliseconds: UInt64(max(0, now * 1000)), salt: generator.next())
        return algorithms.map { DigestChallenge(realm: realm, nonce: nonce, algorithm: $0, qop: qopOptions, stale: stale) }
    }

    /// hex(issued ms, 8 bytes BE || salt, 8 bytes || HMAC-SHA256(secret, issued || salt || realm) truncated to 16 bytes).
    func makeNonce(issuedMilliseconds: UInt64, salt: UInt64) -> String {
        let body = bigEndianBytes(issuedMilliseconds) + bigEndianBytes(salt)
        return hex(body + mac(body))
    }

    /// Seconds since the epoch at which this server issued `nonce`, or nil if it did not.
    func issueTime(of nonce: String) -> Double? {
        guard let raw = bytes(fromHex: nonce), raw.count == 32 else { return nil }
        let body = Array(raw[0..<16])
        guard constantTimeEqual(mac(body), Array(raw[16...])) else { return nil }
        let milliseconds = body[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(milliseconds) / 1000
    }

    private func mac(_ body: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: body + Array(realm.utf8), using: SymmetricKey(data: secret)).prefix(16))
    }

    /// Checks credentials against the user's password. Call once per new
    /// request: SIP retransmissions are absorbed by the transaction layer
    /// (RFC 3261 §17.2), and a repeat would count as a replay.
    public mutating func verify(_ credentials: DigestCredentials, method: String, password: String, now: Double,
                                body: [UInt8] = []) -> DigestVerdict {
        let ha1 = DigestComputation.ha1(algorithm: credentials.algorithm, username: credentials.username, realm: realm, password: password)
        return verify(credentials, method: method, ha1: ha1, now: now, body: body)
    }

    /// As above from a stored HA1 = H(username:realm:password), hashed with
    /// `credentials.algorithm`'s function (one stored HA1 per hash: MD5, SHA-256).
    public mutating func verify(_ credentials: DigestCredentials, method: String, ha1: String, now: Double,
                                body: [UInt8] = []) -> DigestVerdict {
        let c = credentials
        guard c.realm == realm else { return .rejected(.wrongRealm(c.realm)) }
        guard algorithms.contains(c.algorithm) else { return .rejected(.unsupportedAlgorithm(c.algorithm)) }
        guard let issued = issueTime(of: c.nonce) else { return .rejected(.unknownNonce) }
        // qop absent is the RFC 2069/2617 compatible form: accepted, with no count to check.
        if let qop = c.qop {
            guard qopOptions.contains(qop) else { return .rejected(.unsupportedQop(qop)) }
            guard c.nc != nil else { return .rejected(.missingParameter("nc")) }
        }
        if (c.qop != nil || c.algorithm.isSession), c.cnonce == nil { return .rejected(.missingParameter("cnonce")) }

        let expected = DigestComputation.response(algorithm: c.algorithm, ha1: ha1, method: method, uri: c.uri, nonce: c.nonce,
                                                  nc: c.nc, cnonce: c.cnonce, qop: c.qop, entityBody: body)
        guard constantTimeEqual(Array(expected.utf8), Array(c.response.lowercased().utf8)) else { return .rejected(.wrongResponse) }
        // Stale only after the response checks out, so stale=true never tells a guesser anything (RFC 7616 §3.3).
        guard now - issued <= nonceLifetime else { return .stale }
        guard let nc = c.nc else { return .accepted }  // without qop a nonce is reusable within its lifetime
        switch nonceCounts.record(nonce: c.nonce, nc: nc, issued: issued, now: now, lifetime: nonceLifetime,
                                  capacity: maxTrackedNonces) {
        case .fresh: return .accepted
        case .replayed: return .rejected(.replayedNonceCount(nc))
        case .forgotten: return .stale
        }
    }
}

/// Highest nonce count per live nonce, bounded: expired nonces are dropped,
/// and when full the first-seen entry is evicted. A live nonce whose count
/// was evicted is "forgotten": its counts can no longer be checked, so it is
/// answered as stale (a fresh nonce) rather than accepted.
struct NonceCountTable: Sendable {
    enum Outcome { case fresh, replayed, forgotten }

    private struct Entry: Sendable {
        var highest: UInt32
        var issued: Double
    }

    private var entries: [String: Entry] = [:]
    private var order: [String] = []  // first-seen order; entries before `head` are gone
    private var head = 0
    private var forgottenUpTo = -Double.infinity  // latest issue time of a live nonce evicted

    var count: Int { entries.count }

    mutating func record(nonce: String, nc: UInt32, issued: Double, now: Double, lifetime: Double, capacity: Int) -> Outcome {
        if var entry = entries[nonce] {
            guard nc > entry.highest else { return .replayed }
            entry.highest = nc
            entries[nonce] = entry
            return .fresh
        }
        guard issued > forgottenUpTo else { return .forgotten }
        guard nc > 0 else { return .replayed }  // counts start at 00000001 (RFC 7616 §3.4)
        evict(now: now, lifetime: lifetime, capacity: max(1, capacity))
        entries[nonce] = Entry(highest: nc, issued: issued)
        order.append(nonce)
        return .fresh
    }

    /// Drops expired entries from the front, and live ones while full, making room for one.
    private mutating func evict(now: Double, lifetime: Double, capacity: Int) {
        while head < order.count {
            let nonce = order[head]
            if let entry = entries[nonce] {
                let expired = now - entry.issued > lifetime
                guard expired || entries.count >= capacity else { break }
                if !expired { forgottenUpTo = max(forgottenUpTo, entry.issued) }
                entries[nonce] = nil
            }
            head += 1
        }
        // Compact the queue once most of it is spent: amortised O(1) per nonce.
        if head > 64, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}

private func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
}
