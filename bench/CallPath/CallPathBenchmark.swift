// The switch's per-call work without sockets, threads or the store: one
// bench call (SIPp's uac and uas scenarios, as in bench/call-rate.sh) taken
// through the same codec, transaction machines, policy, rating and B2BUA
// machine the trunk service uses, on one thread, message by message.
//
// Why: the call-rate bench puts the switch's CPU per call at four to five
// times Kamailio's. This says how much of that is the call's own work, i.e.
// the floor for a switch that handles each call start to finish on the
// thread that reads its datagrams. Run: bash bench/call-path.sh
//
// Timed: what the switch does with each message it receives (parse, match
// the transaction, run the machines, build and serialise what it sends).
// Not timed: the peers (building SIPp's messages and the gateway's answers).
// Not included: socket calls and hand-overs between threads. The store's
// part (a live-call row and a CDR per call, group-committed to SQLite as
// `serve` writes them) is measured after, as CPU of all the process's threads.
// `serve` runs the same path on a real socket under SIPp (bench/call-path.sh).
import CallControl
import CallCore
import Foundation
import Logging
import NIOCore
import SIPTransport
import Rating
import SIPMessage
import SIPStack
import SIPTransaction
import Store
import TrunkService

/// Time spent in the switch's part, by step.
struct Stopwatch {
    var nanos: [String: UInt64] = [:]
    var order: [String] = []
    mutating func time<R>(_ step: String, _ body: () throws -> R) rethrows -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let spent = DispatchTime.now().uptimeNanoseconds - start
        if nanos[step] == nil { order.append(step) }
        nanos[step, default: 0] += spent
        return r
    }
}

enum BenchFailure: Error, CustomStringConvertible {
    case unexpected(String)
    var description: String { switch self { case .unexpected(let s): "unexpected: \(s)" } }
}

// MARK: The peers (not timed)

let uac = "127.0.0.1:5061", uas = "127.0.0.1:5070", switchAddress = "127.0.0.1:45060"
let sdp = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

func uacRequest(_ method: String, call n: Int, uri: String, cseq: Int, toTag: String?, body: String = "") -> [UInt8] {
    var text = "\(method) \(uri) SIP/2.0\r\n"
    text += "Via: SIP/2.0/UDP \(uac);branch=z9hG4bK-4242-\(n)-\(cseq)-\(method)\r\n"
    text += "From: sipp <sip:sipp@\(uac)>;tag=4242SIPpTag00\(n)\r\n"
    text += "To: 447700900123 <sip:447700900123@\(switchAddress)>" + (toTag.map { ";tag=\($0)" } ?? "") + "\r\n"
    text += "Call-ID: \(n)-4242@127.0.0.1\r\nCSeq: \(cseq) \(method)\r\nContact: sip:sipp@\(uac)\r\nMax-Forwards: 70\r\n"
    text += "Subject: Performance Test\r\n"
    if !body.isEmpty { text += "Content-Type: application/sdp\r\n" }
    text += "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    return Array(text.utf8)
}

/// The gateway's (SIPp uas's) response to a request the switch sent.
func uasResponse(_ code: Int, to sent: [UInt8], tag: String, body: String = "") throws -> [UInt8] {
    let request = try SIPMessage(parsing: sent)
    var r = request.makeResponse(code, toTag: tag)
    r.append(.contact, "<sip:\(uas);transport=UDP>")
    if !body.isEmpty { r.append(.contentType, "application/sdp"); r.body = Array(body.utf8) }
    return r.serialized()
}

// MARK: The switch's part (timed)

/// A datagram the switch sends: to the caller, or to the gateway.
struct Outbound {
    var toGateway: Bool
    var bytes: [UInt8]
}

/// What the switch keeps per call between messages.
struct CallState {
    var machine: B2BUACall
    var attempt: CallAttempt
    var admission: Admission
    var inviteKey: TransactionKey
}

struct Switch {
    var servers: [TransactionKey: ServerInviteTransaction] = [:]
    var nonInviteServers: [TransactionKey: ServerNonInviteTransaction] = [:]
    var inviteClients: [TransactionKey: ClientInviteTransaction] = [:]
    var nonInviteClients: [TransactionKey: ClientNonInviteTransaction] = [:]
    var calls: [String: CallState] = [:]
    var aCallIDOfB: [String: String] = [:]
    var trunksBySource: [String: Trunk]
    var account: Account
    var accountLimits: CallLimits
    var deck: RateDeck
    var blacklists: Blacklists
    var limits = LimitBook()
    var holds = BalanceHolds()
    let timers = TransactionTimers()
    var sent = 0
    /// The store's writes, as the trunk service makes them: a live-call row when a call is admitted, a CDR when it ends.
    var liveCallStarts: [LiveCall] = []
    var cdrs: [CDR] = []

    /// Serialised, as the transport would before `sendmmsg`.
    mutating func send(_ m: SIPMessage, toB: Bool = false) -> Outbound {
        sent += 1
        return Outbound(toGateway: toB, bytes: m.serialized())
    }

    mutating func addVia(_ m: inout SIPMessage) {
        m.prepend(.via, SIPVia(transport: "UDP", host: "127.0.0.1", port: 45060, branch: TransactionKey.newBranch(), rport: true).description)
        if !m.contains(.maxForwards) { m.append(.maxForwards, "70") }
        if !m.contains(.userAgent) { m.append(.userAgent, "Switchboard") }
    }

    /// A-leg INVITE: server transaction, 100, policy, B-leg INVITE. Returns what was sent.
    mutating func inviteFromA(_ bytes: [UInt8], source: String, now: Double) throws -> [Outbound] {
        var out: [Outbound] = []
        let invite = try SIPMessage(parsing: bytes)
        let key = TransactionKey.server(for: invite)
        var t = ServerInviteTransaction(request: invite, reliableTransport: false, timers: timers)
        for case .send(let m) in t.start() { out.append(send(m)) }
        guard let callID = invite.callID, calls[callID] == nil, let trunk = trunksBySource[source] else { throw BenchFailure.unexpected("no trunk") }
        let controls = try CallControlHeaders(from: invite)
        let destination = TrunkCallService.number(invite.parsedRequestURI?.user ?? "")
        let cli = TrunkCallService.number(TrunkCallService.callerNumber(invite))
        var attempt = CallAttempt(account: account, accountLimits: accountLimits, trunk: trunk, controls: controls, cli: cli,
                                  destination: destination, callType: nil, rate: deck.rate(for: destination))
        attempt.committed = holds.held(account.id)
        guard case .admit(let admission) = limits.admit(attempt, blacklists: blacklists, now: now) else { throw BenchFailure.unexpected("refused") }
        holds.hold(admission.held, account: account.id)
        liveCallStarts.append(LiveCall(callID: callID, accountID: account.id, trunkID: trunk.id, tag: controls.tag, from: cli, to: destination, startAt: now))
        var machine = B2BUACall(invite: invite, gateways: [GatewayTarget(name: "uas", hostPort: uas)],
                                bCallID: SIPEndpoint.newCallID(host: "switchboard"), bFromTag: SIPEndpoint.newTag(), aToTag: SIPEndpoint.newTag(),
                                localContact: switchAddress, maxDuration: admission.maxDuration, costCapSeconds: admission.maxCostSeconds,
                                balanceCapSeconds: admission.balanceSeconds, warning: admission.warning)
        let actions = machine.start(now: now)
        aCallIDOfB[machine.bLegCallID] = callID
        servers[key] = t
        calls[callID] = CallState(machine: machine, attempt: attempt, admission: admission, inviteKey: key)
        out += try perform(actions, callID: callID)
        return out
    }

    mutating func perform(_ actions: [B2BUACall.Action], callID: String) throws -> [Outbound] {
        var out: [Outbound] = []
        for action in actions {
            switch action {
            case .respondToA(let response):
                guard let key = calls[callID]?.inviteKey, var t = servers[key] else { continue }
                for a in t.tuSend(response: response) {
                    if case .send(let m) = a { out.append(send(m)) }
                }
                if (response.statusCode ?? 0) >= 200 { servers[key] = nil } else { servers[key] = t }
            case .sendToB(var request, _):
                addVia(&request)
                let key = TransactionKey.client(branch: request.topVia?.branch ?? "", method: request.method ?? .invite)
                switch request.method {
                case .invite?:
                    var t = ClientInviteTransaction(request: request, reliableTransport: false, timers: timers)
                    for case .send(let m) in t.start() { out.append(send(m, toB: true)) }
                    inviteClients[key] = t
                case .ack?:
                    out.append(send(request, toB: true))
                default:
                    var t = ClientNonInviteTransaction(request: request, reliableTransport: false, timers: timers)
                    for case .send(let m) in t.start() { out.append(send(m, toB: true)) }
                    nonInviteClients[key] = t
                }
            case .sendToA(let request):
                out.append(send(request))
            case .startTimer, .cancelTimer:
                break  // a call timer queue entry; the call-rate bench counts those
            case .writeRecord(let record):
                guard let call = calls.removeValue(forKey: callID) else { continue }
                aCallIDOfB[call.machine.bLegCallID] = nil
                limits.release(call.admission.channels)
                holds.release(call.admission.held, account: call.attempt.account.id)
                cdrs.append(call.attempt.cdr(callID: callID, record: record))
            }
        }
        return out
    }

    /// A response from the gateway: its client transaction, then the call's machine.
    mutating func responseFromB(_ bytes: [UInt8], now: Double) throws -> [Outbound] {
        let response = try SIPMessage(parsing: bytes)
        guard let key = TransactionKey.client(for: response) else { throw BenchFailure.unexpected("response without a branch") }
        var delivered: SIPMessage?
        if var t = inviteClients[key] {
            for case .deliverToTU(let r) in t.receivedResponse(response) { delivered = r }
            inviteClients[key] = t.state == .terminated ? nil : t
        } else if var t = nonInviteClients[key] {
            for case .deliverToTU(let r) in t.receivedResponse(response) { delivered = r }
            nonInviteClients[key] = nil
            _ = t
            return []  // the B leg's BYE answered: nothing more to do
        }
        guard let r = delivered, let bCallID = r.callID, let callID = aCallIDOfB[bCallID], var call = calls[callID] else { return [] }
        let actions = call.machine.bLegResponse(r, now: now)
        calls[callID] = call
        return try perform(actions, callID: callID)
    }

    /// The caller's ACK for the 200: matched to the call and absorbed.
    mutating func ackFromA(_ bytes: [UInt8]) throws {
        let ack = try SIPMessage(parsing: bytes)
        guard let callID = ack.callID, calls[callID] != nil else { throw BenchFailure.unexpected("ACK for no call") }
    }

    /// The caller's BYE: 200 at once, BYE to the gateway, the CDR.
    mutating func byeFromA(_ bytes: [UInt8], now: Double) throws -> [Outbound] {
        let bye = try SIPMessage(parsing: bytes)
        let key = TransactionKey.server(for: bye)
        var t = ServerNonInviteTransaction(request: bye, reliableTransport: false, timers: timers)
        _ = t.start()
        var out: [Outbound] = []
        for case .send(let m) in t.tuSend(response: bye.makeResponse(200)) { out.append(send(m)) }
        nonInviteServers[key] = nil
        guard let callID = bye.callID, var call = calls[callID] else { throw BenchFailure.unexpected("BYE for no call") }
        let actions = call.machine.aLegBye(now: now)
        calls[callID] = call
        return out + (try perform(actions, callID: callID))
    }
}

@main
enum CallPathBenchmark {
    static func main() async throws {
        let args = CommandLine.arguments
        // `MODE [N]`: the count after a part's name (profiler runs).
        func count(at i: Int) -> Int { args.count > i ? Int(args[i]) ?? 100_000 : 100_000 }
        if args.count > 1, args[1] == "serve" {
            try await serveOverUDP(port: args.count > 2 ? Int(args[2]) ?? 45060 : 45060, gatewayPort: args.count > 3 ? Int(args[3]) ?? 5070 : 5070,
                             seconds: args.count > 4 ? Int(args[4]) ?? 30 : 30)
            return
        }
        if args.count > 1, args[1] == "layer" {
            // Only the transaction layer's part (for a profiler).
            try layerPart(count(at: 2))
            return
        }
        if args.count > 1, args[1] == "call" {
            // Only the switch's part of the call path (for a profiler).
            try callPath(count(at: 2))
            return
        }
        if args.count > 1, args[1] == "layer-short" {
            try layerPart(count(at: 2),
                          timers: TransactionTimers(t1: .milliseconds(5), t2: .milliseconds(40), t4: .milliseconds(50)))
            return
        }
        let callCount = count(at: 1)
        try callPath(callCount)
        try layerPart(callCount)
        try await storePart(callCount)
        socketPart(datagrams: 200_000)
    }

    /// What the kernel charges the switch for its datagrams: a sendto (on
    /// loopback, with the delivery to the receiving socket) and a recvfrom of
    /// a 700-byte datagram, one system call each (the switch batches them with
    /// sendmmsg/recvmmsg, which saves the calls' entry cost, not the per-datagram work).
    static func socketPart(datagrams: Int) {
        let receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(receiver); close(sender) }
        var size: Int32 = 4 << 20
        setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(receiver, $0, length) == 0 && getsockname(receiver, $0, &length) == 0 }
        }
        guard bound else { print("sockets: could not bind a loopback UDP socket"); return }
        let payload = [UInt8](repeating: 0x41, count: 700)
        var buffer = [UInt8](repeating: 0, count: 2048)
        var sendNanos: UInt64 = 0, receiveNanos: UInt64 = 0, received = 0
        let datagrams = datagrams / 256 * 256
        for _ in 0..<(datagrams / 256) {
            var t = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<256 {
                _ = withUnsafePointer(to: &address) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in payload.withUnsafeBytes { sendto(sender, $0.baseAddress, $0.count, 0, a, length) } }
                }
            }
            sendNanos += DispatchTime.now().uptimeNanoseconds - t
            t = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<256 where buffer.withUnsafeMutableBytes({ recv(receiver, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) > 0 {
                received += 1
            }
            receiveNanos += DispatchTime.now().uptimeNanoseconds - t
        }
        let perSend = Double(sendNanos) / Double(datagrams) / 1000, perReceive = Double(receiveNanos) / Double(max(received, 1)) / 1000
        print(String(format: "sockets (UDP on loopback, 700 bytes): %.2f µs a send, %.2f µs a receive; for the call's 7 out and 6 in: %.1f µs per call",
                     perSend, perReceive, 7 * perSend + 6 * perReceive) + (received < datagrams ? " (\(datagrams - received) datagrams lost)" : ""))
    }

    /// CPU time of every thread of this process, in nanoseconds.
    static func processCPU() -> UInt64 {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let user = UInt64(usage.ru_utime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_utime.tv_usec) * 1000
        let system = UInt64(usage.ru_stime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_stime.tv_usec) * 1000
        return user + system
    }

    /// Each call's live-call row and CDR through `Store`, 256 calls at a time
    /// (so group commits gather as they do under load).
    static func storePart(_ callCount: Int) async throws {
        let path = NSTemporaryDirectory() + "call-path-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await Store.open(.sqlite(path: path))
        try await store.upsertAccount(Account(id: "920700", name: "Bench", currency: "GBP", balance: Money(string: "100000000") ?? 0, creditLimit: 0))
        let now = Date().timeIntervalSince1970
        let cpuStart = processCPU(), wallStart = DispatchTime.now().uptimeNanoseconds
        for wave in stride(from: 0, to: callCount, by: 256) {
            let calls = wave..<min(wave + 256, callCount)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in calls {
                    group.addTask {
                        _ = try await store.admitCall(LiveCall(callID: "\(n)-4242@127.0.0.1", accountID: "920700", trunkID: "920700-L001",
                                                                     from: "sipp", to: "447700900123", startAt: now), node: "bench", limits: [])
                    }
                }
                try await group.waitForAll()
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in calls {
                    group.addTask {
                        _ = try await store.recordCall(CDR(callID: "\(n)-4242@127.0.0.1", accountID: "920700", trunkID: "920700-L001", tag: nil,
                                                           from: "sipp", to: "447700900123", callType: nil, startAt: now, answerAt: now, endAt: now + 1,
                                                           durationSeconds: 1, billedSeconds: 1, cost: Money(string: "0.02") ?? 0, finalStatus: 200, reason: nil))
                    }
                }
                try await group.waitForAll()
            }
        }
        let cpu = processCPU() - cpuStart, wall = DispatchTime.now().uptimeNanoseconds - wallStart
        try await store.close()
        print("store's part (SQLite, group-committed): \(String(format: "%.1f", Double(cpu) / Double(callCount) / 1000)) µs CPU per call, all threads "
              + "(\(String(format: "%.0f", Double(callCount) / (Double(wall) / 1e9))) calls/s)")
    }

    /// The bench's provisioning (bench/call-rate.sh): a rate deck, one account and trunk, a platform blacklist.
    static func makeSwitch() throws -> Switch {
        var rates = [try Rate(prefix: "44", connectionCharge: Money(string: "0.01") ?? 0, perMinute: Money(string: "0.60") ?? 0,
                              increments: BillingIncrements("1/1"))]
        // A deck the size of a carrier's (about 1,000 prefixes), so the longest match has something to search.
        for i in 0..<1000 {
            rates.append(try Rate(prefix: "44\(7000 + i)", connectionCharge: 0, perMinute: Money(string: "0.10") ?? 0, increments: BillingIncrements("60/60")))
        }
        let trunk = Trunk(accountID: "920700", name: "L001", sourceAddresses: ["127.0.0.1"], limits: CallLimits(channels: 100_000))
        return Switch(trunksBySource: ["127.0.0.1": trunk],
                        account: Account(id: "920700", name: "Bench", currency: "GBP", balance: Money(string: "100000000") ?? 0, creditLimit: 0,
                                         cliPolicy: .warn),
                        accountLimits: CallLimits(channels: 100_000, rate: RateLimitSetting(calls: 1_000_000, seconds: 1)),
                        deck: try RateDeck(name: "default", currency: "GBP", rates: rates),
                        blacklists: Blacklists([.platform: ["4490"]]))
    }

    /// `serve PORT GATEWAY_PORT SECONDS`: the same call path on a real UDP
    /// socket, one thread, each datagram handled to completion as it is read
    /// and its answers sent at once (sendto). The store written behind: the
    /// live-call rows and CDRs the datagrams made are handed to `Store` (SQLite,
    /// group-committed) in one task whenever the socket has nothing more to
    /// read, each hand-over after the one before. No timers or
    /// retransmissions, and one caller (SIPp's uac): a measurement of what such
    /// a design costs with the kernel's and the store's parts in it, not a
    /// switch. Prints CPU per call (all threads).
    static func serveOverUDP(port: Int, gatewayPort: Int, seconds: Int) async throws {
        var sw = try makeSwitch()
        let path = NSTemporaryDirectory() + "call-path-serve-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await Store.open(.sqlite(path: path))
        try await store.upsertAccount(sw.account)
        var lastHandOver: Task<Int, Never>?
        var writeFailures = 0, cdrsHandedOver = 0
        func handOver() {
            guard !sw.liveCallStarts.isEmpty || !sw.cdrs.isEmpty else { return }
            let starts = sw.liveCallStarts, cdrs = sw.cdrs, previous = lastHandOver
            cdrsHandedOver += cdrs.count
            sw.liveCallStarts.removeAll(keepingCapacity: true)
            sw.cdrs.removeAll(keepingCapacity: true)
            lastHandOver = Task {
                var failed = await previous?.value ?? 0
                failed += await withTaskGroup(of: Int.self) { group in
                    for call in starts {
                        group.addTask {
                            do { _ = try await store.admitCall(call, node: "bench", limits: []); return 0 } catch { return 1 }
                        }
                    }
                    return await group.reduce(0, +)
                }
                failed += await withTaskGroup(of: Int.self) { group in
                    for cdr in cdrs { group.addTask { (try? await store.recordCall(cdr)) == true ? 0 : 1 } }
                    return await group.reduce(0, +)
                }
                return failed
            }
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var wait = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        func loopback(_ port: Int) -> sockaddr_in {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET); a.sin_port = UInt16(port).bigEndian; a.sin_addr.s_addr = inet_addr("127.0.0.1")
            return a
        }
        var local = loopback(port), gateway = loopback(gatewayPort), caller = sockaddr_in()
        let addressLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &local, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, addressLength) } }) == 0 else {
            print("could not bind 127.0.0.1:\(port)"); return
        }
        print("serving on 127.0.0.1:\(port), gateway 127.0.0.1:\(gatewayPort), for \(seconds) s")
        var buffer = [UInt8](repeating: 0, count: 65536)
        var calls = 0, refused = 0, firstCallCPU: UInt64?
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds) * 1_000_000_000
        func starts(_ bytes: [UInt8], _ prefix: StaticString) -> Bool {
            bytes.count >= prefix.utf8CodeUnitCount && bytes.prefix(prefix.utf8CodeUnitCount).elementsEqual(
                UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
        }
        while DispatchTime.now().uptimeNanoseconds < end {
            var from = sockaddr_in(), fromLength = addressLength
            func receive(_ flags: Int32) -> Int {
                buffer.withUnsafeMutableBytes { b in
                    withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, flags, $0, &fromLength) } }
                }
            }
            var n = receive(Int32(MSG_DONTWAIT))
            if n < 0 {
                handOver()  // nothing more to read now: the store's writes go
                n = receive(0)
            }
            guard n > 0 else { continue }
            let bytes = Array(buffer[0..<n])
            let now = Date().timeIntervalSince1970
            var out: [Outbound] = []
            do {
                if starts(bytes, "SIP/2.0") {
                    out = try sw.responseFromB(bytes, now: now)
                } else if starts(bytes, "INVITE") {
                    if firstCallCPU == nil { firstCallCPU = processCPU() }
                    caller = from
                    out = try sw.inviteFromA(bytes, source: "127.0.0.1", now: now)
                } else if starts(bytes, "ACK") {
                    try sw.ackFromA(bytes)
                } else if starts(bytes, "BYE") {
                    out = try sw.byeFromA(bytes, now: now)
                    calls += 1
                }
            } catch {
                refused += 1  // a retransmission, or something this measurement does not handle
            }
            for o in out {
                var to = o.toGateway ? gateway : caller
                _ = o.bytes.withUnsafeBytes { b in
                    withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, addressLength) } }
                }
            }
            if sw.cdrs.count >= 256 || sw.liveCallStarts.count >= 256 { handOver() }
        }
        handOver()
        writeFailures = await lastHandOver?.value ?? 0
        let cpu = processCPU() - (firstCallCPU ?? processCPU())
        try await store.close()
        print("store: \(cdrsHandedOver) CDRs and as many live-call rows written behind, \(writeFailures) writes failed")
        print("\(calls) calls ended, \(refused) messages not handled; "
              + String(format: "%.1f µs CPU per call (process, from the first INVITE)", calls > 0 ? Double(cpu) / Double(calls) / 1000 : 0))
    }

    /// The transaction layer's part of one bench call, as the event-loop
    /// path (`TrunkCallLoop`) drives it: the A leg's INVITE, ACK and BYE
    /// server side, the B leg's INVITE, ACK and BYE client side, 100/180/200
    /// each way, and the timers of 3,000 calls/s of virtual time. Timed: the
    /// layer's calls only (messages are built and parsed outside).
    static func layerPart(_ callCount: Int, timers: TransactionTimers = TransactionTimers()) throws {
        var layer = TransactionLayer(configuration: SIPEndpointConfiguration(listen: [], timers: timers),
                                     logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        let caller = try SocketAddress(ipAddress: "127.0.0.1", port: 5061), gatewayAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 5070)
        let gateway = SIPDestination(address: gatewayAddress, transport: .udp)
        var nanos: UInt64 = 0, actions = 0
        var now: UInt64 = 1_000_000_000_000
        func timed<R>(_ body: () throws -> R) rethrows -> R {
            let start = DispatchTime.now().uptimeNanoseconds
            defer { nanos += DispatchTime.now().uptimeNanoseconds - start }
            return try body()
        }
        func bRequest(_ method: SIPMethod, call n: Int, cseq: Int, toTag: String?) -> SIPMessage {
            var m = SIPMessage(request: method, uri: "sip:447700900123@\(uas)")
            m.append(.via, "SIP/2.0/UDP \(switchAddress);branch=\(TransactionKey.newBranch());rport")
            m.append(.from, "<sip:sipp@\(switchAddress)>;tag=b\(n)")
            m.append(.to, "<sip:447700900123@\(uas)>" + (toTag.map { ";tag=\($0)" } ?? ""))
            m.append(.callID, "b\(n)-4242.l0@127.0.0.1")
            m.append(.cseq, "\(cseq) \(method)")
            return m
        }
        func received(_ bytes: [UInt8], from: SocketAddress) throws -> SIPInbound {
            SIPInbound(udpMessage: try SIPMessage(parsing: bytes), from: from)
        }
        func response(_ code: Int, to request: SIPMessage, tag: String) throws -> SIPInbound {
            SIPInbound(udpMessage: try SIPMessage(parsing: request.makeResponse(code, toTag: tag).serialized()), from: gatewayAddress)
        }
        func serverKey(_ a: [TransactionLayer.Action]) -> TransactionKey? {
            for case .deliverRequest(_, let key) in a { return key }
            return nil
        }
        for n in 0..<callCount {
            now += 333_333
            actions += timed { layer.timersDue(now: now).count }
            let invite = try received(uacRequest("INVITE", call: n, uri: "sip:447700900123@\(switchAddress)", cseq: 1, toTag: nil, body: sdp), from: caller)
            let inviteActions = timed { layer.receivedRequest(invite, now: now) }
            guard let aKey = serverKey(inviteActions) else { throw BenchFailure.unexpected("INVITE not delivered") }
            let bInvite = bRequest(.invite, call: n, cseq: 1, toTag: nil)
            let (_, started) = timed { layer.startClient(bInvite, method: .invite, to: gateway, now: now) }
            let trying = try response(100, to: bInvite, tag: "g\(n)"), ringing = try response(180, to: bInvite, tag: "g\(n)")
            let ok = try response(200, to: bInvite, tag: "g\(n)")
            let a180 = invite.message.makeResponse(180, toTag: "s\(n)"), a200 = invite.message.makeResponse(200, toTag: "s\(n)")
            let bACK = bRequest(.ack, call: n, cseq: 1, toTag: "g\(n)")
            let ack = try received(uacRequest("ACK", call: n, uri: "sip:447700900123@\(switchAddress)", cseq: 1, toTag: "s\(n)"), from: caller)
            let bye = try received(uacRequest("BYE", call: n, uri: "sip:447700900123@\(switchAddress)", cseq: 2, toTag: "s\(n)"), from: caller)
            let bBye = bRequest(.bye, call: n, cseq: 2, toTag: "g\(n)")
            let byeOK = try response(200, to: bBye, tag: "g\(n)")
            actions += inviteActions.count + started.count
            actions += timed {
                var c = layer.receivedResponse(trying, now: now).count
                c += layer.receivedResponse(ringing, now: now).count
                c += layer.respond(a180, key: aKey, now: now).count
                let final = layer.receivedResponse(ok, now: now)
                c += final.count + layer.sendACK(bACK, to: gateway, now: now).count
                c += layer.respond(a200, key: aKey, now: now).count
                c += layer.receivedRequest(ack, now: now).count
                return c
            }
            let byeActions = timed { layer.receivedRequest(bye, now: now) }
            guard let byeKey = serverKey(byeActions) else { throw BenchFailure.unexpected("BYE not delivered") }
            actions += byeActions.count
            actions += timed {
                var c = layer.respond(bye.message.makeResponse(200), key: byeKey, now: now).count
                let (_, bByeActions) = layer.startClient(bBye, method: .bye, to: gateway, now: now)
                c += bByeActions.count + layer.receivedResponse(byeOK, now: now).count
                return c
            }
        }
        print(String(format: "transaction layer's part: %.1f µs per call (%d actions a call; timers of 3,000 calls/s of virtual time)",
                     Double(nanos) / Double(callCount) / 1000, actions / callCount))
    }

    static func callPath(_ callCount: Int) throws {
        var sw = try makeSwitch()
        var watch = Stopwatch()
        var received = 0
        let clockStart = DispatchTime.now().uptimeNanoseconds
        for n in 0..<callCount {
            let now = Date().timeIntervalSince1970
            // Caller → switch: INVITE. Switch → caller: 100; → gateway: INVITE.
            let invite = uacRequest("INVITE", call: n, uri: "sip:447700900123@\(switchAddress)", cseq: 1, toTag: nil, body: sdp)
            let afterInvite = try watch.time("INVITE in: 100 out, policy, B-leg INVITE out") { try sw.inviteFromA(invite, source: "127.0.0.1", now: now) }
            guard let bInvite = afterInvite.last?.bytes else { throw BenchFailure.unexpected("no B-leg INVITE") }
            // Gateway → switch: 180, then 200 with SDP.
            let ringing = try uasResponse(180, to: bInvite, tag: "4242SIPpTag01\(n)")
            let relayed180 = try watch.time("180 in: 180 out") { try sw.responseFromB(ringing, now: now) }
            let ok = try uasResponse(200, to: bInvite, tag: "4242SIPpTag01\(n)", body: sdp)
            let afterOK = try watch.time("200 in: ACK and 200 out") { try sw.responseFromB(ok, now: now) }
            guard relayed180.count == 1, afterOK.count == 2, let aOK = try? SIPMessage(parsing: afterOK[1].bytes), let aToTag = aOK.toTag else {
                throw BenchFailure.unexpected("180/200 not relayed")
            }
            // Caller → switch: ACK, then BYE.
            let ack = uacRequest("ACK", call: n, uri: "sip:447700900123@\(switchAddress)", cseq: 1, toTag: aToTag)
            try watch.time("ACK in") { try sw.ackFromA(ack) }
            let bye = uacRequest("BYE", call: n, uri: "sip:447700900123@\(switchAddress)", cseq: 2, toTag: aToTag)
            let afterBye = try watch.time("BYE in: 200 and B-leg BYE out, CDR") { try sw.byeFromA(bye, now: now + 1) }
            guard afterBye.count == 2 else { throw BenchFailure.unexpected("BYE not relayed") }
            let byeOK = try uasResponse(200, to: afterBye[1].bytes, tag: "4242SIPpTag01\(n)")
            _ = try watch.time("200 (BYE) in") { try sw.responseFromB(byeOK, now: now + 1) }
            received += 6
            if sw.cdrs.count >= 4096 { sw.cdrs.removeAll(keepingCapacity: true); sw.liveCallStarts.removeAll(keepingCapacity: true) }
        }
        let wall = Double(DispatchTime.now().uptimeNanoseconds - clockStart) / 1e9
        let total = watch.nanos.values.reduce(0, +)
        print("Call path without sockets, threads or store: \(callCount) calls, one thread (\(String(format: "%.1f", wall)) s with the peers' part)")
        print("switch's part: \(String(format: "%.1f", Double(total) / Double(callCount) / 1000)) µs per call "
              + "(\(received / callCount) messages in, \(sw.sent / callCount) out), "
              + "\(String(format: "%.0f", Double(callCount) / (Double(total) / 1e9))) calls/s on one core")
        for step in watch.order {
            print(String(format: "  %6.1f µs  %@", Double(watch.nanos[step] ?? 0) / Double(callCount) / 1000, step))
        }
        if !sw.calls.isEmpty || !sw.servers.isEmpty || !sw.inviteClients.isEmpty || !sw.nonInviteClients.isEmpty {
            print("left behind: \(sw.calls.count) calls, \(sw.servers.count) server and \(sw.inviteClients.count + sw.nonInviteClients.count) client transactions")
        }
    }
}
