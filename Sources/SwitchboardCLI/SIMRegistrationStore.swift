import Foundation
import Logging
import OutboundRegistration
import SIMs
import SIP2SIM
import Store
import TrunkService

/// The store as the registration service's source: SIM settings with their
/// passwords decrypted in memory only, placements, and status written back.
struct SIMRegistrationStore: SIMRegistrationSource {
    let store: Store
    let cipher: SIMPasswordCipher
    let logger: Logger

    func registrationRecords() async throws -> [SIMRegistrationRecord] {
        let sims = try await store.sims()
        let placements = try await store.simPlacements()
        let registered = try await store.registeredNodes()
        var out: [SIMRegistrationRecord] = []
        out.reserveCapacity(sims.count)
        for sim in sims {
            let password: String
            do { password = try cipher.decrypt(sim.passwordCiphertext, iccid: sim.iccid) } catch {
                // Never the ciphertext or a password in the log: the ICCID and why.
                logger.error("SIM password cannot be decrypted; not registering it", metadata: ["iccid": "\(sim.iccid)", "error": "\(error)"])
                continue
            }
            let p = placements[sim.iccid]
            out.append(SIMRegistrationRecord(
                target: SIMRegistrationTarget(iccid: sim.iccid, domain: sim.sipHostname, username: sim.username, password: password),
                placement: SIMPlacement(home: p?.home, movingTo: p?.movingTo),
                registeredNodes: registered[sim.iccid] ?? []))
        }
        return out
    }

    /// SIMs for the call service (S3–S8): passwords decrypted in memory only.
    func callProfiles() async throws -> [SIMCallProfile] {
        try await store.sims().compactMap { sim in
            let password: String
            do { password = try cipher.decrypt(sim.passwordCiphertext, iccid: sim.iccid) } catch {
                logger.error("SIM password cannot be decrypted; its calls will fail", metadata: ["iccid": "\(sim.iccid)", "error": "\(error)"])
                return nil
            }
            return SIMCallProfile(iccid: sim.iccid.digits, accountID: sim.accountID, hostname: sim.sipHostname, username: sim.username,
                                  password: password, linkedNumber: sim.linkedNumber, callRate: sim.callRate)
        }
    }

    func recordStatuses(_ statuses: [(ICCID, RegistrationStatus)], node: String) async throws {
        let now = Date()
        try await store.recordRegistrationStatuses(statuses.map { iccid, s in
            SIMRegistrationStatus(
                iccid: iccid, node: node, state: SIMRegistrationState(rawValue: s.state.rawValue) ?? .unregistered,
                lastCode: s.lastCode, lastReason: s.lastReason,
                registeredUntil: s.registeredUntil.map(Date.init(timeIntervalSince1970:)),
                nextAttempt: s.nextAttempt.map(Date.init(timeIntervalSince1970:)), updatedAt: now)
        })
    }

    func completeMove(_ iccid: ICCID, to node: String) async throws {
        try await store.setPlacement(iccid, home: node, movingTo: nil)
    }
}
