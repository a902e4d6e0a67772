/// Why a challenge or credentials header value could not be read.
public enum DigestParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not `Digest` (e.g. Basic, or RFC 4475 regaut01's "NoOneKnowsThisScheme").
    case unsupportedScheme(String)
    case missingParameter(header: String, parameter: String)
    case invalidValue(header: String, parameter: String, value: String, expected: String)
    case unsupportedAlgorithm(String)
    case malformed(header: String, reason: String)

    public var description: String {
        switch self {
        case .unsupportedScheme(let scheme):
            return "authentication scheme '\(scheme)' is not supported (only Digest is)"
        case .missingParameter(let header, let parameter):
            return "\(header) is missing the '\(parameter)' parameter"
        case .invalidValue(let header, let parameter, let value, let expected):
            return "\(header) has an invalid '\(parameter)' value '\(value)': expected \(expected)"
        case .unsupportedAlgorithm(let algorithm):
            let known = DigestAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
            return "digest algorithm '\(algorithm)' is not supported (supported: \(known))"
        case .malformed(let header, let reason):
            return "malformed \(header): \(reason)"
        }
    }
}

/// Reads `Digest name=value, name="quoted value", …` (RFC 7235 §2.1 auth-params,
/// RFC 7616 §3.3/§3.4): LWS, including folded lines, around "=" and ",";
/// empty list elements (RFC 7230 §7); backslash escapes in quoted strings.
/// Names come back lower-cased, since they are case-insensitive.
func parseDigestParams(_ text: String, header: String) throws(DigestParseError) -> [String: String] {
    let b = Array(text.utf8)
    let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), comma = UInt8(ascii: ","), equals = UInt8(ascii: "=")
    let punctuation = Set("!#$%&'*+-.^_`|~".utf8)
    var i = 0
    func isLWS(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A }
    func isTokenChar(_ c: UInt8) -> Bool {  // RFC 7230 §3.2.6 tchar
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || punctuation.contains(c)
    }
    func skipLWS() { while i < b.count, isLWS(b[i]) { i += 1 } }
    func token() -> String {
        let start = i
        while i < b.count, isTokenChar(b[i]) { i += 1 }
        return String(decoding: b[start..<i], as: UTF8.self)
    }
    func malformed(_ reason: String) -> DigestParseError { .malformed(header: header, reason: reason) }

    skipLWS()
    let scheme = token()
    guard !scheme.isEmpty else { throw malformed("expected an authentication scheme (Digest)") }
    guard scheme.lowercased() == "digest" else { throw .unsupportedScheme(scheme) }
    guard i == b.count || isLWS(b[i]) else { throw malformed("expected a space after '\(scheme)'") }

    var params: [String: String] = [:]
    while true {
        skipLWS()
        if i == b.count { break }
        if b[i] == comma { i += 1; continue }
        let name = token().lowercased()
        guard !name.isEmpty else {
            throw malformed("expected a parameter name at '\(String(decoding: b[i...].prefix(20), as: UTF8.self))'")
        }
        skipLWS()
        guard i < b.count, b[i] == equals else { throw malformed("parameter '\(name)' has no '=' and value") }
        i += 1
        skipLWS()
        var value: [UInt8] = []
        if i < b.count, b[i] == quote {
            i += 1
            var closed = false
            while i < b.count {
                let c = b[i]
                i += 1
                if c == quote { closed = true; break }
                if c == backslash, i < b.count { value.append(b[i]); i += 1 } else { value.append(c) }
            }
            guard closed else { throw malformed("the quoted value of '\(name)' is not closed") }
        } else {
            // Lenient about token characters: some peers send base64 nonces unquoted.
            while i < b.count, !isLWS(b[i]), b[i] != comma, b[i] != quote { value.append(b[i]); i += 1 }
            guard !value.isEmpty else { throw malformed("parameter '\(name)' has an empty value") }
        }
        // RFC 7616 §3.3: each parameter at most once; two would be ambiguous.
        guard params[name] == nil else { throw malformed("parameter '\(name)' appears more than once") }
        params[name] = String(decoding: value, as: UTF8.self)
        skipLWS()
        guard i == b.count || b[i] == comma else { throw malformed("expected ',' after the value of '\(name)'") }
    }
    return params
}

/// A quoted-string (RFC 3261 §25.1). Line breaks become spaces so that a
/// value can never end the header line.
func quoted(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"", "\\": out.unicodeScalars.append("\\"); out.unicodeScalars.append(c)
        case "\r", "\n": out.unicodeScalars.append(" ")
        default: out.unicodeScalars.append(c)
        }
    }
    return out + "\""
}
