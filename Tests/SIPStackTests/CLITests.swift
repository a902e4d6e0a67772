import Foundation
import NIOCore
import SIPMessage
import SIPStack
import SIPTransaction
import SIPTransport
import Testing
import TestSupport

/// The built `switchboard` binary (scripts/test.sh builds it with the tests).
func switchboardBinary() throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    for p in [".build/debug/switchboard", ".build/x86_64-unknown-linux-gnu/debug/switchboard", ".build/aarch64-unknown-linux-gnu/debug/switchboard"] {
        let path = root.appendingPathComponent(p).path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw ExternalProcessError.notInstalled("switchboard (run swift build first)")
}

/// Probes a starting `switchboard serve` with `switchboard sip options` until it
/// answers 200 (about 10 s at most); whether it did.
func waitUntilAnswersOptions(port: Int, host: String = "127.0.0.1") async throws -> Bool {
    for _ in 0..<40 {
        try await Task.sleep(for: .milliseconds(250))
        let probe = try ExternalProcess(try switchboardBinary(), ["sip", "options", "sip:\(host):\(port)", "--bind", "127.0.0.1", "--timeout", "1"])
        let (status, output, _) = await probe.wait(timeout: .seconds(10))
        if status == 0 && output.contains("SIP/2.0 200 OK") { return true }
    }
    return false
}

let corpusFiles: [String] = {
    let root = URL(fileURLWithPath: fixture("rfc4475"))
    return ["valid", "invalid"].flatMap { dir in
        ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(dir).path)) ?? [])
            .map { root.appendingPathComponent(dir).appendingPathComponent($0).path }
    }.sorted()
}()

/// RFC 4475 §3.1.2 messages (and test.dat, which is not from the RFC) must be rejected.
let mustBeRejected: Set<String> = ["badinv01", "clerr", "ncl", "scalar02", "scalarlg", "quotbal", "ltgtruri", "lwsruri",
                                   "lwsstart", "trws", "escruri", "baddate", "regbadct", "badaspec", "baddn", "badvers",
                                   "mismatch01", "mismatch02", "bigcode", "test"]

@Suite("switchboard sip parse")
struct SIPParseCommandTests {
    @Test func verdictLinePerFileFollowsRFC4475() async throws {
        #expect(corpusFiles.count == 50)
        let p = try ExternalProcess(try switchboardBinary(), ["sip", "parse"] + corpusFiles)
        let (status, output, _) = await p.wait(timeout: .seconds(30))
        #expect(status == 1)  // some files are invalid
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.count == 50)
        for (file, line) in zip(corpusFiles, lines) {
            let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
            #expect(line.hasPrefix(file + ": "))
            if mustBeRejected.contains(name) {
                #expect(line.hasPrefix(file + ": invalid: "), "\(line)")
            } else {
                #expect(line.hasPrefix(file + ": ok "), "\(line)")
            }
        }
        #expect(lines.contains { $0.hasSuffix("badvers.dat: invalid: unsupported SIP version SIP/7.0") })
        #expect(lines.contains { $0.hasSuffix("unkscm.dat: ok OPTIONS (a UAS answers 416 Unsupported URI Scheme)") })
        #expect(lines.contains { $0.hasSuffix("noreason.dat: ok 100") })
    }

    @Test func exitsZeroWhenEveryFileParses() async throws {
        let ok = corpusFiles.filter { !mustBeRejected.contains(URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent) }
        let p = try ExternalProcess(try switchboardBinary(), ["sip", "parse"] + ok)
        let (status, _, _) = await p.wait(timeout: .seconds(30))
        #expect(status == 0)
    }

    @Test func jsonShowsTheParsedMessage() async throws {
        let file = try #require(corpusFiles.first { $0.hasSuffix("/wsinv.dat") })
        let p = try ExternalProcess(try switchboardBinary(), ["sip", "parse", "--json", file])
        let (status, output, _) = await p.wait(timeout: .seconds(30))
        #expect(status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(json["method"] as? String == "INVITE")
        #expect(json["maxForwards"] as? Int == 68)
        #expect((json["vias"] as? [Any])?.count == 3)
        #expect((json["to"] as? [String: Any]).flatMap { ($0["parameters"] as? [[String: Any]])?.first?["value"] as? String } == "1918181833n")
    }
}

@Suite("switchboard sip options", .serialized)
struct SIPOptionsCommandTests {
    /// RFC 3263 end to end: SRV sends the first attempt to a SIPp that answers
    /// 503, the tool fails over to the next SRV target, where SIPp answers 200.
    @Test func resolvesAndFailsOverOn503() async throws {
        let busyPort = freePort(), okPort = freePort(), dnsPort = freePort()
        let busy = try ExternalProcess("sipp", ["-sf", fixture("sipp/options_503.xml"), "-i", "127.0.0.1", "-p", "\(busyPort)",
                                                "-m", "1", "-nostdin"])
        let ok = try ExternalProcess("sipp", ["-sf", fixture("sipp/options_200.xml"), "-i", "127.0.0.1", "-p", "\(okPort)",
                                              "-m", "1", "-nostdin"])
        let dns = try ExternalProcess("dnsmasq", [
            "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
            "--port=\(dnsPort)", "--user=root", "--pid-file=", "--local=/example.test/",
            "--srv-host=_sip._udp.pbx.example.test,busy.example.test,\(busyPort),10,10",
            "--srv-host=_sip._udp.pbx.example.test,ok.example.test,\(okPort),20,10",
            "--host-record=busy.example.test,127.0.0.1", "--host-record=ok.example.test,127.0.0.1",
        ])
        defer { busy.kill(); ok.kill(); dns.kill() }
        try await Task.sleep(for: .milliseconds(700))

        let tool = try ExternalProcess(try switchboardBinary(), ["sip", "options", "sip:pbx.example.test", "--bind", "127.0.0.1",
                                                                 "--dns-server", "127.0.0.1:\(dnsPort)", "--timeout", "10"])
        let (status, output, _) = await tool.wait(timeout: .seconds(30))
        #expect(status == 0, "\(output)")
        #expect(output.contains("targets: UDP 127.0.0.1:\(busyPort), UDP 127.0.0.1:\(okPort)"))
        #expect(output.contains("response from UDP 127.0.0.1:\(okPort)"))
        #expect(output.contains("SIP/2.0 200 OK"))
        let (busyStatus, _, _) = await busy.wait(timeout: .seconds(5))
        #expect(busyStatus == 0)  // SIPp did get the first OPTIONS
    }

    @Test func unknownHostIsAClearError() async throws {
        let dnsPort = freeTCPPort()  // dnsmasq listens on TCP too
        let dns = try ExternalProcess("dnsmasq", [
            "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
            "--port=\(dnsPort)", "--user=root", "--pid-file=", "--local=/example.test/",
        ])
        defer { dns.kill() }
        try await Task.sleep(for: .milliseconds(500))
        let tool = try ExternalProcess(try switchboardBinary(), ["sip", "options", "sip:nobody.example.test", "--dns-server", "127.0.0.1:\(dnsPort)"])
        let (status, output, _) = await tool.wait(timeout: .seconds(30))
        #expect(status != 0)
        #expect(output.contains("nobody.example.test does not exist in DNS (NXDOMAIN)"), "\(output)")
    }
}

@Suite("failover on timeout")
struct TimeoutFailoverTests {
    /// RFC 3263 §4.3: a destination that never answers costs one Timer F, then the next is tried.
    @Test func silentDestinationIsSkippedAfterTimerF() async throws {
        let (uas, uasPort) = try await startAnsweringUAS(transport: .udp)
        let client = try await SIPEndpoint.start(configuration: SIPEndpointConfiguration(
            listen: [SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp)],
            timers: TransactionTimers(t1: .milliseconds(50), t2: .milliseconds(400), t4: .milliseconds(500))
        )) { _ in }
        let silent = SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.1", port: freePort()), transport: .udp)
        let live = SIPDestination(address: try SocketAddress(ipAddress: "127.0.0.1", port: uasPort), transport: .udp)
        var options = SIPMessage(request: .options, uri: "sip:uas@127.0.0.1")
        options.append(.from, "<sip:probe@127.0.0.1>;tag=1")
        options.append(.to, "<sip:uas@127.0.0.1>")
        options.append(.callID, SIPEndpoint.newCallID(host: "127.0.0.1"))
        options.append(.cseq, "1 OPTIONS")
        let start = ContinuousClock.now
        let (response, destination) = try await client.send(options, toFirstAvailable: [silent, live])
        let elapsed = ContinuousClock.now - start
        #expect(response.statusCode == 200)
        #expect(destination == live)
        #expect(elapsed >= .milliseconds(3200))  // 64·T1 spent on the silent one first
        await client.shutdown()
        await uas.shutdown()
    }
}

@Suite("switchboard serve")
struct ServeCommandTests {
    @Test func startsWithSQLiteAndAnswersOptions() async throws {
        let port = freePort()
        let dir = NSTemporaryDirectory() + "serve-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let db = dir + "/switchboard.sqlite"
        let serve = try ExternalProcess(try switchboardBinary(), ["serve"], environment: [
            "SWITCHBOARD_SIP_LISTEN": "udp:127.0.0.1:\(port)", "SWITCHBOARD_DATABASE": "sqlite:\(db)",
        ])
        defer { serve.kill(); try? FileManager.default.removeItem(atPath: dir) }
        #expect(try await waitUntilAnswersOptions(port: port))
        #expect(FileManager.default.fileExists(atPath: db))  // the store was created on first start
        // No sims.password_key: the SIM password key file is made next to the SQLite file, readable by the owner only.
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/sim-password.key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func invalidSIMPasswordKeyStopsStartUpNamingTheKey() async throws {
        let path = NSTemporaryDirectory() + "bad-key-\(UUID().uuidString).yaml"
        try "sims:\n  password_key: \"c2hvcnQ=\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let serve = try ExternalProcess(try switchboardBinary(), ["serve", "--config", path])
        let (status, output, _) = await serve.wait(timeout: .seconds(20))
        #expect(status == 78)
        #expect(output.contains("configuration sims.password_key: the SIM password key must be 32 bytes (base64), not 5"), "\(output)")
        #expect(!output.contains("c2hvcnQ="))
    }

    @Test func invalidConfigurationStopsStartUpNamingTheKey() async throws {
        let path = NSTemporaryDirectory() + "bad-\(UUID().uuidString).yaml"
        try "sip:\n  listen:\n    - udp:0.0.0.0:70000\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let serve = try ExternalProcess(try switchboardBinary(), ["serve", "--config", path])
        let (status, output, _) = await serve.wait(timeout: .seconds(20))
        #expect(status == 78)
        #expect(output.contains("configuration sip.listen[0]: '0.0.0.0:70000' has no valid port (0…65535)"), "\(output)")
    }
}

@Suite("switchboard provision")
struct ProvisionCommandTests {
    @Test func importTwiceChangesNothingTheSecondTime() async throws {
        // A directory of its own: the SIM password key file is created next to the database.
        let dir = NSTemporaryDirectory() + "provision-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let db = dir + "/switchboard.sqlite"
        let file = dir + "/provision.yaml"
        try """
            rate_decks:
              - { name: default, currency: GBP, rates: [ { prefix: "44", per_minute: "0.01" } ] }
            accounts:
              - { id: "920700", name: Acme, currency: GBP, balance: "10" }
            sims:
              - { iccid: "8944101234567890128", account: "920700", sip_hostname: pbx.acme.example, username: u1, password: sim-secret }
            """.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["SWITCHBOARD_DATABASE": "sqlite:\(db)"]
        let first = try ExternalProcess(try switchboardBinary(), ["provision", file], environment: env)
        let (s1, o1, _) = await first.wait(timeout: .seconds(30))
        #expect(s1 == 0 && o1.contains("accounts: 1 created, 0 updated, 0 unchanged; rates: 1 added, 0 updated, 0 removed"), "\(o1)")
        #expect(o1.contains("sims: 1 created, 0 updated, 0 unchanged"), "\(o1)")
        let keyFile = dir + "/sim-password.key"
        let attributes = try FileManager.default.attributesOfItem(atPath: keyFile)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let second = try ExternalProcess(try switchboardBinary(), ["provision", file], environment: env)
        let (s2, o2, _) = await second.wait(timeout: .seconds(30))
        #expect(s2 == 0 && o2.contains("accounts: 0 created, 0 updated, 1 unchanged; rates: 0 added, 0 updated, 0 removed"), "\(o2)")
        #expect(o2.contains("sims: 0 created, 0 updated, 1 unchanged"), "\(o2)")  // the same key file was read again
        // A bad key in the environment stops the import, naming the setting.
        let badKey = try ExternalProcess(try switchboardBinary(), ["provision", file],
                                         environment: env.merging(["SWITCHBOARD_SIM_PASSWORD_KEY": "c2hvcnQ="]) { $1 })
        let (s4, o4, _) = await badKey.wait(timeout: .seconds(30))
        #expect(s4 == 78 && o4.contains("SWITCHBOARD_SIM_PASSWORD_KEY") && o4.contains("sims.password_key") && !o4.contains("c2hvcnQ="), "\(o4)")
        try "accounts:\n  - { id: \"1\", name: A, currency: pounds }\n".write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try ExternalProcess(try switchboardBinary(), ["provision", file], environment: env)
        let (s3, o3, _) = await bad.wait(timeout: .seconds(30))
        #expect(s3 == 65 && o3.contains("accounts[0].currency: 'pounds' is not a currency code such as GBP"), "\(o3)")
    }
}

/// The README's five-minute demo (scripts/demo.sh) does what the README shows:
/// the SIM registers, a call each way completes, the GSM code is refused, a text
/// reaches the handset, CDRs follow.
@Suite("five-minute SIP2SIM demo")
struct DemoScriptTests {
    @Test func demoScriptRegistersAndCallsEachWay() async throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/demo.sh").path
        _ = try switchboardBinary()  // the script uses the debug build
        let demo = try ExternalProcess("bash", [script])
        let (status, output, timedOut) = await demo.wait(timeout: .seconds(120))
        #expect(status == 0 && !timedOut, "\(output.suffix(4000))")
        for line in ["\"state\":\"registered\"", "SIPp (customer's PBX): call completed", "('mobile_terminated', '+447700900999', 'ended', 200)",
                     "('mobile_originated', '+447700900123', 'ended', 200)", "SIPp (PBX): call completed",
                     "('*#06#', 403, 'Forbidden (network service code *#06# is not passed to the customer)')",
                     "447700900999 -> 8944101234567890128: 200", "8944101234567890128 -> 447700900123: 200",
                     "('to_handset', 'delivered', 200, 1)", "[('received', 'Acme', 'Hello from the demo')]",
                     "Acme -> 8944101234567890128: 200  0 s, cost 0.04"] {
            #expect(output.contains(line), "missing \(line) in:\n\(output.suffix(4000))")
        }
    }
}
