import SIPAuth
import OutboundRegistration
import Testing

@Suite struct DigestServerTests {
    let secret = Array("test secret".utf8)

    func challenge(_ server: DigestServer, _ algorithm: DigestAlgorithm, now: Double) throws -> DigestChallenge {
        try #require(server.makeChallenges(now: now).first { $0.algorithm == algorithm })
    }

    @Test(arguments: DigestAlgorithm.allCases)
    func clientAndServerAgree(algorithm: DigestAlgorithm) throws {
        var server = DigestServer(realm: "example.com", secret: secret, algorithms: [algorithm])
        let c = try challenge(server, algorithm, now: 1000)
        // Through the wire format both ways, as in a real exchange.
        let seen = try DigestChallenge(parsing: c.headerValue)
        var client = DigestClient(username: "8931440400000000001", password: "s3cret!")
        let creds = try client.authorization(for: seen, method: "REGISTER", uri: "sip:example.com")
        #expect(creds.nc == 1 && creds.qop == "auth" && creds.algorithm == algorithm)
        let received = try DigestCredentials(parsing: creds.headerValue)
        #expect(server.verify(received, method: "REGISTER", password: "s3cret!", now: 1001) == .accepted)
    }

    @Test func challengesOfferSHA256ThenMD5WithAFreshNonceEachTime() throws {
        let server = DigestServer(realm: "example.com", secret: secret)
        let challenges = server.makeChallenges(now: 1000)
        #expect(challenges.map(\.algorithm) == [.sha256, .md5])
        #expect(challenges.allSatisfy { $0.realm == "example.com" && $0.qop == ["auth"] && !$0.stale })
        #expect(Set(challenges.map(\.nonce)).count == 1)
        #expect(server.makeChallenges(now: 1000)[0].nonce != challenges[0].nonce)  // same millisecond, different nonce
        #expect(server.makeChallenges(now: 1000, stale: true).allSatisfy { $0.stale })
        var g1 = SplitMix64(seed: 7), g2 = SplitMix64(seed: 7)
        #expect(server.makeChallenges(now: 1000, using: &g1) == server.makeChallenges(now: 1000, using: &g2))
    }

    @Test func sipRegisterWithStoredHA1() throws {
        var server = DigestServer(realm: "example.com", secret: secret)
        var client = DigestClient(username: "alice", password: "pw")
        for algorithm in [DigestAlgorithm.sha256, .md5] {
            let creds = try client.authorization(for: try challenge(server, algorithm, now: 50), method: "REGISTER", uri: "sip:example.com")
            let ha1 = algorithm.hash("alice:example.com:pw")
            #expect(server.verify(creds, method: "REGISTER", ha1: ha1, now: 51) == .accepted)
        }
    }

    @Test func wrongPasswordMethodOrURIIsRejected() throws {
        var server = DigestServer(realm: "example.com", secret: secret)
        var client = DigestClient(username: "bob", password: "right")
        let creds = try client.authorization(for: try challenge(server, .md5, now: 1000), method: "INVITE", uri: "sip:447700900123@example.com")
        #expect(server.verify(creds, method: "INVITE", password: "wrong", now: 1001) == .rejected(.wrongResponse))
        #expect(server.verify(creds, method: "BYE", password: "right", now: 1001) == .rejected(.wrongResponse))
        var otherURI = creds
        otherURI.uri = "sip:447700900999@example.com"
        #expect(server.verify(otherURI, method: "INVITE", password: "right", now: 1001) == .rejected(.wrongResponse))
        // Failed attempts do not consume the count: the genuine request still goes through.
        #expect(server.verify(creds, method: "INVITE", password: "right", now: 1001) == .accepted)
    }

    @Test func replayedNonceCountsAreRejected() throws {
        var server = DigestServer(realm: "example.com", secret: secret)
        let c = try challenge(server, .sha256, now: 1000)
        var client = DigestClient(username: "alice", password: "pw")
        let first = try client.authorization(for: c, method: "REGISTER", uri: "sip:example.com")
        let second = try client.authorization(for: c, method: "REGISTER", uri: "sip:example.com")
        let third = try client.authorization(for: c, method: "REGISTER", uri: "sip:example.com")
        #expect(third.nc == 3)
        #expect(server.verify(first, method: "REGISTER", password: "pw", now: 1001) == .accepted)
        #expect(server.verify(first, method: "REGISTER", password: "pw", now: 1002) == .rejected(.replayedNonceCount(1)))
        #expect(server.verify(third, method: "REGISTER", password: "pw", now: 1003) == .accepted)  // gaps are fine
        #expect(server.verify(second, method: "REGISTER", password: "pw", now: 1004) == .rejected(.replayedNonceCount(2)))
        #expect(server.trackedNonceCount == 1)
    }

    @Test func expiredNonceIsStaleOnlyWithTheRightPassword() throws {
        var server = DigestServer(realm: "example.com", secret: secret, nonceLifetime: 60)
        var client = DigestClient(username: "alice", password: "pw")
        let old = try challenge(server, .sha256, now: 1000)
        let creds = try client.authorization(for: old, method: "REGISTER", uri: "sip:example.com")
        #expect(server.verify(creds, method: "REGISTER", password: "wrong", now: 1061) == .rejected(.wrongResponse))
        #expect(server.verify(creds, method: "REGISTER", password: "pw", now: 1061) == .stale)
        // Re-challenged with stale=true: a new nonce, and the count starts again.
        let fresh = try #require(server.makeChallenges(now: 1061, stale: true).first)
        let retry = try client.authorization(for: fresh, method: "REGISTER", uri: "sip:example.com")
        #expect(retry.nc == 1 && retry.nonce != old.nonce)
        #expect(server.verify(retry, method: "REGISTER", password: "pw", now: 1062) == .accepted)
    }

    @Test func forgedNoncesAreUnknown() throws {
        var server = DigestServer(realm: "example.com", secret: secret, nonceLifetime: 60)
        var client = DigestClient(username: "alice", password: "pw")
        let genuine = try challenge(server, .md5, now: 1000)
        func attempt(nonce: String, _ verifier: inout DigestServer) throws -> DigestVerdict {
            var forged = genuine
            forged.nonce = nonce
            let creds = try client.authorization(for: forged, method: "REGISTER", uri: "sip:example.com")
            return verifier.verify(creds, method: "REGISTER", password: "pw", now: 1100)
        }
        // Pushing the issue time forward to extend the lifetime breaks the HMAC.
        #expect(try attempt(nonce: genuine.nonce, &server) == .stale)
        let laterMilliseconds = String(1_090_000, radix: 16)  // the nonce opens with the issue time, 16 hex digits
        let extended = String(repeating: "0", count: 16 - laterMilliseconds.count) + laterMilliseconds + genuine.nonce.dropFirst(16)
        #expect(try attempt(nonce: extended, &server) == .rejected(.unknownNonce))
        #expect(try attempt(nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", &server) == .rejected(.unknownNonce))
        #expect(try attempt(nonce: "", &server) == .rejected(.unknownNonce))
        #expect(try attempt(nonce: String(repeating: "zz", count: 32), &server) == .rejected(.unknownNonce))
        var otherSecret = DigestServer(realm: "example.com", secret: Array("other".utf8))
        #expect(try attempt(nonce: genuine.nonce, &otherSecret) == .rejected(.unknownNonce))
        // The realm is under the HMAC too: a nonce from one realm is no good in another with the same secret.
        let otherRealm = DigestServer(realm: "other.example.com", secret: secret)
        let foreign = try challenge(otherRealm, .md5, now: 1090)
        #expect(try attempt(nonce: foreign.nonce, &server) == .rejected(.unknownNonce))
    }

    @Test func offeredAlgorithmRealmAndQopAreEnforced() throws {
        var server = DigestServer(realm: "example.com", secret: secret, algorithms: [.sha256])
        var client = DigestClient(username: "alice", password: "pw")
        var md5 = try challenge(server, .sha256, now: 1000)
        md5.algorithm = .md5
        let downgraded = try client.authorization(for: md5, method: "REGISTER", uri: "sip:example.com")
        #expect(server.verify(downgraded, method: "REGISTER", password: "pw", now: 1001) == .rejected(.unsupportedAlgorithm(.md5)))

        var elsewhere = try challenge(server, .sha256, now: 1000)
        elsewhere.realm = "evil.example.com"
        let wrongRealm = try client.authorization(for: elsewhere, method: "REGISTER", uri: "sip:example.com")
        #expect(server.verify(wrongRealm, method: "REGISTER", password: "pw", now: 1001) == .rejected(.wrongRealm("evil.example.com")))

        var authInt = try challenge(server, .sha256, now: 1000)
        authInt.qop = ["auth-int"]
        let integrity = try client.authorization(for: authInt, method: "REGISTER", uri: "sip:example.com")
        #expect(server.verify(integrity, method: "REGISTER", password: "pw", now: 1001) == .rejected(.unsupportedQop("auth-int")))

        var incomplete = try client.authorization(for: try challenge(server, .sha256, now: 1000), method: "REGISTER", uri: "sip:x")
        incomplete.nc = nil
        #expect(server.verify(incomplete, method: "REGISTER", password: "pw", now: 1001) == .rejected(.missingParameter("nc")))
        incomplete.nc = 1
        incomplete.cnonce = nil
        #expect(server.verify(incomplete, method: "REGISTER", password: "pw", now: 1001) == .rejected(.missingParameter("cnonce")))
        incomplete.cnonce = "c"
        incomplete.nc = 0  // counts start at 1
        incomplete.response = DigestComputation.response(algorithm: .sha256, username: "alice", realm: "example.com", password: "pw",
                                                         method: "REGISTER", uri: "sip:x", nonce: incomplete.nonce, nc: 0,
                                                         cnonce: "c", qop: "auth")
        #expect(server.verify(incomplete, method: "REGISTER", password: "pw", now: 1001) == .rejected(.replayedNonceCount(0)))
    }

    @Test func authIntCoversTheBody() throws {
        var server = DigestServer(realm: "example.com", secret: secret, qopOptions: ["auth-int"])
        var client = DigestClient(username: "alice", password: "pw")
        let sdp = Array("v=0\r\n".utf8)
        let creds = try client.authorization(for: try challenge(server, .sha256, now: 0), method: "INVITE", uri: "sip:1@example.com", body: sdp)
        #expect(creds.qop == "auth-int")
        #expect(server.verify(creds, method: "INVITE", password: "pw", now: 1, body: Array("v=1\r\n".utf8)) == .rejected(.wrongResponse))
        #expect(server.verify(creds, method: "INVITE", password: "pw", now: 1, body: sdp) == .accepted)
    }

    @Test func withoutQopANonceIsReusableWithinItsLifetime() throws {
        var server = DigestServer(realm: "example.com", secret: secret, nonceLifetime: 60, qopOptions: [])
        var client = DigestClient(username: "alice", password: "pw")
        let c = try challenge(server, .md5, now: 1000)
        #expect(c.qop.isEmpty && !c.headerValue.contains("qop"))
        let creds = try client.authorization(for: c, method: "REGISTER", uri: "sip:example.com")
        #expect(creds.qop == nil && creds.nc == nil && creds.cnonce == nil)
        #expect(server.verify(creds, method: "REGISTER", password: "pw", now: 1001) == .accepted)
        #expect(server.verify(creds, method: "REGISTER", password: "pw", now: 1059) == .accepted)
        #expect(server.verify(creds, method: "REGISTER", password: "pw", now: 1061) == .stale)
        #expect(server.trackedNonceCount == 0)
    }

    @Test func rememberedCountsAreBounded() throws {
        var server = DigestServer(realm: "example.com", secret: secret, nonceLifetime: 60, maxTrackedNonces: 3)
        var client = DigestClient(username: "alice", password: "pw")
        var answered: [DigestCredentials] = []
        for t in 0..<5 {
            // A fresh client per nonce, as if from many user agents.
            let c = try challenge(server, .sha256, now: 1000 + Double(t))
            var ua = DigestClient(username: "alice", password: "pw")
            let creds = try ua.authorization(for: c, method: "REGISTER", uri: "sip:example.com")
            #expect(server.verify(creds, method: "REGISTER", password: "pw", now: 1000 + Double(t)) == .accepted)
            answered.append(creds)
            #expect(server.trackedNonceCount <= 3)
        }
        // The first two were evicted while live: a replay of them is not accepted but re-challenged.
        #expect(server.verify(answered[0], method: "REGISTER", password: "pw", now: 1010) == .stale)
        #expect(server.verify(answered[4], method: "REGISTER", password: "pw", now: 1010) == .rejected(.replayedNonceCount(1)))
        // Once they expire, entries are dropped as new nonces come in.
        let late = try client.authorization(for: try challenge(server, .sha256, now: 2000), method: "REGISTER", uri: "sip:example.com")
        #expect(server.verify(late, method: "REGISTER", password: "pw", now: 2000) == .accepted)
        #expect(server.trackedNonceCount == 1)
    }

    @Test func rejectionsExplainThemselves() {
        #expect(DigestRejection.replayedNonceCount(2).description
                == "nonce count 00000002 is not above the last one seen for this nonce (replay)")
        #expect(DigestRejection.wrongRealm("x").description == "credentials are for realm 'x', not this server's")
        #expect(DigestRejection.unsupportedAlgorithm(.md5).description == "digest algorithm MD5 was not offered")
        for r in [DigestRejection.unknownNonce, .wrongResponse, .unsupportedQop("auth-int"), .missingParameter("nc")] {
            #expect(!r.description.isEmpty)
        }
    }
}
