import SDP
import Testing

let rfc4475Body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"

let pbxOffer = """
    v=0\r
    o=- 1699999999 1699999999 IN IP4 192.0.2.10\r
    s=call\r
    i=a call\r
    c=IN IP4 192.0.2.10\r
    b=AS:84\r
    t=0 0\r
    a=sendrecv\r
    m=audio 16384 RTP/AVP 8 0 101\r
    a=rtpmap:8 PCMA/8000\r
    a=rtpmap:0 PCMU/8000\r
    a=rtpmap:101 telephone-event/8000\r
    a=fmtp:101 0-16\r
    a=ptime:20\r

    """

@Suite struct SDPTests {
    @Test func rfc4475BodyParses() throws {
        let s = try SessionDescription(parsing: rfc4475Body)
        #expect(s.origin.username == "mhandley" && s.origin.sessionVersion == 7272939)
        #expect(s.connection == SDPConnection(addrType: "IP4", address: "192.0.2.5"))
        #expect(s.media.map(\.media) == ["audio", "video"])
        #expect(s.media[0].formats == ["0", "12"])
        #expect(s.media[1].attributes == [SDPAttribute("rtpmap", "31 LPC")])
        #expect(s.media[1].rtpMaps.isEmpty)  // "31 LPC" has no clock rate, so it is not a usable rtpmap
        #expect(s.serialized() == rfc4475Body)
    }

    @Test func typicalOfferAndRoundTrip() throws {
        let s = try SessionDescription(parsing: pbxOffer)
        let audio = try #require(s.media.first)
        #expect(audio.port == 16384)
        #expect(audio.rtpMaps.map(\.encoding) == ["PCMA", "PCMU", "telephone-event"])
        #expect(audio.fmtp(101) == "0-16")
        #expect(audio.ptime == 20)
        #expect(s.direction == .sendrecv && s.direction(ofMedia: 0) == .sendrecv)
        #expect(s.otherLines.map(\.type) == ["i", "b"])
        #expect(try SessionDescription(parsing: s.serialized()) == s)
        #expect(s.serialized() == pbxOffer)
    }

    @Test func anchoringHelpers() throws {
        var s = try SessionDescription(parsing: pbxOffer)
        s.setConnectionAddress("2001:db8::5")
        s.media[0].port = 30000
        s.media[0].keepPayloadTypes([8, 101])
        s.media[0].direction = SDPDirection.sendonly.answering
        s.bumpVersion()
        let out = s.serialized()
        #expect(out.contains("c=IN IP6 2001:db8::5\r\n"))
        #expect(out.contains("o=- 1699999999 1700000000 IN IP6 2001:db8::5\r\n"))
        #expect(out.contains("m=audio 30000 RTP/AVP 8 101\r\n"))
        #expect(!out.contains("PCMU"))
        #expect(out.contains("a=fmtp:101 0-16"))
        #expect(s.direction(ofMedia: 0) == .recvonly)
        #expect(SDPDirection.recvonly.answering == .sendonly && SDPDirection.inactive.answering == .inactive)
    }

    @Test func acceptsLFLineEnds() throws {
        let s = try SessionDescription(parsing: "v=0\no=- 1 2 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 8\n")
        #expect(s.media.first?.formats == ["8"])
    }

    @Test func errorsNameTheLine() {
        #expect(throws: SDPParseError.missingVersion) { try SessionDescription(parsing: "o=- 1 1 IN IP4 1.2.3.4\r\n") }
        #expect(throws: SDPParseError.unsupportedVersion("1")) { try SessionDescription(parsing: "v=1\r\n") }
        #expect(throws: SDPParseError.malformedLine(line: 3, reason: "m= line needs at least 4 fields (media port proto fmt)")) {
            try SessionDescription(parsing: "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000\r\n")
        }
        #expect(throws: SDPParseError.malformedLine(line: 7, reason: "'m =video 3227 RTP/AVP 31' is not of the form x=value")) {
            // The SDP of RFC 4475's dblreq.dat (a deliberately bad second message).
            try SessionDescription(parsing: "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.15\r\ns=-\r\nc=IN IP4 192.0.2.15\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm =video 3227 RTP/AVP 31\r\n")
        }
        #expect(throws: SDPParseError.malformedLine(line: 3, reason: "m= port 'x' is not a port number")) {
            try SessionDescription(parsing: "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n")
        }
        #expect(throws: SDPParseError.malformedLine(line: 2, reason: "o= session version 'v' is not a number")) {
            try SessionDescription(parsing: "v=0\r\no=- 1 v IN IP4 1.2.3.4\r\n")
        }
        #expect(throws: SDPParseError.malformedLine(line: 2, reason: "no o= line")) { try SessionDescription(parsing: "v=0\r\ns=-\r\n") }
        #expect(throws: SDPParseError.invalidUTF8) { try SessionDescription(parsing: [0x76, 0x3D, 0x30, 0x0A, 0xFF]) }
        #expect(throws: SDPParseError.tooLarge(size: 70_000, limit: 65_536)) { try SessionDescription(parsing: [UInt8](repeating: 0x61, count: 70_000)) }
    }
}
