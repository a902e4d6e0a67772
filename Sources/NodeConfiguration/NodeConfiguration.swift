import Foundation
import SIMs
import Yams

/// A node's settings: SIP listeners, database, upstream gateways, emergency
/// routing. Read from a YAML file (example: `switchboard.example.yaml`),
/// with environment variables overriding the file; every field has a default
/// so that `switchboard serve` runs with no file at all.
public struct NodeConfiguration: Sendable, Equatable {
    public struct Listener: Sendable, Equatable {
        public enum Transport: String, Sendable { case udp, tcp }
        public var transport: Transport
        public var host: String
        public var port: Int
    }

    public struct Gateway: Sendable, Equatable {
        public var name: String
        /// host[:port] of the upstream carrier gateway.
        public var address: String
        /// Destination prefixes routed to it; empty means every destination.
        public var prefixes: [String]
        /// Lower is tried first; equal priorities in file order.
        public var priority: Int
    }

    public enum Database: Sendable, Equatable {
        case sqlite(path: String)
        case postgres(url: String)
    }

    public var nodeName: String
    /// `node.silent_after_seconds`: a node of a cluster not heard from for
    /// this long is taken for dead: another node records its live calls as
    /// interrupted and frees their channels (T9 limits counted in the store).
    public var silentAfterSeconds: Double = 60
    /// `node.drain_seconds`: on SIGTERM/SIGINT new calls are refused at once
    /// and the live calls have this long to end on their own before the node
    /// clears them (0: cleared at once). Below systemd's default stop timeout (90 s).
    public var drainSeconds: Double = 30
    public var sipListeners: [Listener]
    public var httpListen: (host: String, port: Int)?
    public var database: Database
    public var gateways: [Gateway]
    public var emergencyGateway: String?
    public var emergencyNumbers: [String]
    /// The digest realm trunks authenticate in (trunk HA1s are made with it).
    public var sipRealm: String = "switchboard"
    /// Digest algorithms offered to trunks, one challenge each, in this order
    /// (RFC 8760 §2.3). Some clients (SIPp 3.6, older PBXs) only read the
    /// first challenge: put MD5 first for them.
    public var digestAlgorithms: [String] = ["SHA-256", "MD5"]
    /// Secret the digest nonces are signed with. Nodes of a cluster need the
    /// same one, so that a challenge from one node is accepted by another;
    /// unset, each start makes a random one (fine for a single node).
    public var nonceSecret: String?
    /// Call types by destination prefix, longest match (T9 per-type limits),
    /// e.g. international: ["1", "33"], mobile: ["447"].
    public var callTypes: [String: [String]] = [:]
    /// The key SIM SIP passwords are encrypted with (`sims.password_key`,
    /// base64 of 32 bytes; checked when the configuration is loaded). Nodes
    /// of a cluster need the same one. Unset, the key lives in
    /// `simPasswordKeyFile`, created on first use.
    public var simPasswordKey: String?
    /// How this node registers SIMs with their customers' servers (`sims.registration`).
    public var simRegistration = SIMRegistrationSettings()
    /// `sims.network_codes`: GSM service and profile codes never passed to a
    /// customer (S6), as TS 22.030 service codes (the SC in `*#SC#`, `**SC*…#`).
    public var networkServiceCodes: [String] = HandsetDialPlan.defaultNetworkServiceCodes
    /// `mobile_core`: the SIP peer that carries SIP2SIM handsets' calls (issue 4 §4).
    public var mobileCore: MobileCore?
    /// `texts`: webhook retries (S11): first retry after about `retryFirstSeconds`,
    /// doubling up to `retryMaxSeconds`, given up `giveUpSeconds` after the text arrived.
    public var textRetryFirstSeconds: Double = 2
    public var textRetryMaxSeconds: Double = 300
    public var textGiveUpSeconds: Double = 86_400
    /// `texts.max_segments`: the longest text the gateway takes to a handset,
    /// in concatenated segments (S10), 1 to 10. (Its body must also fit the
    /// 1,300 bytes of a MESSAGE over UDP, RFC 3428 §9.)
    public var textMaxSegments: Int = 6

    /// The mobile core: where calls to a SIM are sent, and the source
    /// addresses whose INVITEs are handsets' calls (trusted by source IP).
    public struct MobileCore: Sendable, Equatable {
        /// `host[:port]` (port 5060 by default).
        public var address: String
        /// IP addresses calls from handsets come from; by default the address's host.
        public var sources: [String]
        public init(address: String, sources: [String]) { self.address = address; self.sources = sources }
    }

    /// Where the SIM password key is kept when `sims.password_key` is unset:
    /// `sim-password.key` next to the SQLite file, or in the working directory
    /// with PostgreSQL (where a cluster should set `sims.password_key` instead).
    public var simPasswordKeyFile: String {
        let name = "sim-password.key"
        guard case .sqlite(let path) = database else { return name }
        let directory = (path as NSString).deletingLastPathComponent
        return directory.isEmpty ? name : (directory as NSString).appendingPathComponent(name)
    }

    /// The cipher for SIM passwords: from `sims.password_key`, else from the
    /// key file (created, mode 0600, with a fresh random key when missing).
    public func simPasswordCipher() throws(ConfigurationError) -> SIMPasswordCipher {
        if let simPasswordKey {
            do { return try SIMPasswordCipher(base64Key: simPasswordKey) } catch {
                throw ConfigurationError("sims.password_key", error.description)
            }
        }
        do { return try SIMPasswordCipher.loadOrCreateKeyFile(at: simPasswordKeyFile) } catch {
            throw ConfigurationError("sims.password_key", "unset, so the key file is used, but: \(error.description)")
        }
    }

    /// The call type of a destination number: the name with the longest matching prefix.
    public func callType(of number: String) -> String? {
        let digits = number.hasPrefix("+") ? String(number.dropFirst()) : number
        var best: (String, Int)?
        for (name, prefixes) in callTypes {
            for p in prefixes where digits.hasPrefix(p) && p.count > (best?.1 ?? -1) { best = (name, p.count) }
        }
        return best?.0
    }

    public static func == (a: NodeConfiguration, b: NodeConfiguration) -> Bool {
        a.nodeName == b.nodeName && a.sipListeners == b.sipListeners && a.httpListen?.host == b.httpListen?.host
            && a.httpListen?.port == b.httpListen?.port && a.database == b.database && a.gateways == b.gateways
            && a.emergencyGateway == b.emergencyGateway && a.emergencyNumbers == b.emergencyNumbers
            && a.sipRealm == b.sipRealm && a.callTypes == b.callTypes && a.digestAlgorithms == b.digestAlgorithms && a.nonceSecret == b.nonceSecret
            && a.simPasswordKey == b.simPasswordKey && a.simRegistration == b.simRegistration
            && a.networkServiceCodes == b.networkServiceCodes && a.mobileCore == b.mobileCore
            && a.textRetryFirstSeconds == b.textRetryFirstSeconds && a.textRetryMaxSeconds == b.textRetryMaxSeconds
            && a.textGiveUpSeconds == b.textGiveUpSeconds && a.silentAfterSeconds == b.silentAfterSeconds
            && a.drainSeconds == b.drainSeconds
    }

    public static let defaults = NodeConfiguration(
        nodeName: "switchboard",
        sipListeners: [Listener(transport: .udp, host: "0.0.0.0", port: 5060), Listener(transport: .tcp, host: "0.0.0.0", port: 5060)],
        httpListen: ("127.0.0.1", 8080),
        database: .sqlite(path: "switchboard.sqlite"),
        gateways: [],
        emergencyGateway: nil,
        emergencyNumbers: ["999", "112", "911"])

    /// Gateways to try for a number: those whose longest matching prefix is
    /// longest first, then by priority (issue 3 §2: prefix routes, priorities, failover).
    public func gateways(for number: String) -> [Gateway] {
        let digits = number.hasPrefix("+") ? String(number.dropFirst()) : number
        func match(_ g: Gateway) -> Int? {
            if g.prefixes.isEmpty { return 0 }
            return g.prefixes.filter { digits.hasPrefix($0) }.map(\.count).max()
        }
        return gateways.enumerated().compactMap { i, g in match(g).map { (g, $0, i) } }
            .sorted { ($0.1, -$0.0.priority, -$0.2) > ($1.1, -$1.0.priority, -$1.2) }
            .map(\.0)
    }
}

/// A configuration problem, naming the key and what is wrong with it.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var key: String
    public var problem: String
    public init(_ key: String, _ problem: String) { self.key = key; self.problem = problem }
    public var description: String { "configuration \(key): \(problem)" }
}

extension NodeConfiguration {
    /// Loads `path` (if given) over the defaults, then applies the environment:
    /// SWITCHBOARD_NODE_NAME, SWITCHBOARD_SIP_LISTEN (comma-separated
    /// transport:host:port), SWITCHBOARD_HTTP_LISTEN (host:port),
    /// SWITCHBOARD_DATABASE (sqlite:PATH or a postgres:// URL),
    /// SWITCHBOARD_SIM_PASSWORD_KEY (sims.password_key).
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> NodeConfiguration {
        var c = NodeConfiguration.defaults
        if let path {
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw ConfigurationError("file", "cannot read \(path)")
            }
            try c.apply(yaml: text)
        }
        try c.apply(environment: environment)
        return c
    }

    public mutating func apply(yaml text: String) throws(ConfigurationError) {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw ConfigurationError("file", "not valid YAML: \(String(describing: error).prefix(200))")
        }
        guard let root = loaded as? [String: Any] else {
            if loaded == nil { return }
            throw ConfigurationError("file", "the top level must be a mapping of keys")
        }
        let known: Set<String> = ["node", "sip", "http", "database", "gateways", "emergency", "call_types", "sims", "mobile_core", "texts"]
        for key in root.keys.sorted() where !known.contains(key) {
            throw ConfigurationError(key, "unknown key (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let node = root["node"] {
            let n = try Self.mapping(node, "node")
            let known = ["name", "silent_after_seconds", "drain_seconds"]
            for key in n.keys.sorted() where !known.contains(key) {
                throw ConfigurationError("node.\(key)", "unknown key (known: \(known.joined(separator: ", ")))")
            }
            if let name = n["name"] { nodeName = try Self.string(name, "node.name") }
            if let v = n["silent_after_seconds"] {
                // Nodes say they are alive every few seconds (a third of this, at most 5 s).
                guard let d = Self.number(v), (3...86_400).contains(d) else {
                    throw ConfigurationError("node.silent_after_seconds", "must be a number of seconds from 3 to 86400, not \(v)")
                }
                silentAfterSeconds = d
            }
            if let v = n["drain_seconds"] {
                guard let d = Self.number(v), (0...3_600).contains(d) else {
                    throw ConfigurationError("node.drain_seconds", "must be a number of seconds from 0 to 3600, not \(v)")
                }
                drainSeconds = d
            }
        }
        if let sip = root["sip"] {
            let s = try Self.mapping(sip, "sip")
            if let listen = s["listen"] {
                guard let items = listen as? [Any], !items.isEmpty else { throw ConfigurationError("sip.listen", "must be a non-empty list such as [udp:0.0.0.0:5060]") }
                sipListeners = try items.enumerated().map { i, item throws(ConfigurationError) in
                    try Self.listener(try Self.string(item, "sip.listen[\(i)]"), key: "sip.listen[\(i)]")
                }
            }
            if let realm = s["realm"] { sipRealm = try Self.string(realm, "sip.realm") }
            if let secret = s["nonce_secret"] {
                let text = try Self.string(secret, "sip.nonce_secret")
                // Never echo the value in the error.
                guard text.utf8.count >= 16 else { throw ConfigurationError("sip.nonce_secret", "must be at least 16 characters") }
                nonceSecret = text
            }
            if let algorithms = s["digest_algorithms"] {
                guard let list = algorithms as? [Any], !list.isEmpty else {
                    throw ConfigurationError("sip.digest_algorithms", "must be a non-empty list of SHA-256 and/or MD5")
                }
                digestAlgorithms = try list.enumerated().map { i, x throws(ConfigurationError) in
                    let name = try Self.string(x, "sip.digest_algorithms[\(i)]")
                    guard let known = ["SHA-256", "MD5"].first(where: { $0.caseInsensitiveCompare(name) == .orderedSame }) else {
                        throw ConfigurationError("sip.digest_algorithms[\(i)]", "'\(name)' is not SHA-256 or MD5")
                    }
                    return known
                }
            }
        }
        if let types = root["call_types"] {
            let t = try Self.mapping(types, "call_types")
            var out: [String: [String]] = [:]
            for (name, value) in t {
                guard let list = value as? [Any], !list.isEmpty else { throw ConfigurationError("call_types.\(name)", "must be a non-empty list of digit prefixes") }
                out[name] = try list.enumerated().map { j, x throws(ConfigurationError) in
                    let s: String
                    if let i = x as? Int { s = String(i) } else { s = try Self.string(x, "call_types.\(name)[\(j)]") }
                    guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                        throw ConfigurationError("call_types.\(name)[\(j)]", "'\(s)' is not a digit prefix")
                    }
                    return s
                }
            }
            callTypes = out
        }
        // A section whose keys are all commented out (as in the example file) is null.
        if let sims = root["sims"], !(sims is NSNull) {
            let m = try Self.mapping(sims, "sims")
            for key in m.keys.sorted() where !["password_key", "registration", "network_codes"].contains(key) {
                throw ConfigurationError("sims.\(key)", "unknown key (known: network_codes, password_key, registration)")
            }
            if let n = m["network_codes"] {
                guard let list = n as? [Any] else { throw ConfigurationError("sims.network_codes", "must be a list of service codes such as [\"06\", \"21\"]") }
                networkServiceCodes = try list.enumerated().map { i, x throws(ConfigurationError) in
                    // Quoted, or YAML would read 002 as the number 2.
                    guard let code = x as? String, !code.isEmpty, code.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                        throw ConfigurationError("sims.network_codes[\(i)]", "must be a quoted string of digits such as \"21\", not \(x)")
                    }
                    return code
                }
            }
            if let r = m["registration"], !(r is NSNull) { simRegistration = try SIMRegistrationSettings(parsing: try Self.mapping(r, "sims.registration")) }
            if let key = m["password_key"] { simPasswordKey = try Self.simPasswordKey(try Self.string(key, "sims.password_key"), key: "sims.password_key") }
        }
        if let http = root["http"] {
            let h = try Self.mapping(http, "http")
            if let listen = h["listen"] { httpListen = try Self.hostPort(try Self.string(listen, "http.listen"), key: "http.listen") }
        }
        if let db = root["database"] {
            let d = try Self.mapping(db, "database")
            if let url = d["url"] { database = try Self.database(try Self.string(url, "database.url"), key: "database.url") }
        }
        if let gws = root["gateways"] {
            guard let items = gws as? [Any] else { throw ConfigurationError("gateways", "must be a list") }
            gateways = try items.enumerated().map { i, item throws(ConfigurationError) in
                let key = "gateways[\(i)]"
                let g = try Self.mapping(item, key)
                guard let name = g["name"] else { throw ConfigurationError("\(key).name", "is required") }
                guard let address = g["address"] else { throw ConfigurationError("\(key).address", "is required") }
                let addr = try Self.string(address, "\(key).address")
                _ = try Self.gatewayAddress(addr, key: "\(key).address")
                var prefixes: [String] = []
                if let p = g["prefixes"] {
                    guard let list = p as? [Any] else { throw ConfigurationError("\(key).prefixes", "must be a list of digit strings") }
                    prefixes = try list.enumerated().map { j, x throws(ConfigurationError) in
                        let s = try Self.string(x, "\(key).prefixes[\(j)]")
                        guard !s.isEmpty, s.allSatisfy(\.isNumber) else { throw ConfigurationError("\(key).prefixes[\(j)]", "'\(s)' is not a digit prefix") }
                        return s
                    }
                }
                var priority = 10
                if let p = g["priority"] {
                    guard let v = p as? Int, (0...65535).contains(v) else { throw ConfigurationError("\(key).priority", "must be a whole number 0…65535") }
                    priority = v
                }
                return Gateway(name: try Self.string(name, "\(key).name"), address: addr, prefixes: prefixes, priority: priority)
            }
        }
        if let t = root["texts"] {
            let m = try Self.mapping(t, "texts")
            let known = ["give_up_hours", "max_segments", "retry_first_seconds", "retry_max_seconds"]
            for key in m.keys.sorted() where !known.contains(key) {
                throw ConfigurationError("texts.\(key)", "unknown key (known: \(known.joined(separator: ", ")))")
            }
            func number(_ key: String, _ range: ClosedRange<Double>) throws(ConfigurationError) -> Double? {
                guard let v = m[key] else { return nil }
                let d = Self.number(v)
                guard let d, range.contains(d) else {
                    throw ConfigurationError("texts.\(key)", "must be a number from \(range.lowerBound) to \(range.upperBound), not \(v)")
                }
                return d
            }
            if let d = try number("retry_first_seconds", 0.1...3600) { textRetryFirstSeconds = d }
            if let d = try number("retry_max_seconds", 1...86_400) { textRetryMaxSeconds = d }
            if let d = try number("give_up_hours", 0.01...720) { textGiveUpSeconds = d * 3600 }
            if let v = m["max_segments"] {
                guard let n = v as? Int, (1...10).contains(n) else {
                    throw ConfigurationError("texts.max_segments", "must be a whole number from 1 to 10, not \(v)")
                }
                textMaxSegments = n
            }
            guard textRetryMaxSeconds >= textRetryFirstSeconds else {
                throw ConfigurationError("texts.retry_max_seconds", "must not be below texts.retry_first_seconds")
            }
        }
        if let mc = root["mobile_core"] {
            let m = try Self.mapping(mc, "mobile_core")
            for key in m.keys.sorted() where key != "address" && key != "sources" {
                throw ConfigurationError("mobile_core.\(key)", "unknown key (known: address, sources)")
            }
            guard let a = m["address"] else { throw ConfigurationError("mobile_core.address", "is required (host[:port] of the mobile core)") }
            let address = try Self.string(a, "mobile_core.address")
            let (host, _) = try Self.gatewayAddress(address, key: "mobile_core.address")
            var sources = [host]
            if let s = m["sources"] {
                guard let list = s as? [Any], !list.isEmpty else { throw ConfigurationError("mobile_core.sources", "must be a non-empty list of IP addresses") }
                sources = try list.enumerated().map { i, x throws(ConfigurationError) in
                    let ip = try Self.string(x, "mobile_core.sources[\(i)]")
                    guard Self.isIPAddress(ip) else { throw ConfigurationError("mobile_core.sources[\(i)]", "'\(ip)' is not an IP address") }
                    return ip
                }
            } else if !Self.isIPAddress(host) {
                throw ConfigurationError("mobile_core.sources", "is required when mobile_core.address is a host name (calls are trusted by source IP)")
            }
            mobileCore = MobileCore(address: address, sources: sources)
        }
        if let em = root["emergency"] {
            let e = try Self.mapping(em, "emergency")
            if let g = e["gateway"] {
                let addr = try Self.string(g, "emergency.gateway")
                _ = try Self.gatewayAddress(addr, key: "emergency.gateway")
                emergencyGateway = addr
            }
            if let n = e["numbers"] {
                guard let list = n as? [Any] else { throw ConfigurationError("emergency.numbers", "must be a list") }
                emergencyNumbers = try list.enumerated().map { i, x throws(ConfigurationError) in
                    // YAML reads 999 as a number: accept both.
                    if let v = x as? Int { return String(v) }
                    return try Self.string(x, "emergency.numbers[\(i)]")
                }
            }
        }
    }

    public mutating func apply(environment env: [String: String]) throws(ConfigurationError) {
        if let v = env["SWITCHBOARD_NODE_NAME"] { nodeName = v }
        if let v = env["SWITCHBOARD_NONCE_SECRET"] {
            guard v.utf8.count >= 16 else { throw ConfigurationError("SWITCHBOARD_NONCE_SECRET", "must be at least 16 characters") }
            nonceSecret = v
        }
        if let v = env["SWITCHBOARD_SIP_LISTEN"] {
            sipListeners = try v.split(separator: ",").map { item throws(ConfigurationError) in
                try Self.listener(item.trimmingCharacters(in: .whitespaces), key: "SWITCHBOARD_SIP_LISTEN")
            }
        }
        if let v = env["SWITCHBOARD_SIM_PASSWORD_KEY"] {
            do { simPasswordKey = try Self.simPasswordKey(v, key: "SWITCHBOARD_SIM_PASSWORD_KEY") } catch {
                throw ConfigurationError(error.key, "\(error.problem) (it sets sims.password_key)")
            }
        }
        if let v = env["SWITCHBOARD_HTTP_LISTEN"] { httpListen = try Self.hostPort(v, key: "SWITCHBOARD_HTTP_LISTEN") }
        if let v = env["SWITCHBOARD_DATABASE"] { database = try Self.database(v, key: "SWITCHBOARD_DATABASE") }
    }

    // MARK: Field parsers

    /// A YAML number, written with or without a fraction.
    static func number(_ v: Any) -> Double? { (v as? Double) ?? (v as? Int).map(Double.init) }

    static func mapping(_ v: Any, _ key: String) throws(ConfigurationError) -> [String: Any] {
        guard let m = v as? [String: Any] else { throw ConfigurationError(key, "must be a mapping of keys") }
        return m
    }

    static func string(_ v: Any, _ key: String) throws(ConfigurationError) -> String {
        if let s = v as? String { return s }
        if let i = v as? Int { return String(i) }
        throw ConfigurationError(key, "must be a string")
    }

    /// "udp:0.0.0.0:5060", "tcp:[::1]:5060"
    static func listener(_ s: String, key: String) throws(ConfigurationError) -> Listener {
        guard let colon = s.firstIndex(of: ":"), let t = Listener.Transport(rawValue: s[..<colon].lowercased()) else {
            throw ConfigurationError(key, "'\(s)' must look like udp:0.0.0.0:5060 or tcp:[::1]:5060")
        }
        let (host, port) = try hostPort(String(s[s.index(after: colon)...]), key: key)
        return Listener(transport: t, host: host, port: port)
    }

    /// "host:port" or "[v6]:port"
    static func hostPort(_ s: String, key: String) throws(ConfigurationError) -> (String, Int) {
        guard let colon = s.lastIndex(of: ":") else { throw ConfigurationError(key, "'\(s)' must be host:port") }
        var host = String(s[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError(key, "'\(s)' has no host") }
        guard let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError(key, "'\(s)' has no valid port (0…65535)")
        }
        return (host, port)
    }

    /// A gateway's `host[:port]` or `[IPv6][:port]`; the port defaults to 5060.
    public static func gatewayHostPort(_ address: String) -> (host: String, port: Int)? {
        try? gatewayAddress(address, key: "")
    }

    static func gatewayAddress(_ s: String, key: String) throws(ConfigurationError) -> (host: String, port: Int) {
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw ConfigurationError(key, "'\(s)' has an unclosed '['") }
            let rest = s[s.index(after: close)...]
            if rest.isEmpty { return (String(s[s.index(after: s.startIndex)..<close]), 5060) }
            return try hostPort(s, key: key)
        }
        return try hostPort(s.contains(":") ? s : s + ":5060", key: key)
    }

    static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    /// A SIM password key: base64 of 32 bytes. The value is never echoed.
    static func simPasswordKey(_ s: String, key: String) throws(ConfigurationError) -> String {
        do { _ = try SIMPasswordCipher(base64Key: s) } catch {
            throw ConfigurationError(key, "\(error.description); make one with: openssl rand -base64 32")
        }
        return s.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func database(_ s: String, key: String) throws(ConfigurationError) -> Database {
        if s.hasPrefix("sqlite:") {
            let path = String(s.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw ConfigurationError(key, "sqlite: needs a file path, e.g. sqlite:switchboard.sqlite") }
            return .sqlite(path: path)
        }
        if s.hasPrefix("postgres://") || s.hasPrefix("postgresql://") { return .postgres(url: s) }
        throw ConfigurationError(key, "must be sqlite:PATH or a postgres:// URL")
    }
}

/// `sims.registration`: how this node keeps SIMs registered (S2, S9).
public struct SIMRegistrationSettings: Sendable, Equatable {
    /// Host in our Contact; unset, the local address toward each registrar
    /// (set it when the node listens on 0.0.0.0 behind an address of its own).
    public var contactHost: String?
    /// Expiry asked for, seconds.
    public var expires: Int = 3600
    /// New REGISTER transactions per second at most (no bursts).
    public var perSecond: Int = 500
    /// How often SIM settings are re-read from the store (S1: within a minute).
    public var reloadSeconds: Int = 10
    /// Whether this node registers SIMs not placed on any node (a single node does).
    public var takesUnplaced = true
    /// Whether a stopping node removes its own Contact of each SIM from the
    /// SIM's registrar (RFC 3261 §10.2.2), so that the customer's server
    /// stops sending calls to a node that is gone instead of waiting out the
    /// binding. Off keeps the bindings across a quick restart (the node's
    /// address answers again before they expire; re-registering thousands of
    /// SIMs at `per_second` takes longer).
    public var deregistersOnStop = true

    public init() {}

    init(parsing m: [String: Any]) throws(ConfigurationError) {
        let known = ["contact_host", "deregister_on_stop", "expires", "per_second", "reload_seconds", "takes_unplaced"]
        for key in m.keys.sorted() where !known.contains(key) {
            throw ConfigurationError("sims.registration.\(key)", "unknown key (known: \(known.joined(separator: ", ")))")
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let v = m[key] else { return nil }
            guard let n = v as? Int, range.contains(n) else {
                throw ConfigurationError("sims.registration.\(key)", "must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(v)")
            }
            return n
        }
        if let v = m["contact_host"] {
            guard let h = v as? String, !h.isEmpty, !h.contains(" ") else {
                throw ConfigurationError("sims.registration.contact_host", "must be a host name or IP address")
            }
            contactHost = h
        }
        if let n = try int("expires", 60...86_400) { expires = n }
        if let n = try int("per_second", 1...100_000) { perSecond = n }
        if let n = try int("reload_seconds", 1...60) { reloadSeconds = n }
        if let v = m["takes_unplaced"] {
            guard let b = v as? Bool else { throw ConfigurationError("sims.registration.takes_unplaced", "must be true or false") }
            takesUnplaced = b
        }
        if let v = m["deregister_on_stop"] {
            guard let b = v as? Bool else { throw ConfigurationError("sims.registration.deregister_on_stop", "must be true or false") }
            deregistersOnStop = b
        }
    }
}
