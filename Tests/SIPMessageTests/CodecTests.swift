import SIPMessage
import Testing

let invite = """
    INVITE sip:bob@biloxi.example.com SIP/2.0\r
    Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r
    Max-Forwards: 70\r
    To: Bob <sip:bob@biloxi.example.com>\r
    From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774\r
    Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r
    CSeq: 314159 INVITE\r
    Contact: <sip:alice@pc33.atlanta.example.com>\r
    X-simwood-tag: CUST001-AB384720\r
    Content-Type: application/sdp\r
    Content-Length: 4\r
    \r
    v=0\n
    """

@Suite struct CodecTests {
    @Test func compactAndLongFormsAreTheSameHeader() throws {
        let compact = """
            OPTIONS sip:a@b.example SIP/2.0\r
            v: SIP/2.0/UDP h.example;branch=z9hG4bK1\r
            f: <sip:x@y.example>;tag=1\r
            t: <sip:a@b.example>\r
            i: abc@h\r
            CSeq: 1 OPTIONS\r
            m: <sip:x@h.example>\r
            k: timer\r
            s: hello\r
            c: text/plain\r
            e: identity\r
            o: presence\r
            u: dialog\r
            r: <sip:c@d.example>\r
            b: <sip:e@f.example>\r
            x: 1800\r
            y: sig\r
            n: <http://x.example/c>\r
            a: *;audio\r
            j: *;video\r
            d: proxy\r
            l: 0\r
            \r

            """
        let m = try SIPMessage(parsing: compact)
        #expect(m.topVia?.branch == "z9hG4bK1")
        #expect(m.fromTag == "1")
        #expect(m.callID == "abc@h")
        #expect(m.contacts.count == 1)
        let names: [SIPHeaderName] = [.supported, .subject, .contentType, .contentEncoding, .event, .allowEvents,
                                      .referTo, .referredBy, .sessionExpires, .identity, .identityInfo,
                                      .acceptContact, .rejectContact, .requestDisposition, .contentLength]
        for n in names { #expect(m.contains(n), "\(n)") }
        #expect(m.firstValue("SUPPORTED") == "timer")
        #expect(SIPHeaderName("call-id") == .callID)
        #expect(SIPHeaderName("I") == .callID)
    }

    @Test func roundTripKeepsOrderAndUnknownHeaders() throws {
        let m = try SIPMessage(parsing: invite)
        #expect(m.firstValue("x-SIMWOOD-tag") == "CUST001-AB384720")
        let again = try SIPMessage(parsing: m.serialized())
        #expect(again.headerFields.map(\.name) == m.headerFields.map(\.name))
        #expect(again.headerFields.map(\.value) == m.headerFields.map(\.value))
        #expect(again.body == Array("v=0\n".utf8))
        #expect(String(decoding: m.serialized(), as: UTF8.self) == invite)
    }

    @Test func editingHeadersAndBody() throws {
        var m = try SIPMessage(parsing: invite)
        m.prepend(.via, "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew")
        m.set(.maxForwards, "69")
        m.remove("X-Simwood-Tag")
        m.body = Array("v=0\r\ns=x\r\n".utf8)
        let out = try SIPMessage(parsing: m.serialized())
        #expect(out.vias.map(\.branch) == ["z9hG4bKnew", "z9hG4bK776asdhds"])
        #expect(out.maxForwards == 69)
        #expect(!out.contains("x-simwood-tag"))
        #expect(out.contentLength == 10)
        #expect(out.bodyCount == 10)
    }

    @Test func multiValueHeadersSplitAcrossLinesAndCommas() throws {
        let text = """
            REGISTER sip:r.example SIP/2.0\r
            Via: SIP/2.0/UDP a.example;branch=z9hG4bKa, SIP/2.0/TCP b.example:5070;branch=z9hG4bKb;received=192.0.2.1\r
            Via: SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKc;rport=5999\r
            To: <sip:u@r.example>\r
            From: <sip:u@r.example>;tag=9\r
            Call-ID: reg1\r
            CSeq: 2 REGISTER\r
            Contact: "A, B" <sip:u@1.example>;expires=60, <sip:u@2.example;transport=tcp>;q=0.5\r
            Content-Length: 0\r
            \r

            """
        let m = try SIPMessage(parsing: text)
        let vias = m.vias
        #expect(vias.count == 3)
        #expect(vias[1].port == 5070 && vias[1].received == "192.0.2.1")
        #expect(vias[2].host == "[2001:db8::1]" && vias[2].rport == .some("5999"))
        let contacts = m.contacts.compactMap(\.address)
        #expect(contacts.map(\.displayName) == ["A, B", nil])
        #expect(contacts[1].uri.transportParameter == "tcp")
        #expect(contacts[0].parameters.value("expires") == .some("60"))
    }

    @Test func wildcardContact() throws {
        let m = try SIPMessage(parsing: "REGISTER sip:r SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:u@r>\r\nFrom: <sip:u@r>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n")
        #expect(m.contacts == [.wildcard])
        #expect(m.expires == 0)
    }

    @Test func responseBuiltFromRequest() throws {
        let req = try SIPMessage(parsing: invite)
        let r = req.makeResponse(180, toTag: "xyz")
        #expect(r.statusCode == 180 && r.reasonPhrase == "Ringing")
        #expect(r.toTag == "xyz")
        #expect(r.callID == req.callID && r.cseq == req.cseq && r.fromTag == req.fromTag)
        #expect(r.topVia?.branch == "z9hG4bK776asdhds")
        let parsed = try SIPMessage(parsing: r.serialized())
        #expect(parsed.statusCode == 180 && parsed.contentLength == 0)
    }

    /// The response refers to the request's own bytes for the fields it copies:
    /// compact names, a folded line and two Record-Routes come out as the
    /// request had them (unfolded), in order, and the request stays as it was.
    @Test func responseCopiesFieldsAsTheRequestHadThem() throws {
        let text = "INVITE sip:bob@example.com SIP/2.0\r\n"
            + "v: SIP/2.0/UDP a.example.com;branch=z9hG4bKfirst\r\n"
            + "Via: SIP/2.0/UDP b.example.com:5070\r\n ;branch=z9hG4bKsecond;received=192.0.2.1\r\n"
            + "f: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
            + "t: <sip:bob@example.com>\r\n"
            + "i: call-1@example.com\r\n"
            + "CSeq: 7 INVITE\r\n"
            + "Record-Route: <sip:p1.example.com;lr>\r\n"
            + "Record-Route: <sip:p2.example.com;lr>\r\n"
            + "Max-Forwards: 70\r\n"
            + "Content-Length: 0\r\n\r\n"
        let request = try SIPMessage(parsing: text)
        let before = request.serialized()
        let ok = request.makeResponse(200, toTag: "b2")
        let wire = String(decoding: ok.serialized(), as: UTF8.self)
        #expect(wire == "SIP/2.0 200 OK\r\n"
            + "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKfirst\r\n"
            + "Via: SIP/2.0/UDP b.example.com:5070 ;branch=z9hG4bKsecond;received=192.0.2.1\r\n"
            + "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
            + "To: <sip:bob@example.com>;tag=b2\r\n"
            + "Call-ID: call-1@example.com\r\n"
            + "CSeq: 7 INVITE\r\n"
            + "Record-Route: <sip:p1.example.com;lr>\r\n"
            + "Record-Route: <sip:p2.example.com;lr>\r\n"
            + "Content-Length: 0\r\n\r\n")
        #expect(request.serialized() == before)
        // A 100 carries no To tag and no Record-Route; a 486 no Record-Route.
        let trying = String(decoding: request.makeResponse(100, toTag: "b2").serialized(), as: UTF8.self)
        #expect(trying.contains("To: <sip:bob@example.com>\r\n") && !trying.contains("Record-Route"))
        let busy = try SIPMessage(parsing: request.makeResponse(486, toTag: "b2").serialized())
        #expect(busy.toTag == "b2" && busy.values(.recordRoute).isEmpty && busy.vias.count == 2)
    }

    @Test func limitsAreEnforced() throws {
        var big = Array(invite.utf8)
        big.append(contentsOf: [UInt8](repeating: 0x41, count: 70_000))
        #expect(throws: SIPParseError.messageTooLarge(size: big.count, limit: 65_535)) { try SIPMessage(parsing: big) }

        var many = "OPTIONS sip:a@b SIP/2.0\r\n"
        for i in 0..<300 { many += "X-H\(i): v\r\n" }
        many += "\r\n"
        #expect(throws: SIPParseError.tooManyHeaders(limit: 256)) { try SIPMessage(parsing: many) }
        #expect(SIPParseError.tooManyHeaders(limit: 256).statusCode == 513)
    }

    @Test func specificErrorsForCommonFaults() {
        #expect(throws: SIPParseError.empty) { try SIPMessage(parsing: "\r\n\r\n") }
        #expect(throws: SIPParseError.malformedHeaderLine("'garbage' is not 'name: value'")) {
            try SIPMessage(parsing: "OPTIONS sip:a@b SIP/2.0\r\ngarbage\r\n\r\n")
        }
        #expect(throws: SIPParseError.malformedHeader(name: "Max-Forwards", reason: "Max-Forwards exceeds 255")) {
            try SIPMessage(parsing: "OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 256\r\n\r\n")
        }
        #expect(throws: SIPParseError.invalidRequestURI("invalid character in URI")) {
            try SIPMessage(parsing: "OPTIONS sip:a@b_c SIP/2.0\r\n\r\n")
        }
        #expect(SIPParseError.invalidContentLength("-1").reasonPhrase == "Bad Request (invalid Content-Length: -1)")
    }

    @Test func uriParsingAndSerialization() throws {
        let u = try SIPURI("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=project%20x&priority=urgent")
        #expect(u.scheme == "sips" && u.user == "alice" && u.password == "secret")
        #expect(u.host == "[2001:db8::10]" && u.port == 5061)
        #expect(u.transportParameter == "tcp" && u.hasLooseRouting)
        #expect(u.headers.map(\.name) == ["subject", "priority"])
        #expect(u.description == "sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=project%20x&priority=urgent")
        let tel = try SIPURI("tel:+447700900123")
        #expect(tel.scheme == "tel" && tel.opaque == "+447700900123")
        #expect(throws: SIPParseError.self) { try SIPURI("sip:") }
        #expect(throws: SIPParseError.self) { try SIPURI("sip:a@b:99999") }
        #expect(throws: SIPParseError.self) { try SIPURI("sip:a%zz@b") }
    }

    @Test func nameAddressSerializationQuotesDisplayName() throws {
        let a = SIPNameAddress(displayName: "Say \"hi\"", uri: SIPURI(user: "a", host: "b.example"), parameters: [SIPParameter("tag", "1")])
        #expect(a.description == "\"Say \\\"hi\\\"\" <sip:a@b.example>;tag=1")
        #expect(try SIPNameAddress(a.description) == a)
    }
}

@Suite struct FramingTests {
    func frame(_ s: String) throws -> SIPMessageParser.Frame {
        let bytes = Array(s.utf8)
        return try bytes.withUnsafeBufferPointer { b throws(SIPParseError) in try SIPMessageParser.frame(b) }
    }

    @Test func framesByContentLength() throws {
        let m = "OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabc"
        #expect(try frame(m) == .message(start: 0, end: m.utf8.count))
        #expect(try frame(String(m.dropLast())) == .needMore)
        #expect(try frame("\r\n\r\n" + m + "NEXT") == .message(start: 4, end: 4 + m.utf8.count))
        #expect(try frame("\r\n\r\n") == .keepAlive(4))
        #expect(try frame("OPTIONS sip:a@b SIP/2.0\r\nVia: x") == .needMore)
    }

    @Test func streamErrors() {
        #expect(throws: SIPParseError.invalidContentLength("missing on a stream transport")) {
            try frame("OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
        }
        #expect(throws: SIPParseError.invalidContentLength("conflicting Content-Length values 1 and 2")) {
            try frame("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab")
        }
        #expect(throws: SIPParseError.messageTooLarge(size: 100_038, limit: 65_535)) {
            try frame("OPTIONS sip:a@b SIP/2.0\r\nl: 100000\r\n\r\n")
        }
    }

    @Test func statelessErrorResponseEchoesTransactionHeaders() throws {
        let bad = Array("OPTIONS sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h.example;branch=z9hG4bKx\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: q\r\nCSeq: 5 OPTIONS\r\n\r\n".utf8)
        let r = try #require(SIPMessageParser.errorResponse(for: bad, error: .unsupportedVersion("SIP/7.0")))
        #expect(r.statusCode == 505)
        #expect(r.reasonPhrase == "Version Not Supported (unsupported SIP version SIP/7.0)")
        #expect(r.topVia?.branch == "z9hG4bKx" && r.callID == "q" && r.cseq?.number == 5)
        #expect(SIPMessageParser.errorResponse(for: Array("SIP/2.0 200 OK\r\nVia: x\r\n\r\n".utf8), error: .empty) == nil)
        #expect(SIPMessageParser.errorResponse(for: Array("OPTIONS x\r\nFrom: y\r\n\r\n".utf8), error: .empty) == nil)
    }
}
