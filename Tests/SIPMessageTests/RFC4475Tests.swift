import SIPMessage
import Testing

// One test per RFC 4475 message. The RFC section decides the verdict, not the
// folder the file sits in (Tests/Fixtures/README.md).

@Suite("RFC 4475 §3.1.1 valid messages")
struct RFC4475ValidTests {
    @Test func wsinv() throws {  // §3.1.1.1 short tortuous INVITE
        let m = try parsed("wsinv")
        #expect(m.method == .invite)
        #expect(m.requestURI == "sip:vivekg@chair-dnrc.example.com;unknownparam")
        #expect(m.to?.tag == "1918181833n")
        #expect(m.from?.displayName == "J Rosenberg \\\"")
        #expect(m.from?.tag == "98asjd8")
        #expect(m.maxForwards == 68)
        #expect(m.cseq == SIPCSeq(9, .invite))
        #expect(m.firstValue("NewFangledHeader") == "newfangled value continued newfangled value")
        #expect(m.firstValue("UnknownHeaderWithUnusualValue") == ";;,,;;,;")
        #expect(m.firstValue(.subject) == "")
        let vias = m.vias
        #expect(vias.count == 3)
        #expect(vias.map(\.transport) == ["UDP", "TCP", "UDP"])
        #expect(vias.map(\.host) == ["192.0.2.2", "spindle.example.com", "192.168.255.111"])
        #expect(vias.map(\.branch) == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"])
        #expect(m.routes.first?.uri.host == "services.example.com")
        #expect(m.routes.first?.uri.hasLooseRouting == true)
        let contact = try #require(m.contacts.first?.address)
        #expect(contact.displayName == "Quoted string \"\"")
        #expect(contact.parameters.value("newparam") == .some("newvalue"))
        #expect(contact.parameters.value("secondparam") == .some(nil))
        #expect(contact.parameters.value("q") == .some("0.33"))
        #expect(m.contentLength == 150)
        #expect(m.bodyCount == 150)
        #expect(uas.check(m) == nil)
    }

    @Test func intmeth() throws {  // §3.1.1.2 wide range of valid characters
        let m = try parsed("intmeth")
        #expect(m.method == SIPMethod("!interesting-Method0123456789_*+`.%indeed'~"))
        let uri = try #require(m.parsedRequestURI)
        #expect(uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        #expect(uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        #expect(uri.host == "example.com")
        #expect(m.topVia?.branch == "z9hG4bK-.!%66*_+`'~")
        #expect(m.to?.displayName == "BEL:\u{07} NUL:\u{00} DEL:\u{7F}")
        #expect(m.from?.displayName == "token1~` token2'+_ token3*%!.-")
        #expect(m.from?.tag == "_token~1'+`*%!-.")
        #expect(m.callID == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
        #expect(m.cseq?.number == 139122385)
        #expect(m.maxForwards == 255)
        #expect(m.firstValue("extensionHeader-!.%*+_`'~") == "\u{FEFF}大停電")
    }

    @Test func esc01() throws {  // §3.1.1.3 valid use of the % escaping mechanism
        let m = try parsed("esc01")
        let ruri = try #require(m.parsedRequestURI)
        #expect(ruri.user == "sips%3Auser%40example.com")
        #expect(ruri.decodedUser == "sips:user@example.com")
        #expect(ruri.host == "example.net")
        #expect(m.to?.uri.decodedUser == "user")
        #expect(m.from?.uri.decodedUser == "I have spaces")
        let contact = try #require(m.contacts.first?.address)
        #expect(contact.uri.decodedUser == "caller")
        #expect(contact.uri.parameters.map(\.name) == ["%6C%72", "n%61me"])
        #expect(m.contentType == "application/sdp")
        #expect(m.callID == "esc01.239409asdfakjkn23onasd0-3234")
    }

    @Test func escnull() throws {  // §3.1.1.4 escaped nulls in URIs
        let m = try parsed("escnull")
        #expect(m.method == .register)
        #expect(m.to?.uri.decodedUser == "null-\u{00}-null")
        let contacts = m.contacts.compactMap(\.address)
        #expect(contacts.count == 2)
        #expect(contacts.map { $0.uri.decodedUser } == ["\u{00}", "\u{00}\u{00}"])
        #expect(m.contentLength == 0)
    }

    @Test func esc02() throws {  // §3.1.1.5 use of % when it is not an escape
        let m = try parsed("esc02")
        #expect(m.method == SIPMethod("RE%47IST%45R"))
        #expect(m.method != .register)
        #expect(m.cseq?.method == SIPMethod("RE%47IST%45R"))
        #expect(m.to?.displayName == "%Z%45")
        #expect(m.topVia?.branch == "z9hG4bK209%fzsnel234")
        // "C%6Fntact" is an extension header, not Contact.
        #expect(m.count(.contact) == 2)
        #expect(m.firstValue("C%6Fntact") == "<sip:alias2@host2.example.com>")
    }

    @Test func lwsdisp() throws {  // §3.1.1.6 no LWS between display name and <
        let m = try parsed("lwsdisp")
        #expect(m.from?.displayName == "caller")
        #expect(m.from?.uri.user == "caller")
        #expect(m.from?.tag == "323")
    }

    @Test func longreq() throws {  // §3.1.1.7 long values in header fields
        let m = try parsed("longreq")
        #expect(m.method == .invite)
        #expect(m.to?.displayName?.hasPrefix("I have a user name of extremeextreme") == true)
        #expect(m.to?.uri.port == 6000)
        #expect(m.from?.tag?.count ?? 0 > 100)
        #expect(m.callID?.hasPrefix("longreq.onereallyreally") == true)
        #expect(m.vias.count == 34)
        #expect(m.firstValue("Unknown-LongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLong-Name")?.hasPrefix("unknown-longlong") == true)
        #expect(m.bodyCount == m.contentLength)
    }

    @Test func dblreq() throws {  // §3.1.1.8 extra trailing octets in a UDP datagram
        let m = try parsed("dblreq")
        #expect(m.method == .register)
        #expect(m.callID == "dblreq.0ha0isndaksdj99sdfafnl3lk233412")
        #expect(m.bodyCount == 0)  // the INVITE after Content-Length is ignored
    }

    @Test func semiuri() throws {  // §3.1.1.9 semicolon-separated parameters in URI user part
        let m = try parsed("semiuri")
        let uri = try #require(m.parsedRequestURI)
        #expect(uri.user == "user;par=u%40example.net")
        #expect(uri.host == "example.com")
        #expect(uri.parameters.isEmpty)
        #expect(m.splitValues(.accept) == ["application/sdp", "application/pkcs7-mime", "multipart/mixed",
                                          "multipart/signed", "message/sip", "message/sipfrag"])
    }

    @Test func transports() throws {  // §3.1.1.10 varied and unknown transport types
        let m = try parsed("transports")
        #expect(m.vias.map(\.transport) == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])
        #expect(m.callID == "transports.kijh4akdnaqjkwendsasfdj")
    }

    @Test func mpart01() throws {  // §3.1.1.11 multipart MIME message, binary body kept as bytes
        let bytes = try torture("mpart01")
        let m = try SIPMessage(parsing: bytes)
        #expect(m.method == .message)
        #expect(m.contentType == "multipart/mixed")
        #expect(m.bodyCount == 553)
        #expect(m.body == Array(bytes.suffix(553)))
        #expect(m.topVia?.rport == .some(nil))
        #expect(m.firstValue(.identity)?.hasPrefix("r5mwreLuyDRYBi/0TiPwEsY3rEVsk") == true)
    }

    @Test func unreason() throws {  // §3.1.1.12 unusual reason phrase
        let m = try parsed("unreason")
        #expect(m.statusCode == 200)
        #expect(m.reasonPhrase?.hasPrefix("= 2**3 * 5**2 но сто девяносто девять") == true)
        #expect(m.bodyCount == 154)
    }

    @Test func noreason() throws {  // §3.1.1.13 empty reason phrase
        let m = try parsed("noreason")
        #expect(m.statusCode == 100)
        #expect(m.reasonPhrase == "")
    }
}

@Suite("RFC 4475 §3.1.2 invalid messages")
struct RFC4475InvalidTests {
    @Test func badinv01() throws {  // §3.1.2.1 extraneous header field separators
        let e = try #require(try rejection("badinv01"))
        #expect(e == .malformedHeader(name: "Via", reason: "empty parameter"))
        #expect(e.statusCode == 400)
    }

    @Test func clerr() throws {  // §3.1.2.2 Content-Length larger than message
        #expect(try rejection("clerr") == .bodyTruncated(declared: 9999, received: 154))
    }

    @Test func ncl() throws {  // §3.1.2.3 negative Content-Length
        #expect(try rejection("ncl") == .invalidContentLength("-999"))
    }

    @Test func scalar02() throws {  // §3.1.2.4 request scalar fields with overlarge values
        let e = try #require(try rejection("scalar02"))
        #expect(e == .malformedHeader(name: "CSeq", reason: "sequence number exceeds 2^32-1"))
        #expect(e.statusCode == 400)
    }

    @Test func scalarlg() throws {  // §3.1.2.5 response scalar fields with overlarge values
        #expect(try rejection("scalarlg") == .malformedHeader(name: "CSeq", reason: "sequence number exceeds 2^32-1"))
    }

    @Test func quotbal() throws {  // §3.1.2.6 unterminated quoted string in display name
        #expect(try rejection("quotbal") == .malformedHeader(name: "To", reason: "unterminated quoted string"))
    }

    @Test func ltgtruri() throws {  // §3.1.2.7 <> enclosing Request-URI
        #expect(try rejection("ltgtruri") == .invalidRequestURI("URI must start with a scheme"))
    }

    @Test func lwsruri() throws {  // §3.1.2.8 malformed SIP Request-URI (embedded LWS)
        #expect(try rejection("lwsruri") == .invalidRequestURI("white space inside the Request-URI"))
    }

    @Test func lwsstart() throws {  // §3.1.2.9 multiple SP separating Request-Line elements
        #expect(try rejection("lwsstart") == .malformedStartLine("more than one space between elements"))
    }

    @Test func trws() throws {  // §3.1.2.10 SP characters at end of Request-Line
        #expect(try rejection("trws") == .malformedStartLine("white space after the SIP version"))
    }

    @Test func escruri() throws {  // §3.1.2.11 escaped headers in SIP Request-URI
        #expect(try rejection("escruri") == .invalidRequestURI("URI headers are not allowed in a Request-URI"))
    }

    @Test func baddate() throws {  // §3.1.2.12 invalid time zone in Date header field
        #expect(try rejection("baddate") == .malformedHeader(name: "Date", reason: "time zone must be GMT"))
    }

    @Test func regbadct() throws {  // §3.1.2.13 failure to enclose name-addr URI in <>
        #expect(try rejection("regbadct") == .malformedHeader(name: "Contact", reason: "a URI with '?' or ',' must be enclosed in <>"))
    }

    @Test func badaspec() throws {  // §3.1.2.14 spaces within addr-spec
        #expect(try rejection("badaspec") == .malformedHeader(name: "To", reason: "white space inside <>"))
    }

    @Test func baddn() throws {  // §3.1.2.15 non-token characters in display name
        #expect(try rejection("baddn") == .malformedHeader(name: "From", reason: "display name must be a quoted string or tokens"))
    }

    @Test func badvers() throws {  // §3.1.2.16 unknown protocol version: 505
        let e = try #require(try rejection("badvers"))
        #expect(e == .unsupportedVersion("SIP/7.0"))
        #expect(e.statusCode == 505)
    }

    @Test func mismatch01() throws {  // §3.1.2.17 start line and CSeq method mismatch
        #expect(try rejection("mismatch01") == .cseqMethodMismatch(requestMethod: "OPTIONS", cseqMethod: "INVITE"))
    }

    @Test func mismatch02() throws {  // §3.1.2.18 unknown method with CSeq method mismatch
        #expect(try rejection("mismatch02") == .cseqMethodMismatch(requestMethod: "NEWMETHOD", cseqMethod: "INVITE"))
    }

    @Test func bigcode() throws {  // §3.1.2.19 overlarge response code
        #expect(try rejection("bigcode") == .invalidStatusCode("4294967301"))
    }
}

@Suite("RFC 4475 §3.2 transaction layer semantics")
struct RFC4475TransactionTests {
    @Test func badbranch() throws {  // §3.2.1 branch is exactly the magic cookie
        let m = try parsed("badbranch")
        #expect(m.method == .options)
        #expect(m.topVia?.branch == "z9hG4bK")
        #expect(uas.check(m) == nil)
    }
}

@Suite("RFC 4475 §3.3 application layer semantics")
struct RFC4475ApplicationTests {
    @Test func insuf() throws {  // §3.3.1 missing required header fields → 400
        let m = try parsed("insuf")
        #expect(m.to == nil && m.from == nil && m.callID == nil)
        #expect(uas.check(m)?.statusCode == 400)
        #expect(uas.check(m)?.reasonPhrase == "Bad Request (missing To header)")
    }

    @Test func unkscm() throws {  // §3.3.2 Request-URI with unknown scheme → 416
        let m = try parsed("unkscm")
        #expect(m.requestURI == "nobodyKnowsThisScheme:totallyopaquecontent")
        #expect(uas.check(m)?.statusCode == 416)
        #expect(proxy.check(m)?.statusCode == 416)
    }

    @Test func novelsc() throws {  // §3.3.3 Request-URI with known but atypical scheme → 416
        let m = try parsed("novelsc")
        #expect(m.parsedRequestURI?.scheme == "soap.beep")
        #expect(uas.check(m)?.statusCode == 416)
    }

    @Test func unksm2() throws {  // §3.3.4 unknown URI schemes in header fields
        let m = try parsed("unksm2")
        #expect(m.to?.uri.scheme == "isbn")
        #expect(m.from?.uri.scheme == "http")
        #expect(m.contacts.first?.address?.uri.scheme == "name")
        #expect(proxy.check(m) == nil)  // a proxy routes it like any other request
        #expect(registrar.check(m)?.statusCode == 400)  // a registrar needs a SIP AOR in To
    }

    @Test func bext01() throws {  // §3.3.5 proxy-require and require → 420 with Unsupported
        let m = try parsed("bext01")
        let r = try #require(uas.check(m))
        #expect(r.statusCode == 420)
        #expect(r.headers == [SIPParameter("Unsupported", "nothingSupportsThis, nothingSupportsThisEither")])
        let p = try #require(proxy.check(m))
        #expect(p.headers == [SIPParameter("Unsupported", "noProxiesSupportThis, norDoAnyProxiesSupportThis")])
    }

    @Test func invut() throws {  // §3.3.6 unknown Content-Type → 415 with Accept
        let m = try parsed("invut")
        #expect(m.contentType == "application/unknownformat")
        let r = try #require(uas.check(m))
        #expect(r.statusCode == 415)
        #expect(r.headers.first?.name == "Accept")
        #expect(proxy.check(m) == nil)
    }

    @Test func regaut01() throws {  // §3.3.7 unknown authorization scheme: parsed, left to the authenticator
        let m = try parsed("regaut01")
        #expect(m.firstValue(.authorization) == "NoOneKnowsThisScheme opaque-data=here")
        #expect(registrar.check(m) == nil)
        #expect(m.contentLength == 0)
    }

    @Test func multi01() throws {  // §3.3.8 multiple values in single-value header fields → 400
        let m = try parsed("multi01")
        #expect(m.count(.callID) == 2)
        #expect(uas.check(m)?.statusCode == 400)
        #expect(uas.check(m)?.reasonPhrase == "Bad Request (multiple To header fields)")
    }

    @Test func mcl01() throws {  // §3.3.9 multiple Content-Length values → 400
        let m = try parsed("mcl01")
        #expect(m.count(.contentLength) == 2)
        #expect(uas.check(m)?.reasonPhrase == "Bad Request (multiple Content-Length header fields)")
    }

    @Test func bcast() throws {  // §3.3.10 200 OK with broadcast Via: parsed; the top Via is what matters
        let m = try parsed("bcast")
        #expect(m.statusCode == 200)
        #expect(m.vias.map(\.host) == ["192.0.2.198", "255.255.255.255"])
    }

    @Test func zeromf() throws {  // §3.3.11 Max-Forwards 0 → 483 when forwarding
        let m = try parsed("zeromf")
        #expect(m.maxForwards == 0)
        #expect(proxy.check(m)?.statusCode == 483)
        #expect(uas.check(m) == nil)
    }

    @Test func cparam01() throws {  // §3.3.12 Contact header parameter (not URI parameter)
        let m = try parsed("cparam01")
        let c = try #require(m.contacts.first?.address)
        #expect(c.uri.user == "+19725552222")
        #expect(c.uri.parameters.isEmpty)
        #expect(c.parameters == [SIPParameter("unknownparam")])
    }

    @Test func cparam02() throws {  // §3.3.13 URI parameter inside <>
        let m = try parsed("cparam02")
        let c = try #require(m.contacts.first?.address)
        #expect(c.uri.parameters == [SIPParameter("unknownparam")])
        #expect(c.parameters.isEmpty)
    }

    @Test func regescrt() throws {  // §3.3.14 REGISTER with a URL escaped header in Contact
        let m = try parsed("regescrt")
        let c = try #require(m.contacts.first?.address)
        #expect(c.uri.headers == [SIPParameter("Route", "%3Csip:sip.example.com%3E")])
        #expect(registrar.check(m) == nil)
    }

    @Test func sdp01() throws {  // §3.3.15 unacceptable Accept offering → 406
        let m = try parsed("sdp01")
        #expect(uas.check(m)?.statusCode == 406)
    }
}

@Suite("RFC 4475 §3.4 backward compatibility")
struct RFC4475CompatibilityTests {
    @Test func inv2543() throws {  // §3.4.1 INVITE with RFC 2543 syntax
        let m = try parsed("inv2543")
        #expect(m.topVia?.branch == nil)
        #expect(m.topVia?.hasMagicCookie == false)
        #expect(m.maxForwards == nil)
        #expect(m.to?.uri.user == "+16505552222")
        // addr-spec without <>: ";user=phone" is a To parameter (RFC 3261 §20.10).
        #expect(m.to?.parameters.value("user") == .some("phone"))
        #expect(m.from?.uri.parameters.value("user") == .some("phone"))
        #expect(uas.check(m) == nil)
    }
}

@Suite("Not from RFC 4475")
struct OtherCorpusTests {
    @Test func testDat() throws {  // no SIP version on the request line
        #expect(try rejection("test") == .malformedStartLine("missing SIP version in request line"))
    }
}
