import SIPAuth
import Testing

@Suite struct DigestHeaderTests {
    @Test func rfc7616ChallengeAndAnswer() throws {  // RFC 7616 §3.9.1, folded lines as printed
        let challenge = try DigestChallenge(parsing: """
            Digest
                realm="http-auth@example.org",
                qop="auth, auth-int",
                algorithm=SHA-256,
                nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
            """)
        #expect(challenge == DigestChallenge(realm: "http-auth@example.org", nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                                             opaque: "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", algorithm: .sha256,
                                             qop: ["auth", "auth-int"]))
        let c = try DigestCredentials(parsing: """
            Digest username="Mufasa",
                realm="http-auth@example.org",
                uri="/dir/index.html",
                algorithm=SHA-256,
                nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                nc=00000001,
                cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                qop=auth,
                response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
                opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
            """)
        #expect(c.username == "Mufasa" && c.uri == "/dir/index.html" && c.nc == 1 && c.qop == "auth" && c.algorithm == .sha256)
        let recomputed = DigestComputation.response(algorithm: c.algorithm, username: c.username, realm: c.realm,
                                                    password: "Circle of Life", method: "GET", uri: c.uri, nonce: c.nonce,
                                                    nc: c.nc, cnonce: c.cnonce, qop: c.qop)
        #expect(recomputed == c.response)
    }

    @Test func rfc2617AuthorizationWithDefaultAlgorithm() throws {  // RFC 2617 §3.5
        let c = try DigestCredentials(parsing: """
            Digest username="Mufasa",
                             realm="testrealm@host.com",
                             nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                             uri="/dir/index.html",
                             qop=auth,
                             nc=00000001,
                             cnonce="0a4f113b",
                             response="6629fae49393a05397450978507c4ef1",
                             opaque="5ccc069c403ebaf9f0171e9517f40e41"
            """)
        #expect(c.algorithm == .md5)  // absent means MD5 (RFC 7616 §3.3)
        #expect(c.opaque == "5ccc069c403ebaf9f0171e9517f40e41" && c.cnonce == "0a4f113b")
    }

    @Test func oddWhitespaceCaseEscapesAndUnknownParameters() throws {
        let c = try DigestChallenge(parsing:
            "  DIGEST\tReAlm = \"sip.example.com\" ,,NONCE=\"a\\\"b\\\\c\",qop=\"auth,auth-int\" ,\r\n algorithm = sha-256 ,"
            + " stale=true, charset=UTF-8, userhash=\"false\", opaque=x/y+z=, Domain=\"sip:example.com sip:alt.example.com\"")
        #expect(c.realm == "sip.example.com")
        #expect(c.nonce == "a\"b\\c")
        #expect(c.qop == ["auth", "auth-int"])
        #expect(c.algorithm == .sha256)
        #expect(c.stale)
        #expect(c.opaque == "x/y+z=")  // unquoted, as some peers send it
        #expect(c.domain == "sip:example.com sip:alt.example.com")
        #expect(try DigestChallenge(parsing: "Digest realm=r, nonce=n, stale=FALSE, qop=auth").stale == false)
    }

    @Test func challengeRoundTrips() throws {
        let challenges = [
            DigestChallenge(realm: "sip.example.com", nonce: "abc", algorithm: .sha256),
            DigestChallenge(realm: "we \"quote\" \\ things", nonce: "n=", opaque: "o p", algorithm: .md5Session,
                            qop: ["auth", "auth-int"], stale: true, domain: "sip:example.com"),
            DigestChallenge(realm: "r", nonce: "n", algorithm: .sha256Session, qop: []),
        ]
        for c in challenges {
            #expect(try DigestChallenge(parsing: c.headerValue) == c, "\(c.headerValue)")
        }
        #expect(challenges[0].headerValue == "Digest realm=\"sip.example.com\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\"")
    }

    @Test func credentialsRoundTrip() throws {
        let c = DigestCredentials(username: "8931440400000000001", realm: "r", nonce: "n", uri: "sip:example.com", response: "abc",
                                  algorithm: .sha256, cnonce: "cn", opaque: "op\"aque", qop: "auth", nc: 10)
        #expect(c.headerValue == "Digest username=\"8931440400000000001\", realm=\"r\", nonce=\"n\", uri=\"sip:example.com\""
                + ", response=\"abc\", algorithm=SHA-256, cnonce=\"cn\", opaque=\"op\\\"aque\", qop=auth, nc=0000000a")
        #expect(try DigestCredentials(parsing: c.headerValue) == c)
        let plain = DigestCredentials(username: "u", realm: "r", nonce: "n", uri: "sip:x", response: "00")
        #expect(try DigestCredentials(parsing: plain.headerValue) == plain)
        // Quoted qop and algorithm, as some user agents send them.
        let quotedTokens = try DigestCredentials(parsing: "Digest username=u, realm=r, nonce=n, uri=\"sip:x\", response=00,"
                                                 + " algorithm=\"MD5-sess\", qop=\"auth\", nc=ffffffff, cnonce=c")
        #expect(quotedTokens.algorithm == .md5Session && quotedTokens.qop == "auth" && quotedTokens.nc == .max)
    }

    @Test func lineBreaksNeverReachTheWire() {
        let c = DigestCredentials(username: "a\r\nVia: evil", realm: "r", nonce: "n", uri: "sip:x", response: "00")
        #expect(!c.headerValue.contains("\r") && !c.headerValue.contains("\n"))
    }

    @Test(arguments: ["username", "realm", "nonce", "uri", "response"])
    func missingCredentialsFieldIsNamed(field: String) {
        let all = ["username": "u", "realm": "r", "nonce": "n", "uri": "sip:x", "response": "00"]
        let value = "Digest " + all.filter { $0.key != field }.map { "\($0.key)=\"\($0.value)\"" }.sorted().joined(separator: ", ")
        #expect(throws: DigestParseError.missingParameter(header: "Authorization", parameter: field)) {
            try DigestCredentials(parsing: value)
        }
    }

    @Test func errorsSayWhatIsWrong() {
        #expect(throws: DigestParseError.unsupportedScheme("NoOneKnowsThisScheme")) {
            try DigestCredentials(parsing: "NoOneKnowsThisScheme opaque-data=here")  // RFC 4475 regaut01
        }
        #expect(throws: DigestParseError.unsupportedScheme("Basic")) {
            try DigestChallenge(parsing: "Basic realm=\"r\"")
        }
        #expect(throws: DigestParseError.missingParameter(header: "Proxy-Authenticate", parameter: "realm")) {
            try DigestChallenge(parsing: "Digest nonce=\"1\"", header: "Proxy-Authenticate")
        }
        #expect(throws: DigestParseError.missingParameter(header: "WWW-Authenticate", parameter: "nonce")) {
            try DigestChallenge(parsing: "Digest realm=\"r\"")
        }
        #expect(throws: DigestParseError.unsupportedAlgorithm("SHA-512-256")) {
            try DigestChallenge(parsing: "Digest realm=\"r\", nonce=\"1\", algorithm=SHA-512-256")
        }
        let base = "Digest username=u, realm=r, nonce=n, uri=\"sip:x\", response=00"
        #expect(throws: DigestParseError.missingParameter(header: "Authorization", parameter: "cnonce")) {
            try DigestCredentials(parsing: base + ", qop=auth, nc=00000001")
        }
        #expect(throws: DigestParseError.missingParameter(header: "Proxy-Authorization", parameter: "nc")) {
            try DigestCredentials(parsing: base + ", qop=auth, cnonce=c", header: "Proxy-Authorization")
        }
        #expect(throws: DigestParseError.missingParameter(header: "Authorization", parameter: "cnonce")) {
            try DigestCredentials(parsing: base + ", algorithm=SHA-256-sess")
        }
        #expect(throws: DigestParseError.invalidValue(header: "Authorization", parameter: "nc", value: "1",
                                                      expected: "8 hexadecimal digits, e.g. 00000001")) {
            try DigestCredentials(parsing: base + ", qop=auth, cnonce=c, nc=1")
        }
        let malformed: [(String, String)] = [
            ("Digest nonce=\"1\", realm=\"r", "the quoted value of 'realm' is not closed"),
            ("Digest realm=\"r\" nonce=\"1\"", "expected ',' after the value of 'realm'"),
            ("Digest realm=\"r\", nonce", "parameter 'nonce' has no '=' and value"),
            ("Digest realm=, nonce=1", "parameter 'realm' has an empty value"),
            ("Digest realm=r, =1", "expected a parameter name at '=1'"),
            ("Digest realm=r, realm=s, nonce=1", "parameter 'realm' appears more than once"),
            ("   ", "expected an authentication scheme (Digest)"),
            ("Digest,realm=r", "expected a space after 'Digest'"),
        ]
        for (value, reason) in malformed {
            #expect(throws: DigestParseError.malformed(header: "WWW-Authenticate", reason: reason), "\(value)") {
                try DigestChallenge(parsing: value)
            }
        }
    }

    @Test func errorDescriptionsAreActionable() {
        #expect(DigestParseError.missingParameter(header: "Authorization", parameter: "nonce").description
                == "Authorization is missing the 'nonce' parameter")
        #expect(DigestParseError.unsupportedScheme("Basic").description == "authentication scheme 'Basic' is not supported (only Digest is)")
        #expect(DigestParseError.unsupportedAlgorithm("SHA-1").description
                == "digest algorithm 'SHA-1' is not supported (supported: MD5, MD5-sess, SHA-256, SHA-256-sess)")
        #expect(DigestParseError.invalidValue(header: "Authorization", parameter: "nc", value: "1", expected: "8 hexadecimal digits").description
                == "Authorization has an invalid 'nc' value '1': expected 8 hexadecimal digits")
        #expect(DigestParseError.malformed(header: "WWW-Authenticate", reason: "x").description == "malformed WWW-Authenticate: x")
    }
}
