import Foundation
import NodeConfiguration
import SIMs
import Testing

@Suite struct NodeConfigurationTests {
    @Test func defaultsNeedNoFile() throws {
        let c = try NodeConfiguration.load(path: nil, environment: [:])
        #expect(c == NodeConfiguration.defaults)
        #expect(c.database == .sqlite(path: "switchboard.sqlite"))
        #expect(c.sipListeners.map(\.port) == [5060, 5060])
    }

    @Test func exampleFileInTheRepositoryLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("switchboard.example.yaml").path
        let c = try NodeConfiguration.load(path: path, environment: [:])
        #expect(c.gateways.map(\.name) == ["carrier-a", "carrier-b"])
        #expect(c.emergencyNumbers == ["999", "112", "911"])
        #expect(c.emergencyGateway == "192.0.2.50:5060")
        #expect(c.gateways(for: "+447700900123").map(\.name) == ["carrier-a", "carrier-b"])
        #expect(c.gateways(for: "33123456789").map(\.name) == ["carrier-b"])
        #expect(c.sipRealm == "switchboard" && c.digestAlgorithms == ["SHA-256", "MD5"])
        #expect(c.callType(of: "447700900123") == "mobile" && c.callType(of: "+33123456789") == "international")
        #expect(c.callType(of: "441632960000") == nil)
        #expect(c.nonceSecret == nil)  // random per start unless a cluster sets one
        #expect(c.simPasswordKey == nil && c.simPasswordKeyFile == "sim-password.key")  // next to switchboard.sqlite
    }

    @Test func simRegistrationSettingsLoadAndBadValuesNameTheKey() throws {
        let path = NSTemporaryDirectory() + "reg-\(UUID().uuidString).yaml"
        try "sims:\n  registration: { contact_host: 192.0.2.7, expires: 600, per_second: 50, reload_seconds: 5, takes_unplaced: false, deregister_on_stop: false }\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let r = try NodeConfiguration.load(path: path, environment: [:]).simRegistration
        #expect(r.contactHost == "192.0.2.7" && r.expires == 600 && r.perSecond == 50 && r.reloadSeconds == 5 && !r.takesUnplaced)
        #expect(!r.deregistersOnStop && NodeConfiguration.defaults.simRegistration.deregistersOnStop)
        #expect(NodeConfiguration.defaults.simRegistration.reloadSeconds <= 60)  // S1: changes within a minute

        for (yaml, key) in [
            ("sims:\n  registration: { reload_seconds: 120 }\n", "sims.registration.reload_seconds"),
            ("sims:\n  registration: { expires: 10 }\n", "sims.registration.expires"),
            ("sims:\n  registration: { takes_unplaced: maybe }\n", "sims.registration.takes_unplaced"),
            ("sims:\n  registration: { deregister_on_stop: sometimes }\n", "sims.registration.deregister_on_stop"),
            ("sims:\n  registration: { per_minute: 5 }\n", "sims.registration.per_minute"),
        ] {
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: ConfigurationError.self) { try NodeConfiguration.load(path: path, environment: [:]) }
            do { _ = try NodeConfiguration.load(path: path, environment: [:]) } catch { #expect(error.key == key, "\(error)") }
        }
    }

    @Test func silentPeriodLoadsAndBadValuesNameTheKey() throws {
        let path = NSTemporaryDirectory() + "node-\(UUID().uuidString).yaml"
        try "node: { name: node-a, silent_after_seconds: 30 }\n".write(toFile: path, atomically: true, encoding: .utf8)
        let c = try NodeConfiguration.load(path: path, environment: [:])
        #expect(c.nodeName == "node-a" && c.silentAfterSeconds == 30)
        #expect(NodeConfiguration.defaults.silentAfterSeconds == 60)
        try expectEachRefusedNamingItsKey(path: path, [
            ("node: { silent_after_seconds: 1 }\n", "node.silent_after_seconds"),
            ("node: { silent_after_seconds: soon }\n", "node.silent_after_seconds"),
            ("node: { nmae: a }\n", "node.nmae"),
        ])
    }

    @Test func drainPeriodLoadsAndBadValuesNameTheKey() throws {
        let path = NSTemporaryDirectory() + "node-\(UUID().uuidString).yaml"
        try "node: { drain_seconds: 0 }\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try NodeConfiguration.load(path: path, environment: [:]).drainSeconds == 0)
        #expect(NodeConfiguration.defaults.drainSeconds == 30)
        try expectEachRefusedNamingItsKey(path: path, [
            ("node: { drain_seconds: -1 }\n", "node.drain_seconds"),
            ("node: { drain_seconds: 3601 }\n", "node.drain_seconds"),
            ("node: { drain_seconds: later }\n", "node.drain_seconds"),
        ])
    }

    @Test func textSettingsLoadAndBadValuesNameTheKey() throws {
        let path = NSTemporaryDirectory() + "texts-\(UUID().uuidString).yaml"
        try "texts: { retry_first_seconds: 1, retry_max_seconds: 60, give_up_hours: 2, max_segments: 3 }\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let c = try NodeConfiguration.load(path: path, environment: [:])
        #expect(c.textRetryFirstSeconds == 1 && c.textRetryMaxSeconds == 60 && c.textGiveUpSeconds == 7_200 && c.textMaxSegments == 3)
        #expect(NodeConfiguration.defaults.textMaxSegments == 6)
        try expectEachRefusedNamingItsKey(path: path, [
            ("texts: { max_segments: 11 }\n", "texts.max_segments"),
            ("texts: { max_segments: two }\n", "texts.max_segments"),
            ("texts: { retry_first_seconds: 10, retry_max_seconds: 5 }\n", "texts.retry_max_seconds"),
            ("texts: { give_up_days: 1 }\n", "texts.give_up_days"),
        ])
    }

    @Test func mobileCoreAndNetworkCodesLoadAndBadValuesNameTheKey() throws {
        var c = NodeConfiguration.defaults
        #expect(c.mobileCore == nil && c.networkServiceCodes.contains("06"))
        try c.apply(yaml: "mobile_core: { address: \"192.0.2.60:5070\" }\nsims:\n  network_codes: [\"06\", \"002\"]\n")
        #expect(c.mobileCore == NodeConfiguration.MobileCore(address: "192.0.2.60:5070", sources: ["192.0.2.60"]))
        #expect(c.networkServiceCodes == ["06", "002"])
        try c.apply(yaml: "mobile_core: { address: core.example, sources: [192.0.2.61, \"2001:db8::1\"] }\n")
        #expect(c.mobileCore?.sources == ["192.0.2.61", "2001:db8::1"])
        for (yaml, key) in [
            ("mobile_core: { sources: [192.0.2.1] }\n", "mobile_core.address"),
            ("mobile_core: { address: core.example }\n", "mobile_core.sources"),
            ("mobile_core: { address: 192.0.2.1, sources: [core.example] }\n", "mobile_core.sources[0]"),
            ("mobile_core: { address: 192.0.2.1, port: 5 }\n", "mobile_core.port"),
            ("sims:\n  network_codes: [002]\n", "sims.network_codes[0]"),
        ] {
            var d = NodeConfiguration.defaults
            do { try d.apply(yaml: yaml); Issue.record("accepted \(yaml)") } catch { #expect(error.key == key, "\(error)") }
        }
    }

    @Test func gatewayAddressesTakeAnOptionalPort() {
        #expect(NodeConfiguration.gatewayHostPort("gw.example")! == ("gw.example", 5060))
        #expect(NodeConfiguration.gatewayHostPort("192.0.2.1:5080")! == ("192.0.2.1", 5080))
        #expect(NodeConfiguration.gatewayHostPort("[2001:db8::1]")! == ("2001:db8::1", 5060))
        #expect(NodeConfiguration.gatewayHostPort("[2001:db8::1]:5070")! == ("2001:db8::1", 5070))
        #expect(NodeConfiguration.gatewayHostPort("gw:99999") == nil && NodeConfiguration.gatewayHostPort("[::1") == nil)
        var c = NodeConfiguration.defaults
        #expect(throws: ConfigurationError("emergency.gateway", "'sos:x' has no valid port (0…65535)")) {
            try c.apply(yaml: "emergency:\n  gateway: \"sos:x\"\n")
        }
    }

    @Test func clusterNonceSecretFromFileOrEnvironment() throws {
        var c = NodeConfiguration.defaults
        try c.apply(yaml: "sip:\n  nonce_secret: \"0123456789abcdef-cluster\"\n")
        #expect(c.nonceSecret == "0123456789abcdef-cluster")
        try c.apply(environment: ["SWITCHBOARD_NONCE_SECRET": "another-secret-of-enough-length"])
        #expect(c.nonceSecret == "another-secret-of-enough-length")
    }

    @Test func environmentOverridesTheFile() throws {
        var c = NodeConfiguration.defaults
        try c.apply(yaml: "database:\n  url: sqlite:/var/lib/a.sqlite\n")
        try c.apply(environment: ["SWITCHBOARD_DATABASE": "postgres://sw@127.0.0.1/sw", "SWITCHBOARD_SIP_LISTEN": "udp:127.0.0.2:5070, tcp:[::1]:5071"])
        #expect(c.database == .postgres(url: "postgres://sw@127.0.0.1/sw"))
        #expect(c.sipListeners.map(\.host) == ["127.0.0.2", "::1"])
        #expect(c.sipListeners.map(\.transport) == [.udp, .tcp])
    }

    @Test func errorsNameTheKey() {
        func error(_ yaml: String) -> ConfigurationError? {
            var c = NodeConfiguration.defaults
            do { try c.apply(yaml: yaml); return nil } catch { return error }
        }
        #expect(error("sip:\n  listen:\n    - udp:0.0.0.0:5060\n    - sctp:0.0.0.0:5060\n")
                == ConfigurationError("sip.listen[1]", "'sctp:0.0.0.0:5060' must look like udp:0.0.0.0:5060 or tcp:[::1]:5060"))
        #expect(error("gateways:\n  - name: a\n") == ConfigurationError("gateways[0].address", "is required"))
        #expect(error("gateways:\n  - name: a\n    address: gw:99999\n") == ConfigurationError("gateways[0].address", "'gw:99999' has no valid port (0…65535)"))
        #expect(error("gateways:\n  - name: a\n    address: gw\n    prefixes: [\"44a\"]\n") == ConfigurationError("gateways[0].prefixes[0]", "'44a' is not a digit prefix"))
        #expect(error("database:\n  url: mysql://x\n") == ConfigurationError("database.url", "must be sqlite:PATH or a postgres:// URL"))
        #expect(error("colour: blue\n")?.key == "colour")
        #expect(error("sip:\n  digest_algorithms: [MD5, SHA-512]\n") == ConfigurationError("sip.digest_algorithms[1]", "'SHA-512' is not SHA-256 or MD5"))
        #expect(error("sip:\n  nonce_secret: short\n") == ConfigurationError("sip.nonce_secret", "must be at least 16 characters"))
        #expect(error("call_types:\n  international: [\"00x\"]\n") == ConfigurationError("call_types.international[0]", "'00x' is not a digit prefix"))
        #expect(error("sip: [\n")?.key == "file")
        #expect(ConfigurationError("http.listen", "'x' must be host:port").description == "configuration http.listen: 'x' must be host:port")
    }

    @Test func simPasswordKeyFromFileOrEnvironment() throws {
        let key = Data(repeating: 7, count: 32).base64EncodedString()
        var c = NodeConfiguration.defaults
        try c.apply(yaml: "sims:\n  password_key: \"\(key)\"\n")
        #expect(c.simPasswordKey == key)
        let cipher = try c.simPasswordCipher()
        let iccid = try ICCID("8944101234567890128")
        #expect(try SIMPasswordCipher(base64Key: key).decrypt(try cipher.encrypt("pw", iccid: iccid), iccid: iccid) == "pw")

        let other = Data(repeating: 9, count: 32).base64EncodedString()
        try c.apply(environment: ["SWITCHBOARD_SIM_PASSWORD_KEY": other])
        #expect(c.simPasswordKey == other)
    }

    @Test func invalidSIMPasswordKeyNamesTheKeyAndNotTheValue() {
        func error(yaml: String? = nil, env: [String: String] = [:]) -> ConfigurationError? {
            var c = NodeConfiguration.defaults
            do {
                if let yaml { try c.apply(yaml: yaml) }
                try c.apply(environment: env)
                return nil
            } catch { return error }
        }
        let short = Data(repeating: 7, count: 16).base64EncodedString()
        #expect(error(yaml: "sims:\n  password_key: \"\(short)\"\n")
                == ConfigurationError("sims.password_key",
                                      "the SIM password key must be 32 bytes (base64), not 16; make one with: openssl rand -base64 32"))
        let notBase64 = error(yaml: "sims:\n  password_key: \"not base64 at all!\"\n")
        #expect(notBase64?.key == "sims.password_key" && notBase64?.problem.contains("not base64 at all") == false)
        #expect(error(yaml: "sims:\n  passwordkey: x\n") == ConfigurationError("sims.passwordkey", "unknown key (known: network_codes, password_key, registration)"))
        let env = error(env: ["SWITCHBOARD_SIM_PASSWORD_KEY": "c2hvcnQ="])
        #expect(env?.key == "SWITCHBOARD_SIM_PASSWORD_KEY" && env?.description.contains("sims.password_key") == true)
        #expect(env?.description.contains("c2hvcnQ=") == false)
    }

    @Test func withoutAKeyTheKeyFileSitsNextToTheSQLiteFile() throws {
        let dir = NSTemporaryDirectory() + "switchboard-keyfile-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = NodeConfiguration.defaults
        try c.apply(environment: ["SWITCHBOARD_DATABASE": "sqlite:\(dir)/data/switchboard.sqlite"])
        #expect(c.simPasswordKeyFile == "\(dir)/data/sim-password.key")
        let first = try c.simPasswordCipher()
        let attributes = try FileManager.default.attributesOfItem(atPath: c.simPasswordKeyFile)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        // The next start reads the same key: passwords stored before still decrypt.
        let iccid = try ICCID("8944101234567890128")
        #expect(try c.simPasswordCipher().decrypt(try first.encrypt("pw", iccid: iccid), iccid: iccid) == "pw")
        // A damaged key file is a start-up error naming the setting.
        try "garbage".write(toFile: c.simPasswordKeyFile, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try c.simPasswordCipher() }
        // PostgreSQL: the working directory.
        try c.apply(environment: ["SWITCHBOARD_DATABASE": "postgres://sw@127.0.0.1/sw"])
        #expect(c.simPasswordKeyFile == "sim-password.key")
    }
}

/// Writes each configuration to `path` and expects loading it to fail with an
/// error naming `key`.
func expectEachRefusedNamingItsKey(path: String, _ cases: [(yaml: String, key: String)]) throws {
    for (yaml, key) in cases {
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try NodeConfiguration.load(path: path, environment: [:]); Issue.record("\(yaml) loaded") } catch {
            #expect(error.key == key, "\(error)")
        }
    }
}
