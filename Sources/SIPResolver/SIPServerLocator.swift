import CResolv
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

public enum SIPTransportKind: String, Sendable, Hashable {
    case udp = "UDP"
    case tcp = "TCP"
}

/// One place to send a request: an IP address, port and transport, with the
/// name it was found under.
public struct SIPTarget: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var transport: SIPTransportKind
    public var name: String
    public init(host: String, port: UInt16, transport: SIPTransportKind, name: String) {
        self.host = host; self.port = port; self.transport = transport; self.name = name
    }
    public var description: String { "\(transport) \(host.contains(":") ? "[\(host)]" : host):\(port) (\(name))" }
}

public struct SRVRecord: Sendable, Hashable {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    public var target: String
    public init(priority: UInt16, weight: UInt16, port: UInt16, target: String) {
        self.priority = priority; self.weight = weight; self.port = port; self.target = target
    }
}

public struct DNSResolverConfiguration: Sendable {
    /// An IPv4 DNS server (and port) to ask instead of the system's.
    public var nameserver: (host: String, port: Int)?
    public var timeoutSeconds: Int
    public var attempts: Int
    public init(nameserver: (host: String, port: Int)? = nil, timeoutSeconds: Int = 2, attempts: Int = 2) {
        self.nameserver = nameserver; self.timeoutSeconds = timeoutSeconds; self.attempts = attempts
    }
}

public enum DNSError: Error, Equatable, Sendable, CustomStringConvertible {
    case noSuchDomain(String)
    case noRecords(String, type: String)
    case serverFailure(String)
    /// RFC 2782: a single SRV record with target "." — the domain says it offers no SIP service.
    case serviceNotOffered(String)
    case failed(String)

    public var description: String {
        switch self {
        case .noSuchDomain(let n): return "\(n) does not exist in DNS (NXDOMAIN)"
        case .noRecords(let n, let t): return "\(n) has no \(t) records"
        case .serverFailure(let n): return "DNS server failed or timed out looking up \(n); try again later"
        case .serviceNotOffered(let n): return "\(n) says it offers no SIP service (SRV target \".\")"
        case .failed(let n): return "DNS lookup of \(n) failed (bad name or no resolver configured)"
        }
    }
}

/// Blocking DNS look-ups through libresolv. Thread-safe: each call has its own resolver state.
public struct DNSClient: Sendable {
    public var configuration: DNSResolverConfiguration
    public init(configuration: DNSResolverConfiguration = DNSResolverConfiguration()) { self.configuration = configuration }

    func withConfig<R>(_ body: (UnsafePointer<cresolv_config>) -> R) -> R {
        let ns = configuration.nameserver?.host ?? ""
        return ns.withCString { nsPtr in
            var c = cresolv_config(nameserver: configuration.nameserver == nil ? nil : nsPtr,
                                   port: Int32(configuration.nameserver?.port ?? 53),
                                   timeout_seconds: Int32(configuration.timeoutSeconds), attempts: Int32(configuration.attempts))
            return body(&c)
        }
    }

    static func check(_ n: Int32, name: String, type: String) throws(DNSError) -> Int {
        switch n {
        case _ where n >= 0: return Int(n)
        case -1: throw .noSuchDomain(name)
        case -2: throw .noRecords(name, type: type)
        case -3: throw .serverFailure(name)
        default: throw .failed(name)
        }
    }

    public func srv(_ name: String) throws(DNSError) -> [SRVRecord] {
        var out = [cresolv_srv](repeating: cresolv_srv(), count: 64)
        let n = withConfig { c in out.withUnsafeMutableBufferPointer { cresolv_query_srv(c, name, $0.baseAddress, 64) } }
        let count = try Self.check(n, name: name, type: "SRV")
        return out.prefix(count).map { r in
            var r = r
            let target = withUnsafeBytes(of: &r.target) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return SRVRecord(priority: r.priority, weight: r.weight, port: r.port, target: target)
        }
    }

    /// A records then AAAA records of `name`.
    public func addresses(_ name: String) throws(DNSError) -> [String] {
        var result: [String] = []
        var firstError: DNSError?
        for family in [AF_INET, AF_INET6] {
            var out = [cresolv_address](repeating: cresolv_address(), count: 32)
            let n = withConfig { c in out.withUnsafeMutableBufferPointer { cresolv_query_address(c, name, family, $0.baseAddress, 32) } }
            do {
                let count = try Self.check(n, name: name, type: family == AF_INET ? "A" : "AAAA")
                for var r in out.prefix(count) {
                    result.append(withUnsafeBytes(of: &r.address) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
                }
            } catch {
                if firstError == nil || error == .serverFailure(name) { firstError = error }
            }
        }
        if result.isEmpty {
            if case .noRecords = firstError { throw .noRecords(name, type: "A or AAAA") }
            throw firstError ?? .noRecords(name, type: "A or AAAA")
        }
        return result
    }
}

/// RFC 3263 §4 server location for a SIP URI's host.
///
/// The list returned is in the order to try: on a timeout or a 503 the
/// caller moves to the next target (§4.3).
public struct SIPServerLocator: Sendable {
    public var dns: DNSClient
    public init(configuration: DNSResolverConfiguration = DNSResolverConfiguration()) {
        dns = DNSClient(configuration: configuration)
    }

    public func locateBlocking(host: String, port: Int?, transport: SIPTransportKind?) throws(DNSError) -> [SIPTarget] {
        var rng = SystemRandomNumberGenerator()
        return try locateBlocking(host: host, port: port, transport: transport, using: &rng)
    }

    public func locateBlocking(host: String, port: Int?, transport: SIPTransportKind?,
                               using rng: inout some RandomNumberGenerator) throws(DNSError) -> [SIPTarget] {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let t = transport ?? .udp
        // §4.2: a numeric IP address is used as it is.
        if Self.isIPLiteral(bare) {
            return [SIPTarget(host: bare, port: UInt16(port ?? 5060), transport: t, name: bare)]
        }
        // §4.2: an explicit port means A/AAAA only.
        if let port {
            return try dns.addresses(bare).map { SIPTarget(host: $0, port: UInt16(port), transport: t, name: bare) }
        }
        // §4.2: SRV for the transport (UDP, then TCP when none was asked for).
        for kind in transport.map({ [$0] }) ?? [.udp, .tcp] {
            let service = "_sip._\(kind.rawValue.lowercased()).\(bare)"
            let records: [SRVRecord]
            do { records = try dns.srv(service) } catch {
                if case .serverFailure = error { throw error }
                continue
            }
            if records.count == 1, records[0].target == "." || records[0].target.isEmpty { throw .serviceNotOffered(service) }
            var targets: [SIPTarget] = []
            for r in Self.orderSRV(records, using: &rng) where r.target != "." {
                // A target that does not resolve is skipped; the next one is tried.
                guard let addresses = try? dns.addresses(r.target) else { continue }
                targets += addresses.map { SIPTarget(host: $0, port: r.port, transport: kind, name: r.target) }
            }
            if !targets.isEmpty { return targets }
        }
        // §4.2: no SRV records: A/AAAA of the host, port 5060.
        return try dns.addresses(bare).map { SIPTarget(host: $0, port: 5060, transport: t, name: bare) }
    }

    /// Runs the blocking look-up on a dispatch queue, off Swift's cooperative pool.
    public func locate(host: String, port: Int?, transport: SIPTransportKind?) async throws -> [SIPTarget] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do { continuation.resume(returning: try self.locateBlocking(host: host, port: port, transport: transport)) }
                catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// RFC 2782 order: ascending priority; within a priority, a weighted
    /// random order where a record is chosen with probability weight/total
    /// (weight-0 records first in the running sum, so they are rarely first).
    public static func orderSRV(_ records: [SRVRecord], using rng: inout some RandomNumberGenerator) -> [SRVRecord] {
        var result: [SRVRecord] = []
        for priority in Set(records.map(\.priority)).sorted() {
            var group = records.filter { $0.priority == priority }.sorted { ($0.weight == 0 ? 0 : 1) < ($1.weight == 0 ? 0 : 1) }
            while !group.isEmpty {
                let total = group.reduce(0) { $0 + Int($1.weight) }
                let pick = Int.random(in: 0...total, using: &rng)
                var running = 0
                var index = group.count - 1
                for (i, r) in group.enumerated() {
                    running += Int(r.weight)
                    if running >= pick { index = i; break }
                }
                result.append(group.remove(at: index))
            }
        }
        return result
    }

    static func isIPLiteral(_ s: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }
}
