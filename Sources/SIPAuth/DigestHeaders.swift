/// A WWW-Authenticate / Proxy-Authenticate challenge (RFC 7616 §3.3, RFC 3261 §22.4).
public struct DigestChallenge: Sendable, Equatable {
    public var realm: String
    public var nonce: String
    public var opaque: String?
    public var algorithm: DigestAlgorithm
    /// qop options offered, e.g. ["auth"] or ["auth", "auth-int"]; empty for the RFC 2069 form.
    public var qop: [String]
    public var stale: Bool
    /// Space-separated URIs of the protection space (RFC 7616 §3.3).
    public var domain: String?

    public init(realm: String, nonce: String, opaque: String? = nil, algorithm: DigestAlgorithm = .md5,
                qop: [String] = ["auth"], stale: Bool = false, domain: String? = nil) {
        self.realm = realm; self.nonce = nonce; self.opaque = opaque; self.algorithm = algorithm
        self.qop = qop; self.stale = stale; self.domain = domain
    }

    /// `header` only names the header in error messages.
    public init(parsing headerValue: String, header: String = "WWW-Authenticate") throws(DigestParseError) {
        let p = try parseDigestParams(headerValue, header: header)
        guard let realm = p["realm"] else { throw .missingParameter(header: header, parameter: "realm") }
        guard let nonce = p["nonce"] else { throw .missingParameter(header: header, parameter: "nonce") }
        self.realm = realm
        self.nonce = nonce
        self.algorithm = try parseAlgorithm(p["algorithm"])
        self.opaque = p["opaque"]
        self.domain = p["domain"]
        self.qop = (p["qop"] ?? "").split(separator: ",").map { $0.trimmingLWS.lowercased() }.filter { !$0.isEmpty }
        self.stale = p["stale"]?.lowercased() == "true"  // anything else is false (RFC 7616 §3.3)
    }

    public var headerValue: String {
        var s = "Digest realm=\(quoted(realm))"
        if let domain { s += ", domain=\(quoted(domain))" }
        s += ", nonce=\(quoted(nonce))"
        if let opaque { s += ", opaque=\(quoted(opaque))" }
        if stale { s += ", stale=TRUE" }
        s += ", algorithm=\(algorithm.rawValue)"
        if !qop.isEmpty { s += ", qop=\(quoted(qop.joined(separator: ",")))" }
        return s
    }
}

/// Authorization / Proxy-Authorization credentials (RFC 7616 §3.4, RFC 3261 §22.4).
public struct DigestCredentials: Sendable, Equatable {
    public var username: String
    public var realm: String
    public var nonce: String
    public var uri: String
    public var response: String
    public var algorithm: DigestAlgorithm
    public var cnonce: String?
    public var opaque: String?
    public var qop: String?
    /// The nonce count; 8 hex digits on the wire.
    public var nc: UInt32?

    public init(username: String, realm: String, nonce: String, uri: String, response: String, algorithm: DigestAlgorithm = .md5,
                cnonce: String? = nil, opaque: String? = nil, qop: String? = nil, nc: UInt32? = nil) {
        self.username = username; self.realm = realm; self.nonce = nonce; self.uri = uri; self.response = response
        self.algorithm = algorithm; self.cnonce = cnonce; self.opaque = opaque; self.qop = qop; self.nc = nc
    }

    /// `header` only names the header in error messages.
    public init(parsing headerValue: String, header: String = "Authorization") throws(DigestParseError) {
        let p = try parseDigestParams(headerValue, header: header)
        func required(_ name: String) throws(DigestParseError) -> String {
            guard let value = p[name] else { throw .missingParameter(header: header, parameter: name) }
            return value
        }
        username = try required("username")
        realm = try required("realm")
        nonce = try required("nonce")
        uri = try required("uri")
        response = try required("response")
        algorithm = try parseAlgorithm(p["algorithm"])
        cnonce = p["cnonce"]
        opaque = p["opaque"]
        qop = p["qop"]?.lowercased()
        if let text = p["nc"] {
            // Exactly 8 hex digits: the response covers nc as sent, so a lenient read could not verify anyway.
            guard text.utf8.count == 8, let value = UInt32(text, radix: 16) else {
                throw .invalidValue(header: header, parameter: "nc", value: text, expected: "8 hexadecimal digits, e.g. 00000001")
            }
            nc = value
        } else {
            nc = nil
        }
        // RFC 7616 §3.4: with a qop, cnonce and nc must be present; -sess needs cnonce always.
        if qop != nil || algorithm.isSession, cnonce == nil { throw .missingParameter(header: header, parameter: "cnonce") }
        if qop != nil, nc == nil { throw .missingParameter(header: header, parameter: "nc") }
    }

    public var headerValue: String {
        var s = "Digest username=\(quoted(username)), realm=\(quoted(realm)), nonce=\(quoted(nonce)), uri=\(quoted(uri))"
        s += ", response=\(quoted(response)), algorithm=\(algorithm.rawValue)"
        if let cnonce { s += ", cnonce=\(quoted(cnonce))" }
        if let opaque { s += ", opaque=\(quoted(opaque))" }
        if let qop { s += ", qop=\(qop)" }  // a token here, unlike in the challenge (RFC 3261 §25.1 message-qop)
        if let nc { s += ", nc=\(DigestComputation.nonceCountText(nc))" }
        return s
    }
}

/// An absent algorithm means MD5 (RFC 7616 §3.3).
private func parseAlgorithm(_ token: String?) throws(DigestParseError) -> DigestAlgorithm {
    guard let token else { return .md5 }
    guard let algorithm = DigestAlgorithm(token: token) else { throw .unsupportedAlgorithm(token) }
    return algorithm
}

private extension Substring {
    var trimmingLWS: Substring {
        let isLWS: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        var s = self
        while let c = s.first, isLWS(c) { s = s.dropFirst() }
        while let c = s.last, isLWS(c) { s = s.dropLast() }
        return s
    }
}
