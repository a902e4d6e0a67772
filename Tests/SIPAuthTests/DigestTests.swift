import SIPAuth
import Testing

@Suite struct DigestVectorTests {
    @Test func rfc2617Example() {  // RFC 2617 §3.5
        let r = DigestComputation.response(algorithm: .md5, username: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life",
                                           method: "GET", uri: "/dir/index.html", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                                           nc: 1, cnonce: "0a4f113b", qop: "auth")
        #expect(r == "6629fae49393a05397450978507c4ef1")
    }

    @Test func rfc7616Examples() {  // RFC 7616 §3.9.1
        func resp(_ a: DigestAlgorithm) -> String {
            DigestComputation.response(algorithm: a, username: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life",
                                       method: "GET", uri: "/dir/index.html", nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                                       nc: 1, cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop: "auth")
        }
        #expect(resp(.md5) == "8ca523f5e9506fed4657c9700eebdbec")
        #expect(resp(.sha256) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    }
}

@Suite struct DigestHeaderTests {
    @Test func challengeParsesOddWhitespaceAndEscapes() throws {
        let c = try DigestChallenge(parsing: "digest  realm = \"sip.example.com\" ,nonce=\"a\\\"b\",qop=\"auth,auth-int\" , algorithm=sha-256, stale=TRUE, opaque=\"x\"")
        #expect(c.realm == "sip.example.com")
        #expect(c.nonce == "a\"b")
        #expect(c.qop == ["auth", "auth-int"])
        #expect(c.algorithm == .sha256)
        #expect(c.stale)
        #expect(try DigestChallenge(parsing: c.headerValue) == c)
    }

    @Test func credentialsRoundTrip() throws {
        let c = DigestCredentials(username: "8931440400000000001", realm: "r", nonce: "n", uri: "sip:example.com", response: "abc",
                                  algorithm: .md5, cnonce: "cn", opaque: nil, qop: "auth", nc: 10)
        #expect(c.headerValue.contains("nc=0000000a"))
        #expect(try DigestCredentials(parsing: c.headerValue) == c)
    }

    @Test func errorsNameTheProblem() {
        #expect(throws: DigestParseError.unsupportedScheme("NoOneKnowsThisScheme")) {
            try DigestCredentials(parsing: "NoOneKnowsThisScheme opaque-data=here")  // RFC 4475 regaut01
        }
        #expect(throws: DigestParseError.missingParameter(header: "Authorization", parameter: "nonce")) {
            try DigestCredentials(parsing: "Digest username=\"a\", realm=\"r\", uri=\"sip:x\", response=\"00\"")
        }
        #expect(throws: DigestParseError.missingParameter(header: "WWW-Authenticate", parameter: "realm")) {
            try DigestChallenge(parsing: "Digest nonce=\"1\"")
        }
        #expect(throws: DigestParseError.unsupportedAlgorithm("SHA-512-256")) {
            try DigestChallenge(parsing: "Digest realm=\"r\", nonce=\"1\", algorithm=SHA-512-256")
        }
        #expect(throws: DigestParseError.malformed("unterminated quoted value of 'realm'")) {
            try DigestChallenge(parsing: "Digest nonce=\"1\", realm=\"r")
        }
        #expect(DigestParseError.missingParameter(header: "Authorization", parameter: "nonce").description
                == "Authorization is missing the 'nonce' parameter")
    }
}

@Suite struct DigestServerClientTests {
    let secret = Array("test secret".utf8)

    @Test(arguments: [DigestAlgorithm.md5, .sha256])
    func clientAnswersServerChallenge(algorithm: DigestAlgorithm) throws {
        var server = DigestServer(realm: "sip.example.com", secret: secret, algorithms: [algorithm])
        let challenge = try #require(server.makeChallenges(now: 1000).first)
        var client = DigestClient(username: "alice", password: "s3cret")
        let creds = try client.authorization(for: challenge, method: "REGISTER", uri: "sip:sip.example.com")
        #expect(creds.nc == 1 && creds.qop == "auth" && creds.algorithm == algorithm)
        #expect(server.verify(creds, method: "REGISTER", password: "s3cret", now: 1001) == .accepted)
        // Same credentials again: a replayed nonce-count.
        #expect(server.verify(creds, method: "REGISTER", password: "s3cret", now: 1002) == .rejected(.replayedNonceCount(1)))
        // The client's next request counts up and is accepted.
        let next = try client.authorization(for: challenge, method: "REGISTER", uri: "sip:sip.example.com")
        #expect(next.nc == 2)
        #expect(server.verify(next, method: "REGISTER", password: "s3cret", now: 1003) == .accepted)
    }

    @Test func wrongPasswordExpiredAndForgedNonces() throws {
        var server = DigestServer(realm: "r", secret: secret, nonceLifetime: 60)
        let challenge = try #require(server.makeChallenges(now: 1000).last)  // MD5
        #expect(server.makeChallenges(now: 1000).map(\.algorithm) == [.sha256, .md5])
        var client = DigestClient(username: "bob", password: "right")
        let creds = try client.authorization(for: challenge, method: "INVITE", uri: "sip:447700900123@r")
        #expect(server.verify(creds, method: "INVITE", password: "wrong", now: 1001) == .rejected(.wrongResponse))
        #expect(server.verify(creds, method: "INVITE", password: "right", now: 1100) == .stale)
        var forged = challenge
        forged.nonce = "3e8.00000000000000000000000000000000"
        let forgedCreds = try client.authorization(for: forged, method: "INVITE", uri: "sip:447700900123@r")
        #expect(server.verify(forgedCreds, method: "INVITE", password: "right", now: 1001) == .rejected(.unknownNonce))
        var other = DigestServer(realm: "r", secret: Array("other".utf8))
        #expect(other.verify(creds, method: "INVITE", password: "right", now: 1001) == .rejected(.unknownNonce))
    }

    @Test func preferredChallengeIsSHA256() {
        let md5 = DigestChallenge(realm: "r", nonce: "n", algorithm: .md5)
        let sha = DigestChallenge(realm: "r", nonce: "n", algorithm: .sha256)
        #expect(DigestClient.preferred([md5, sha]) == sha)
        #expect(DigestClient.preferred([md5]) == md5)
    }

    @Test func withoutQopTheRFC2069FormIsUsed() throws {
        var client = DigestClient(username: "u", password: "p")
        let c = try client.authorization(for: DigestChallenge(realm: "r", nonce: "n", algorithm: .md5, qop: []), method: "BYE", uri: "sip:x")
        #expect(c.qop == nil && c.nc == nil && c.cnonce == nil)
        let ha1 = DigestAlgorithm.md5.hash("u:r:p"), ha2 = DigestAlgorithm.md5.hash("BYE:sip:x")
        #expect(c.response == DigestAlgorithm.md5.hash("\(ha1):n:\(ha2)"))
    }
}
