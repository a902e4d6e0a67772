import Crypto

/// Digest algorithms of RFC 7616 §3.3 as used by SIP (RFC 8760).
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case md5 = "MD5"
    case md5Session = "MD5-sess"
    case sha256 = "SHA-256"
    case sha256Session = "SHA-256-sess"

    public init?(token: String) {
        guard let a = DigestAlgorithm.allCases.first(where: { $0.rawValue.lowercased() == token.lowercased() }) else { return nil }
        self = a
    }

    var isSession: Bool { self == .md5Session || self == .sha256Session }

    /// Lower-case hex digest of `text`.
    public func hash(_ text: String) -> String {
        switch self {
        case .md5, .md5Session: return hex(Insecure.MD5.hash(data: Array(text.utf8)))
        case .sha256, .sha256Session: return hex(SHA256.hash(data: Array(text.utf8)))
        }
    }

    public func hash(_ bytes: [UInt8]) -> String {
        switch self {
        case .md5, .md5Session: return hex(Insecure.MD5.hash(data: bytes))
        case .sha256, .sha256Session: return hex(SHA256.hash(data: bytes))
        }
    }
}

func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    for b in digest { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
    return String(decoding: out, as: UTF8.self)
}

public enum DigestParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupportedScheme(String)
    case malformed(String)
    case missingParameter(header: String, parameter: String)
    case unsupportedAlgorithm(String)

    public var description: String {
        switch self {
        case .unsupportedScheme(let s): return "authentication scheme '\(s)' is not supported (only Digest)"
        case .malformed(let why): return "malformed digest header: \(why)"
        case .missingParameter(let h, let p): return "\(h) is missing the '\(p)' parameter"
        case .unsupportedAlgorithm(let a): return "digest algorithm '\(a)' is not supported"
        }
    }
}

/// Parses `Digest a=b, c="d"` (RFC 7616 §3.3/§3.4 auth-params): quoted
/// strings with backslash escapes, LWS around "=" and ",", case-insensitive
/// names. Returns lower-cased names with unquoted values.
func parseAuthParams(_ value: String) throws(DigestParseError) -> [String: String] {
    let chars = Array(value.unicodeScalars)
    var i = 0
    func skipWS() { while i < chars.count, chars[i] == " " || chars[i] == "\t" || chars[i] == "\r" || chars[i] == "\n" { i += 1 } }
    skipWS()
    var scheme = ""
    while i < chars.count, chars[i] != " ", chars[i] != "\t" { scheme.unicodeScalars.append(chars[i]); i += 1 }
    guard scheme.lowercased() == "digest" else { throw .unsupportedScheme(scheme) }
    var params: [String: String] = [:]
    while true {
        skipWS()
        while i < chars.count, chars[i] == "," { i += 1; skipWS() }
        if i >= chars.count { break }
        var name = ""
        while i < chars.count, chars[i] != "=", chars[i] != " ", chars[i] != "\t", chars[i] != "," {
            name.unicodeScalars.append(chars[i]); i += 1
        }
        skipWS()
        guard !name.isEmpty, i < chars.count, chars[i] == "=" else { throw .malformed("parameter '\(name)' has no value") }
        i += 1
        skipWS()
        var v = ""
        if i < chars.count, chars[i] == "\"" {
            i += 1
            var closed = false
            while i < chars.count {
                if chars[i] == "\\", i + 1 < chars.count { v.unicodeScalars.append(chars[i + 1]); i += 2; continue }
                if chars[i] == "\"" { closed = true; i += 1; break }
                v.unicodeScalars.append(chars[i]); i += 1
            }
            guard closed else { throw .malformed("unterminated quoted value of '\(name)'") }
        } else {
            while i < chars.count, chars[i] != ",", chars[i] != " ", chars[i] != "\t" { v.unicodeScalars.append(chars[i]); i += 1 }
        }
        params[name.lowercased()] = v
        skipWS()
        if i < chars.count, chars[i] != "," { throw .malformed("expected ',' after '\(name)'") }
    }
    return params
}

func quoted(_ s: String) -> String {
    var out = "\""
    for c in s { if c == "\"" || c == "\\" { out.append("\\") }; out.append(c) }
    return out + "\""
}

/// A WWW-Authenticate / Proxy-Authenticate challenge (RFC 7616 §3.3).
public struct DigestChallenge: Sendable, Equatable {
    public var realm: String
    public var nonce: String
    public var opaque: String?
    public var algorithm: DigestAlgorithm
    /// qop options offered, e.g. ["auth"] or ["auth", "auth-int"]; empty for RFC 2069 style.
    public var qop: [String]
    public var stale: Bool

    public init(realm: String, nonce: String, opaque: String? = nil, algorithm: DigestAlgorithm = .md5, qop: [String] = ["auth"], stale: Bool = false) {
        self.realm = realm; self.nonce = nonce; self.opaque = opaque; self.algorithm = algorithm; self.qop = qop; self.stale = stale
    }

    public init(parsing headerValue: String) throws(DigestParseError) {
        let p = try parseAuthParams(headerValue)
        let h = "WWW-Authenticate"
        guard let realm = p["realm"] else { throw .missingParameter(header: h, parameter: "realm") }
        guard let nonce = p["nonce"] else { throw .missingParameter(header: h, parameter: "nonce") }
        let algorithmToken = p["algorithm"] ?? "MD5"
        guard let algorithm = DigestAlgorithm(token: algorithmToken) else { throw .unsupportedAlgorithm(algorithmToken) }
        self.realm = realm; self.nonce = nonce; self.opaque = p["opaque"]; self.algorithm = algorithm
        self.qop = (p["qop"] ?? "").split(separator: ",").map { $0.trimmingWhitespace.lowercased() }.filter { !$0.isEmpty }
        self.stale = p["stale"]?.lowercased() == "true"
    }

    public var headerValue: String {
        var s = "Digest realm=\(quoted(realm)), nonce=\(quoted(nonce))"
        if let opaque { s += ", opaque=\(quoted(opaque))" }
        s += ", algorithm=\(algorithm.rawValue)"
        if !qop.isEmpty { s += ", qop=\(quoted(qop.joined(separator: ",")))" }
        if stale { s += ", stale=TRUE" }
        return s
    }
}

/// Authorization / Proxy-Authorization credentials (RFC 7616 §3.4).
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
    public var nc: UInt32?

    public init(username: String, realm: String, nonce: String, uri: String, response: String, algorithm: DigestAlgorithm,
                cnonce: String? = nil, opaque: String? = nil, qop: String? = nil, nc: UInt32? = nil) {
        self.username = username; self.realm = realm; self.nonce = nonce; self.uri = uri; self.response = response
        self.algorithm = algorithm; self.cnonce = cnonce; self.opaque = opaque; self.qop = qop; self.nc = nc
    }

    public init(parsing headerValue: String) throws(DigestParseError) {
        let p = try parseAuthParams(headerValue)
        let h = "Authorization"
        func need(_ n: String) throws(DigestParseError) -> String {
            guard let v = p[n] else { throw .missingParameter(header: h, parameter: n) }
            return v
        }
        username = try need("username"); realm = try need("realm"); nonce = try need("nonce")
        uri = try need("uri"); response = try need("response")
        let algorithmToken = p["algorithm"] ?? "MD5"
        guard let a = DigestAlgorithm(token: algorithmToken) else { throw .unsupportedAlgorithm(algorithmToken) }
        algorithm = a
        cnonce = p["cnonce"]; opaque = p["opaque"]; qop = p["qop"]?.lowercased()
        if let ncText = p["nc"] {
            guard ncText.count == 8, let n = UInt32(ncText, radix: 16) else { throw .malformed("nc must be 8 hex digits, got '\(ncText)'") }
            nc = n
        } else {
            nc = nil
        }
        // RFC 7616 §3.4: with qop, cnonce and nc are required.
        if qop != nil {
            if cnonce == nil { throw .missingParameter(header: h, parameter: "cnonce") }
            if nc == nil { throw .missingParameter(header: h, parameter: "nc") }
        }
    }

    public var ncText: String? {
        nc.map { n in let s = String(n, radix: 16); return String(repeating: "0", count: max(0, 8 - s.count)) + s }
    }

    public var headerValue: String {
        var s = "Digest username=\(quoted(username)), realm=\(quoted(realm)), nonce=\(quoted(nonce)), uri=\(quoted(uri)), response=\(quoted(response)), algorithm=\(algorithm.rawValue)"
        if let cnonce { s += ", cnonce=\(quoted(cnonce))" }
        if let opaque { s += ", opaque=\(quoted(opaque))" }
        if let qop { s += ", qop=\(qop)" }
        if let ncText { s += ", nc=\(ncText)" }
        return s
    }
}

/// The request-digest of RFC 7616 §3.4.1 (and RFC 2617 §3.2.2 without qop).
public enum DigestComputation {
    public static func ha1(algorithm: DigestAlgorithm, username: String, realm: String, password: String) -> String {
        algorithm.hash("\(username):\(realm):\(password)")
    }

    public static func response(
        algorithm: DigestAlgorithm, username: String, realm: String, password: String,
        method: String, uri: String, nonce: String, nc: UInt32?, cnonce: String?, qop: String?, entityBody: [UInt8] = []
    ) -> String {
        response(algorithm: algorithm, ha1: ha1(algorithm: algorithm, username: username, realm: realm, password: password),
                 method: method, uri: uri, nonce: nonce, nc: nc, cnonce: cnonce, qop: qop, entityBody: entityBody)
    }

    /// From a stored HA1 (so that a server need not keep the password).
    public static func response(
        algorithm: DigestAlgorithm, ha1 storedHA1: String, method: String, uri: String,
        nonce: String, nc: UInt32?, cnonce: String?, qop: String?, entityBody: [UInt8] = []
    ) -> String {
        var ha1 = storedHA1
        if algorithm.isSession { ha1 = algorithm.hash("\(storedHA1):\(nonce):\(cnonce ?? "")") }
        let ha2 = qop == "auth-int"
            ? algorithm.hash("\(method):\(uri):\(algorithm.hash(entityBody))")
            : algorithm.hash("\(method):\(uri)")
        guard let qop else { return algorithm.hash("\(ha1):\(nonce):\(ha2)") }
        let ncText = nc.map { n in let s = String(n, radix: 16); return String(repeating: "0", count: max(0, 8 - s.count)) + s } ?? "00000001"
        return algorithm.hash("\(ha1):\(nonce):\(ncText):\(cnonce ?? ""):\(qop):\(ha2)")
    }
}

extension Substring {
    var trimmingWhitespace: String {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
