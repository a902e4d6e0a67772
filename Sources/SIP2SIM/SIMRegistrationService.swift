import Foundation
import Logging
import OutboundRegistration
import SIMs

/// Reloads the SIMs from the store every `reloadInterval` seconds (S1: a
/// change takes effect within a minute), tells the agent which to keep
/// registered, writes their status back, and completes drains (S9).
public actor SIMRegistrationService {
    private let agent: RegistrationAgent
    private let source: any SIMRegistrationSource
    private let policy: PlacementPolicy
    private let reloadInterval: Double
    private let logger: Logger
    /// SIMs this node is handing over, by destination node.
    private var releasing: [ICCID: String] = [:]
    private var lastSummary: (registered: Int, total: Int, answered: Int) = (-1, -1, -1)

    public init(agent: RegistrationAgent, source: any SIMRegistrationSource, policy: PlacementPolicy, reloadInterval: Double = 10,
                logger: Logger) {
        self.agent = agent; self.source = source; self.policy = policy; self.reloadInterval = reloadInterval; self.logger = logger
    }

    /// Runs until cancelled.
    public func run() async {
        while !Task.isCancelled {
            await reload()
            try? await Task.sleep(for: .milliseconds(Int(reloadInterval * 1000)))
        }
    }

    /// One pass: read, decide, apply, hand over finished moves.
    public func reload() async {
        let records: [SIMRegistrationRecord]
        do { records = try await source.registrationRecords() } catch {
            logger.error("could not read SIMs for registration; keeping the current set", metadata: ["error": "\(error)"])
            return
        }
        var wanted: [SIMRegistrationTarget] = []
        var releasingNow: [ICCID: String] = [:]
        for r in records {
            switch policy.decide(r.placement, registeredNodes: r.registeredNodes) {
            case .register: wanted.append(r.target)
            case .ignore: break
            case .release(let to): releasingNow[r.target.iccid] = to
            }
        }
        await agent.apply(wanted, handingOver: Set(releasingNow.keys))
        // Released SIMs whose de-registration has finished are handed over.
        for (iccid, to) in releasingNow where await !agent.isRegistering(iccid) {
            do {
                try await source.completeMove(iccid, to: to)
                logger.info("SIM moved", metadata: ["iccid": "\(iccid)", "to": "\(to)"])
                releasingNow[iccid] = nil
            } catch {
                logger.error("could not record a SIM's move", metadata: ["iccid": "\(iccid)", "error": "\(error)"])
            }
        }
        releasing = releasingNow
        let summary = (await agent.registeredCount, wanted.count, await agent.registrationsAnswered2xx)
        if summary != lastSummary {
            lastSummary = summary
            logger.info("SIM registrations", metadata: [
                "registered": "\(summary.0)", "sims": "\(summary.1)", "registrations_ok": "\(summary.2)",
            ])
        }
    }

    public var handingOver: Int { releasing.count }
}
