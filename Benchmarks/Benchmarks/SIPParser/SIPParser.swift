import Benchmark
import SIPMessage

// Typical messages as a carrier trunk sees them.
let inviteWithSDP = Array("""
    INVITE sip:447700900123@gw1.carrier.example:5060 SIP/2.0\r
    Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a0b1c2d3e4f5a6b7;rport\r
    Max-Forwards: 70\r
    Contact: <sip:920700@192.0.2.10:5060;transport=udp>\r
    To: <sip:447700900123@gw1.carrier.example>\r
    From: "Reception" <sip:441632960000@pbx.customer.example>;tag=3a7b1c9d\r
    Call-ID: 8f2a6c1e4b9d7f3a5c2e8b1d@192.0.2.10\r
    CSeq: 102 INVITE\r
    Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r
    Content-Type: application/sdp\r
    Supported: replaces, timer\r
    User-Agent: PBX 16.4.1\r
    X-simwood-tag: CUST001-AB384720\r
    Content-Length: 230\r
    \r
    v=0\r
    o=- 1699999999 1699999999 IN IP4 192.0.2.10\r
    s=call\r
    c=IN IP4 192.0.2.10\r
    t=0 0\r
    m=audio 16384 RTP/AVP 8 0 101\r
    a=rtpmap:8 PCMA/8000\r
    a=rtpmap:0 PCMU/8000\r
    a=rtpmap:101 telephone-event/8000\r
    a=fmtp:101 0-16\r
    a=ptime:20\r
    a=sendrecv\r

    """.utf8)

let registerWithAuth = Array("""
    REGISTER sip:sip.customer.example SIP/2.0\r
    Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK.8a1c3e5f7;rport\r
    Max-Forwards: 70\r
    From: <sip:8931440400000000001@sip.customer.example>;tag=a9c81e\r
    To: <sip:8931440400000000001@sip.customer.example>\r
    Call-ID: reg-4f1e9a7c2b@198.51.100.7\r
    CSeq: 21 REGISTER\r
    Contact: <sip:8931440400000000001@198.51.100.7:5060;ob>;expires=3600\r
    Authorization: Digest username="8931440400000000001", realm="sip.customer.example", nonce="Z2F0ZXdheS1ub25jZS0xNzAwMDAwMDAw", uri="sip:sip.customer.example", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001\r
    Expires: 3600\r
    User-Agent: Switchboard\r
    Content-Length: 0\r
    \r

    """.utf8)

let ok200 = Array("""
    SIP/2.0 200 OK\r
    Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a0b1c2d3e4f5a6b7;rport=5060;received=192.0.2.10\r
    Contact: <sip:447700900123@203.0.113.5:5060>\r
    To: <sip:447700900123@gw1.carrier.example>;tag=as6b2c9e1f\r
    From: "Reception" <sip:441632960000@pbx.customer.example>;tag=3a7b1c9d\r
    Call-ID: 8f2a6c1e4b9d7f3a5c2e8b1d@192.0.2.10\r
    CSeq: 102 INVITE\r
    Server: Carrier GW\r
    Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r
    Content-Length: 0\r
    \r

    """.utf8)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions, .throughput],
        timeUnits: .nanoseconds,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000
    )
    // Calibration: what the harness itself costs per iteration.
    Benchmark("baseline: empty iteration") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(inviteWithSDP.count) }
    }
    for (name, bytes) in [("INVITE with SDP", inviteWithSDP), ("REGISTER with Authorization", registerWithAuth), ("200 OK", ok200)] {
        Benchmark("parse \(name)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try SIPMessage(parsing: bytes))
            }
        }
    }
    // What a proxy/B2BUA reads of every INVITE: Via, From/To tags, Call-ID, CSeq.
    Benchmark("parse INVITE + read transaction headers") { benchmark in
        for _ in benchmark.scaledIterations {
            let m = try SIPMessage(parsing: inviteWithSDP)
            blackHole(m.topVia?.branch); blackHole(m.fromTag); blackHole(m.callID); blackHole(m.cseq)
        }
    }
    Benchmark("serialize INVITE with SDP") { benchmark in
        let m = try SIPMessage(parsing: inviteWithSDP)
        for _ in benchmark.scaledIterations { blackHole(m.serialized()) }
    }
}
