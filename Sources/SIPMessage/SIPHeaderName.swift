/// A header field name. Known names compare by identity whatever their case or
/// compact form (RFC 3261 §7.3.1, §7.3.3); other names compare case-insensitively.
public struct SIPHeaderName: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    @usableFromInline let known: KnownHeader
    /// Lower-cased name, only for `known == .other`.
    @usableFromInline let custom: String
    /// The spelling used when this name is written out.
    public let canonical: String

    private init(known: KnownHeader, custom: String, canonical: String) {
        self.known = known
        self.custom = custom
        self.canonical = canonical
    }

    init(known: KnownHeader) {
        self.init(known: known, custom: "", canonical: known.canonicalName)
    }

    public init(_ name: String) {
        let k = KnownHeader.lookup(Array(name.utf8)[...])
        if k == .other {
            self.init(known: .other, custom: name.lowercased(), canonical: name)
        } else {
            self.init(known: k)
        }
    }

    public init(stringLiteral value: String) { self.init(value) }

    public var description: String { canonical }

    public static func == (a: SIPHeaderName, b: SIPHeaderName) -> Bool {
        a.known == b.known && a.custom == b.custom
    }
    public func hash(into h: inout Hasher) { h.combine(known); h.combine(custom) }

    public static let via = SIPHeaderName(known: .via)
    public static let from = SIPHeaderName(known: .from)
    public static let to = SIPHeaderName(known: .to)
    public static let callID = SIPHeaderName(known: .callID)
    public static let cseq = SIPHeaderName(known: .cseq)
    public static let contact = SIPHeaderName(known: .contact)
    public static let maxForwards = SIPHeaderName(known: .maxForwards)
    public static let contentLength = SIPHeaderName(known: .contentLength)
    public static let contentType = SIPHeaderName(known: .contentType)
    public static let contentEncoding = SIPHeaderName(known: .contentEncoding)
    public static let route = SIPHeaderName(known: .route)
    public static let recordRoute = SIPHeaderName(known: .recordRoute)
    public static let expires = SIPHeaderName(known: .expires)
    public static let minExpires = SIPHeaderName(known: .minExpires)
    public static let require = SIPHeaderName(known: .require)
    public static let proxyRequire = SIPHeaderName(known: .proxyRequire)
    public static let supported = SIPHeaderName(known: .supported)
    public static let unsupported = SIPHeaderName(known: .unsupported)
    public static let allow = SIPHeaderName(known: .allow)
    public static let accept = SIPHeaderName(known: .accept)
    public static let authorization = SIPHeaderName(known: .authorization)
    public static let proxyAuthorization = SIPHeaderName(known: .proxyAuthorization)
    public static let wwwAuthenticate = SIPHeaderName(known: .wwwAuthenticate)
    public static let proxyAuthenticate = SIPHeaderName(known: .proxyAuthenticate)
    public static let date = SIPHeaderName(known: .date)
    public static let retryAfter = SIPHeaderName(known: .retryAfter)
    public static let warning = SIPHeaderName(known: .warning)
    public static let reason = SIPHeaderName(known: .reason)
    public static let subject = SIPHeaderName(known: .subject)
    public static let event = SIPHeaderName(known: .event)
    public static let referTo = SIPHeaderName(known: .referTo)
    public static let referredBy = SIPHeaderName(known: .referredBy)
    public static let allowEvents = SIPHeaderName(known: .allowEvents)
    public static let sessionExpires = SIPHeaderName(known: .sessionExpires)
    public static let identity = SIPHeaderName(known: .identity)
    public static let identityInfo = SIPHeaderName(known: .identityInfo)
    public static let acceptContact = SIPHeaderName(known: .acceptContact)
    public static let rejectContact = SIPHeaderName(known: .rejectContact)
    public static let requestDisposition = SIPHeaderName(known: .requestDisposition)
    public static let userAgent = SIPHeaderName(known: .userAgent)
    public static let server = SIPHeaderName(known: .server)
    public static let timestamp = SIPHeaderName(known: .timestamp)
    public static let pAssertedIdentity = SIPHeaderName(known: .pAssertedIdentity)
    public static let privacy = SIPHeaderName(known: .privacy)
}

/// The header fields the stack treats specially, with their compact forms.
@usableFromInline
enum KnownHeader: UInt8, Sendable, CaseIterable {
    case other
    case via, from, to, callID, cseq, contact, maxForwards, contentLength, contentType
    case contentEncoding, route, recordRoute, expires, minExpires, require, proxyRequire
    case supported, unsupported, allow, accept, authorization, proxyAuthorization
    case wwwAuthenticate, proxyAuthenticate, date, retryAfter, warning, reason, subject
    case event, referTo, referredBy, allowEvents, sessionExpires, identity, identityInfo
    case acceptContact, rejectContact, requestDisposition, userAgent, server, timestamp
    case pAssertedIdentity, privacy

    /// One bit per header, for sets of them in a `UInt64` (`RequestScreening`):
    /// there are 45, and a 65th would need a wider set.
    static func bit(_ h: KnownHeader) -> UInt64 {
        assert(h.rawValue < 64, "KnownHeader has outgrown a UInt64 bit set")
        return 1 << UInt64(h.rawValue & 63)
    }

    var canonicalName: String {
        switch self {
        case .other: return ""
        case .via: return "Via"
        case .from: return "From"
        case .to: return "To"
        case .callID: return "Call-ID"
        case .cseq: return "CSeq"
        case .contact: return "Contact"
        case .maxForwards: return "Max-Forwards"
        case .contentLength: return "Content-Length"
        case .contentType: return "Content-Type"
        case .contentEncoding: return "Content-Encoding"
        case .route: return "Route"
        case .recordRoute: return "Record-Route"
        case .expires: return "Expires"
        case .minExpires: return "Min-Expires"
        case .require: return "Require"
        case .proxyRequire: return "Proxy-Require"
        case .supported: return "Supported"
        case .unsupported: return "Unsupported"
        case .allow: return "Allow"
        case .accept: return "Accept"
        case .authorization: return "Authorization"
        case .proxyAuthorization: return "Proxy-Authorization"
        case .wwwAuthenticate: return "WWW-Authenticate"
        case .proxyAuthenticate: return "Proxy-Authenticate"
        case .date: return "Date"
        case .retryAfter: return "Retry-After"
        case .warning: return "Warning"
        case .reason: return "Reason"
        case .subject: return "Subject"
        case .event: return "Event"
        case .referTo: return "Refer-To"
        case .referredBy: return "Referred-By"
        case .allowEvents: return "Allow-Events"
        case .sessionExpires: return "Session-Expires"
        case .identity: return "Identity"
        case .identityInfo: return "Identity-Info"
        case .acceptContact: return "Accept-Contact"
        case .rejectContact: return "Reject-Contact"
        case .requestDisposition: return "Request-Disposition"
        case .userAgent: return "User-Agent"
        case .server: return "Server"
        case .timestamp: return "Timestamp"
        case .pAssertedIdentity: return "P-Asserted-Identity"
        case .privacy: return "Privacy"
        }
    }

    /// Single-value headers: a second occurrence makes a request malformed
    /// (RFC 3261 §7.3.1; RFC 4475 §3.3.9).
    var isSingleValued: Bool {
        switch self {
        case .from, .to, .callID, .cseq, .maxForwards, .contentLength, .contentType, .expires,
             .minExpires, .date, .retryAfter, .subject, .contentEncoding:
            return true
        default:
            return false
        }
    }

    /// Case-insensitive look-up of a header name, compact forms included. A
    /// switch on the length, then byte comparisons against string literals:
    /// no tables behind lazy globals on this per-header path.
    @usableFromInline
    static func lookup(_ name: some Collection<UInt8>) -> KnownHeader {
        let n = name.count
        if n == 1, let b = name.first { return compact(b) }
        @inline(__always) func eq(_ s: StaticString) -> Bool {
            let p = s.utf8Start
            var i = 0
            for b in name {
                if b.lowercasedASCII != p[i] { return false }
                i += 1
            }
            return true
        }
        switch n {
        case 2:
            if eq("to") { return .to }
        case 3:
            if eq("via") { return .via }
        case 4:
            if eq("from") { return .from }
            if eq("cseq") { return .cseq }
            if eq("date") { return .date }
        case 5:
            if eq("route") { return .route }
            if eq("allow") { return .allow }
            if eq("event") { return .event }
        case 6:
            if eq("accept") { return .accept }
            if eq("reason") { return .reason }
            if eq("server") { return .server }
        case 7:
            if eq("call-id") { return .callID }
            if eq("contact") { return .contact }
            if eq("expires") { return .expires }
            if eq("require") { return .require }
            if eq("warning") { return .warning }
            if eq("subject") { return .subject }
            if eq("privacy") { return .privacy }
        case 8:
            if eq("refer-to") { return .referTo }
            if eq("identity") { return .identity }
        case 9:
            if eq("supported") { return .supported }
            if eq("timestamp") { return .timestamp }
        case 10:
            if eq("user-agent") { return .userAgent }
        case 11:
            if eq("min-expires") { return .minExpires }
            if eq("unsupported") { return .unsupported }
            if eq("retry-after") { return .retryAfter }
            if eq("referred-by") { return .referredBy }
        case 12:
            if eq("max-forwards") { return .maxForwards }
            if eq("content-type") { return .contentType }
            if eq("record-route") { return .recordRoute }
            if eq("allow-events") { return .allowEvents }
        case 13:
            if eq("proxy-require") { return .proxyRequire }
            if eq("authorization") { return .authorization }
            if eq("identity-info") { return .identityInfo }
        case 14:
            if eq("content-length") { return .contentLength }
            if eq("accept-contact") { return .acceptContact }
            if eq("reject-contact") { return .rejectContact }
        case 15:
            if eq("session-expires") { return .sessionExpires }
        case 16:
            if eq("content-encoding") { return .contentEncoding }
            if eq("www-authenticate") { return .wwwAuthenticate }
        case 18:
            if eq("proxy-authenticate") { return .proxyAuthenticate }
        case 19:
            if eq("proxy-authorization") { return .proxyAuthorization }
            if eq("request-disposition") { return .requestDisposition }
            if eq("p-asserted-identity") { return .pAssertedIdentity }
        default: break
        }
        return .other
    }

    /// Compact forms: RFC 3261 §7.3.3 and the registrations that followed it
    /// (SPEC.md lists all).
    @inline(__always)
    static func compact(_ b: UInt8) -> KnownHeader {
        switch b | 0x20 {
        case UInt8(ascii: "a"): return .acceptContact
        case UInt8(ascii: "b"): return .referredBy
        case UInt8(ascii: "c"): return .contentType
        case UInt8(ascii: "d"): return .requestDisposition
        case UInt8(ascii: "e"): return .contentEncoding
        case UInt8(ascii: "f"): return .from
        case UInt8(ascii: "i"): return .callID
        case UInt8(ascii: "j"): return .rejectContact
        case UInt8(ascii: "k"): return .supported
        case UInt8(ascii: "l"): return .contentLength
        case UInt8(ascii: "m"): return .contact
        case UInt8(ascii: "n"): return .identityInfo
        case UInt8(ascii: "o"): return .event
        case UInt8(ascii: "r"): return .referTo
        case UInt8(ascii: "s"): return .subject
        case UInt8(ascii: "t"): return .to
        case UInt8(ascii: "u"): return .allowEvents
        case UInt8(ascii: "v"): return .via
        case UInt8(ascii: "x"): return .sessionExpires
        case UInt8(ascii: "y"): return .identity
        default: return .other
        }
    }
}
