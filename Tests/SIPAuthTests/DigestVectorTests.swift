import SIPAuth
import Testing

/// Published vectors, plus SIP ones cross-checked with Python's hashlib.
@Suite struct DigestVectorTests {
    @Test func rfc2617Section3_5() {
        let r = DigestComputation.response(algorithm: .md5, username: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life",
                                           method: "GET", uri: "/dir/index.html", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                                           nc: 1, cnonce: "0a4f113b", qop: "auth")
        #expect(r == "6629fae49393a05397450978507c4ef1")
    }

    @Test(arguments: [
        (DigestAlgorithm.md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (.sha256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ])
    func rfc7616Section3_9_1(algorithm: DigestAlgorithm, expected: String) {
        let r = DigestComputation.response(algorithm: algorithm, username: "Mufasa", realm: "http-auth@example.org",
                                           password: "Circle of Life", method: "GET", uri: "/dir/index.html",
                                           nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc: 1,
                                           cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop: "auth")
        #expect(r == expected)
    }

    @Test func rfc2069FormWithoutQop() {
        // RFC 2069's example; the response printed there does not match its inputs, so this one is recomputed.
        let r = DigestComputation.response(algorithm: .md5, username: "Mufasa", realm: "testrealm@host.com", password: "CircleOfLife",
                                           method: "GET", uri: "/dir/index.html", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                                           nc: nil, cnonce: nil, qop: nil)
        #expect(r == "1949323746fe6a43ef61f9606e7febea")
    }

    static let user = "8931440400000000001", realm = "example.com", password = "s3cret!"
    static let sdp: [UInt8] = Array("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".utf8)

    @Test(arguments: [
        (DigestAlgorithm.md5, "REGISTER", "auth", 42, [UInt8](), "ade8b35c890982e7cdf15e32b1fd78b9"),
        (.sha256, "REGISTER", "auth", 42, [], "68e7bc0944928a18c6cd1e91310e19a4e7579b49b670b94b1c0c1092eb7fe0a0"),
        (.md5Session, "REGISTER", "auth", 42, [], "ffdc4115a170a170ff12eb6413ec9c0e"),
        (.sha256Session, "REGISTER", "auth", 42, [], "5d0870bed1918febf60bb09a4ac9372ec3fc804e13bbfddddbbe7cd31f29ec22"),
        (.md5, "INVITE", "auth-int", 1, sdp, "31fa45cf9abf73119c600814debfd2e3"),
        (.sha256, "INVITE", "auth-int", 1, sdp, "b13b06ad45a70c500b240afdf83211650db020fd28a50d0a9aad6abd2c5895f4"),
        (.md5, "INVITE", "auth-int", 1, [], "be3561ff08fab42477c81b193075a151"),
        (.sha256, "INVITE", "auth-int", 1, [], "6a91cf5bd0b7780d9cb3ddb3e47d92e486e6c40be9f55b92c175410b541df7c6"),
    ] as [(DigestAlgorithm, String, String, UInt32, [UInt8], String)])
    func sipVectors(algorithm: DigestAlgorithm, method: String, qop: String, nc: UInt32, body: [UInt8], expected: String) {
        let uri = method == "REGISTER" ? "sip:example.com" : "sip:447700900123@example.com"
        let r = DigestComputation.response(algorithm: algorithm, username: Self.user, realm: Self.realm, password: Self.password,
                                           method: method, uri: uri, nonce: "abc123", nc: nc, cnonce: "0a4f113b", qop: qop,
                                           entityBody: body)
        #expect(r == expected)
    }

    @Test(arguments: [
        (DigestAlgorithm.md5, "12e90f674acbea73de6d14f39edec459", "0a925093975644e0fef1a643c41e4097"),
        (.sha256, "ce3873ae73545a4e9664710718f23bde219415cfc33e56e82d2f9689778151df",
         "e949dec2daec006ffdfb551799f4f9fba6c8e9642d66883c229c280d82e508ee"),
    ])
    func fromStoredHA1(algorithm: DigestAlgorithm, ha1: String, expected: String) {
        #expect(DigestComputation.ha1(algorithm: algorithm, username: Self.user, realm: Self.realm, password: Self.password) == ha1)
        let r = DigestComputation.response(algorithm: algorithm, ha1: ha1, method: "REGISTER", uri: "sip:example.com",
                                           nonce: "abc123", nc: nil, cnonce: nil, qop: nil)
        #expect(r == expected)
    }

    @Test func algorithmTokensAndHex() {
        #expect(DigestAlgorithm(token: "sha-256-SESS") == .sha256Session)
        #expect(DigestAlgorithm(token: "md5") == .md5)
        #expect(DigestAlgorithm(token: "SHA-512-256") == nil)
        #expect(DigestAlgorithm.md5.hash("") == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(DigestAlgorithm.sha256.hash([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(DigestComputation.nonceCountText(1) == "00000001")
        #expect(DigestComputation.nonceCountText(.max) == "ffffffff")
    }
}
