/// Why a message could not be parsed. Each case says which part was wrong so
/// that the 400 reason phrase and the log line tell the sender what to fix.
public enum SIPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    /// A stream (TCP) holds only part of a message so far.
    case incomplete
    case malformedStartLine(String)
    case unsupportedVersion(String)
    case invalidStatusCode(String)
    case malformedHeaderLine(String)
    case malformedHeader(name: String, reason: String)
    case invalidRequestURI(String)
    case invalidContentLength(String)
    case bodyTruncated(declared: Int, received: Int)
    case cseqMethodMismatch(requestMethod: String, cseqMethod: String)
    case messageTooLarge(size: Int, limit: Int)
    case tooManyHeaders(limit: Int)
    case malformedURI(String)

    public var description: String {
        switch self {
        case .empty: return "empty message"
        case .incomplete: return "incomplete message"
        case .malformedStartLine(let why): return "malformed start line: \(why)"
        case .unsupportedVersion(let v): return "unsupported SIP version \(v)"
        case .invalidStatusCode(let c): return "invalid status code \(c)"
        case .malformedHeaderLine(let why): return "malformed header line: \(why)"
        case .malformedHeader(let name, let reason): return "malformed \(name) header: \(reason)"
        case .invalidRequestURI(let why): return "invalid Request-URI: \(why)"
        case .invalidContentLength(let v): return "invalid Content-Length: \(v)"
        case .bodyTruncated(let declared, let received):
            return "Content-Length \(declared) exceeds the \(received) body bytes received"
        case .cseqMethodMismatch(let m, let c): return "CSeq method \(c) does not match request method \(m)"
        case .messageTooLarge(let size, let limit): return "message of \(size) bytes exceeds the limit of \(limit)"
        case .tooManyHeaders(let limit): return "more than \(limit) header fields"
        case .malformedURI(let why): return "malformed URI: \(why)"
        }
    }

    /// The status a server answers a request with when it fails this way
    /// (RFC 3261 §21.4; RFC 4475 §3.1.2.16 for the version).
    public var statusCode: Int {
        switch self {
        case .unsupportedVersion: return 505
        case .messageTooLarge, .tooManyHeaders: return 513
        default: return 400
        }
    }

    /// A reason phrase for the error response: the standard phrase plus the fault.
    public var reasonPhrase: String {
        let base: String
        switch statusCode {
        case 505: base = "Version Not Supported"
        case 513: base = "Message Too Large"
        default: base = "Bad Request"
        }
        // Reason-Phrase excludes CR and LF (RFC 3261 §25.1); keep it printable.
        let detail = String(description.unicodeScalars.map { ($0.value < 0x20 || $0.value == 0x7F) ? "?" : Character($0) })
        return "\(base) (\(detail.prefix(200)))"
    }
}
