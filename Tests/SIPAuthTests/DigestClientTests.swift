import SIPAuth
import Testing

@Suite struct DigestClientTests {
    @Test func countsPerNonceAndRestartsOnANewOne() throws {
        var client = DigestClient(username: "u", password: "p")
        let first = DigestChallenge(realm: "example.com", nonce: "n1", opaque: "op")
        let a = try client.authorization(for: first, method: "REGISTER", uri: "sip:example.com")
        let b = try client.authorization(for: first, method: "REGISTER", uri: "sip:example.com")
        #expect(a.nc == 1 && b.nc == 2)
        #expect(a.opaque == "op")  // echoed unchanged (RFC 7616 §3.4)
        #expect(a.cnonce != b.cnonce)
        #expect(a.cnonce?.utf8.count == 32 && a.cnonce?.allSatisfy { $0.isHexDigit } == true)
        let c = try client.authorization(for: DigestChallenge(realm: "example.com", nonce: "n2"), method: "REGISTER", uri: "sip:example.com")
        #expect(c.nc == 1)
        // A proxy's realm counts separately from the registrar's.
        let proxy = DigestChallenge(realm: "proxy.example.com", nonce: "p1")
        #expect(try client.authorization(for: proxy, method: "INVITE", uri: "sip:1@example.com").nc == 1)
        #expect(try client.authorization(for: DigestChallenge(realm: "example.com", nonce: "n2"), method: "REGISTER",
                                         uri: "sip:example.com").nc == 2)
    }

    @Test func responseMatchesTheComputation() throws {
        var client = DigestClient(username: "Mufasa", password: "Circle of Life")
        let challenge = DigestChallenge(realm: "http-auth@example.org", nonce: "7ypf", algorithm: .sha256Session)
        let c = try client.authorization(for: challenge, method: "GET", uri: "/dir/index.html")
        #expect(c.response == DigestComputation.response(algorithm: .sha256Session, username: "Mufasa", realm: "http-auth@example.org",
                                                         password: "Circle of Life", method: "GET", uri: "/dir/index.html",
                                                         nonce: "7ypf", nc: 1, cnonce: c.cnonce, qop: "auth"))
    }

    @Test func qopChoice() throws {
        var client = DigestClient(username: "u", password: "p")
        func qop(_ offered: [String]) throws -> String? {
            try client.authorization(for: DigestChallenge(realm: "r", nonce: "n", qop: offered), method: "BYE", uri: "sip:x").qop
        }
        #expect(try qop(["auth-int", "auth"]) == "auth")
        #expect(try qop(["auth-int"]) == "auth-int")
        #expect(try qop(["future", "auth"]) == "auth")
        #expect(try qop([]) == nil)
        #expect(throws: DigestClientError.unsupportedQop(["future"])) { try qop(["future"]) }
        #expect(DigestClientError.unsupportedQop(["future"]).description
                == "the challenge offers qop future; only auth and auth-int are supported")
    }

    @Test func rfc2069FormWithoutQop() throws {
        var client = DigestClient(username: "u", password: "p")
        let c = try client.authorization(for: DigestChallenge(realm: "r", nonce: "n", algorithm: .md5, qop: []), method: "BYE", uri: "sip:x")
        #expect(c.qop == nil && c.nc == nil && c.cnonce == nil)
        let ha1 = DigestAlgorithm.md5.hash("u:r:p"), ha2 = DigestAlgorithm.md5.hash("BYE:sip:x")
        #expect(c.response == DigestAlgorithm.md5.hash("\(ha1):n:\(ha2)"))
        // -sess still needs a cnonce for the session key (RFC 2617 §3.2.2.2).
        let sess = try client.authorization(for: DigestChallenge(realm: "r", nonce: "n", algorithm: .md5Session, qop: []),
                                            method: "BYE", uri: "sip:x")
        #expect(sess.cnonce != nil && sess.nc == nil)
        #expect(try DigestCredentials(parsing: sess.headerValue) == sess)
    }

    @Test func preferredIsTheStrongestAnswerable() {
        let md5 = DigestChallenge(realm: "r", nonce: "n", algorithm: .md5)
        let md5Sess = DigestChallenge(realm: "r", nonce: "n", algorithm: .md5Session)
        let sha = DigestChallenge(realm: "r", nonce: "n", algorithm: .sha256)
        let shaSess = DigestChallenge(realm: "r", nonce: "n", algorithm: .sha256Session)
        let unanswerable = DigestChallenge(realm: "r", nonce: "n", algorithm: .sha256, qop: ["future"])
        #expect(DigestClient.preferred([md5, sha]) == sha)
        #expect(DigestClient.preferred([sha, md5]) == sha)
        #expect(DigestClient.preferred([md5Sess, md5]) == md5Sess)  // the server's order breaks ties
        #expect(DigestClient.preferred([shaSess, sha]) == shaSess)
        #expect(DigestClient.preferred([md5, unanswerable]) == md5)
        #expect(DigestClient.preferred([unanswerable]) == nil)
        #expect(DigestClient.preferred([]) == nil)
    }
}
