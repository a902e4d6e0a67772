import ArgumentParser
import Foundation
import Logging
import Messaging
import NodeConfiguration
import SIMs
import SIP2SIM
import SIPMessage
import SIPStack
import SIPTransport
import Store
import TrunkService
import UnixSignals
import WebAPI

/// `switchboard serve` — runs the node: the store (SQLite file by default,
/// created on first start), the SIP endpoint, the trunk call service and
/// the REST API.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the switch.",
        discussion: "With no --config, defaults apply: SIP on UDP and TCP 0.0.0.0:5060, store in ./switchboard.sqlite. Environment variables SWITCHBOARD_SIP_LISTEN, SWITCHBOARD_HTTP_LISTEN, SWITCHBOARD_DATABASE, SWITCHBOARD_NODE_NAME and SWITCHBOARD_SIM_PASSWORD_KEY override the file. Without sims.password_key the SIM password key is kept in sim-password.key next to the SQLite file (the working directory with PostgreSQL)."
    )

    @Option(help: "YAML configuration file (see switchboard.example.yaml).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    func run() async throws {
        var logger = Logger(label: "switchboard")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let node: NodeConfiguration
        do { node = try NodeConfiguration.load(path: config) } catch {
            // Stop start-up with the key and the problem.
            print("error: \(error)")
            throw ExitCode(78)
        }

        // SIM passwords are stored encrypted: a bad key stops start-up, naming sims.password_key.
        let simCipher: SIMPasswordCipher
        do { simCipher = try node.simPasswordCipher() } catch {
            print("error: \(error)")
            throw ExitCode(78)
        }
        if node.simPasswordKey == nil {
            logger.info("SIM password key from its key file", metadata: ["file": "\(node.simPasswordKeyFile)"])
            if case .postgres = node.database {
                logger.warning("with PostgreSQL every node needs the same SIM password key: set sims.password_key (or SWITCHBOARD_SIM_PASSWORD_KEY)")
            }
        }

        // Trapped before anything starts, so that a stop signal from now on
        // stops the node gracefully rather than killing it (see `stop` below).
        let stopSignals = await UnixSignalsSequence(trapping: .sigterm, .sigint)

        let location = node.storeLocation
        let store: Store
        do { store = try await Store.open(location, logger: logger) } catch {
            print("error: \(error)")
            throw ExitCode(1)
        }
        logger.info("store open", metadata: ["store": "\(location)"])
        let interrupted = try await store.recordInterruptedCalls(node: node.nodeName, now: Date().timeIntervalSince1970)
        if interrupted > 0 { logger.warning("recorded calls interrupted by the last stop", metadata: ["count": "\(interrupted)"]) }

        // Digest nonces are signed with the configured secret (shared by a
        // cluster's nodes), else with a random one for this run.
        var secret = Array((node.nonceSecret ?? "").utf8)
        if secret.isEmpty {
            var rng = SystemRandomNumberGenerator()
            secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        let calls = TrunkCallService(store: store, node: node, nonceSecret: secret, logger: logger)
        // Texts from handsets (S11): MESSAGEs from the mobile core, stored, then webhooks.
        // Texts to customers' linked numbers (S12) come from the carrier gateways.
        // Handsets' texts sent out as from their linked number go to the same gateways, by the same prefix routes.
        var carriers: [String: TextService.CarrierRoute] = [:]
        for g in node.gateways {
            guard let d = TrunkCallService.resolve(g.address) else { continue }
            carriers[g.name] = TextService.CarrierRoute(host: g.address, destination: d)
        }
        let carrierSources = carriers.values.compactMap { $0.destination.address.ipAddress }
        let texts = TextService(store: store, mobileCoreSources: node.mobileCore?.sources ?? [], carrierSources: carrierSources,
                                carrierRoutes: { [node, carriers] number in node.gateways(for: number).compactMap { carriers[$0.name] } },
                                nodeName: node.nodeName,
                                retry: WebhookRetryPolicy(base: node.textRetryFirstSeconds, cap: node.textRetryMaxSeconds,
                                                          giveUpAfter: node.textGiveUpSeconds),
                                logger: logger)
        await texts.start()
        // SWITCHBOARD_TRUNK_CALLS_ON_LOOP=N (1…cores): UDP trunk calls run on N event loops, each
        // with its own socket on the port (docs/run-to-completion.md, slices 3–4). Off (0) by default:
        // see the README's call-rate figures for where each stands.
        let callLoops = min(max(0, Int(ProcessInfo.processInfo.environment["SWITCHBOARD_TRUNK_CALLS_ON_LOOP"] ?? "0") ?? 0),
                            ProcessInfo.processInfo.activeProcessorCount)
        var sipConfiguration = SIPEndpointConfiguration(listen: node.sipListeners.map {
            SIPListenAddress(host: $0.host, port: $0.port, transport: $0.transport == .udp ? .udp : .tcp)
        }, deliversACKsOf2xx: false)  // neither the call service nor texts use the ACKs of their 2xx
        sipConfiguration.udpSocketsPerAddress = max(1, callLoops)
        let endpoint = try await SIPEndpoint.start(
            configuration: sipConfiguration,
            logger: logger
        ) { request in
            if request.message.method == .message { await texts.handle(request) } else { await calls.handle(request) }
        }
        try await calls.start(endpoint: endpoint, callsOnEventLoop: callLoops > 0)
        let membership = Task { [store, logger, name = node.nodeName, silent = node.silentAfterSeconds] in
            await Self.keepClusterMembership(store: store, node: name, silentAfter: silent, logger: logger)
        }
        await texts.enableNetworkDelivery(endpoint: endpoint)
        // SIP2SIM calls (S3–S8): SIMs by ICCID, the mobile core from the config.
        await calls.enableSIMCalls(source: { [store, simCipher, logger] in
            try await SIMRegistrationStore(store: store, cipher: simCipher, logger: logger).callProfiles()
        })
        if let core = node.mobileCore {
            logger.info("mobile core", metadata: ["address": "\(core.address)", "sources": "\(core.sources.joined(separator: ","))"])
            // Texts to handsets (S10) go to the same peer as calls to them.
            if let destination = TrunkCallService.resolve(core.address) {
                await texts.enableHandsetDelivery(endpoint: endpoint, destination: destination, address: core.address)
            }
        }
        for b in await endpoint.boundAddresses {
            logger.info("listening", metadata: ["transport": "\(b.transport)", "address": "\(b.address)"])
        }
        // SIP2SIM: every SIM placed on this node registers with its customer's server (S1, S2, S9).
        let bound = await endpoint.boundAddresses
        let udp = bound.first { $0.transport == .udp } ?? bound.first
        let listenHost = udp?.address.ipAddress
        let r = node.simRegistration
        let contactHost = r.contactHost ?? listenHost.flatMap { $0 == "0.0.0.0" || $0 == "::" ? nil : ($0.contains(":") ? "[\($0)]" : $0) }
        let agent = RegistrationAgent(
            endpoint: endpoint,
            configuration: RegistrationAgentConfiguration(
                contactHost: contactHost, contactPort: UInt16(udp?.address.port ?? 5060), expires: UInt32(r.expires),
                registrationsPerSecond: Double(r.perSecond)),
            logger: logger,
            onStatus: { [store, logger, name = node.nodeName, simCipher] statuses in
                do {
                    try await SIMRegistrationStore(store: store, cipher: simCipher, logger: logger).recordStatuses(statuses, node: name)
                } catch {
                    logger.error("could not record SIM registration status", metadata: ["error": "\(error)"])
                }
            })
        let registrations = SIMRegistrationService(
            agent: agent, source: SIMRegistrationStore(store: store, cipher: simCipher, logger: logger),
            policy: PlacementPolicy(node: node.nodeName, registersUnplaced: r.takesUnplaced),
            reloadInterval: Double(r.reloadSeconds), logger: logger)
        let agentTask = Task { await agent.run() }
        let registrationTask = Task { await registrations.run() }

        // The REST API (http.listen); it shares the store and the SIP realm.
        var api: (service: WebAPIService, task: Task<Void, Never>)?
        if let http = node.httpListen {
            let server = WebAPIServer(store: store, realm: node.sipRealm, host: http.host, port: http.port, logger: logger,
                                      simPasswordCipher: simCipher,
                                      textGateway: TextGatewaySettings(maxSegments: node.textMaxSegments,
                                                                       mobileCoreConfigured: node.mobileCore != nil,
                                                                       accepted: { texts.wakeUp() }))
            let service = server.makeService()
            api = (service, Task {
                do { try await service.run() } catch {
                    logger.critical("the REST API stopped", metadata: ["error": "\(error)"])
                }
            })
            logger.info("REST API listening", metadata: ["address": "\(http.host):\(http.port)"])
        }
        // Run until SIGTERM (systemctl stop) or SIGINT (Ctrl-C); a second one cuts the drain short.
        let (firstSignal, firstSignalSeen) = AsyncStream.makeStream(of: UnixSignal.self)
        let signalWatch = Task { [calls, logger] in
            var seen = 0
            for await signal in stopSignals {
                seen += 1
                if seen == 1 { firstSignalSeen.yield(signal) } else {
                    logger.notice("stop signal again: clearing the live calls now", metadata: ["signal": "\(signal)"])
                    await calls.clearNow()
                }
            }
        }
        for await signal in firstSignal {
            logger.notice("stopping", metadata: ["signal": "\(signal)", "drain_seconds": "\(Int(node.drainSeconds))"])
            break
        }
        // Meanwhile this node's Contact of each SIM is removed from the SIM's
        // registrar (RFC 3261 §10.2.2; only ours, never `*`, as in S9), so that
        // the customer's server stops sending calls to a node that is going.
        registrationTask.cancel()
        let deregisterFor = 10.0
        let deregistration = r.deregistersOnStop ? Task { [agent] in await agent.deregisterAll(timeout: deregisterFor) } : nil
        // New calls are refused from here; live calls drain, then are cleared;
        // their CDRs are written before the store closes.
        let report = await calls.stop(drainingFor: .milliseconds(Int(node.drainSeconds * 1000)))
        if let removed = await deregistration?.value, removed.sims > 0 {
            if removed.unconfirmed == 0 {
                logger.notice("SIM registrations removed", metadata: ["sims": "\(removed.sims)"])
            } else {
                logger.warning("some SIM registrars did not confirm the removal in time: their bindings expire on their own",
                               metadata: ["sims": "\(removed.sims)", "unconfirmed": "\(removed.unconfirmed)",
                                          "waited_seconds": "\(Int(deregisterFor))"])
            }
        }
        // The API stays up through the drain (live calls can be watched);
        // now it takes no new connection, and requests in flight get 10 s to be answered.
        if let api {
            logger.notice("REST API stopping: no new connections; requests in flight are answered first")
            await api.service.stop()
            let cutOff = Task { try? await Task.sleep(for: .seconds(10)); api.task.cancel() }
            await api.task.value
            cutOff.cancel()
        }
        signalWatch.cancel()
        membership.cancel()
        agentTask.cancel()
        await texts.stop()
        await endpoint.shutdown()
        try await store.close()
        logger.notice("stopped", metadata: ["calls_at_stop": "\(report.live)", "cleared": "\(report.cleared)",
                                            "clearing_byes_answered": "\(report.answered)"])
    }

    /// Says every few seconds that this node is alive, and takes over from
    /// nodes that have stopped saying so: their live calls are recorded as
    /// interrupted and their channels freed (see `Store.reclaimSilentNodes`).
    static func keepClusterMembership(store: Store, node: String, silentAfter: Double, logger: Logger) async {
        let period = min(5, silentAfter / 3)
        while !Task.isCancelled {
            let now = Date().timeIntervalSince1970
            do {
                try await store.nodeSeen(node, now: now)
                for (silent, calls) in try await store.reclaimSilentNodes(silentFor: silentAfter, now: now, except: node) {
                    logger.warning("a node has not been seen for the silent period: its live calls are recorded as interrupted and their channels freed",
                                   metadata: ["node": "\(silent)", "calls": "\(calls)", "silent_after_seconds": "\(silentAfter)"])
                }
            } catch {
                logger.error("could not record this node as alive or check the other nodes", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(period))
        }
    }
}
