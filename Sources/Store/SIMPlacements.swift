import Foundation
import SIMs
import SQLKit

/// Where a SIM is registered from (S9): its home node, and the node a drain
/// is moving it to. No row: not placed (registered by nodes that take unplaced SIMs).
public struct SIMPlacementRow: Sendable, Equatable {
    public var home: String?
    public var movingTo: String?
    public init(home: String?, movingTo: String?) { self.home = home; self.movingTo = movingTo }
}

extension Store {
    /// Every placed SIM's placement, in one query.
    public func simPlacements() async throws -> [ICCID: SIMPlacementRow] {
        var out: [ICCID: SIMPlacementRow] = [:]
        for row in try await run({ try await $0.raw("SELECT iccid, home, moving_to FROM sim_placements").all() }) {
            guard let iccid = try? ICCID(try row.decode(column: "iccid", as: String.self)) else { continue }
            out[iccid] = SIMPlacementRow(home: try row.decode(column: "home", as: String?.self),
                                         movingTo: try row.decode(column: "moving_to", as: String?.self))
        }
        return out
    }

    /// For each SIM, the nodes whose registration of it is `registered`, in one query.
    public func registeredNodes() async throws -> [ICCID: Set<String>] {
        var out: [ICCID: Set<String>] = [:]
        for row in try await run({ try await $0.raw("SELECT iccid, node FROM sim_registrations WHERE state = 'registered'").all() }) {
            guard let iccid = try? ICCID(try row.decode(column: "iccid", as: String.self)) else { continue }
            out[iccid, default: []].insert(try row.decode(column: "node", as: String.self))
        }
        return out
    }

    /// Places a SIM on `home` (a finished move clears `movingTo`).
    public func setPlacement(_ iccid: ICCID, home: String?, movingTo: String?) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO sim_placements (iccid, home, moving_to) VALUES (\(bind: iccid.digits), \(bind: home), \(bind: movingTo))
                ON CONFLICT (iccid) DO UPDATE SET home = excluded.home, moving_to = excluded.moving_to
                """).run()
        }
    }

    /// Starts moving every SIM registered from `from` to `to` (S9). With
    /// `includeUnplaced`, SIMs with no placement count as `from`'s (a node
    /// that takes unplaced SIMs). Returns how many SIMs will move.
    public func drain(from: String, to: String, includeUnplaced: Bool) async throws -> Int {
        guard !from.isEmpty, !to.isEmpty else { throw StoreError.invalid(field: from.isEmpty ? "from" : "to", reason: "must name a node") }
        guard from != to else { throw StoreError.invalid(field: "to", reason: "must be another node than \(from)") }
        return try await transaction { db in
            var moved = 0
            let placed = try await db.raw("SELECT iccid FROM sim_placements WHERE home = \(bind: from)").all()
            for row in placed {
                let iccid = try row.decode(column: "iccid", as: String.self)
                try await db.raw("UPDATE sim_placements SET moving_to = \(bind: to) WHERE iccid = \(bind: iccid)").run()
                moved += 1
            }
            if includeUnplaced {
                let unplaced = try await db.raw("SELECT iccid FROM sims WHERE iccid NOT IN (SELECT iccid FROM sim_placements)").all()
                for row in unplaced {
                    let iccid = try row.decode(column: "iccid", as: String.self)
                    try await db.raw("INSERT INTO sim_placements (iccid, home, moving_to) VALUES (\(bind: iccid), \(bind: from), \(bind: to))").run()
                    moved += 1
                }
            }
            return moved
        }
    }

    /// Records a batch of one node's registration statuses in one transaction;
    /// statuses of SIMs deleted meanwhile are dropped.
    public func recordRegistrationStatuses(_ statuses: [SIMRegistrationStatus]) async throws {
        guard !statuses.isEmpty else { return }
        try await transaction { db in
            for status in statuses {
                guard try await db.raw("SELECT iccid FROM sims WHERE iccid = \(bind: status.iccid.digits)").first() != nil else { continue }
                try await db.raw("""
                    INSERT INTO sim_registrations (iccid, node, state, last_code, last_reason, registered_until, next_attempt, updated_at)
                    VALUES (\(bind: status.iccid.digits), \(bind: status.node), \(bind: status.state.rawValue), \(bind: status.lastCode),
                            \(bind: status.lastReason), \(bind: status.registeredUntil?.timeIntervalSince1970),
                            \(bind: status.nextAttempt?.timeIntervalSince1970), \(bind: status.updatedAt.timeIntervalSince1970))
                    ON CONFLICT (iccid, node) DO UPDATE SET state = excluded.state, last_code = excluded.last_code,
                        last_reason = excluded.last_reason, registered_until = excluded.registered_until,
                        next_attempt = excluded.next_attempt, updated_at = excluded.updated_at
                    """).run()
            }
        }
    }
}
