/// The checks an element makes on a syntactically valid request before acting
/// on it (RFC 3261 §8.2.1–8.2.3 for a UAS, §16.3 for a proxy, §10.3 for a
/// registrar), giving the response that RFC 4475 §3.3 expects for each fault.
public struct RequestScreening: Sendable {
    public enum Role: Sendable { case userAgentServer, proxy, registrar }

    public struct Rejection: Sendable, Equatable, CustomStringConvertible {
        public var statusCode: Int
        public var reasonPhrase: String
        /// Extra header fields the response must carry (Unsupported, Accept …).
        public var headers: [SIPParameter]
        public var description: String { "\(statusCode) \(reasonPhrase)" }
    }

    public var role: Role
    /// Option tags this element implements (Require / Proxy-Require).
    public var supportedExtensions: Set<String>
    /// URI schemes this element can route or serve.
    public var supportedSchemes: Set<String>
    /// Body types a UAS understands (Content-Type), lower-case.
    public var acceptedBodyTypes: [String]

    public init(
        role: Role,
        supportedExtensions: Set<String> = [],
        supportedSchemes: Set<String> = ["sip", "sips", "tel"],
        acceptedBodyTypes: [String] = ["application/sdp", "text/plain"]
    ) {
        self.role = role
        self.supportedExtensions = supportedExtensions
        self.supportedSchemes = supportedSchemes
        self.acceptedBodyTypes = acceptedBodyTypes
    }

    public func check(_ request: SIPMessage) -> Rejection? {
        guard let method = request.method else { return nil }
        func bad(_ why: String) -> Rejection { Rejection(statusCode: 400, reasonPhrase: "Bad Request (\(why))", headers: []) }

        // One pass over the fields notes every header the checks below ask
        // about, as "none, one or more than one" in two bit sets (this runs
        // for every request; a scan per header cost more than the
        // transaction's own work, and a counts array was an allocation).
        var once: UInt64 = 0, more: UInt64 = 0
        for f in request.fields {
            let bit = KnownHeader.bit(f.kind)
            more |= once & bit
            once |= bit
        }
        func count(_ h: KnownHeader) -> Int { more & KnownHeader.bit(h) != 0 ? 2 : once & KnownHeader.bit(h) != 0 ? 1 : 0 }

        // §8.1.1: To, From, CSeq, Call-ID, Max-Forwards and Via are mandatory.
        // Max-Forwards is tolerated when absent (RFC 2543 peers; RFC 4475 §3.4.1).
        for name in [KnownHeader.to, .from, .callID, .cseq, .via] where count(name) == 0 {
            return bad("missing \(SIPHeaderName(known: name)) header")
        }
        // Single-value headers may appear once (RFC 4475 §3.3.9, §3.3.10).
        for name in [KnownHeader.to, .from, .callID, .cseq, .maxForwards, .contentLength, .contentType] where count(name) > 1 {
            return bad("multiple \(SIPHeaderName(known: name)) header fields")
        }

        if let uri = request.requestURI, !(Self.hasSIPScheme(uri) && supportedSchemes.contains("sip")) {
            let scheme = uri.prefix { $0 != ":" }.lowercased()
            // §8.2.2.1 / §16.3: 416 for a scheme we cannot handle (RFC 4475 §3.3.2, §3.3.6).
            if !supportedSchemes.contains(scheme) {
                return Rejection(statusCode: 416, reasonPhrase: "Unsupported URI Scheme", headers: [])
            }
        }

        if role == .registrar, method == .register {
            // §10.3 step 3: the To header field must hold a SIP or SIPS AOR (RFC 4475 §3.3.3).
            guard let to = request.to, to.uri.scheme == "sip" || to.uri.scheme == "sips" else {
                return bad("To of a REGISTER must be a SIP or SIPS URI")
            }
        }

        // §16.3 step 3: a request that would be forwarded with Max-Forwards 0 is refused
        // (an OPTIONS may be answered by the proxy itself, which this element does not do).
        if role == .proxy, request.maxForwards == 0 {
            return Rejection(statusCode: 483, reasonPhrase: "Too Many Hops", headers: [])
        }

        // §8.2.2.3 (UAS, Require) and §16.3 step 5 (proxy, Proxy-Require).
        let requiredHeader: SIPHeaderName = role == .proxy ? .proxyRequire : .require
        if method != .ack, method != .cancel, count(role == .proxy ? .proxyRequire : .require) > 0 {
            let unknown = request.splitValues(requiredHeader).filter { !supportedExtensions.contains($0.lowercased()) }
            if !unknown.isEmpty {
                return Rejection(statusCode: 420, reasonPhrase: "Bad Extension",
                                 headers: [SIPParameter("Unsupported", unknown.joined(separator: ", "))])
            }
        }

        if role != .proxy {
            // §8.2.3: a body of a type we do not understand gets 415 with Accept (RFC 4475 §3.3.8).
            if request.bodyCount > 0, let type = request.contentType, !acceptedBodyTypes.contains(type) {
                return Rejection(statusCode: 415, reasonPhrase: "Unsupported Media Type",
                                 headers: [SIPParameter("Accept", acceptedBodyTypes.joined(separator: ", "))])
            }
            if count(.contentEncoding) > 0, let encoding = request.firstValue(.contentEncoding), !encoding.isEmpty, encoding.lowercased() != "identity" {
                return Rejection(statusCode: 415, reasonPhrase: "Unsupported Media Type",
                                 headers: [SIPParameter("Accept-Encoding", "identity")])
            }
            // §8.2.3 / RFC 4475 §3.3.13: an INVITE whose Accept excludes SDP cannot be answered.
            if method == .invite, count(.accept) > 0 {
                let accepted = request.splitValues(.accept).map {
                    String($0.prefix { $0 != ";" }.filter { $0 != " " }).lowercased()
                }
                if !accepted.contains("application/sdp"), !accepted.contains("application/*"), !accepted.contains("*/*") {
                    return Rejection(statusCode: 406, reasonPhrase: "Not Acceptable",
                                     headers: [SIPParameter("Warning", "399 switchboard \"responses can only carry application/sdp\"")])
                }
            }
        }
        return nil
    }

    /// Whether a Request-URI is a plain `sip:` one (the common case, checked
    /// without making a string; anything else goes through the scheme set).
    static func hasSIPScheme(_ uri: String) -> Bool {
        var u = uri.utf8.makeIterator()
        return u.next() == UInt8(ascii: "s") && u.next() == UInt8(ascii: "i") && u.next() == UInt8(ascii: "p") && u.next() == UInt8(ascii: ":")
    }
}
