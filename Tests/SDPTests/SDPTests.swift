import Foundation
import SDP
import Testing

/// Joins lines with CRLF, the SDP line end.
private func sdp(_ lines: String...) -> String { lines.map { $0 + "\r\n" }.joined() }

/// The SDP body of most RFC 4475 messages.
private let rfc4475SDP = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"

/// What Asterisk (chan_pjsip) offers for a PCMA/PCMU phone with RFC 4733 DTMF.
private let asteriskSDP = sdp(
    "v=0", "o=- 1911419297 1911419297 IN IP4 192.0.2.10", "s=Asterisk", "c=IN IP4 192.0.2.10", "t=0 0",
    "m=audio 17812 RTP/AVP 8 0 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=maxptime:150", "a=sendrecv")

/// SIPp's uac_pcap offer.
private let sippSDP = sdp(
    "v=0", "o=user1 53655765 2353687637 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    "m=audio 6000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-11,16")

/// RFC 4566 §5's example plus every line type the model keeps verbatim, in RFC order.
private let everyLineType = sdp(
    "v=0", "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5", "s=SDP Seminar",
    "i=A Seminar on the session description protocol", "u=http://www.example.com/seminars/sdp.pdf",
    "e=j.doe@example.com (Jane Doe)", "p=+1 617 555-6011", "c=IN IP4 224.2.17.12/127", "b=CT:128",
    "t=2873397496 2873404696", "r=7d 1h 0 25h", "t=2873397500 0", "z=2882844526 -1h 2898848070 0",
    "k=clear:secret", "x=a type no RFC defines", "a=recvonly",
    "m=audio 49170 RTP/AVP 0", "i=voice", "b=AS:64", "k=prompt", "a=rtpmap:0 PCMU/8000",
    "m=video 51372/2 RTP/AVP 99", "a=rtpmap:99 h263-1998/90000")

private let ipv6Offer = sdp(
    "v=0", "o=alice 2890844526 2890844526 IN IP6 2001:db8::10", "s=-", "c=IN IP6 2001:db8::10", "t=0 0",
    "m=audio 49170 RTP/AVP 8", "c=IN IP6 2001:db8::11", "a=rtpmap:8 PCMA/8000")

private let goodBodies = [rfc4475SDP, asteriskSDP, sippSDP, everyLineType, ipv6Offer]

/// The first five lines of a valid description, for the error cases (so their lines start at 6).
private let head = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0")

@Suite struct ParsingTests {
    @Test func rfc4475Body() throws {
        let s = try SessionDescription(parsing: rfc4475SDP)
        #expect(s.origin == SDPOrigin(username: "mhandley", sessionID: "29739", sessionVersion: 7_272_939,
                                      addrType: "IP4", address: "192.0.2.5"))
        #expect(s.sessionName == "-" && s.timing == SDPTiming(start: 0, stop: 0) && s.version == 0)
        #expect(s.connection == SDPConnection(addrType: "IP4", address: "192.0.2.5"))
        #expect(s.media.map(\.media) == ["audio", "video"])
        #expect(s.media[0].port == 49217 && s.media[0].proto == "RTP/AVP" && s.media[0].formats == ["0", "12"])
        // Static payload types need no rtpmap (RFC 3551 §6); a malformed rtpmap gives no mapping at all.
        #expect(s.media[0].rtpMap(payloadType: 0) == RTPMap(payloadType: 0, encoding: "PCMU", clockRate: 8000))
        #expect(s.media[0].rtpMap(payloadType: 12)?.encoding == "QCELP")
        #expect(s.media[1].attributes == [SDPAttribute("rtpmap", "31 LPC")])
        #expect(s.media[1].rtpMap(payloadType: 31) == nil && s.media[1].rtpMaps.isEmpty)
        #expect(s.serialized() == rfc4475SDP)
    }

    /// Every SDP body in the RFC 4475 fixtures: the well-formed ones parse and serialize back
    /// byte for byte; the three that are not valid SDP fail where they should.
    @Test func rfc4475Corpus() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/rfc4475")
        let expectedFailures: [String: SDPParseError] = [
            "test": .notAField(line: 2, text: "testing=123"),  // not from RFC 4475; its body is no SDP
            "mismatch02": .missing(type: "s"),                 // body has no s= and no t=
            "dblreq": .notAField(line: 7, text: "m =video 3227 RTP/AVP 31"),
        ]
        let marker = Array("\r\n\r\nv=0\r\n".utf8)
        var parsed = 0
        for folder in ["valid", "invalid"] {
            let dir = root.appendingPathComponent(folder)
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where file.hasSuffix(".dat") {
                let bytes = [UInt8](try Data(contentsOf: dir.appendingPathComponent(file)))
                // The last body starting with v=0 (dblreq.dat holds two messages).
                guard let start = (0...max(0, bytes.count - marker.count)).last(where: { bytes[$0...].starts(with: marker) })
                else { continue }
                let body = Array(bytes[(start + 4)...])
                let name = String(file.dropLast(4))
                if let error = expectedFailures[name] {
                    #expect(throws: error, "\(name)") { try SessionDescription(parsing: body) }
                    continue
                }
                let s = try SessionDescription(parsing: body)
                var text = String(decoding: body, as: UTF8.self)
                while text.hasSuffix("\r\n\r\n") { text.removeLast() }  // multi01 pads the body
                #expect(s.serialized() == text, "\(name)")
                parsed += 1
            }
        }
        #expect(parsed >= 15)
    }

    @Test func asteriskOffer() throws {
        let s = try SessionDescription(parsing: asteriskSDP)
        let audio = try #require(s.media.first)
        #expect(audio.port == 17812 && audio.payloadTypes == [8, 0, 101])
        #expect(audio.rtpMaps == [RTPMap(payloadType: 8, encoding: "PCMA", clockRate: 8000),
                                  RTPMap(payloadType: 0, encoding: "PCMU", clockRate: 8000),
                                  RTPMap(payloadType: 101, encoding: "telephone-event", clockRate: 8000)])
        #expect(audio.fmtp(payloadType: 101) == "0-16" && audio.fmtp(payloadType: 8) == nil)
        #expect(audio.ptime == 20 && audio.attribute(named: "maxptime")?.value == "150")
        #expect(audio.direction == .sendrecv && s.direction == nil && s.direction(of: audio) == .sendrecv)
        #expect(s.serialized() == asteriskSDP)
    }

    @Test func sippOffer() throws {
        let s = try SessionDescription(parsing: sippSDP)
        #expect(s.media[0].fmtp(payloadType: 101) == "0-11,16" && s.media[0].ptime == nil)
        #expect(s.direction(of: s.media[0]) == .sendrecv)  // no attribute anywhere: sendrecv (RFC 3264 §5.1)
        #expect(s.serialized() == sippSDP)
    }

    @Test func ipv6Connection() throws {
        let s = try SessionDescription(parsing: ipv6Offer)
        #expect(s.origin.addrType == "IP6" && s.origin.address == "2001:db8::10")
        #expect(s.connection == SDPConnection(addrType: "IP6", address: "2001:db8::10"))
        #expect(s.media[0].connection == SDPConnection(netType: "IN", addrType: "IP6", address: "2001:db8::11"))
        #expect(s.serialized() == ipv6Offer)
    }

    @Test func acceptsLFLineEnds() throws {
        let lf = asteriskSDP.replacingOccurrences(of: "\r\n", with: "\n")
        let s = try SessionDescription(parsing: lf)
        #expect(s == (try SessionDescription(parsing: asteriskSDP)))
        #expect(s.serialized() == asteriskSDP)
        // Mixed line ends, no final line end.
        let mixed = try SessionDescription(parsing: "v=0\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\r\nm=audio 4000 RTP/AVP 8")
        #expect(mixed.media.first?.formats == ["8"])
    }

    @Test func unknownLinesRoundTrip() throws {
        let s = try SessionDescription(parsing: everyLineType)
        #expect(s.otherLines.map { "\($0.type)" }.joined() == "iuepr" + "tzkx")
        #expect(s.otherLines.last == SDPLine(type: "x", value: "a type no RFC defines"))
        #expect(s.timing == SDPTiming(start: 2_873_397_496, stop: 2_873_404_696))
        #expect(s.bandwidths == [SDPBandwidth(type: "CT", value: 128)])
        #expect(s.connection?.address == "224.2.17.12/127")
        #expect(s.media[0].otherLines == [SDPLine(type: "i", value: "voice"), SDPLine(type: "k", value: "prompt")])
        #expect(s.media[0].bandwidths == [SDPBandwidth(type: "AS", value: 64)])
        #expect(s.media[1].port == 51372 && s.media[1].portCount == 2)
        #expect(s.direction(of: s.media[1]) == .recvonly)  // session-level attribute applies
        #expect(s.serialized() == everyLineType)
    }

    /// Lines out of RFC 4566 §5 order come out in order, and parsing that gives the same value.
    @Test func outOfOrderLinesAreNormalised() throws {
        let messy = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "a=tool:x", "k=clear:k", "t=0 0", "i=info",
                        "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 8", "a=ptime:20", "k=prompt", "i=voice")
        let s = try SessionDescription(parsing: messy)
        let out = s.serialized()
        #expect(out == sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "i=info", "c=IN IP4 192.0.2.1", "t=0 0",
                           "k=clear:k", "a=tool:x", "m=audio 4000 RTP/AVP 8", "i=voice", "k=prompt", "a=ptime:20"))
        #expect(try SessionDescription(parsing: out) == s)
    }

    @Test func buildsFromScratch() throws {
        let answer = SessionDescription(
            origin: SDPOrigin(sessionID: "42", sessionVersion: 1, addrType: "IP4", address: "203.0.113.1"),
            connection: SDPConnection(address: "203.0.113.1"),
            media: [MediaDescription(port: 30000, formats: ["8", "101"],
                                     attributes: [SDPAttribute("rtpmap", "8 PCMA/8000"),
                                                  SDPAttribute("rtpmap", RTPMap(payloadType: 101, encoding: "telephone-event", clockRate: 8000).value),
                                                  SDPAttribute("fmtp", "101 0-16"), SDPAttribute("ptime", "20"),
                                                  SDPAttribute("sendrecv")])])
        let text = answer.serialized()
        #expect(text == sdp("v=0", "o=- 42 1 IN IP4 203.0.113.1", "s=-", "c=IN IP4 203.0.113.1", "t=0 0",
                            "m=audio 30000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
                            "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv"))
        #expect(try SessionDescription(parsing: text) == answer)
    }

    @Test func rtpMapValues() {
        #expect(RTPMap("96 opus/48000/2") == RTPMap(payloadType: 96, encoding: "opus", clockRate: 48000, channels: 2))
        #expect(RTPMap("96 opus/48000/2")?.value == "96 opus/48000/2")
        #expect(RTPMap("8 PCMA/8000")?.value == "8 PCMA/8000")
        for bad in ["31 LPC", "x PCMA/8000", "128 PCMA/8000", "8 PCMA/", "8 /8000", "8 PCMA/0", "8 PCMA/8000/0", "8 PCMA/8000/2/1", "+8 PCMA/8000", "8"] {
            #expect(RTPMap(bad) == nil, "\(bad)")
        }
        #expect(RTPMap.staticPayloadType(8)?.encoding == "PCMA" && RTPMap.staticPayloadType(96) == nil)
    }
}

@Suite struct ErrorTests {
    static let cases: [(String, SDPParseError)] = [
        ("", .versionNotFirst),
        ("\r\n\r\n", .versionNotFirst),
        ("o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n", .versionNotFirst),
        ("v=1\r\n", .unsupportedVersion("1")),
        (head + "v=0\r\n", .misplaced(line: 6, type: "v")),
        (head + "m=audio 4000\r\n", .tooFewFields(line: 6, type: "m", needed: 4, found: 2)),
        ("v=0\r\no=- 1 IN IP4 192.0.2.1\r\n", .tooFewFields(line: 2, type: "o", needed: 6, found: 5)),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1 x\r\n", .tooManyFields(line: 2, type: "o", allowed: 6, found: 7)),
        ("v=0\r\no=- 1 x IN IP4 192.0.2.1\r\n", .invalidValue(line: 2, type: "o", field: "session version", value: "x")),
        ("v=0\r\no=- 1 -1 IN IP4 192.0.2.1\r\n", .invalidValue(line: 2, type: "o", field: "session version", value: "-1")),
        ("v=0\r\no=- 1 18446744073709551616 IN IP4 192.0.2.1\r\n",
         .invalidValue(line: 2, type: "o", field: "session version", value: "18446744073709551616")),
        ("v=0\r\nc=IN IP4\r\n", .tooFewFields(line: 2, type: "c", needed: 3, found: 2)),
        ("v=0\r\nt=0\r\n", .tooFewFields(line: 2, type: "t", needed: 2, found: 1)),
        ("v=0\r\nt=now 0\r\n", .invalidValue(line: 2, type: "t", field: "start time", value: "now")),
        (head + "m=audio x RTP/AVP 0\r\n", .invalidValue(line: 6, type: "m", field: "port", value: "x")),
        (head + "m=audio 65536 RTP/AVP 0\r\n", .invalidValue(line: 6, type: "m", field: "port", value: "65536")),
        (head + "m=audio 4000/0 RTP/AVP 0\r\n", .invalidValue(line: 6, type: "m", field: "port count", value: "4000/0")),
        (head + "m=audio 4000/ RTP/AVP 0\r\n", .invalidValue(line: 6, type: "m", field: "port count", value: "")),
        (head + "b=AS\r\n", .invalidValue(line: 6, type: "b", field: "bandwidth", value: "AS")),
        (head + "b=AS:lots\r\n", .invalidValue(line: 6, type: "b", field: "bandwidth", value: "lots")),
        (head + "a=\r\n", .invalidValue(line: 6, type: "a", field: "attribute name", value: "")),
        (head + "a=:x\r\n", .invalidValue(line: 6, type: "a", field: "attribute name", value: ":x")),
        (head + "m =video 3227 RTP/AVP 31\r\n", .notAField(line: 6, text: "m =video 3227 RTP/AVP 31")),
        (head + "testing=123\r\n", .notAField(line: 6, text: "testing=123")),
        (head + "1=x\r\n", .notAField(line: 6, text: "1=x")),
        (head + "=x\r\n", .notAField(line: 6, text: "=x")),
        (head + "\r\na=x\r\n", .notAField(line: 6, text: "")),
        (head + "a\r\n", .notAField(line: 6, text: "a")),
        (head + "i=a\u{0}b\r\n", .controlCharacter(line: 6)),
        (head + "i=a\rb\r\n", .controlCharacter(line: 6)),
        (head + "o=- 1 1 IN IP4 192.0.2.1\r\n", .duplicate(line: 6, type: "o")),
        (head + "s=again\r\n", .duplicate(line: 6, type: "s")),
        (head + "c=IN IP4 192.0.2.2\r\n", .duplicate(line: 6, type: "c")),
        (head + "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.2\r\nc=IN IP4 192.0.2.3\r\n", .duplicate(line: 8, type: "c")),
        (head + "m=audio 4000 RTP/AVP 0\r\ns=late\r\n", .misplaced(line: 7, type: "s")),
        (head + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", .misplaced(line: 7, type: "t")),
        ("v=0\r\ns=-\r\nt=0 0\r\n", .missing(type: "o")),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", .missing(type: "s")),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", .missing(type: "t")),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nm=video 4002 RTP/AVP 31\r\n",
         .noConnection(line: 7)),
    ]

    @Test(arguments: cases) func rejects(_ input: String, _ error: SDPParseError) {
        #expect(throws: error) { try SessionDescription(parsing: input) }
    }

    @Test func invalidUTF8NamesTheLine() {
        #expect(throws: SDPParseError.invalidUTF8(line: 6)) { try SessionDescription(parsing: Array(head.utf8) + [0x69, 0x3D, 0xFF, 0x0A]) }
    }

    @Test func limits() throws {
        #expect(throws: SDPParseError.tooLarge(size: 65_537, limit: 65_536)) {
            try SessionDescription(parsing: [UInt8](repeating: 0x61, count: 65_537))
        }
        #expect(throws: SDPParseError.tooManyLines(limit: 1_024)) {
            try SessionDescription(parsing: head + String(repeating: "a=x\r\n", count: 1_020))
        }
        _ = try SessionDescription(parsing: head + String(repeating: "a=x\r\n", count: 1_019))
        let m = "m=audio 4000 RTP/AVP 0\r\n"
        _ = try SessionDescription(parsing: head + String(repeating: m, count: 64))
        #expect(throws: SDPParseError.tooManyMedia(line: 70, limit: 64)) {
            try SessionDescription(parsing: head + String(repeating: m, count: 65))
        }
    }

    @Test func messagesNameTheLineAndTheProblem() {
        #expect(SDPParseError.tooFewFields(line: 3, type: "m", needed: 4, found: 2).description
            == "line 3: m= line needs at least 4 fields, found 2")
        #expect(SDPParseError.invalidValue(line: 6, type: "m", field: "port", value: "x").description
            == "line 6: m= port 'x' is not valid")
        #expect(SDPParseError.notAField(line: 7, text: "m =video").description
            == "line 7: 'm =video' is not of the form x=value with a one-letter type")
        #expect(SDPParseError.misplaced(line: 7, type: "t").description == "line 7: t= line must come before the first m= line")
        #expect(SDPParseError.duplicate(line: 6, type: "o").description == "line 6: second o= line where only one is allowed")
        #expect(SDPParseError.versionNotFirst.description == "line 1: SDP must begin with v=0")
        #expect(SDPParseError.missing(type: "s").description == "SDP has no s= line (v=, o=, s= and t= are required)")
        // Every line-specific error starts with its line number.
        for (_, error) in Self.cases where error != .versionNotFirst && !"\(error)".hasPrefix("SDP has no") {
            #expect(error.description.hasPrefix("line "), "\(error)")
        }
    }

    /// Fuzz-like: random line edits of good bodies never trap, and whatever parses
    /// serializes to text that parses back to the same value.
    @Test func mutatedBodiesReparseToTheSameValue() throws {
        var rng = SplitMix(seed: 4566)
        let junk = ["", "a", "=", "x=", "m=audio", "c=IN IP4", "t=0 0", "o=- 1 1 IN IP4 a", "a=rtpmap:8", "b=AS:1",
                    "m=audio 1/2 RTP/AVP 8", "a=sendonly", "s= ", "v=0", "\u{0}", "k=é"]
        var accepted = 0
        for i in 0..<3_000 {
            var lines = goodBodies[i % goodBodies.count].split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
            for _ in 0...rng.below(3) {
                let at = rng.below(lines.count)
                switch rng.below(4) {
                case 0: lines.remove(at: at)
                case 1: lines.insert(lines[at], at: rng.below(lines.count))
                case 2: lines.insert(junk[rng.below(junk.count)], at: at)
                default: lines[at] = String(lines[at].prefix(rng.below(lines[at].count + 1)))
                }
                if lines.isEmpty { lines = ["v=0"] }
            }
            guard let s = try? SessionDescription(parsing: lines.joined(separator: i % 2 == 0 ? "\r\n" : "\n")) else { continue }
            accepted += 1
            #expect(try SessionDescription(parsing: s.serialized()) == s)
        }
        #expect(accepted > 100)
    }
}

@Suite struct OfferAnswerTests {
    @Test func directions() throws {
        var s = try SessionDescription(parsing: everyLineType)
        #expect(s.direction == .recvonly && s.media.map { s.direction(of: $0) } == [.recvonly, .recvonly])
        s.media[1].direction = .inactive  // media level overrides the session level
        #expect(s.media.map { s.direction(of: $0) } == [.recvonly, .inactive])
        s.flipDirections()
        #expect(s.direction == .sendonly && s.media.map { s.direction(of: $0) } == [.sendonly, .inactive])
        #expect(SDPDirection.allCases.map(\.flipped) == [.sendrecv, .recvonly, .sendonly, .inactive])

        // The setter replaces in place: the attribute keeps its position.
        var a = try SessionDescription(parsing: asteriskSDP)
        a.media[0].attributes.append(SDPAttribute("rtcp-mux"))
        a.media[0].direction = .sendonly
        #expect(a.media[0].attributes.suffix(2) == [SDPAttribute("sendonly"), SDPAttribute("rtcp-mux")])
        a.media[0].direction = nil
        #expect(a.direction(of: a.media[0]) == .sendrecv && a.media[0].attribute(named: "sendonly") == nil)
        a.direction = .recvonly
        #expect(a.attributes == [SDPAttribute("recvonly")] && a.direction(of: a.media[0]) == .recvonly)
    }

    @Test func keepOnlyPCMAAndTelephoneEvent() throws {
        var s = try SessionDescription(parsing: asteriskSDP)
        let kept = s.media[0].keepPayloadTypes { map in
            map.encoding.uppercased() == "PCMA" || (map.encoding.lowercased() == "telephone-event" && map.clockRate == 8000)
        }
        #expect(kept && s.media[0].formats == ["8", "101"])
        #expect(s.serialized() == sdp(
            "v=0", "o=- 1911419297 1911419297 IN IP4 192.0.2.10", "s=Asterisk", "c=IN IP4 192.0.2.10", "t=0 0",
            "m=audio 17812 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16", "a=ptime:20", "a=maxptime:150", "a=sendrecv"))

        s.media[0].keepPayloadTypes([8])
        #expect(s.media[0].formats == ["8"] && s.media[0].fmtp(payloadType: 101) == nil)
        #expect(s.media[0].attributes.filter { $0.name == "rtpmap" } == [SDPAttribute("rtpmap", "8 PCMA/8000")])
    }

    @Test func keepPayloadTypesDropsPerFormatAttributesOnly() throws {
        var m = MediaDescription(port: 4000, formats: ["0", "8", "96"], attributes: [
            SDPAttribute("rtpmap", "96 opus/48000/2"), SDPAttribute("fmtp", "96 useinbandfec=1"),
            SDPAttribute("rtcp-fb", "96 nack"), SDPAttribute("rtcp-fb", "* trr-int 100"), SDPAttribute("ptime", "20"),
        ])
        let kept = m.keepPayloadTypes { $0.encoding == "PCMU" || $0.encoding == "PCMA" }  // static types, no rtpmap
        #expect(kept && m.formats == ["0", "8"])
        #expect(m.attributes == [SDPAttribute("rtcp-fb", "* trr-int 100"), SDPAttribute("ptime", "20")])
    }

    @Test func keepingNothingChangesNothing() throws {
        var s = try SessionDescription(parsing: asteriskSDP)
        let before = s
        let keptG729 = s.media[0].keepPayloadTypes([18])
        let keptByName = s.media[0].keepPayloadTypes { $0.encoding == "G729" }
        #expect(!keptG729 && !keptByName)
        #expect(s == before)
        s.media[0].reject()  // RFC 3264 §6: decline the stream with port 0
        #expect(s.serialized().contains("\r\nm=audio 0 RTP/AVP 8 0 101\r\n"))
    }

    /// What the B2BUA does to an offer before relaying it: media through the relay, PCMA only.
    @Test func anchorMedia() throws {
        var s = try SessionDescription(parsing: asteriskSDP + "a=rtcp:17813 IN IP4 192.0.2.10\r\n")
        s.setConnectionAddress("203.0.113.7")
        s.media[0].setPort(40000)
        s.media[0].keepPayloadTypes { ["pcma", "telephone-event"].contains($0.encoding.lowercased()) }
        s.media[0].ptime = 20
        s.bumpVersion()
        #expect(s.serialized() == sdp(
            "v=0", "o=- 1911419297 1911419298 IN IP4 192.0.2.10", "s=Asterisk", "c=IN IP4 203.0.113.7", "t=0 0",
            "m=audio 40000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16", "a=ptime:20", "a=maxptime:150", "a=sendrecv"))

        var v6 = try SessionDescription(parsing: ipv6Offer)
        v6.setConnectionAddress("203.0.113.7")  // session and media c= both move, IP6 → IP4
        #expect(v6.connection == SDPConnection(addrType: "IP4", address: "203.0.113.7") && v6.media[0].connection == v6.connection)
        v6.setConnectionAddress("2001:db8::7")
        #expect(v6.serialized().components(separatedBy: "c=IN IP6 2001:db8::7\r\n").count == 3)
        v6.media[0].ptime = nil
        v6.origin.sessionVersion = .max
        v6.bumpVersion()  // wraps rather than traps
        #expect(v6.origin.sessionVersion == 0 && v6.media[0].ptime == nil)
    }
}

/// Deterministic generator for the mutation test (SplitMix64).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}
