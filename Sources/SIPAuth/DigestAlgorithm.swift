import Crypto

/// Digest algorithms of RFC 7616 §3.3 as used by SIP (RFC 8760 §2).
/// SHA-512-256 is left out: swift-crypto has no SHA-512/256.
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case md5 = "MD5"
    case md5Session = "MD5-sess"
    case sha256 = "SHA-256"
    case sha256Session = "SHA-256-sess"

    /// Parses an `algorithm` token; tokens compare case-insensitively (RFC 7616 §3.3).
    public init?(token: String) {
        let lowered = token.lowercased()
        guard let match = DigestAlgorithm.allCases.first(where: { $0.rawValue.lowercased() == lowered }) else { return nil }
        self = match
    }

    /// The -sess variants fold nonce and cnonce into HA1 (RFC 7616 §3.4.2).
    public var isSession: Bool { self == .md5Session || self == .sha256Session }

    /// Used to choose among several challenges: SHA-256 over MD5.
    var strength: Int { self == .sha256 || self == .sha256Session ? 2 : 1 }

    /// Lower-case hex digest of the UTF-8 of `text`.
    public func hash(_ text: String) -> String { hash(Array(text.utf8)) }

    /// Lower-case hex digest of `bytes`.
    public func hash(_ bytes: [UInt8]) -> String {
        switch self {
        case .md5, .md5Session: return hex(Insecure.MD5.hash(data: bytes))
        case .sha256, .sha256Session: return hex(SHA256.hash(data: bytes))
        }
    }
}

/// The request-digest of RFC 7616 §3.4.1, and of RFC 2617 §3.2.2.1 / RFC 2069
/// when qop is absent.
public enum DigestComputation {
    /// H(username:realm:password), what a server may store instead of the password (RFC 7616 §3.4.2).
    public static func ha1(algorithm: DigestAlgorithm, username: String, realm: String, password: String) -> String {
        algorithm.hash("\(username):\(realm):\(password)")
    }

    /// `nc` and `cnonce` are required with a qop (and cnonce with -sess);
    /// when missing they are taken as 00000000 and "".
    public static func response(
        algorithm: DigestAlgorithm, username: String, realm: String, password: String,
        method: String, uri: String, nonce: String, nc: UInt32?, cnonce: String?, qop: String?, entityBody: [UInt8] = []
    ) -> String {
        response(algorithm: algorithm, ha1: ha1(algorithm: algorithm, username: username, realm: realm, password: password),
                 method: method, uri: uri, nonce: nonce, nc: nc, cnonce: cnonce, qop: qop, entityBody: entityBody)
    }

    /// From a stored HA1, i.e. H(username:realm:password) with the hash of
    /// `algorithm` (for -sess too: the session key is derived here).
    public static func response(
        algorithm: DigestAlgorithm, ha1 storedHA1: String, method: String, uri: String,
        nonce: String, nc: UInt32?, cnonce: String?, qop: String?, entityBody: [UInt8] = []
    ) -> String {
        let ha1 = algorithm.isSession ? algorithm.hash("\(storedHA1):\(nonce):\(cnonce ?? "")") : storedHA1
        // auth-int also covers the body (RFC 7616 §3.4.3); an empty body hashes as "".
        let ha2 = qop == "auth-int"
            ? algorithm.hash("\(method):\(uri):\(algorithm.hash(entityBody))")
            : algorithm.hash("\(method):\(uri)")
        guard let qop else { return algorithm.hash("\(ha1):\(nonce):\(ha2)") }  // RFC 2069 form
        return algorithm.hash("\(ha1):\(nonce):\(nonceCountText(nc ?? 0)):\(cnonce ?? ""):\(qop):\(ha2)")
    }

    /// nc is exactly 8 lower-case hex digits on the wire (RFC 7616 §3.4).
    public static func nonceCountText(_ nc: UInt32) -> String {
        let digits = String(nc, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}

public func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
    return String(decoding: out, as: UTF8.self)
}

func bytes(fromHex text: String) -> [UInt8]? {
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(utf8.count / 2)
    for i in stride(from: 0, to: utf8.count, by: 2) {
        guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
    }
    return out
}

/// Compares secrets without an early exit, so timing does not reveal how much matched.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in a.indices { diff |= a[i] ^ b[i] }
    return diff == 0
}
