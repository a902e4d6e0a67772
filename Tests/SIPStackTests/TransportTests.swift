import Foundation
import NIOConcurrencyHelpers
import OutboundRegistration
import SIPMessage
import SIPStack
import SIPTransport
import Testing

/// A plain BSD socket, as a misbehaving or simple peer would use.
final class RawSocket {
    let fd: Int32
    let family: Int32

    init(udp: Bool, ipv6: Bool = false) {
        family = ipv6 ? AF_INET6 : AF_INET
        fd = socket(family, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    }
    deinit { close(fd) }

    func withAddress<R>(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if family == AF_INET6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6); a.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, "::1", &a.sin6_addr)
            return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET); a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }

    func sendTo(port: Int, _ bytes: [UInt8]) {
        _ = withAddress(port: port) { addr, len in bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, addr, len) } }
    }

    func connect(port: Int) -> Bool {
        withAddress(port: port) { addr, len in Glibc.connect(fd, addr, len) == 0 }
    }

    func write(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// One datagram (or whatever a stream has ready), nil on timeout or close.
    /// Polls without blocking: a blocked thread would starve Swift's small
    /// cooperative pool, which the endpoint under test runs on too.
    /// (Generous: a parallel test run on two cores can hold a loopback round trip up for seconds.)
    func receive(timeout: Duration = .seconds(10)) async -> [UInt8]? {
        let deadline = ContinuousClock.now + timeout
        var buf = [UInt8](repeating: 0, count: 70_000)
        while ContinuousClock.now < deadline {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { return Array(buf.prefix(n)) }
            if n == 0 { return nil }  // stream closed
            if errno != EAGAIN && errno != EWOULDBLOCK { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Reads a stream until `count` complete SIP messages have arrived (or timeout).
    func receiveMessages(_ count: Int) async -> [SIPMessage] {
        var data: [UInt8] = []
        var out: [SIPMessage] = []
        while out.count < count, let chunk = await receive() {
            data += chunk
            while case .message(let s, let e)? = try? data.withUnsafeBufferPointer({ try SIPMessageParser.frame($0) }) {
                if let m = try? SIPMessage(parsing: Array(data[s..<e])) { out.append(m) }
                data.removeFirst(e)
            }
        }
        return out
    }
}

func request(_ method: String = "OPTIONS", branch: String = "z9hG4bKt1", via: String = "SIP/2.0/UDP 192.0.2.99:5070", extra: String = "") -> [UInt8] {
    Array("""
        \(method) sip:switch@127.0.0.1 SIP/2.0\r
        Via: \(via);branch=\(branch);rport\r
        Max-Forwards: 70\r
        From: <sip:probe@example.com>;tag=f1\r
        To: <sip:switch@127.0.0.1>\r
        Call-ID: \(branch)@test\r
        CSeq: 1 \(method)\r
        \(extra)Content-Length: 0\r
        \r

        """.utf8)
}

/// An endpoint that answers OPTIONS with 200 and records what it was given.
func startRecordingEndpoint(_ listen: [SIPListenAddress]) async throws -> (SIPEndpoint, NIOLockedValueBox<[SIPMessage]>) {
    let seen = NIOLockedValueBox<[SIPMessage]>([])
    let endpoint = try await SIPEndpoint.start(configuration: SIPEndpointConfiguration(listen: listen)) { request in
        seen.withLockedValue { $0.append(request.message) }
        await request.respond(200)
    }
    return (endpoint, seen)
}

@Suite("SIP transport over real sockets")
struct TransportTests {
    @Test func udpRequestGetsResponseAtItsSourceWithReceivedAndRport() async throws {
        let (endpoint, seen) = try await startRecordingEndpoint([SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: true)
        s.sendTo(port: port, request())
        let reply = try SIPMessage(parsing: try #require(await s.receive()))
        #expect(reply.statusCode == 200)
        // RFC 3261 §18.2.1 / RFC 3581: the server records where the request really came from.
        let via = try #require(seen.withLockedValue { $0.first }?.topVia)
        #expect(via.received == "127.0.0.1")
        #expect(via.rport.flatMap { $0 }.flatMap { Int($0) } != nil)
        #expect(reply.topVia?.received == "127.0.0.1")
        await endpoint.shutdown()
    }

    /// Datagrams are read up to 16 per system call: a burst of small requests
    /// with a 60,000-byte one among them all arrive whole and are answered.
    @Test func udpBurstWithALargeDatagramArrivesWhole() async throws {
        let (endpoint, seen) = try await startRecordingEndpoint([SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: true)
        let body = String(repeating: "0123456789", count: 6_000)
        let large = Array(String(decoding: request(branch: "z9hG4bKlarge"), as: UTF8.self)
            .replacingOccurrences(of: "Content-Length: 0\r\n\r\n", with: "Content-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)").utf8)
        #expect(large.count > 60_000)
        for i in 0..<10 { s.sendTo(port: port, request(branch: "z9hG4bKa\(i)")) }
        s.sendTo(port: port, large)
        for i in 0..<10 { s.sendTo(port: port, request(branch: "z9hG4bKb\(i)")) }
        var replies: [SIPMessage] = []
        while replies.count < 21, let bytes = await s.receive() { replies.append(try SIPMessage(parsing: bytes)) }
        #expect(replies.count == 21 && replies.allSatisfy { $0.statusCode == 200 })
        let big = try #require(seen.withLockedValue { $0.first { $0.topVia?.branch == "z9hG4bKlarge" } })
        #expect(big.body.count == body.utf8.count && big.body.suffix(10) == Array("0123456789".utf8))
        await endpoint.shutdown()
    }

    @Test func unparseableRequestWithViaGetsStateless400NamingTheFault() async throws {
        let (endpoint, seen) = try await startRecordingEndpoint([SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: true)
        s.sendTo(port: port, request(extra: "Max-Forwards: 999\r\n"))
        let reply = try SIPMessage(parsing: try #require(await s.receive()))
        #expect(reply.statusCode == 400)
        #expect(reply.reasonPhrase == "Bad Request (malformed Max-Forwards header: Max-Forwards exceeds 255)")
        #expect(reply.topVia?.branch == "z9hG4bKt1")
        s.sendTo(port: port, Array(String(decoding: request(), as: UTF8.self).replacingOccurrences(of: "SIP/2.0\r\nVia", with: "SIP/3.0\r\nVia").utf8))
        let v = try SIPMessage(parsing: try #require(await s.receive()))
        #expect(v.statusCode == 505)
        #expect(seen.withLockedValue { $0.isEmpty })  // the handler never saw them
        await endpoint.shutdown()
    }

    @Test func garbageAndBadResponsesGetNoAnswerAndDoNotStopTheListener() async throws {
        let (endpoint, _) = try await startRecordingEndpoint([SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: true)
        // Connected, so the kernel passes this socket only what the endpoint
        // under test sends: tests run in parallel, and another test's
        // retransmissions can reach a reused ephemeral port.
        #expect(s.connect(port: port))
        // Seeded, so a failure can be replayed with the same datagrams.
        var g = SplitMix64(seed: 4475)
        for _ in 0..<200 { s.sendTo(port: port, (0..<Int.random(in: 1...1400, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }) }
        s.sendTo(port: port, Array("SIP/2.0 200 OK\r\nVia: broken\r\n\r\n".utf8))
        s.sendTo(port: port, Array("NOTSIP\r\n\r\n".utf8))
        let answered = await s.receive(timeout: .milliseconds(500))
        #expect(answered == nil, "the endpoint answered garbage with: \(answered.map { String(decoding: $0.prefix(200), as: UTF8.self) } ?? "")")
        // Still serving.
        s.sendTo(port: port, request(branch: "z9hG4bKafter"))
        let reply = try SIPMessage(parsing: try #require(await s.receive()))
        #expect(reply.statusCode == 200 && reply.topVia?.branch == "z9hG4bKafter")
        await endpoint.shutdown()
    }

    @Test func tcpFramesSplitAndCoalescedMessages() async throws {
        let (endpoint, seen) = try await startRecordingEndpoint([SIPListenAddress(host: "127.0.0.1", port: 0, transport: .tcp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: false)
        #expect(s.connect(port: port))
        let one = request(branch: "z9hG4bKa", via: "SIP/2.0/TCP 127.0.0.1:5999")
        s.write(Array(one.prefix(40)))
        try await Task.sleep(for: .milliseconds(100))
        s.write(Array(one.dropFirst(40)) + Array("\r\n\r\n".utf8)  // a keep-alive between messages
                + request(branch: "z9hG4bKb", via: "SIP/2.0/TCP 127.0.0.1:5999") + request(branch: "z9hG4bKc", via: "SIP/2.0/TCP 127.0.0.1:5999"))
        let replies = await s.receiveMessages(3)
        #expect(replies.map(\.statusCode) == [200, 200, 200])
        #expect(Set(replies.compactMap { $0.topVia?.branch }) == ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"])
        #expect(seen.withLockedValue { $0.count } == 3)
        await endpoint.shutdown()
    }

    @Test func tcpOversizedMessageGets513AndTheConnectionIsClosed() async throws {
        let (endpoint, _) = try await startRecordingEndpoint([SIPListenAddress(host: "127.0.0.1", port: 0, transport: .tcp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: false)
        #expect(s.connect(port: port))
        var big = String(decoding: request(via: "SIP/2.0/TCP 127.0.0.1:5999"), as: UTF8.self)
        big = big.replacingOccurrences(of: "Content-Length: 0", with: "Content-Length: 200000")
        s.write(Array(big.utf8))
        let replies = await s.receiveMessages(1)
        #expect(replies.first?.statusCode == 513)
        #expect(await s.receive() == nil)  // closed
        await endpoint.shutdown()
    }

    @Test func ipv6Listener() async throws {
        let (endpoint, _) = try await startRecordingEndpoint([SIPListenAddress(host: "::1", port: 0, transport: .udp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: true, ipv6: true)
        s.sendTo(port: port, request(via: "SIP/2.0/UDP [::1]:5070"))
        let reply = try SIPMessage(parsing: try #require(await s.receive()))
        #expect(reply.statusCode == 200)
        await endpoint.shutdown()
    }

    @Test func screeningAnswersBeforeTheHandler() async throws {
        let (endpoint, seen) = try await startRecordingEndpoint([SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)])
        let port = try #require(await endpoint.boundAddresses.first?.address.port)
        let s = RawSocket(udp: true)
        s.sendTo(port: port, request(extra: "Require: 100rel-unknown-ext\r\n"))
        let reply = try SIPMessage(parsing: try #require(await s.receive()))
        #expect(reply.statusCode == 420)
        #expect(reply.firstValue(.unsupported) == "100rel-unknown-ext")
        #expect(seen.withLockedValue { $0.isEmpty })
        await endpoint.shutdown()
    }
}
