import SIPMessage

/// Identifies a transaction for matching (RFC 3261 §17.1.3, §17.2.3).
public enum TransactionKey: Hashable, Sendable, CustomStringConvertible {
    /// Client side: branch of our top Via + CSeq method (§17.1.3).
    case client(branch: String, method: SIPMethod)
    /// Server side with the magic cookie: branch + sent-by + method, where an
    /// ACK matches its INVITE (§17.2.3).
    case server(branch: String, sentBy: String, method: SIPMethod)
    /// RFC 2543 peers (no magic cookie): the request's identifying fields (§17.2.3).
    case legacyServer(requestURI: String, fromTag: String, callID: String, cseq: UInt32, topVia: String, method: SIPMethod)

    public var description: String {
        switch self {
        case .client(let b, let m): return "client \(m) \(b)"
        case .server(let b, let s, let m): return "server \(m) \(b) \(s)"
        case .legacyServer(_, _, let c, let n, _, let m): return "server(2543) \(m) \(c) \(n)"
        }
    }

    /// The key of the server transaction `request` belongs to.
    public static func server(for request: SIPMessage) -> TransactionKey {
        server(for: request, topVia: request.topVia)
    }

    /// The same, with the request's top Via already parsed.
    public static func server(for request: SIPMessage, topVia via: SIPVia?) -> TransactionKey {
        var method = request.method ?? SIPMethod("")
        if method == .ack { method = .invite }
        if let via, via.hasMagicCookie, let branch = via.branch, branch != "z9hG4bK" {
            return .server(branch: branch, sentBy: via.sentBy.lowercased(), method: method)
        }
        // §17.2.3 fallback. The To tag is left out so that the ACK of a
        // non-2xx (which carries our tag) matches its INVITE.
        return .legacyServer(requestURI: request.requestURI ?? "", fromTag: request.fromTag ?? "",
                             callID: request.callID ?? "", cseq: request.cseq?.number ?? 0,
                             topVia: via?.description ?? "", method: method)
    }

    /// The key of the client transaction a response belongs to, if it can be told.
    public static func client(for response: SIPMessage) -> TransactionKey? {
        guard let branch = response.topVia?.branch, let method = response.cseq?.method else { return nil }
        return .client(branch: branch, method: method)
    }

    /// The INVITE server transaction a CANCEL refers to (§9.2): same branch and
    /// sent-by (or same legacy fields), method INVITE.
    public static func cancelTarget(for cancel: SIPMessage) -> TransactionKey {
        switch server(for: cancel) {
        case .server(let b, let s, _): return .server(branch: b, sentBy: s, method: .invite)
        case .legacyServer(let u, let f, let c, let n, let v, _):
            return .legacyServer(requestURI: u, fromTag: f, callID: c, cseq: n, topVia: v, method: .invite)
        case .client: return server(for: cancel)
        }
    }

    /// A branch unique in space and time, with the RFC 3261 magic cookie.
    public static func newBranch() -> String {
        "z9hG4bK" + String(RandomIdentifiers.next(), radix: 36) + String(RandomIdentifiers.next() & 0xFFFF_FFFF, radix: 36)
    }
}
