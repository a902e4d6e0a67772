import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Rating
import SIPAuth
import Store
import Testing
import TestSupport

// End-to-end trunk calls over real sockets: SIPp plays the customer's PBX and
// the upstream carrier gateway, `switchboard serve` (the built binary) sits
// between them, and the CDRs are read back from the store it wrote. Every
// scenario runs on SQLite and on PostgreSQL, each in a database of its own.

/// The customer, a rate deck and a trunk trusted by source address 127.0.0.1.
func seedTrunkCustomer(_ location: StoreLocation, balance: String = "10", credit: String = "0", cliPolicy: CLIPolicy = .reject,
                       accountLimits: CallLimits = CallLimits(), trunks: [Trunk]? = nil, blacklist: [String] = []) async throws {
    let store = try await Store.open(location)
    try await store.putRateDeck(try RateDeck(name: "default", currency: "GBP", rates: [
        try Rate(prefix: "44", destination: "UK", connectionCharge: parseMoney("0.01") ?? 0, perMinute: parseMoney("0.60") ?? 0,
                 increments: BillingIncrements(first: 1, next: 1)),
        try Rate(prefix: "4490", destination: "UK premium", connectionCharge: 0, perMinute: parseMoney("1.50") ?? 0,
                 increments: BillingIncrements(first: 60, next: 60)),
    ]))
    for id in ["920700", "555000"] {
        try await store.upsertAccount(Account(id: id, name: "Customer \(id)", currency: "GBP", balance: parseMoney(balance) ?? 0,
                                              creditLimit: parseMoney(credit) ?? 0, cliPolicy: cliPolicy))
    }
    try await store.setLimits(accountID: "920700", accountLimits)
    for t in trunks ?? [Trunk(accountID: "920700", name: "L001", sourceAddresses: ["127.0.0.1"]), Trunk(accountID: "920700", name: "L002"),
                        Trunk(accountID: "555000", name: "L001")] {
        try await store.putTrunk(t)
    }
    if !blacklist.isEmpty { try await store.setBlacklist(.account("920700"), prefixes: blacklist) }
    try await store.close()
}

/// `switchboard serve` on loopback with the given gateways, ready for calls.
struct RunningSwitch {
    let process: ExternalProcess
    let port: Int
    let httpPort: Int
    let database: String

    /// `callsOnEventLoop`: UDP trunk calls on the event loop that reads them
    /// (two: `SWITCHBOARD_TRUNK_CALLS_ON_LOOP=2`), else all through the actor service.
    static func start(database: String, gateways: [(name: String, port: Int)], node: String? = nil,
                      silentAfterSeconds: Int? = nil, drainSeconds: Int? = nil, callsOnEventLoop: Bool = true) async throws -> RunningSwitch {
        let port = freePort()
        let config = NSTemporaryDirectory() + "switch-\(UUID().uuidString).yaml"
        // SIPp 3.6 answers only the first digest challenge and knows only MD5.
        var yaml = "sip:\n  listen: [udp:127.0.0.1:\(port)]\n  digest_algorithms: [MD5, SHA-256]\n"
        if let node { yaml += "node:\n  name: \(node)\n" }
        if let silentAfterSeconds { yaml += (node == nil ? "node:\n" : "") + "  silent_after_seconds: \(silentAfterSeconds)\n" }
        if let drainSeconds { yaml += (node == nil && silentAfterSeconds == nil ? "node:\n" : "") + "  drain_seconds: \(drainSeconds)\n" }
        let httpPort = freeTCPPort()
        yaml += "http:\n  listen: 127.0.0.1:\(httpPort)\n"
        yaml += "database:\n  url: \"\(database)\"\n"
        // A fixed SIM password key, so that no key file is left next to the
        // test database (or in the working directory, with PostgreSQL).
        yaml += "sims:\n  password_key: \"\(Data(repeating: 3, count: 32).base64EncodedString())\"\ngateways:\n"
        for (i, g) in gateways.enumerated() {
            yaml += "  - { name: \(g.name), address: \"127.0.0.1:\(g.port)\", priority: \(10 * (i + 1)) }\n"
        }
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let process = try ExternalProcess(try switchboardBinary(), ["serve", "--config", config],
                                          environment: ["SWITCHBOARD_TRUNK_CALLS_ON_LOOP": callsOnEventLoop ? "2" : "0"])
        #expect(try await waitUntilAnswersOptions(port: port), "switchboard serve did not answer OPTIONS")
        return RunningSwitch(process: process, port: port, httpPort: httpPort, database: database)
    }

    func stop() { process.kill() }

    /// An operator API key, made with `switchboard api-key create` as an operator would.
    func createAPIKey() async throws -> String {
        let tool = try ExternalProcess(try switchboardBinary(), ["api-key", "create", "--label", "e2e"],
                                       environment: ["SWITCHBOARD_DATABASE": database])
        let (status, output, _) = await tool.wait(timeout: .seconds(30))
        #expect(status == 0, "api-key create: \(output)")
        return output.split(separator: "\n").map(String.init).first { $0.hasPrefix("sbk_") } ?? ""
    }

    /// GET on the REST API with a key; the JSON body.
    func get(_ pathAndQuery: String, key: String) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(httpPort)\(pathAndQuery)")))
        request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        return (status, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }
}

/// A fresh database with the customer in it, one SIPp gateway and the switch
/// routing to it: what most trunk call tests start from.
struct TrunkTestbed {
    let location: StoreLocation
    let gateway: ExternalProcess
    let sw: RunningSwitch

    static func start(_ backend: StoreBackend, gateway arguments: [String] = ["-sn", "uas", "-m", "1"], callsOnEventLoop: Bool = true,
                      seed: (StoreLocation) async throws -> Void = { try await seedTrunkCustomer($0) }) async throws -> TrunkTestbed {
        let (url, location) = try await freshDatabase(backend)
        try await seed(location)
        let (gateway, port) = try startGateway(arguments)
        do {
            return TrunkTestbed(location: location, gateway: gateway,
                                sw: try await RunningSwitch.start(database: url, gateways: [("carrier", port)],
                                                                  callsOnEventLoop: callsOnEventLoop))
        } catch {
            gateway.kill()
            throw error
        }
    }

    func stop() { gateway.kill(); sw.stop() }
}

/// Two `serve` nodes (node-a, node-b) on one fresh PostgreSQL database, with
/// one SIPp gateway: a cluster. Stop it with `stop()`.
struct ClusterTestbed {
    let location: StoreLocation
    let gateway: ExternalProcess
    let a: RunningSwitch
    let b: RunningSwitch

    static func start(gateway arguments: [String], silentAfterSeconds: Int? = nil,
                      seed: (StoreLocation) async throws -> Void) async throws -> ClusterTestbed {
        let (url, location) = try await freshDatabase(.postgres)
        try await seed(location)
        let (gateway, port) = try startGateway(arguments)
        var nodes: [RunningSwitch] = []
        do {
            for name in ["node-a", "node-b"] {
                nodes.append(try await RunningSwitch.start(database: url, gateways: [("carrier", port)], node: name,
                                                           silentAfterSeconds: silentAfterSeconds))
            }
        } catch {
            gateway.kill()
            for n in nodes { n.stop() }
            throw error
        }
        return ClusterTestbed(location: location, gateway: gateway, a: nodes[0], b: nodes[1])
    }

    func stop() { gateway.kill(); a.stop(); b.stop() }
}

/// What the customer's PBX does after its INVITE.
enum UACPlan {
    /// Expect this final response (with these header lines, exact text), then ACK.
    case refused(Int)
    /// Expect 200, ACK, wait, send BYE.
    case hangUpAfter(milliseconds: Int)
    /// Expect 200, ACK, then a BYE from the switch (with these header lines).
    case awaitBye(checks: [String])
    /// Expect 180, then CANCEL after a pause; 200 to the CANCEL, 487 to the INVITE.
    case cancelAfterRinging(milliseconds: Int)
}

/// A SIPp UAC scenario calling `number` with extra INVITE header lines; each
/// of `checks` must appear verbatim in the final response (SIPp fails the call otherwise).
func uacScenario(number: String, from: String = "441632960000", headers: [String] = [], plan: UACPlan, checks: [String] = [],
                 authenticate: Bool = false) -> String {
    func checkActions(_ lines: [String], prefix: String) -> String {
        guard !lines.isEmpty else { return "" }
        let eregs = lines.enumerated().map { i, line in
            let escaped = NSRegularExpression.escapedPattern(for: line).replacingOccurrences(of: "\"", with: "&quot;")
            return "<ereg regexp=\"\(escaped)\" search_in=\"msg\" check_it=\"true\" assign_to=\"\(prefix)\(i)\"/>"
        }
        return "<action>" + eregs.joined() + "</action>"
    }
    let extra = headers.map { "      \($0)\n" }.joined()
    func invite(cseq: Int, auth: Bool) -> String {
        """
          <send retrans="500">
            <![CDATA[
              INVITE sip:\(number)@[remote_ip]:[remote_port] SIP/2.0
              Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
              From: <sip:\(from)@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
              To: <sip:\(number)@[remote_ip]:[remote_port]>
              Call-ID: [call_id]
              CSeq: \(cseq) INVITE
              Contact: <sip:\(from)@[local_ip]:[local_port]>
              Max-Forwards: 70
        \(auth ? "      [authentication]\n" : "")\(extra)      Content-Type: application/sdp
              Content-Length: [len]

              v=0
              o=pbx 1 1 IN IP[local_ip_type] [local_ip]
              s=-
              c=IN IP[media_ip_type] [media_ip]
              t=0 0
              m=audio [media_port] RTP/AVP 8
              a=rtpmap:8 PCMA/8000

            ]]>
          </send>

        """
    }
    let ackNon2xx = """
          <send>
            <![CDATA[
              ACK sip:\(number)@[remote_ip]:[remote_port] SIP/2.0
              [last_Via:]
              [last_From:]
              [last_To:]
              [last_Call-ID:]
              CSeq: [cseq] ACK
              Max-Forwards: 70
              Content-Length: 0

            ]]>
          </send>

        """
    var body = invite(cseq: 1, auth: false)
    if authenticate {
        body += "  <recv response=\"100\" optional=\"true\"/>\n  <recv response=\"407\" auth=\"true\"/>\n" + ackNon2xx
        body += invite(cseq: 2, auth: true)
    }
    body += "  <recv response=\"100\" optional=\"true\"/>\n"
    let ack2xx = """
          <send>
            <![CDATA[
              ACK sip:\(number)@[remote_ip]:[remote_port] SIP/2.0
              Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
              [last_From:]
              [last_To:]
              [last_Call-ID:]
              CSeq: [cseq] ACK
              Max-Forwards: 70
              Content-Length: 0

            ]]>
          </send>

        """
    switch plan {
    case .refused(let code):
        body += "  <recv response=\"180\" optional=\"true\"/>\n  <recv response=\"183\" optional=\"true\"/>\n"
        body += "  <recv response=\"\(code)\">\(checkActions(checks, prefix: "c"))</recv>\n" + ackNon2xx
    case .hangUpAfter(let ms):
        body += "  <recv response=\"180\" optional=\"true\"/>\n  <recv response=\"183\" optional=\"true\"/>\n"
        body += "  <recv response=\"200\">\(checkActions(checks, prefix: "c"))</recv>\n" + ack2xx
        body += """
              <pause milliseconds="\(ms)"/>
              <send retrans="500">
                <![CDATA[
                  BYE sip:b2bua@[remote_ip]:[remote_port] SIP/2.0
                  Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
                  [last_From:]
                  [last_To:]
                  [last_Call-ID:]
                  CSeq: [cseq] BYE
                  Max-Forwards: 70
                  Content-Length: 0

                ]]>
              </send>
              <recv response="200"/>

            """
    case .awaitBye(let byeChecks):
        body += "  <recv response=\"180\" optional=\"true\"/>\n  <recv response=\"183\" optional=\"true\"/>\n"
        body += "  <recv response=\"200\">\(checkActions(checks, prefix: "c"))</recv>\n" + ack2xx
        body += """
              <recv request="BYE">\(checkActions(byeChecks, prefix: "b"))</recv>
              <send>
                <![CDATA[
                  SIP/2.0 200 OK
                  [last_Via:]
                  [last_From:]
                  [last_To:]
                  [last_Call-ID:]
                  [last_CSeq:]
                  Content-Length: 0

                ]]>
              </send>

            """
    case .cancelAfterRinging(let ms):
        body += "  <recv response=\"180\"/>\n  <pause milliseconds=\"\(ms)\"/>\n"
        body += """
              <send>
                <![CDATA[
                  CANCEL sip:\(number)@[remote_ip]:[remote_port] SIP/2.0
                  Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-\(authenticate ? 9 : 4)]
                  From: <sip:\(from)@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
                  To: <sip:\(number)@[remote_ip]:[remote_port]>
                  Call-ID: [call_id]
                  CSeq: \(authenticate ? 2 : 1) CANCEL
                  Max-Forwards: 70
                  Content-Length: 0

                ]]>
              </send>
              <recv response="200"/>
              <recv response="487"/>

            """ + ackNon2xx
    }
    // SIPp refuses variables that are assigned and never read; these are only checked.
    var names = checks.indices.map { "c\($0)" }
    if case .awaitBye(let byeChecks) = plan { names += byeChecks.indices.map { "b\($0)" } }
    if !names.isEmpty { body += "  <Reference variables=\"\(names.joined(separator: ","))\"/>\n" }
    return "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"customer PBX\">\n" + body + "</scenario>\n"
}

/// Runs one call from SIPp (the PBX, from 127.0.0.1) into the switch.
/// A call SIPp places and holds up in the background while the test does
/// something else (kills the switch under it, say); `stop()` ends SIPp and
/// removes its scenario file.
struct BackgroundCall {
    let process: ExternalProcess
    let scenarioPath: String

    func stop() {
        process.kill()
        unlink(scenarioPath)
    }
}

func placeCallInBackground(_ scenario: String, switchPort: Int, timeoutSeconds: Int) throws -> BackgroundCall {
    let path = NSTemporaryDirectory() + "uac-\(UUID().uuidString).xml"
    try scenario.write(toFile: path, atomically: true, encoding: .utf8)
    do {
        let process = try ExternalProcess("sipp", oneCallArguments(scenarioPath: path, switchPort: switchPort) + ["-nostdin", "-timeout", "\(timeoutSeconds)s"])
        return BackgroundCall(process: process, scenarioPath: path)
    } catch {
        unlink(path)
        throw error
    }
}

/// Two calls placed at once (through the given switch ports) on an account
/// with 0.09 of balance at 0.01 + 0.01 a second: each alone could run 8 s;
/// together they use it up once each is 4 s in, and both must be cleared then
/// (3–6 s), BYE with `Balance now below limit` (T10 across calls).
func expectTwoCallsClearedTogether(switchPorts: (Int, Int), location: StoreLocation) async throws {
    let scenario = uacScenario(number: "447700900123", plan: .awaitBye(checks: ["X-Reason: Balance now below limit"]))
    async let first = placeCall(scenario, switchPort: switchPorts.0)
    async let second = placeCall(scenario, switchPort: switchPorts.1)
    for r in try await [first, second] { #expect(r.status == 0 && r.successful == 1, "\(r.output.suffix(2000))") }
    let cdrs = try await fetchCDRs(location, count: 2)
    #expect(cdrs.count == 2 && cdrs.allSatisfy { $0.reason == "Balance now below limit" && $0.finalStatus == 200 })
    #expect(cdrs.allSatisfy { (3...6).contains($0.durationSeconds) }, "durations \(cdrs.map(\.durationSeconds))")
}

/// Two calls ring at once (through the first and the second port) on 0.05 of
/// balance, each holding 0.02; a third (first port) is refused 402 `Balance
/// exhausted`; when the two have been cancelled, a fourth (second port) is admitted.
func expectTwoRingingCallsHoldTheBalance(switchPorts: (Int, Int), gateway: ExternalProcess, location: StoreLocation) async throws {
    let ringing = uacScenario(number: "447700900123", plan: .cancelAfterRinging(milliseconds: 3000))
    async let first = placeCall(ringing, switchPort: switchPorts.0)
    async let second = placeCall(ringing, switchPort: switchPorts.1)
    // Both ring for 3 s from their 180: the third is set up while they do.
    try await Task.sleep(for: .milliseconds(1500))
    let third = try await placeCall(uacScenario(number: "447700900123", plan: .refused(402), checks: ["X-Reason: Balance exhausted"]),
                                    switchPort: switchPorts.0)
    #expect(third.status == 0 && third.successful == 1, "\(third.output.suffix(2000))")
    for r in try await [first, second] { #expect(r.status == 0 && r.successful == 1, "\(r.output.suffix(2000))") }
    let fourth = try await placeCall(uacScenario(number: "447700900123", plan: .cancelAfterRinging(milliseconds: 300)), switchPort: switchPorts.1)
    #expect(fourth.status == 0 && fourth.successful == 1, "\(fourth.output.suffix(2000))")
    let (gs, go, _) = await gateway.wait(timeout: .seconds(20))
    #expect(gs == 0, "gateway: \(go.suffix(1500))")
    let cdrs = try await fetchCDRs(location, count: 4)
    #expect(cdrs.map(\.finalStatus).sorted() == [402, 487, 487, 487], "\(cdrs.map { ($0.finalStatus, $0.reason ?? "") })")
}

func placeCall(_ scenario: String, switchPort: Int, extra: [String] = []) async throws -> SIPpResult {
    let path = NSTemporaryDirectory() + "uac-\(UUID().uuidString).xml"
    try scenario.write(toFile: path, atomically: true, encoding: .utf8)
    defer { unlink(path) }
    return try await runSIPp(oneCallArguments(scenarioPath: path, switchPort: switchPort) + tolerateRetransmissions + extra)
}

/// SIPp's arguments for one call from the scenario file to the switch on loopback.
func oneCallArguments(scenarioPath: String, switchPort: Int) -> [String] {
    ["127.0.0.1:\(switchPort)", "-sf", scenarioPath, "-i", "127.0.0.1", "-p", "\(freePort())", "-m", "1"]
}

/// A 2xx retransmitted because its ACK was slow (a loaded CI machine) is
/// answered with another ACK, as RFC 3261 §13.2.2.4 says; SIPp would count the
/// late ACK or 2xx arriving during a pause as an unexpected message and fail
/// the call, so unexpected messages are ignored (the scenario's own steps still
/// have to match).
let tolerateRetransmissions = ["-default_behaviors", "all,-abortunexp"]

/// A SIPp upstream gateway on a free port, running in the background.
func startGateway(_ arguments: [String]) throws -> (ExternalProcess, Int) {
    let port = freePort()
    let p = try ExternalProcess("sipp", arguments + tolerateRetransmissions + ["-i", "127.0.0.1", "-p", "\(port)", "-nostdin", "-timeout", "60s"])
    return (p, port)
}

/// The CDRs the switch wrote, polled until `count` are there (writes follow the last SIP message by a moment).
func fetchCDRs(_ location: StoreLocation, count: Int, query: CDRQuery = CDRQuery()) async throws -> [CDR] {
    var cdrs: [CDR] = []
    for _ in 0..<40 {
        let store = try await Store.open(location)
        cdrs = try await store.cdrs(query)
        try await store.close()
        if cdrs.count >= count { break }
        try await Task.sleep(for: .milliseconds(250))
    }
    return cdrs
}

@Suite("Trunk calls end to end (SIPp PBX → switchboard → SIPp gateway)", .serialized)
struct TrunkCallTests {
    /// Also with every call through the actor service (`callsOnEventLoop` false), as without the event-loop path.
    @Test(arguments: StoreBackend.allCases, [true, false])
    func answeredCallIsBridgedRatedAndRecordedWithItsTag(backend: StoreBackend, callsOnEventLoop: Bool) async throws {
        let bed = try await TrunkTestbed.start(backend, callsOnEventLoop: callsOnEventLoop)
        defer { bed.stop() }
        let location = bed.location
        let gateway = bed.gateway
        let sw = bed.sw

        let result = try await placeCall(uacScenario(number: "447700900123", headers: ["X-simwood-tag: CUST001-AB384720"],
                                                     plan: .hangUpAfter(milliseconds: 2000)), switchPort: sw.port)
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        let (gwStatus, gwOutput, _) = await gateway.wait(timeout: .seconds(20))
        #expect(gwStatus == 0, "gateway: \(gwOutput.suffix(1500))")

        let cdrs = try await fetchCDRs(location, count: 1, query: CDRQuery(tagTerm: "AB384720"))
        let cdr = try #require(cdrs.first)
        #expect(cdr.accountID == "920700" && cdr.trunkID == "920700-L001" && cdr.tag == "CUST001-AB384720")
        #expect(cdr.from == "441632960000" && cdr.to == "447700900123" && cdr.finalStatus == 200 && cdr.reason == nil)
        #expect((2...3).contains(cdr.durationSeconds), "duration \(cdr.durationSeconds)")
        // 0.01 connection + 0.01 a second, per-second billing.
        #expect(cdr.billedSeconds == cdr.durationSeconds)
        #expect(cdr.cost == (parseMoney("0.01") ?? 0) + Decimal(cdr.durationSeconds) / 100)
        #expect(try await fetchCDRs(location, count: 1, query: CDRQuery(tagTerm: "CUST001")).count == 1)
        #expect(try await fetchCDRs(location, count: 0, query: CDRQuery(tagTerm: "CUST001-AB384720")).isEmpty)
        // The same CDR through the REST API, found by a term of its tag.
        let key = try await sw.createAPIKey()
        let (status, json) = try await sw.get("/api/v1/cdrs?tag=AB384720&account=920700", key: key)
        #expect(status == 200)
        let listed = try #require((json["cdrs"] as? [[String: Any]])?.first, "\(json)")
        #expect(listed["call_id"] as? String == cdr.callID && listed["tag"] as? String == "CUST001-AB384720")
        #expect(listed["cost"] as? String == "\(cdr.cost)" && listed["trunk"] as? String == "920700-L001")
        let store = try await Store.open(location)
        #expect(try await store.account(id: "920700")?.balance == (parseMoney("10") ?? 0) - cdr.cost)  // debited once
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases, [true, false])
    func refusalsCarryTheSpecifiedReasonTexts(backend: StoreBackend, callsOnEventLoop: Bool) async throws {
        let (url, location) = try await freshDatabase(backend)
        try await seedTrunkCustomer(location, accountLimits: CallLimits(channels: 5), blacklist: ["4487"])
        let sw = try await RunningSwitch.start(database: url, gateways: [("carrier", freePort())], callsOnEventLoop: callsOnEventLoop)
        defer { sw.stop() }
        let cases: [(number: String, from: String, headers: [String], code: Int, reason: String)] = [
            ("447700900123", "441632960000", ["X-simwood-trunk: 555000-L001"], 403, "Invalid Trunk"),
            ("447700900123", "not-a-number", [], 403, "Invalid CLI"),
            ("448700123456", "441632960000", [], 403, "Blacklisted Destination"),
            ("33123456789", "441632960000", [], 404, "No Rate For Destination"),
            ("447700900123", "441632960000", ["X-simwood-maxcpc: 0.05", "X-simwood-maxcpm: 0.10"], 403,
             "Rate Above Maximum (per-minute rate 0.6 exceeds maxcpm 0.1)"),
            // T3: maxcpm alone means no connection charge is acceptable.
            ("447700900123", "441632960000", ["X-simwood-maxcpm: 1.00"], 403,
             "Rate Above Maximum (connection charge 0.01 exceeds maxcpc 0)"),
        ]
        for c in cases {
            let result = try await placeCall(uacScenario(number: c.number, from: c.from, headers: c.headers, plan: .refused(c.code),
                                                         checks: ["X-Reason: \(c.reason)", "Reason: SIP ;cause=\(c.code) ;text=\"\(c.reason)\""]),
                                             switchPort: sw.port)
            #expect(result.status == 0 && result.successful == 1, "\(c.reason): \(result.output.suffix(2000))")
        }
        // Each refusal is on record with its code and reason.
        let cdrs = try await fetchCDRs(location, count: cases.count)
        #expect(Set(cdrs.compactMap(\.reason)) == Set(cases.map(\.reason)))
        #expect(cdrs.allSatisfy { $0.cost == 0 && $0.answerAt == nil })
    }

    @Test(arguments: StoreBackend.allCases)
    func maximumDurationClearsBothLegsOnTime(backend: StoreBackend) async throws {
        let bed = try await TrunkTestbed.start(backend)
        defer { bed.stop() }
        let location = bed.location
        let gateway = bed.gateway
        let sw = bed.sw
        let started = ContinuousClock.now
        let result = try await placeCall(uacScenario(number: "447700900123", headers: ["X-simwood-maxdur: 3"],
                                                     plan: .awaitBye(checks: ["X-Reason: Maximum Duration Reached"])), switchPort: sw.port)
        let elapsed = ContinuousClock.now - started
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        #expect(elapsed >= .seconds(3) && elapsed < .seconds(5), "the BYE came after \(elapsed)")
        let (gwStatus, gwOutput, _) = await gateway.wait(timeout: .seconds(20))
        #expect(gwStatus == 0, "the gateway got its BYE too: \(gwOutput.suffix(1500))")
        let cdr = try #require(try await fetchCDRs(location, count: 1).first)
        #expect(cdr.durationSeconds == 3 && cdr.reason == "Maximum Duration Reached")
        #expect(cdr.cost == parseMoney("0.04"))  // 0.01 + 3 s at 0.01
    }

    @Test(arguments: StoreBackend.allCases)
    func maximumCostClearsTheCallWhenReached(backend: StoreBackend) async throws {
        let bed = try await TrunkTestbed.start(backend)
        defer { bed.stop() }
        let location = bed.location
        let sw = bed.sw
        // 0.01 to connect, then 0.01 a second: 0.03 is reached at 2 s.
        let result = try await placeCall(uacScenario(number: "447700900123", headers: ["X-simwood-maxcost: 0.03"],
                                                     plan: .awaitBye(checks: ["X-Reason: Maximum Cost Reached",
                                                                              "Reason: SIP ;cause=402 ;text=\"Maximum Cost Reached\""])),
                                         switchPort: sw.port)
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        let cdr = try #require(try await fetchCDRs(location, count: 1).first)
        #expect(cdr.durationSeconds == 2 && cdr.cost == parseMoney("0.03") && cdr.reason == "Maximum Cost Reached")
    }

    /// T10 across parallel calls: 0.09 of balance lets one call (0.01 + 0.01 a
    /// second) run 8 s; two at once have spent 0.10 once each is 4 s in, so both
    /// are cleared then (the node costs each account's calls together every
    /// second), BYE with X-Reason, well before either call's own 8 s.
    @Test(arguments: StoreBackend.allCases)
    func parallelCallsAreClearedWhenTogetherTheyUseUpTheBalance(backend: StoreBackend) async throws {
        let bed = try await TrunkTestbed.start(backend, gateway: ["-sn", "uas", "-m", "2"]) { try await seedTrunkCustomer($0, balance: "0.09") }
        defer { bed.stop() }
        try await expectTwoCallsClearedTogether(switchPorts: (bed.sw.port, bed.sw.port), location: bed.location)
    }

    /// T10 at set-up across calls: each call holds its first billing increment
    /// (0.01 + 1 s at 0.01) from admission, so 0.05 of balance lets two calls
    /// ring at once; a third set up while they ring is refused 402 (before, it
    /// was admitted against the whole balance as each of a burst was). Once
    /// the two have ended, their holds are back and a fourth call is admitted.
    @Test(arguments: StoreBackend.allCases)
    func callsSetUpTogetherCannotEachSpendTheWholeBalance(backend: StoreBackend) async throws {
        let bed = try await TrunkTestbed.start(backend, gateway: ["-sf", fixture("sipp/gw_ring_then_cancel.xml"), "-m", "3"]) {
            try await seedTrunkCustomer($0, balance: "0.05")
        }
        defer { bed.stop() }
        try await expectTwoRingingCallsHoldTheBalance(switchPorts: (bed.sw.port, bed.sw.port), gateway: bed.gateway, location: bed.location)
    }

    @Test(arguments: StoreBackend.allCases)
    func failsOverToTheNextGatewayOn503(backend: StoreBackend) async throws {
        let (url, location) = try await freshDatabase(backend)
        try await seedTrunkCustomer(location)
        let (busy, busyPort) = try startGateway(["-sf", fixture("sipp/gw_503.xml"), "-m", "1"])
        let (good, goodPort) = try startGateway(["-sn", "uas", "-m", "1"])
        defer { busy.kill(); good.kill() }
        let sw = try await RunningSwitch.start(database: url, gateways: [("first", busyPort), ("second", goodPort)])
        defer { sw.stop() }
        let result = try await placeCall(uacScenario(number: "447700900123", plan: .hangUpAfter(milliseconds: 500)), switchPort: sw.port)
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        let (s1, o1, _) = await busy.wait(timeout: .seconds(20))
        let (s2, o2, _) = await good.wait(timeout: .seconds(20))
        #expect(s1 == 0, "first gateway: \(o1.suffix(1000))")
        #expect(s2 == 0, "second gateway: \(o2.suffix(1000))")
        #expect(try await fetchCDRs(location, count: 1).first?.finalStatus == 200)
    }

    @Test(arguments: StoreBackend.allCases)
    func cancelFromTheCallerReachesTheGateway(backend: StoreBackend) async throws {
        let bed = try await TrunkTestbed.start(backend, gateway: ["-sf", fixture("sipp/gw_ring_then_cancel.xml"), "-m", "1"])
        defer { bed.stop() }
        let location = bed.location
        let gateway = bed.gateway
        let sw = bed.sw
        let result = try await placeCall(uacScenario(number: "447700900123", plan: .cancelAfterRinging(milliseconds: 500)), switchPort: sw.port)
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        let (gs, go, _) = await gateway.wait(timeout: .seconds(20))
        #expect(gs == 0, "gateway: \(go.suffix(1500))")
        let cdr = try #require(try await fetchCDRs(location, count: 1).first)
        #expect(cdr.finalStatus == 487 && cdr.cost == 0 && cdr.answerAt == nil)
    }

    /// The gateway's 200 crosses the caller's CANCEL: the caller gets its 487
    /// and the CDR says 487, and the gateway's answered dialog is ACKed and
    /// hung up with BYE, not left up until the gateway gives up on its ACK.
    @Test(arguments: [true, false])
    func anAnswerCrossingTheCancelIsACKedAndHungUp(callsOnEventLoop: Bool) async throws {
        let bed = try await TrunkTestbed.start(.sqlite, gateway: ["-sf", fixture("sipp/gw_answer_crossing_cancel.xml"), "-m", "1"],
                                               callsOnEventLoop: callsOnEventLoop)
        defer { bed.stop() }
        let result = try await placeCall(uacScenario(number: "447700900123", plan: .cancelAfterRinging(milliseconds: 500)), switchPort: bed.sw.port)
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        let (gs, go, _) = await bed.gateway.wait(timeout: .seconds(20))
        #expect(gs == 0, "gateway: \(go.suffix(1500))")
        let cdr = try #require(try await fetchCDRs(bed.location, count: 1).first)
        #expect(cdr.finalStatus == 487 && cdr.cost == 0 && cdr.answerAt == nil)
    }

    @Test(arguments: StoreBackend.allCases)
    func byeFromTheGatewayReachesTheCaller(backend: StoreBackend) async throws {
        let bed = try await TrunkTestbed.start(backend, gateway: ["-sf", fixture("sipp/gw_answer_then_bye.xml"), "-m", "1"])
        defer { bed.stop() }
        let location = bed.location
        let gateway = bed.gateway
        let sw = bed.sw
        let result = try await placeCall(uacScenario(number: "447700900123", plan: .awaitBye(checks: [])), switchPort: sw.port)
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        let (gs, go, _) = await gateway.wait(timeout: .seconds(20))
        #expect(gs == 0, "gateway: \(go.suffix(1500))")
        let cdr = try #require(try await fetchCDRs(location, count: 1).first)
        #expect(cdr.finalStatus == 200 && (1...2).contains(cdr.durationSeconds))
    }
}

@Suite("Trunk calls end to end: authentication, overrides, warnings, crash recovery", .serialized)
struct TrunkCallPolicyTests {
    @Test(arguments: StoreBackend.allCases)
    func digestTrunkIsChallengedThenAdmitted(backend: StoreBackend) async throws {
        // No ACL matches: the call must authenticate with the trunk's credentials.
        let trunk = Trunk(accountID: "920700", name: "D1", username: "acme-d1", realm: "switchboard",
                          ha1MD5: DigestComputation.ha1(algorithm: .md5, username: "acme-d1", realm: "switchboard", password: "s3cret-pw"),
                          ha1SHA256: DigestComputation.ha1(algorithm: .sha256, username: "acme-d1", realm: "switchboard", password: "s3cret-pw"))
        let bed = try await TrunkTestbed.start(backend) { try await seedTrunkCustomer($0, trunks: [trunk]) }
        defer { bed.stop() }
        let location = bed.location
        let sw = bed.sw
        let good = try await placeCall(uacScenario(number: "447700900123", plan: .hangUpAfter(milliseconds: 200), authenticate: true),
                                       switchPort: sw.port, extra: ["-au", "acme-d1", "-ap", "s3cret-pw"])
        #expect(good.status == 0 && good.successful == 1, "\(good.output.suffix(2000))")
        let cdr = try #require(try await fetchCDRs(location, count: 1).first)
        #expect(cdr.trunkID == "920700-D1" && cdr.finalStatus == 200)
        // A wrong password is refused, and no call is placed.
        let bad = try await placeCall(uacScenario(number: "447700900123", plan: .refused(403), authenticate: true),
                                      switchPort: sw.port, extra: ["-au", "acme-d1", "-ap", "wrong"])
        #expect(bad.status == 0 && bad.successful == 1, "\(bad.output.suffix(2000))")
        #expect(try await fetchCDRs(location, count: 1).count == 1)
    }

    @Test(arguments: StoreBackend.allCases)
    func trunkOverrideAndCLIWarning(backend: StoreBackend) async throws {
        let bed = try await TrunkTestbed.start(backend) { try await seedTrunkCustomer($0, cliPolicy: .warn) }
        defer { bed.stop() }
        let location = bed.location
        let sw = bed.sw
        // T2: the call goes on the named trunk of the same account; T7 (warn): it completes with X-Warning.
        let result = try await placeCall(uacScenario(number: "447700900123", from: "anonymous", headers: ["X-simwood-trunk: 920700-L002"],
                                                     plan: .hangUpAfter(milliseconds: 200), checks: ["X-Warning: Invalid CLI"]),
                                         switchPort: sw.port)
        #expect(result.status == 0 && result.successful == 1, "\(result.output.suffix(2000))")
        let cdr = try #require(try await fetchCDRs(location, count: 1).first)
        #expect(cdr.trunkID == "920700-L002" && cdr.from == "anonymous" && cdr.finalStatus == 200)
    }

    @Test(arguments: StoreBackend.allCases)
    func killMinus9LosesNoCDRAndLiveCallsAreRecordedAsInterrupted(backend: StoreBackend) async throws {
        let (url, location) = try await freshDatabase(backend)
        try await seedTrunkCustomer(location)
        let (gateway, gwPort) = try startGateway(["-sn", "uas", "-m", "2"])
        defer { gateway.kill() }
        let sw = try await RunningSwitch.start(database: url, gateways: [("carrier", gwPort)])
        // One call ends normally…
        let ended = try await placeCall(uacScenario(number: "447700900123", headers: ["X-simwood-tag: ENDED"],
                                                    plan: .hangUpAfter(milliseconds: 200)), switchPort: sw.port)
        #expect(ended.status == 0 && ended.successful == 1, "\(ended.output.suffix(2000))")
        // …another is up when the switch is killed.
        let live = try placeCallInBackground(uacScenario(number: "447700900124", headers: ["X-simwood-tag: LIVE"],
                                                         plan: .hangUpAfter(milliseconds: 30_000)), switchPort: sw.port, timeoutSeconds: 40)
        defer { live.stop() }
        try await Task.sleep(for: .seconds(2))
        sw.process.kill()
        _ = await sw.process.wait(timeout: .seconds(10))
        #expect(try await fetchCDRs(location, count: 1, query: CDRQuery(tagTerm: "ENDED")).first?.finalStatus == 200)
        #expect(try await fetchCDRs(location, count: 0, query: CDRQuery(tagTerm: "LIVE")).isEmpty)
        // The next start records the call that was live as interrupted.
        let again = try await RunningSwitch.start(database: url, gateways: [("carrier", gwPort)])
        defer { again.stop() }
        let interrupted = try #require(try await fetchCDRs(location, count: 1, query: CDRQuery(tagTerm: "LIVE")).first)
        #expect(interrupted.interrupted && interrupted.reason == "Interrupted" && interrupted.to == "447700900124")
        #expect(try await fetchCDRs(location, count: 2).count == 2)
    }

    /// A graceful stop (SIGTERM, as `systemctl stop` sends): a new call is
    /// refused at once with 503 `Node Shutting Down` and Retry-After; a live
    /// call that ends during the drain period ends as usual; one still up
    /// when it is over is cleared, BYE with that X-Reason; the process exits
    /// 0 with both CDRs written, and the next start finds nothing interrupted.
    @Test(arguments: [(StoreBackend.sqlite, true), (StoreBackend.postgres, false), (StoreBackend.postgres, true)])
    func sigtermRefusesNewCallsDrainsThenClearsTheLiveOnesAndWritesTheirCDRs(backend: StoreBackend, callsOnEventLoop: Bool) async throws {
        let (url, location) = try await freshDatabase(backend)
        try await seedTrunkCustomer(location)
        let (gateway, gwPort) = try startGateway(["-sn", "uas", "-m", "2"])
        defer { gateway.kill() }
        let sw = try await RunningSwitch.start(database: url, gateways: [("carrier", gwPort)], drainSeconds: 4, callsOnEventLoop: callsOnEventLoop)
        defer { sw.stop() }
        let ends = try placeCallInBackground(uacScenario(number: "447700900123", headers: ["X-simwood-tag: ENDS"],
                                                         plan: .hangUpAfter(milliseconds: 3000)), switchPort: sw.port, timeoutSeconds: 30)
        defer { ends.stop() }
        let cleared = try placeCallInBackground(uacScenario(number: "447700900124", headers: ["X-simwood-tag: CLEARED"],
                                                            plan: .awaitBye(checks: ["X-Reason: Node Shutting Down"])),
                                                switchPort: sw.port, timeoutSeconds: 30)
        defer { cleared.stop() }
        try await Task.sleep(for: .milliseconds(1500))  // both answered
        #expect(kill(sw.process.pid, SIGTERM) == 0)
        try await Task.sleep(for: .milliseconds(300))
        let refused = try await placeCall(uacScenario(number: "447700900125", headers: ["X-simwood-tag: REFUSED"], plan: .refused(503),
                                                      checks: ["X-Reason: Node Shutting Down", "Retry-After: 30"]), switchPort: sw.port)
        #expect(refused.status == 0 && refused.successful == 1, "\(refused.output.suffix(2000))")
        let (status, output, timedOut) = await sw.process.wait(timeout: .seconds(30))
        #expect(status == 0 && !timedOut, "exit \(status): \(output.suffix(3000))")
        #expect(output.contains("calls_at_stop=2 cleared=1 clearing_byes_answered=true"), "\(output.suffix(3000))")
        for call in [ends, cleared] {
            let (s, o, _) = await call.process.wait(timeout: .seconds(20))
            #expect(s == 0, "\(o.suffix(2000))")
        }
        // The store was closed with both CDRs in it: read without starting the switch again.
        let done = try #require(try await fetchCDRs(location, count: 1, query: CDRQuery(tagTerm: "ENDS")).first)
        #expect(done.finalStatus == 200 && done.reason == nil && !done.interrupted && (2...4).contains(done.durationSeconds), "\(done)")
        let cut = try #require(try await fetchCDRs(location, count: 1, query: CDRQuery(tagTerm: "CLEARED")).first)
        #expect(cut.finalStatus == 200 && cut.reason == "Node Shutting Down" && !cut.interrupted && (3...6).contains(cut.durationSeconds), "\(cut)")
        #expect(cut.cost > 0)
        #expect(try await fetchCDRs(location, count: 0, query: CDRQuery(tagTerm: "REFUSED")).isEmpty)
        // Nothing was left live: the next start records no call as interrupted.
        let again = try await RunningSwitch.start(database: url, gateways: [("carrier", gwPort)])
        defer { again.stop() }
        try await Task.sleep(for: .milliseconds(500))
        let all = try await fetchCDRs(location, count: 2)
        #expect(all.count == 2 && all.allSatisfy { !$0.interrupted }, "\(all.map { ($0.tag ?? "", $0.reason ?? "") })")
    }

    /// T9 "correct across a cluster": two nodes on one PostgreSQL share the
    /// account's channel limit (2) and rate limit (3 calls a minute). With a
    /// call up on each node, a third is refused on either; after they end, a
    /// third call goes through one node and a fourth is refused by the rate
    /// limit on the other.
    @Test func twoNodesShareChannelAndRateLimits() async throws {
        let cluster = try await ClusterTestbed.start(gateway: ["-sn", "uas", "-m", "3"]) {
            try await seedTrunkCustomer($0, accountLimits: CallLimits(channels: 2, rate: RateLimitSetting(calls: 3, seconds: 60)))
        }
        defer { cluster.stop() }
        let (a, b, location) = (cluster.a, cluster.b, cluster.location)

        // Long enough for two refusals to be placed while both are up, on a loaded CI machine too.
        let long = uacScenario(number: "447700900123", plan: .hangUpAfter(milliseconds: 12_000))
        async let first = placeCall(long, switchPort: a.port)
        async let second = placeCall(long, switchPort: b.port)
        let store = try await Store.open(location)
        let bothUp = try await eventually(timeout: .seconds(15)) { try await store.heldChannels("account:920700") == 2 }
        #expect(bothUp, "the two calls never held two channels in the store")
        for sw in [a, b] {
            let refused = try await placeCall(uacScenario(number: "447700900124", plan: .refused(503),
                                                          checks: ["X-Reason: Channel Limit Exceeded"]), switchPort: sw.port)
            #expect(refused.status == 0 && refused.successful == 1, "port \(sw.port): \(refused.output.suffix(2000))")
        }
        for r in try await [first, second] { #expect(r.status == 0 && r.successful == 1, "\(r.output.suffix(2000))") }

        let third = try await placeCall(uacScenario(number: "447700900125", plan: .hangUpAfter(milliseconds: 200)), switchPort: b.port)
        #expect(third.status == 0 && third.successful == 1, "\(third.output.suffix(2000))")
        let limited = try await placeCall(uacScenario(number: "447700900126", plan: .refused(503),
                                                      checks: ["X-Reason: User account rate limit of 3 calls per minute"]), switchPort: a.port)
        #expect(limited.status == 0 && limited.successful == 1, "\(limited.output.suffix(2000))")

        let cdrs = try await fetchCDRs(location, count: 6)
        #expect(cdrs.filter { $0.finalStatus == 200 }.count == 3)
        #expect(cdrs.filter { $0.reason == "Channel Limit Exceeded" }.count == 2)
        #expect(cdrs.filter { $0.reason == "User account rate limit of 3 calls per minute" }.count == 1)
        #expect(try await eventually(timeout: .seconds(10)) { try await store.heldChannels("account:920700") == 0 })
        try await store.close()
    }

    /// T10 across a cluster: the account's calls on every node are costed
    /// together. 0.09 of balance lets one call (0.01 + 0.01 a second) run 8 s;
    /// one call on each node, at once, have spent 0.10 once each is 4 s in, and
    /// both nodes clear theirs then — neither node alone has two calls.
    @Test func callsOnTwoNodesAreClearedWhenTogetherTheyUseUpTheBalance() async throws {
        let cluster = try await ClusterTestbed.start(gateway: ["-sn", "uas", "-m", "2"]) { try await seedTrunkCustomer($0, balance: "0.09") }
        defer { cluster.stop() }
        try await expectTwoCallsClearedTogether(switchPorts: (cluster.a.port, cluster.b.port), location: cluster.location)
    }

    /// T10 at set-up across a cluster: one call ringing on each node holds
    /// 0.02 of 0.05 in the store, so a third call on node a is refused 402
    /// although node a alone holds only 0.02 (node b's call counts too).
    @Test func callsSetUpOnTwoNodesHoldTheBalanceTogether() async throws {
        let cluster = try await ClusterTestbed.start(gateway: ["-sf", fixture("sipp/gw_ring_then_cancel.xml"), "-m", "3"]) {
            try await seedTrunkCustomer($0, balance: "0.05")
        }
        defer { cluster.stop() }
        try await expectTwoRingingCallsHoldTheBalance(switchPorts: (cluster.a.port, cluster.b.port), gateway: cluster.gateway,
                                                      location: cluster.location)
    }

    /// A node killed for good (kill -9, never restarted) must not hold its
    /// calls' channels for ever: once it has been silent for
    /// `node.silent_after_seconds` (6 s here), the other node records its live
    /// call as interrupted, the channel comes back, and the account (1
    /// channel) can call again through the surviving node.
    @Test func deadNodesChannelsComeBackAfterTheSilentPeriod() async throws {
        let cluster = try await ClusterTestbed.start(gateway: ["-sn", "uas", "-m", "2"], silentAfterSeconds: 6) {
            try await seedTrunkCustomer($0, accountLimits: CallLimits(channels: 1))
        }
        defer { cluster.stop() }
        let (a, b, location) = (cluster.a, cluster.b, cluster.location)

        let live = try placeCallInBackground(uacScenario(number: "447700900124", headers: ["X-simwood-tag: ONDEADNODE"],
                                                         plan: .hangUpAfter(milliseconds: 60_000)), switchPort: a.port, timeoutSeconds: 80)
        defer { live.stop() }
        let store = try await Store.open(location)
        #expect(try await eventually(timeout: .seconds(15)) { try await store.heldChannels("account:920700") == 1 },
                "the call on node a never held the account's channel")
        let refused = try await placeCall(uacScenario(number: "447700900125", plan: .refused(503),
                                                      checks: ["X-Reason: Channel Limit Exceeded"]), switchPort: b.port)
        #expect(refused.status == 0 && refused.successful == 1, "\(refused.output.suffix(2000))")

        // Node a was last seen no earlier than this (it may say so again before it dies).
        let seenBeforeKill = try #require(try await store.nodes()["node-a"])
        a.process.kill()
        #expect(try await eventually(timeout: .seconds(30)) { try await store.heldChannels("account:920700") == 0 },
                "node a's channel was never given back")
        let cdr = try #require(try await fetchCDRs(location, count: 1, query: CDRQuery(tagTerm: "ONDEADNODE")).first)
        #expect(cdr.interrupted && cdr.reason == "Interrupted" && cdr.to == "447700900124")
        // Not before node a had been silent for 6 s.
        #expect(cdr.endAt >= seenBeforeKill + 6, "reclaimed \(cdr.endAt - seenBeforeKill) s after node a was last seen")
        let again = try await placeCall(uacScenario(number: "447700900126", plan: .hangUpAfter(milliseconds: 200)), switchPort: b.port)
        #expect(again.status == 0 && again.successful == 1, "\(again.output.suffix(2000))")
        try await store.close()
    }
}
