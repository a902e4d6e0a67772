public enum DigestClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The challenge offered only qop values we do not know.
    case unsupportedQop([String])

    public var description: String {
        switch self {
        case .unsupportedQop(let offered):
            return "the challenge offers qop \(offered.joined(separator: ", ")); only auth and auth-int are supported"
        }
    }
}

/// Client side: answers 401/407 challenges (RFC 7616 §3.4, RFC 3261 §22.2).
/// Counts nc per realm's current nonce, so a proxy's and a registrar's
/// challenges can be answered side by side.
public struct DigestClient: Sendable {
    public var username: String
    public var password: String
    private var nonceCounts: [String: NonceCount] = [:]  // by realm

    private struct NonceCount: Sendable {
        var nonce: String
        var count: UInt32
    }

    public init(username: String, password: String) { self.username = username; self.password = password }

    /// The strongest challenge we can answer, SHA-256 over MD5, the server's
    /// order breaking ties. RFC 8760 §2.4 says take the topmost supported
    /// unless local policy says otherwise; ours resists a downgrade by reordering.
    public static func preferred(_ challenges: [DigestChallenge]) -> DigestChallenge? {
        var best: DigestChallenge?
        for challenge in challenges where qop(for: challenge) != nil {
            if best.map({ challenge.algorithm.strength > $0.algorithm.strength }) ?? true { best = challenge }
        }
        return best
    }

    /// nil: unanswerable; .some(nil): no qop (RFC 2069 form). auth is chosen
    /// over auth-int when both are offered, since SIP proxies may rewrite bodies.
    private static func qop(for challenge: DigestChallenge) -> String?? {
        if challenge.qop.isEmpty { return .some(nil) }
        if challenge.qop.contains("auth") { return "auth" }
        if challenge.qop.contains("auth-int") { return "auth-int" }
        return nil
    }

    public mutating func authorization(for challenge: DigestChallenge, method: String, uri: String,
                                       body: [UInt8] = []) throws(DigestClientError) -> DigestCredentials {
        guard let qop = Self.qop(for: challenge) else { throw .unsupportedQop(challenge.qop) }
        var nc: UInt32?
        if qop != nil {
            // A new nonce restarts the count at 1 (RFC 7616 §3.4).
            var entry = nonceCounts[challenge.realm].flatMap { $0.nonce == challenge.nonce ? $0 : nil }
                ?? NonceCount(nonce: challenge.nonce, count: 0)
            entry.count &+= 1
            nonceCounts[challenge.realm] = entry
            nc = entry.count
        }
        var cnonce: String?
        if qop != nil || challenge.algorithm.isSession {
            var generator = SystemRandomNumberGenerator()
            cnonce = hex((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
        }
        let response = DigestComputation.response(
            algorithm: challenge.algorithm, username: username, realm: challenge.realm, password: password, method: method,
            uri: uri, nonce: challenge.nonce, nc: nc, cnonce: cnonce, qop: qop, entityBody: body)
        return DigestCredentials(username: username, realm: challenge.realm, nonce: challenge.nonce, uri: uri, response: response,
                                 algorithm: challenge.algorithm, cnonce: cnonce, opaque: challenge.opaque, qop: qop, nc: nc)
    }
}
