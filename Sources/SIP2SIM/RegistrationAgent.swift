import Foundation
import Logging
import NIOCore
import OutboundRegistration
import SIMs
import SIPMessage
import SIPResolver
import SIPStack

/// What the agent needs to register one SIM with its customer's server.
public struct SIMRegistrationTarget: Sendable, Equatable {
    public var iccid: ICCID
    /// The customer's SIP server as configured for the SIM ("pbx.example.com", "10.1.2.3:5070").
    public var domain: String
    public var username: String
    public var password: String

    public init(iccid: ICCID, domain: String, username: String, password: String) {
        self.iccid = iccid; self.domain = domain; self.username = username; self.password = password
    }
}

public struct RegistrationAgentConfiguration: Sendable {
    /// Host and port that go in our Contact: this node's own SIP address, so
    /// each node's binding for a SIM is distinct (S9). nil (a node listening
    /// on 0.0.0.0): the local address the endpoint uses toward each registrar.
    public var contactHost: String?
    public var contactPort: UInt16
    public var expires: UInt32
    /// New REGISTER transactions started per second at most, so ten thousand
    /// SIMs starting together do not arrive at a registrar as one burst.
    public var registrationsPerSecond: Double
    public var policy: RegistrationPolicy
    public var resolver: DNSResolverConfiguration

    public init(contactHost: String?, contactPort: UInt16, expires: UInt32 = 3600, registrationsPerSecond: Double = 500,
                policy: RegistrationPolicy = RegistrationPolicy(), resolver: DNSResolverConfiguration = DNSResolverConfiguration()) {
        self.contactHost = contactHost; self.contactPort = contactPort; self.expires = expires
        self.registrationsPerSecond = registrationsPerSecond; self.policy = policy; self.resolver = resolver
    }
}

/// Keeps every SIM registered with its customer's SIP server (S1, S2).
///
/// One `RegistrationMachine` per SIM decides what to send and when; this
/// actor performs it: a single scheduler loop fires due timers and starts
/// REGISTERs no faster than the configured rate, servers are located per
/// RFC 3263 (SRV, then A/AAAA, trying each in turn), and status changes are
/// handed to `onStatus` in batches.
public actor RegistrationAgent {
    public typealias StatusSink = @Sendable ([(ICCID, RegistrationStatus)]) async -> Void

    private let endpoint: SIPEndpoint
    private let configuration: RegistrationAgentConfiguration
    private let locator: SIPServerLocator
    private let logger: Logger
    private let onStatus: StatusSink

    private var machines: [ICCID: RegistrationMachine] = [:]
    private var targets: [ICCID: SIMRegistrationTarget] = [:]
    private var timers = DeadlineHeap()
    private var deadlines: [ICCID: Double] = [:]
    private var queue: [(ICCID, SIPMessage, String)] = []
    private var queueHead = 0
    private var tokens: Double = 1
    private var lastTick: Double = 0
    private var pendingStatus: [ICCID: RegistrationStatus] = [:]
    private var flushing = false
    private var resolved: [String: (destinations: [SIPDestination], until: Double)] = [:]
    private var statuses: [ICCID: RegistrationStatus] = [:]
    private var stopping = false
    private var locating: Set<ICCID> = []
    /// REGISTERs (refreshes and de-registrations included) answered with a 2xx since start.
    public private(set) var registrationsAnswered2xx = 0

    public init(endpoint: SIPEndpoint, configuration: RegistrationAgentConfiguration, logger: Logger,
                onStatus: @escaping StatusSink = { _ in }) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.locator = SIPServerLocator(configuration: configuration.resolver)
        self.logger = logger
        self.onStatus = onStatus
    }

    private static func now() -> Double { Date().timeIntervalSince1970 }

    /// Brings the set of registered SIMs in line with `wanted`: new SIMs
    /// register, changed ones re-register (moving server if need be),
    /// removed ones de-register.
    /// `handingOver` are SIMs another node has registered and takes over (S9).
    public func apply(_ wanted: [SIMRegistrationTarget], handingOver: Set<ICCID> = []) {
        guard !stopping else { return }
        let now = Self.now()
        var seen: Set<ICCID> = []
        for target in wanted {
            seen.insert(target.iccid)
            if targets[target.iccid] == target, machines[target.iccid] != nil { continue }
            targets[target.iccid] = target
            if var m = machines[target.iccid] {
                let actions = m.event(.settingsChanged(settings(for: target, contact: m.settings.contact), now: now))
                machines[target.iccid] = m
                perform(actions, for: target.iccid)
            } else if let host = configuration.contactHost {
                start(target, contact: SIPURI(user: target.iccid.digits, host: host, port: configuration.contactPort), now: now)
            } else {
                startWithLocalAddress(target)
            }
        }
        for iccid in Array(machines.keys) where !seen.contains(iccid) {
            targets[iccid] = nil
            event(handingOver.contains(iccid) ? .handOver(now: now) : .stop(now: now), for: iccid)
        }
    }

    private func start(_ target: SIMRegistrationTarget, contact: SIPURI, now: Double) {
        var m = RegistrationMachine(settings: settings(for: target, contact: contact), policy: configuration.policy)
        let actions = m.event(.start(now: now))
        machines[target.iccid] = m
        perform(actions, for: target.iccid)
    }

    /// Finds the local address toward the SIM's registrar, then starts it;
    /// a registrar that cannot be located is tried again at the next `apply`.
    private func startWithLocalAddress(_ target: SIMRegistrationTarget) {
        guard !locating.contains(target.iccid) else { return }
        locating.insert(target.iccid)
        Task {
            defer { self.locating.remove(target.iccid) }
            do {
                let destinations = try await self.destinations(for: target.domain)
                guard let first = destinations.first, let hostPort = await self.endpoint.contactHostPort(for: first),
                      let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]) else {
                    throw SIP2SIMError.noLocalAddress(target.domain)
                }
                guard self.targets[target.iccid] == target, self.machines[target.iccid] == nil, !self.stopping else { return }
                let contact = SIPURI(user: target.iccid.digits, host: String(hostPort[..<colon]), port: port)
                self.start(target, contact: contact, now: Self.now())
            } catch {
                self.logger.warning("cannot register SIM: its server was not found", metadata: [
                    "iccid": "\(target.iccid)", "domain": "\(target.domain)", "error": "\(error)",
                ])
                let status = RegistrationStatus(state: .failing, lastReason: "\(target.domain) not found: \(error)")
                self.statuses[target.iccid] = status
                self.pendingStatus[target.iccid] = status
            }
        }
    }

    /// What a stop's de-registration did: of the SIMs this node had, how
    /// many were still being de-registered when the time was up.
    public struct Deregistration: Sendable, Equatable {
        public var sims: Int
        public var unconfirmed: Int
    }

    /// De-registers every SIM (our Contacts only) and waits, at most `timeout`
    /// seconds, for the registrars to confirm. From here on nothing registers.
    @discardableResult
    public func deregisterAll(timeout: Double = 10) async -> Deregistration {
        stopping = true
        let now = Self.now()
        let sims = machines.count
        for iccid in Array(machines.keys) { event(.stop(now: now), for: iccid) }
        let end = now + timeout
        while !machines.isEmpty, Self.now() < end {
            tick()
            try? await Task.sleep(for: .milliseconds(20))
        }
        await flushStatus()
        return Deregistration(sims: sims, unconfirmed: machines.count)
    }

    public func status(of iccid: ICCID) -> RegistrationStatus? { statuses[iccid] }
    /// Whether the SIM still has a machine here (registered, trying, or de-registering).
    public func isRegistering(_ iccid: ICCID) -> Bool { machines[iccid] != nil }
    public var registeredCount: Int { statuses.values.reduce(0) { $0 + ($1.state == .registered ? 1 : 0) } }
    public var simCount: Int { machines.count }

    /// The scheduler: runs until its task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            tick()
            if !pendingStatus.isEmpty, !flushing {
                flushing = true
                Task { await self.flushStatus() }
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: - Scheduling

    private func tick() {
        let now = Self.now()
        // Token bucket: at most `registrationsPerSecond`, bursts of a tenth of a second.
        let rate = configuration.registrationsPerSecond
        tokens = min(max(1, rate / 10), tokens + (now - lastTick) * rate)
        lastTick = now
        while let (deadline, iccid) = timers.peek(), deadline <= now {
            timers.pop()
            guard deadlines[iccid] == deadline else { continue }  // superseded
            deadlines[iccid] = nil
            event(.timerFired(now: now), for: iccid)
        }
        while queueHead < queue.count, tokens >= 1 {
            tokens -= 1
            let (iccid, message, domain) = queue[queueHead]
            queueHead += 1
            transmit(message, domain: domain, for: iccid)
        }
        if queueHead > 1024, queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
    }

    private func event(_ e: RegistrationMachine.Event, for iccid: ICCID) {
        guard var m = machines[iccid] else { return }
        let actions = m.event(e)
        machines[iccid] = m
        perform(actions, for: iccid)
    }

    private func perform(_ actions: [RegistrationAction], for iccid: ICCID) {
        for action in actions {
            switch action {
            case .send(let message, let domain):
                queue.append((iccid, message, domain))
            case .setTimer(let at):
                deadlines[iccid] = at
                timers.push(at, iccid)
            case .cancelTimer:
                deadlines[iccid] = nil
            case .reportStatus(let status):
                statuses[iccid] = status
                pendingStatus[iccid] = status
                if status.state == .failing {
                    logger.info("SIM registration failing", metadata: [
                        "iccid": "\(iccid)", "code": "\(status.lastCode.map(String.init) ?? "none")",
                        "reason": "\(status.lastReason ?? "")",
                    ])
                }
            case .registrarDroppedOtherContacts(let message):
                logger.error("registrar removed every binding of a SIM handed to another node (S9)",
                             metadata: ["iccid": "\(iccid)", "detail": "\(message)"])
            case .finished:
                machines[iccid] = nil
                deadlines[iccid] = nil
                if targets[iccid] == nil { statuses[iccid] = nil }
            }
        }
    }

    private func flushStatus() async {
        let batch = pendingStatus.map { ($0.key, $0.value) }
        pendingStatus = [:]
        if !batch.isEmpty { await onStatus(batch) }
        flushing = false
    }

    // MARK: - Sending

    private func transmit(_ message: SIPMessage, domain: String, for iccid: ICCID) {
        let callID = message.callID ?? ""
        let cseq = message.cseq?.number ?? 0
        let endpoint = self.endpoint
        // Runs on this actor; only the DNS look-up and the transaction wait elsewhere.
        Task {
            do {
                let destinations = try await self.destinations(for: domain)
                let (response, _) = try await endpoint.send(message, toFirstAvailable: destinations)
                self.received(response, for: iccid)
            } catch {
                self.failed(callID: callID, cseq: cseq, reason: "\(error)", for: iccid)
            }
        }
    }

    private func received(_ response: SIPMessage, for iccid: ICCID) {
        if let code = response.statusCode, (200..<300).contains(code) { registrationsAnswered2xx += 1 }
        event(.response(response, now: Self.now()), for: iccid)
    }

    private func failed(callID: String, cseq: UInt32, reason: String, for iccid: ICCID) {
        event(.transactionFailed(callID: callID, cseq: cseq, reason: reason, now: Self.now()), for: iccid)
    }

    /// RFC 3263 targets for a SIM's server, cached for a minute.
    private func destinations(for domain: String) async throws -> [SIPDestination] {
        let now = Self.now()
        if let cached = resolved[domain], cached.until > now { return cached.destinations }
        let uri = try SIPURI("sip:" + domain)
        let host = uri.host.hasPrefix("[") ? String(uri.host.dropFirst().dropLast()) : uri.host
        let targets = try await locator.locate(host: host, port: uri.port.map(Int.init), transport: nil)
        let destinations = try targets.map { t in
            SIPDestination(address: try SocketAddress(ipAddress: t.host, port: Int(t.port)), transport: t.transport == .tcp ? .tcp : .udp)
        }
        resolved[domain] = (destinations, now + 60)
        return destinations
    }

    private func settings(for target: SIMRegistrationTarget, contact: SIPURI) -> RegistrationSettings {
        RegistrationSettings(domain: target.domain, aorUser: target.username, username: target.username, password: target.password,
                             contact: contact, expires: configuration.expires)
    }
}

public enum SIP2SIMError: Error, Sendable, CustomStringConvertible {
    case noLocalAddress(String)

    public var description: String {
        switch self {
        case .noLocalAddress(let domain):
            return "no local address toward \(domain); set sims.registration.contact_host to this node's SIP address"
        }
    }
}

/// A binary min-heap of (deadline, SIM); stale entries are skipped by the reader.
struct DeadlineHeap {
    private var items: [(Double, ICCID)] = []

    var isEmpty: Bool { items.isEmpty }
    func peek() -> (Double, ICCID)? { items.first }

    mutating func push(_ deadline: Double, _ iccid: ICCID) {
        items.append((deadline, iccid))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].0 < items[parent].0 else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < items.count, items[l].0 < items[smallest].0 { smallest = l }
            if r < items.count, items[r].0 < items[smallest].0 { smallest = r }
            guard smallest != i else { break }
            items.swapAt(i, smallest)
            i = smallest
        }
    }
}
