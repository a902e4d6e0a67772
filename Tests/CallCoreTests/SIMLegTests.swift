import CallCore
import SIPAuth
import SIPMessage
import Testing

/// The B leg of a handset's call (S4): the customer's hostname, the digits as
/// dialled, the ICCID as caller, and the SIM's credentials on a challenge.
@Suite struct SIMLegTests {
    let customer = [GatewayTarget(name: "customer", hostPort: "pbx.customer.example")]
    let identity = BLegIdentity(calledUser: "447700900123", callerUser: "89440000000000000010",
                                callerHost: "pbx.customer.example", credentials: DigestLogin(username: "sim10", password: "s3cret"))

    func call() -> B2BUACall {
        B2BUACall(invite: aInvite, gateways: customer, bCallID: "b-sim@switch", bFromTag: "btag", aToTag: "a-to",
                  localContact: "203.0.113.1:5060", maxDuration: nil, costCapSeconds: nil, identity: identity)
    }

    func challenge(_ invite: SIPMessage, code: Int, stale: Bool = false) -> SIPMessage {
        var r = invite.makeResponse(code, toTag: "pbx")
        r.append(code == 401 ? .wwwAuthenticate : .proxyAuthenticate,
                 "Digest realm=\"pbx.customer.example\", nonce=\"n\(stale ? "2" : "1")\", qop=\"auth\", algorithm=MD5\(stale ? ", stale=true" : "")")
        return r
    }

    @Test func bLegCallsTheCustomerAsTheSIM() throws {
        var c = call()
        let b = try #require(c.start(now: 0).first?.bRequest)
        #expect(b.requestURI == "sip:447700900123@pbx.customer.example")
        #expect(b.from?.uri.user == "89440000000000000010" && b.from?.uri.host == "pbx.customer.example")
        #expect(b.to?.uri.user == "447700900123")
        // The mobile core's identity and the customer's controls stay inside.
        #expect(!b.contains(.pAssertedIdentity) && !b.contains("X-simwood-tag"))
        #expect(!b.contains(.authorization) && !b.contains(.proxyAuthorization))
    }

    @Test func challengeIsAnsweredOnceWithTheSIMsCredentials() throws {
        var c = call()
        let first = try #require(c.start(now: 0).first?.bRequest)
        let retry = try #require(c.bLegResponse(challenge(first, code: 407), now: 1).first?.bRequest)
        #expect(retry.method == .invite && retry.callID == first.callID && retry.fromTag == first.fromTag)
        #expect(retry.cseq == SIPCSeq(2, .invite))
        let credentials = try DigestCredentials(parsing: try #require(retry.firstValue(.proxyAuthorization)), header: "Proxy-Authorization")
        #expect(credentials.username == "sim10" && credentials.realm == "pbx.customer.example")
        #expect(credentials.uri == "sip:447700900123@pbx.customer.example")
        let ha1 = DigestAlgorithm.md5.hash("sim10:pbx.customer.example:s3cret")
        let expected = DigestComputation.response(algorithm: .md5, ha1: ha1, method: "INVITE", uri: credentials.uri,
                                                  nonce: "n1", nc: credentials.nc, cnonce: credentials.cnonce, qop: "auth")
        #expect(credentials.response == expected)

        // Refused again (same nonce, not stale): wrong credentials, a 403 to the handset.
        let refused = c.bLegResponse(challenge(retry, code: 407), now: 2)
        let toA = try #require(refused.compactMap(\.aResponse).first)
        #expect(toA.statusCode == 403 && toA.reasonPhrase?.contains("credentials") == true)
        #expect(refused.compactMap(\.record).first?.finalStatus == 403)
    }

    @Test func staleNonceIsAnsweredAgain() throws {
        var c = call()
        let first = try #require(c.start(now: 0).first?.bRequest)
        let second = try #require(c.bLegResponse(challenge(first, code: 401), now: 1).first?.bRequest)
        #expect(second.contains(.authorization))
        let third = try #require(c.bLegResponse(challenge(second, code: 401, stale: true), now: 2).first?.bRequest)
        #expect(third.cseq == SIPCSeq(3, .invite) && third.method == .invite)
        let answer = c.bLegResponse(gatewayResponse(200, to: third), now: 3)
        #expect(answer.compactMap(\.aResponse).first?.statusCode == 200)
        #expect(c.state == .answered)
    }
}
