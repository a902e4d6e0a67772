import CallControl
import CallCore
import Foundation
import NIOCore
import Rating
import SIMs
import SIPMessage
import SIPResolver
import SIPStack
import Store

/// A SIM as the call service needs it: the password decrypted, in memory only.
public struct SIMCallProfile: Sendable, Equatable {
    public var iccid: String
    public var accountID: String
    /// The customer's SIP server (S4: calls from the handset go there).
    public var hostname: String
    public var username: String
    public var password: String
    public var linkedNumber: String?
    /// Per-minute charge of the SIM's calls (S13); nil: the account's rate deck.
    public var callRate: Money?

    public init(iccid: String, accountID: String, hostname: String, username: String, password: String,
                linkedNumber: String? = nil, callRate: Money? = nil) {
        self.iccid = iccid; self.accountID = accountID; self.hostname = hostname; self.username = username
        self.password = password; self.linkedNumber = linkedNumber; self.callRate = callRate
    }
}

/// Which way a SIP2SIM call goes.
enum SIMCallDirection: Sendable, Equatable {
    /// From the mobile core: a handset dialled out (S4–S8).
    case fromHandset
    /// From the customer's server to a SIM's registered Contact (S3).
    case toHandset(SIMCallProfile)
    /// From a carrier gateway to the customer's number linked to a SIM (S12).
    case toLinkedNumber(SIMCallProfile)
}

/// SIP2SIM calls (SPEC.md S3–S8). They share the trunk calls' machinery —
/// the `B2BUACall` machine, limits, rating, CDRs — and differ in who the B
/// leg calls and as whom (`BLegIdentity`).
extension TrunkCallService {
    /// Sets what SIM calls need; without it every INVITE is a trunk call.
    public func enableSIMCalls(source: @escaping @Sendable () async throws -> [SIMCallProfile]) async {
        simSource = source
        simRouting.enabled = true
        if let core = node.mobileCore {
            simRouting.mobileCoreSources = Set(core.sources)
            mobileCoreDestination = Self.resolve(core.address)
            if mobileCoreDestination == nil {
                logger.error("mobile core address does not resolve; calls to SIMs will fail", metadata: ["address": "\(core.address)"])
            }
        }
        await reloadSIMs()
        routeSIMCalls()
    }

    func reloadSIMs() async {
        guard let simSource else { return }
        do {
            let profiles = try await simSource()
            simRouting.sims = Dictionary(profiles.map { ($0.iccid, $0) }, uniquingKeysWith: { a, _ in a })
            simRouting.simsByLinkedNumber = Dictionary(profiles.compactMap { p in p.linkedNumber.map { ($0, p) } },
                                                       uniquingKeysWith: { a, b in a.iccid < b.iccid ? a : b })
            routeSIMCalls()
        } catch is CancellationError {
            // The node is stopping: the reload was cut short, nothing is wrong.
        } catch {
            logger.error("could not reload SIMs from the store; keeping the last copy", metadata: ["error": "\(error)"])
        }
    }

    /// The gateways' addresses (resolved at start) into the SIM routing, and
    /// the routing to the event loops, which leave SIM calls here.
    func routeSIMCalls() {
        simRouting.gatewaySources = Set(core.gatewayAddresses.values.compactMap(\.address.ipAddress))
        loopCalls?.update(simRouting: simRouting)
    }

    /// Whether a new INVITE is a SIP2SIM call, and which way.
    func simDirection(of request: SIPServerRequest) -> SIMCallDirection? {
        simRouting.direction(of: request.message, source: request.source.ipAddress)
    }

    func newSIMCall(_ request: SIPServerRequest, _ direction: SIMCallDirection) async {
        if core.stopping {
            let why = CallRejection.nodeStopping
            await request.respond(request.message.makeResponse(why.statusCode, reasonPhrase: SIPMessage.standardReasonPhrase(why.statusCode),
                                                               toTag: SIPEndpoint.newTag(), headers: Core.refusalHeaders(why)))
            return
        }
        switch direction {
        case .fromHandset: await callFromHandset(request)
        case .toHandset(let sim): await callToHandset(request, sim: sim)
        case .toLinkedNumber(let sim): await callToHandset(request, sim: sim, fromCarrier: true)
        }
    }

    // MARK: From the handset (S4–S8)

    func callFromHandset(_ request: SIPServerRequest) async {
        let invite = request.message
        let now = Date().timeIntervalSince1970
        let iccid = Self.number(Self.callerNumber(invite))
        guard let sim = simRouting.sims[iccid] else {
            logger.notice("call from an unknown SIM refused", metadata: ["iccid": "\(iccid.prefix(24))"])
            await refuseSIMCall(request, 403, "Forbidden (the calling SIM is not provisioned)", sim: nil, from: iccid, to: "", now: now)
            return
        }
        let dialled = invite.parsedRequestURI?.decodedUser ?? ""
        let route = dialPlan.route(dialled: dialled, withheld: Self.isWithheld(invite))
        switch route {
        case .invalid(let s):
            await refuseSIMCall(request, 484, "Address Incomplete (not a number: \(s.prefix(32)))", sim: sim, from: iccid, to: s, now: now)
        case .withheld:
            // S7: a clear failure. RFC 5079 §3: 433 Anonymity Disallowed.
            await refuseSIMCall(request, 433, "Anonymity Disallowed (the SIM withheld its number; the customer's server needs it)",
                                sim: sim, from: iccid, to: dialled, now: now)
        case .networkCode(let code):
            // S6: the network's own services, never the customer's.
            await refuseSIMCall(request, 403, "Forbidden (network service code \(code) is not passed to the customer)",
                                sim: sim, from: iccid, to: code, now: now)
        case .emergency(let number):
            // S5: to the emergency gateway whatever the balance, never to the customer.
            guard let gateway = node.emergencyGateway, let destination = core.gatewayAddresses["emergency"] else {
                logger.critical("emergency call with no emergency gateway configured", metadata: ["iccid": "\(iccid)", "number": "\(number)"])
                await refuseSIMCall(request, 503, "Service Unavailable (no emergency gateway)", sim: sim, from: iccid, to: number, now: now)
                return
            }
            logger.notice("emergency call from a SIM", metadata: ["iccid": "\(iccid)", "number": "\(number)"])
            let identity = BLegIdentity(calledUser: number, callerUser: sim.linkedNumber ?? iccid)
            await startSIMCall(request, sim: sim, from: iccid, to: number, callType: "emergency", rate: Self.freeRate, admit: false,
                               targets: [(GatewayTarget(name: "emergency", hostPort: gateway), destination)], identity: identity, now: now)
        case .customer(let digits):
            let rate = Self.simRate(sim) ?? core.directory.rate(account: sim.accountID, number: digits)
            let destinations: [SIPDestination]
            do { destinations = try await customerDestinations(sim.hostname) } catch {
                logger.notice("customer's SIP server cannot be located", metadata: ["iccid": "\(iccid)", "host": "\(sim.hostname)", "error": "\(error)"])
                await refuseSIMCall(request, 503, "Service Unavailable (the customer's SIP server cannot be located)",
                                    sim: sim, from: iccid, to: digits, now: now)
                return
            }
            // '#' is not allowed in a URI user part (RFC 3261 §25.1): escaped.
            let identity = BLegIdentity(calledUser: digits.replacingOccurrences(of: "#", with: "%23"), callerUser: iccid,
                                        callerHost: sim.hostname, credentials: DigestLogin(username: sim.username, password: sim.password))
            let targets = destinations.map { (GatewayTarget(name: "customer", hostPort: sim.hostname), $0) }
            await startSIMCall(request, sim: sim, from: iccid, to: digits, callType: node.callType(of: digits), rate: rate, admit: true,
                               targets: targets, identity: identity, now: now)
        }
    }

    // MARK: To the handset (S3)

    /// `fromCarrier`: a call to the SIM's linked number from a carrier gateway
    /// (S12), already trusted by its address; otherwise the call must come
    /// from the SIM's own customer server.
    func callToHandset(_ request: SIPServerRequest, sim: SIMCallProfile, fromCarrier: Bool = false) async {
        let invite = request.message
        let now = Date().timeIntervalSince1970
        let cli = Self.number(Self.callerNumber(invite))
        // Only the SIM's own server may ring it: a stranger knowing an ICCID must not.
        let allowed = fromCarrier ? [] : (try? await customerDestinations(sim.hostname))?.compactMap(\.address.ipAddress) ?? []
        guard fromCarrier || request.source.ipAddress.map(allowed.contains) == true else {
            logger.notice("call to a SIM from outside its customer's server refused",
                          metadata: ["iccid": "\(sim.iccid)", "source": "\(request.source)", "server": "\(sim.hostname)"])
            await refuseSIMCall(request, 403, "Forbidden (calls to this SIM come from its SIP server only)", sim: sim, from: cli, to: sim.iccid, now: now)
            return
        }
        guard let core = node.mobileCore, let destination = mobileCoreDestination else {
            await refuseSIMCall(request, 503, "Service Unavailable (no mobile core configured)", sim: sim, from: cli, to: sim.iccid, now: now)
            return
        }
        let identity = BLegIdentity(calledUser: sim.iccid, callerUser: HandsetDialPlan.presentedCLI(cli))
        await startSIMCall(request, sim: sim, from: cli, to: sim.iccid, callType: "sim", rate: Self.simRate(sim) ?? Self.freeRate, admit: true,
                           targets: [(GatewayTarget(name: "mobile-core", hostPort: core.address), destination)], identity: identity, now: now)
    }

    // MARK: Shared

    /// Admits (unless it is an emergency call), records the start and sends the B leg.
    func startSIMCall(_ request: SIPServerRequest, sim: SIMCallProfile, from: String, to: String, callType: String?, rate: Rate?,
                      admit: Bool, targets: [(GatewayTarget, SIPDestination)], identity: BLegIdentity, now: Double) async {
        let invite = request.message
        guard let callID = invite.callID, !core.hasCall(callID), let endpoint else { return }
        guard var account = core.directory.accounts[sim.accountID] else {
            logger.error("SIM belongs to no account", metadata: ["iccid": "\(sim.iccid)", "account": "\(sim.accountID)"])
            await request.respond(500, reasonPhrase: "Server Internal Error (SIM has no account)")
            return
        }
        // The caller of a SIM call is an ICCID or the customer's own CLI: T7 does not apply.
        account.cliPolicy = .warn
        let attempt = CallAttempt(account: account, accountLimits: core.directory.accountLimits[account.id] ?? CallLimits(),
                                  trunk: Trunk(accountID: account.id, name: "SIM\(sim.iccid)"), controls: CallControlHeaders(),
                                  cli: from, destination: to, callType: callType, rate: rate)
        var admission = Admission(warning: nil, maxDuration: nil, maxCostSeconds: nil, balanceSeconds: nil, channels: [])
        // A call that costs nothing needs no balance (a SIM can always be rung when its calls in are free).
        let free = rate.map { $0.perMinute == 0 && $0.connectionCharge == 0 } ?? false
        var counted: [LimitCheck] = []
        if admit, !free {
            let (decision, checks) = core.admit(attempt, now: now)
            counted = checks
            switch decision {
            case .reject(let why):
                await perform(core.reject(request, why, account: account.id, trunk: nil, controls: attempt.controls, now: now, attempt: attempt))
                return
            case .admit(let a):
                admission = a
                admission.warning = nil
            }
        }
        let caller = SIPDestination(address: request.source, transport: request.transport)
        let localContact = await contactHostPort(for: targets.first?.1 ?? caller, endpoint: endpoint)
        let machine = B2BUACall(
            invite: invite, gateways: targets.map(\.0), bCallID: SIPEndpoint.newCallID(host: node.nodeName), bFromTag: SIPEndpoint.newTag(),
            aToTag: SIPEndpoint.newTag(), localContact: localContact, maxDuration: nil, costCapSeconds: nil,
            balanceCapSeconds: admission.balanceSeconds, identity: identity)
        let call = Core.Call(machine: machine, attempt: attempt, admission: admission, request: request, caller: caller,
                             gateways: targets.map(\.1), simICCID: sim.iccid, spendsBalance: admit && !free)
        await perform(core.launch(call, live: LiveCall(callID: callID, accountID: account.id, from: from, to: to, startAt: now),
                                  countedInStore: counted))
    }

    /// A refused SIP2SIM call: the code, a reason phrase and a `Reason` header
    /// saying why (S7, S8), and a CDR.
    func refuseSIMCall(_ request: SIPServerRequest, _ code: Int, _ phrase: String, sim: SIMCallProfile?, from: String, to: String, now: Double) async {
        let text = phrase.firstIndex(of: "(").map { String(phrase[phrase.index(after: $0)...].dropLast()) } ?? phrase
        let reason = "SIP;cause=\(code);text=\"\(text.replacingOccurrences(of: "\"", with: "'"))\""
        await request.respond(code, reasonPhrase: phrase, toTag: SIPEndpoint.newTag(), headers: [(.reason, reason)])
        logger.info("SIM call refused", metadata: ["iccid": "\(sim?.iccid ?? "-")", "status": "\(code)", "reason": "\(phrase)"])
        guard let sim, let callID = request.message.callID else { return }
        await writes.record(CDR(callID: callID, accountID: sim.accountID, from: from, to: to, callType: nil, startAt: now, endAt: now,
                               durationSeconds: 0, billedSeconds: 0, cost: 0, finalStatus: code, reason: text), refused: true)
    }

    /// RFC 3263 targets of a customer's server, cached for a minute.
    func customerDestinations(_ hostname: String) async throws -> [SIPDestination] {
        let now = Date().timeIntervalSince1970
        if let cached = customerServers[hostname], cached.until > now { return cached.destinations }
        let uri = try SIPURI("sip:" + hostname)
        let host = uri.host.hasPrefix("[") ? String(uri.host.dropFirst().dropLast()) : uri.host
        let targets = try await SIPServerLocator().locate(host: host, port: uri.port.map(Int.init), transport: nil)
        let destinations = try targets.map { t in
            SIPDestination(address: try SocketAddress(ipAddress: t.host, port: Int(t.port)), transport: t.transport == .tcp ? .tcp : .udp)
        }
        customerServers[hostname] = (destinations, now + 60)
        return destinations
    }

    /// RFC 3323: `Privacy: id` or `header`, or an anonymous From (RFC 3325 §9.2).
    static func isWithheld(_ invite: SIPMessage) -> Bool {
        let privacy = invite.splitValues(.privacy).flatMap { $0.split(separator: ";") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if privacy.contains("id") || privacy.contains("header") || privacy.contains("user") { return true }
        return invite.from?.uri.user?.lowercased() == "anonymous"
    }

    static func simRate(_ sim: SIMCallProfile) -> Rate? {
        guard let perMinute = sim.callRate, let increments = try? BillingIncrements(first: 1, next: 1) else { return nil }
        // The prefix only names the rate: it is the SIM's own, whatever the number.
        return try? Rate(prefix: String(sim.iccid.prefix(20)), destination: "SIM", connectionCharge: 0, perMinute: perMinute, increments: increments)
    }

    static var freeRate: Rate? {
        guard let increments = try? BillingIncrements(first: 1, next: 1) else { return nil }
        return try? Rate(prefix: "0", destination: "free", connectionCharge: 0, perMinute: 0, increments: increments)
    }
}
