import Crypto

public enum DigestRejection: Sendable, Equatable, CustomStringConvertible {
    case wrongRealm(String)
    case unknownNonce
    case wrongResponse
    case replayedNonceCount(UInt32)
    case unsupportedQop(String)
    case usernameMismatch

    public var description: String {
        switch self {
        case .wrongRealm(let r): return "credentials are for realm '\(r)'"
        case .unknownNonce: return "nonce was not issued by this server"
        case .wrongResponse: return "digest response does not match (wrong password?)"
        case .replayedNonceCount(let n): return "nonce count \(n) was already used (replay)"
        case .unsupportedQop(let q): return "qop '\(q)' is not supported"
        case .usernameMismatch: return "username does not match"
        }
    }
}

public enum DigestVerdict: Sendable, Equatable {
    case accepted
    /// The response is right but the nonce has expired: challenge again with stale=true (RFC 7616 §3.3).
    case stale
    case rejected(DigestRejection)
}

/// Server side of digest authentication (RFC 7616, RFC 8760 for SIP).
///
/// Nonces are stateless — timestamp plus an HMAC of it under a server
/// secret — so any node sharing the secret can check them; only the highest
/// nonce-count seen per nonce is remembered, to refuse replays (§3.4, §5.3).
public struct DigestServer: Sendable {
    public var realm: String
    public var nonceLifetime: Double
    public var algorithms: [DigestAlgorithm]
    let secret: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: secret) }
    var highestNonceCount: [String: (nc: UInt32, issued: Double)] = [:]
    public var maxTrackedNonces: Int

    public init(realm: String, secret: [UInt8], nonceLifetime: Double = 300,
                algorithms: [DigestAlgorithm] = [.sha256, .md5], maxTrackedNonces: Int = 100_000) {
        self.realm = realm; self.secret = secret; self.nonceLifetime = nonceLifetime
        self.algorithms = algorithms; self.maxTrackedNonces = maxTrackedNonces
    }

    /// One challenge per algorithm, strongest first (RFC 8760 §2.4).
    public func makeChallenges(now: Double, stale: Bool = false) -> [DigestChallenge] {
        let nonce = makeNonce(now: now)
        return algorithms.map { DigestChallenge(realm: realm, nonce: nonce, algorithm: $0, qop: ["auth"], stale: stale) }
    }

    func makeNonce(now: Double) -> String {
        let ts = String(UInt64(max(0, now)), radix: 16)
        return ts + "." + hex(HMAC<SHA256>.authenticationCode(for: Array((ts + ":" + realm).utf8), using: key).prefix(16))
    }

    /// When the nonce was issued, if this server issued it.
    func issueTime(of nonce: String) -> Double? {
        let parts = nonce.split(separator: ".")
        guard parts.count == 2, let ts = UInt64(parts[0], radix: 16) else { return nil }
        let expected = hex(HMAC<SHA256>.authenticationCode(for: Array((String(parts[0]) + ":" + realm).utf8), using: key).prefix(16))
        // Constant-time comparison of the MAC.
        let a = Array(expected.utf8), b = Array(parts[1].utf8)
        guard a.count == b.count else { return nil }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0 ? Double(ts) : nil
    }

    public mutating func verify(_ c: DigestCredentials, method: String, password: String, now: Double, body: [UInt8] = []) -> DigestVerdict {
        verify(c, method: method, ha1: DigestComputation.ha1(algorithm: c.algorithm, username: c.username, realm: realm, password: password),
               now: now, body: body)
    }

    public mutating func verify(_ c: DigestCredentials, method: String, ha1: String, now: Double, body: [UInt8] = []) -> DigestVerdict {
        guard c.realm == realm else { return .rejected(.wrongRealm(c.realm)) }
        guard let issued = issueTime(of: c.nonce) else { return .rejected(.unknownNonce) }
        if let q = c.qop, q != "auth", q != "auth-int" { return .rejected(.unsupportedQop(q)) }
        let expected = DigestComputation.response(algorithm: c.algorithm, ha1: ha1, method: method, uri: c.uri,
                                                  nonce: c.nonce, nc: c.nc, cnonce: c.cnonce, qop: c.qop, entityBody: body)
        guard expected == c.response.lowercased() else { return .rejected(.wrongResponse) }
        if now - issued > nonceLifetime { return .stale }
        if let nc = c.nc {
            if let seen = highestNonceCount[c.nonce], nc <= seen.nc { return .rejected(.replayedNonceCount(nc)) }
            remember(c.nonce, nc: nc, issued: issued, now: now)
        }
        return .accepted
    }

    mutating func remember(_ nonce: String, nc: UInt32, issued: Double, now: Double) {
        if highestNonceCount.count >= maxTrackedNonces {
            // Drop expired nonces; if still full, the oldest.
            highestNonceCount = highestNonceCount.filter { now - $0.value.issued <= nonceLifetime }
            if highestNonceCount.count >= maxTrackedNonces,
               let oldest = highestNonceCount.min(by: { $0.value.issued < $1.value.issued })?.key {
                highestNonceCount[oldest] = nil
            }
        }
        highestNonceCount[nonce] = (nc, issued)
    }
}

public enum DigestClientError: Error, Equatable, Sendable, CustomStringConvertible {
    case noUsableChallenge
    public var description: String { "no challenge with a supported algorithm and qop was offered" }
}

/// Client side: answers 401/407 challenges (RFC 7616 §3.4), counting nc per nonce.
public struct DigestClient: Sendable {
    public var username: String
    public var password: String
    var nonceCounts: [String: UInt32] = [:]

    public init(username: String, password: String) { self.username = username; self.password = password }

    /// The strongest challenge we can answer (SHA-256 over MD5, RFC 8760 §2.4).
    public static func preferred(_ challenges: [DigestChallenge]) -> DigestChallenge? {
        let usable = challenges.filter { $0.qop.isEmpty || $0.qop.contains("auth") || $0.qop.contains("auth-int") }
        return usable.first { $0.algorithm == .sha256 || $0.algorithm == .sha256Session } ?? usable.first
    }

    public mutating func authorization(for challenge: DigestChallenge, method: String, uri: String, body: [UInt8] = []) throws(DigestClientError) -> DigestCredentials {
        let qop: String?
        if challenge.qop.isEmpty { qop = nil }
        else if challenge.qop.contains("auth") { qop = "auth" }
        else if challenge.qop.contains("auth-int") { qop = "auth-int" }
        else { throw .noUsableChallenge }
        var nc: UInt32?
        var cnonce: String?
        if qop != nil {
            let n = (nonceCounts[challenge.nonce] ?? 0) + 1
            // A new nonce restarts the count; keep only the current one.
            if nonceCounts[challenge.nonce] == nil { nonceCounts.removeAll() }
            nonceCounts[challenge.nonce] = n
            nc = n
            var g = SystemRandomNumberGenerator()
            cnonce = String(g.next(), radix: 16) + String(g.next(), radix: 16)
        }
        let response = DigestComputation.response(algorithm: challenge.algorithm, username: username, realm: challenge.realm,
                                                  password: password, method: method, uri: uri, nonce: challenge.nonce,
                                                  nc: nc, cnonce: cnonce, qop: qop, entityBody: body)
        return DigestCredentials(username: username, realm: challenge.realm, nonce: challenge.nonce, uri: uri, response: response,
                                 algorithm: challenge.algorithm, cnonce: cnonce, opaque: challenge.opaque, qop: qop, nc: nc)
    }
}
