import SIPAuth
import SIPMessage

/// A username and password to answer digest challenges with.
public struct SIPCredentials: Sendable, Equatable {
    public var username: String
    public var password: String
    public init(username: String, password: String) { self.username = username; self.password = password }
}

extension SIPEndpoint {
    /// Sends a request and answers 401/407 digest challenges (RFC 3261 §22.2,
    /// RFC 7616/8760): the request is sent again with Authorization or
    /// Proxy-Authorization and the next CSeq. A challenge that follows our
    /// answer (wrong password) ends it unless it says the nonce was stale.
    public func send(
        _ request: SIPMessage, to destination: SIPDestination, credentials: SIPCredentials,
        onProvisional: (@Sendable (SIPMessage) -> Void)? = nil
    ) async throws -> SIPMessage {
        var request = request
        var response = try await send(request, to: destination, onProvisional: onProvisional)
        var client = DigestClient(username: credentials.username, password: credentials.password)
        var answered = 0
        while let code = response.statusCode, code == 401 || code == 407, answered < 3 {
            let challengeHeader: SIPHeaderName = code == 401 ? .wwwAuthenticate : .proxyAuthenticate
            let challenges = response.values(challengeHeader).compactMap { try? DigestChallenge(parsing: $0) }
            guard let challenge = DigestClient.preferred(challenges) else {
                logger.info("no digest challenge we can answer", metadata: ["status": "\(code)"])
                return response
            }
            // Answered once already and not told the nonce was stale: the credentials are wrong.
            if answered > 0, !challenge.stale { return response }
            guard let method = request.method, let uri = request.requestURI, let cseq = request.cseq else { return response }
            let authorization = try client.authorization(for: challenge, method: method.rawValue, uri: uri, body: request.body)
            request.set(code == 401 ? .authorization : .proxyAuthorization, authorization.headerValue)
            request.set(.cseq, "\(cseq.number &+ 1) \(method)")
            answered += 1
            response = try await send(request, to: destination, onProvisional: onProvisional)
        }
        return response
    }
}
