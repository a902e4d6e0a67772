import Foundation
import SQLKit

/// A text between a SIM and the customer's systems (S10, S11), as kept in the
/// outbox until it is delivered: accepted texts live here, so a restart
/// resumes delivery and loses none.
public struct StoredText: Sendable, Equatable {
    public enum Direction: String, Sendable {
        /// From a handset to the SIM's webhook (S11).
        case fromHandset = "from_handset"
        /// To a handset through the mobile core (S10, and S12 texts to the linked number).
        case toHandset = "to_handset"
        /// From a handset out to the number it addressed, through a carrier gateway, as from the linked number (S12).
        case toNetwork = "to_network"
    }
    public enum State: String, Sendable { case queued, delivered, failed }

    public var id: String
    public var direction: Direction
    public var iccid: String
    public var accountID: String
    /// From the handset (webhook or network): the number it addressed. To the handset: the sender.
    public var peer: String
    public var body: String
    public var segments: Int
    public var receivedAt: Double
    public var state: State
    public var attempts: Int
    public var nextAttemptAt: Double?
    public var lastError: String?
    public var deliveredAt: Double?
    /// A new text id: `txt_` and 32 hex digits (a random UUID).
    public static func newID() -> String { "txt_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") }

    /// To a handset: the mobile core's final SIP code for the last attempt.
    public var sipCode: Int?

    public init(id: String, direction: Direction, iccid: String, accountID: String, peer: String, body: String, segments: Int,
                receivedAt: Double, state: State = .queued, attempts: Int = 0, nextAttemptAt: Double? = nil,
                lastError: String? = nil, deliveredAt: Double? = nil, sipCode: Int? = nil) {
        self.id = id; self.direction = direction; self.iccid = iccid; self.accountID = accountID; self.peer = peer
        self.body = body; self.segments = segments; self.receivedAt = receivedAt; self.state = state; self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt; self.lastError = lastError; self.deliveredAt = deliveredAt
        self.sipCode = sipCode
    }
}

/// Which texts to list (S10, S11: queued, delivered and failed texts are visible in the API).
public struct TextQuery: Sendable {
    public var accountID: String?
    public var iccid: String?
    public var direction: StoredText.Direction?
    public var state: StoredText.State?
    /// Received at or after.
    public var from: Double?
    /// Received before.
    public var to: Double?
    public var limit: Int
    /// The newest first (the control pages), else the oldest (the API).
    public var newestFirst: Bool

    public init(accountID: String? = nil, iccid: String? = nil, direction: StoredText.Direction? = nil, state: StoredText.State? = nil,
                from: Double? = nil, to: Double? = nil, limit: Int = 100, newestFirst: Bool = false) {
        self.accountID = accountID; self.iccid = iccid; self.direction = direction; self.state = state
        self.from = from; self.to = to; self.limit = limit; self.newestFirst = newestFirst
    }
}

extension Store {
    static let textColumns = """
        id, direction, iccid, account_id, peer, body, segments, received_at, state, attempts, next_attempt_at, last_error, delivered_at, sip_code
        """

    /// Stores a text once per `dedupeKey` (a MESSAGE sent again after a lost
    /// 202 is the same text). Returns the stored text and whether it is new.
    /// `charge`, the text's CDR, is written (and debited) with it, in the same
    /// transaction: a text is never charged twice nor accepted uncharged.
    public func acceptText(_ t: StoredText, dedupeKey: String, charge: CDR? = nil) async throws -> (StoredText, inserted: Bool) {
        try await transaction { db in
            if let row = try await db.raw("SELECT \(unsafeRaw: Self.textColumns) FROM texts WHERE dedupe_key = \(bind: dedupeKey)").first() {
                return (try Self.storedText(row), false)
            }
            try await db.raw("""
                INSERT INTO texts (\(unsafeRaw: Self.textColumns), dedupe_key) VALUES (\(bind: t.id), \(bind: t.direction.rawValue),
                    \(bind: t.iccid), \(bind: t.accountID), \(bind: t.peer), \(bind: t.body), \(bind: t.segments), \(bind: t.receivedAt),
                    \(bind: t.state.rawValue), \(bind: t.attempts), \(bind: t.nextAttemptAt ?? t.receivedAt), \(bind: t.lastError),
                    \(bind: t.deliveredAt), \(bind: t.sipCode), \(bind: dedupeKey))
                """).run()
            if let charge { _ = try await Self.insertCDR(charge, in: db) }
            return (t, true)
        }
    }

    public func text(id: String) async throws -> StoredText? {
        try await run { try await $0.raw("SELECT \(unsafeRaw: Self.textColumns) FROM texts WHERE id = \(bind: id)").first() }
            .map(Self.storedText)
    }

    /// Texts matching `q`, oldest first (or newest, as `q` says).
    public func texts(_ q: TextQuery) async throws -> [StoredText] {
        var sql = SQLQueryString("SELECT \(unsafeRaw: Self.textColumns) FROM texts WHERE 1 = 1")
        if let a = q.accountID { sql.appendLiteral(" AND account_id = "); sql.appendInterpolation(bind: a) }
        if let i = q.iccid { sql.appendLiteral(" AND iccid = "); sql.appendInterpolation(bind: i) }
        if let d = q.direction { sql.appendLiteral(" AND direction = "); sql.appendInterpolation(bind: d.rawValue) }
        if let s = q.state { sql.appendLiteral(" AND state = "); sql.appendInterpolation(bind: s.rawValue) }
        if let f = q.from { sql.appendLiteral(" AND received_at >= "); sql.appendInterpolation(bind: f) }
        if let t = q.to { sql.appendLiteral(" AND received_at < "); sql.appendInterpolation(bind: t) }
        sql.appendLiteral(" ORDER BY seq\(q.newestFirst ? " DESC" : "") LIMIT \(max(1, min(q.limit, 1000)))")
        let query = sql
        return try await run { try await $0.raw(query).all() }.map(Self.storedText)
    }

    /// Queued texts whose next attempt is due, at most one per SIM: the
    /// oldest, so each SIM's texts are delivered in order.
    public func dueTexts(_ direction: StoredText.Direction, now: Double, limit: Int = 100) async throws -> [StoredText] {
        try await run { db in
            try await db.raw("""
                SELECT \(unsafeRaw: Self.textColumns) FROM texts t WHERE t.state = 'queued' AND t.direction = \(bind: direction.rawValue)
                    AND t.seq = (SELECT MIN(o.seq) FROM texts o WHERE o.iccid = t.iccid AND o.direction = t.direction AND o.state = 'queued')
                    AND t.next_attempt_at <= \(bind: now)
                ORDER BY t.seq LIMIT \(bind: limit)
                """).all()
        }.map(Self.storedText)
    }

    /// Takes a due text for one delivery attempt: moves its next attempt to
    /// `until`, only if it is still due, so two nodes never both send it.
    public func claimText(id: String, now: Double, until: Double) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE texts SET next_attempt_at = \(bind: until)
                WHERE id = \(bind: id) AND state = 'queued' AND next_attempt_at <= \(bind: now) RETURNING id
                """).first() != nil
        }
    }

    /// The text reached its destination; `charge` (its CDR) is written with it.
    /// Its body is erased: a text is kept until delivered, not after (texts
    /// carry one-time codes and private words; the CDR and state remain).
    public func markTextDelivered(id: String, at: Double, attempts: Int, sipCode: Int? = nil, charge: CDR? = nil) async throws {
        try await transaction { db in
            try await db.raw("""
                UPDATE texts SET state = 'delivered', delivered_at = \(bind: at), attempts = \(bind: attempts), last_error = NULL,
                    sip_code = \(bind: sipCode), body = ''
                WHERE id = \(bind: id)
                """).run()
            if let charge { _ = try await Self.insertCDR(charge, in: db) }
        }
    }

    /// A failed attempt: try again at `nextAttemptAt`, or give up (nil), then
    /// writing `charge` (the failed text's CDR) with it and erasing the body.
    public func markTextAttemptFailed(id: String, attempts: Int, error: String, nextAttemptAt: Double?, sipCode: Int? = nil,
                                      charge: CDR? = nil) async throws {
        try await transaction { db in
            if let next = nextAttemptAt {
                try await db.raw("""
                    UPDATE texts SET attempts = \(bind: attempts), last_error = \(bind: error), next_attempt_at = \(bind: next),
                        sip_code = \(bind: sipCode)
                    WHERE id = \(bind: id)
                    """).run()
            } else {
                try await db.raw("""
                    UPDATE texts SET state = 'failed', attempts = \(bind: attempts), last_error = \(bind: error), sip_code = \(bind: sipCode),
                        body = ''
                    WHERE id = \(bind: id)
                    """).run()
                if let charge { _ = try await Self.insertCDR(charge, in: db) }
            }
        }
    }

    /// The account's webhook signing secret (S11), made on first use.
    public func webhookSecret(account: String) async throws -> String {
        if let s = try await existingWebhookSecret(account) { return s }
        var rng = SystemRandomNumberGenerator()
        let fresh = "whsec_" + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        try await run { db in
            try await db.raw("""
                INSERT INTO account_secrets (account_id, webhook_secret) VALUES (\(bind: account), \(bind: fresh))
                ON CONFLICT (account_id) DO NOTHING
                """).run()
        }
        // Another node may have made one first: theirs stands.
        guard let s = try await existingWebhookSecret(account) else { throw StoreError.invalid(field: "account", reason: "no account \(account)") }
        return s
    }

    func existingWebhookSecret(_ account: String) async throws -> String? {
        try await run { try await $0.raw("SELECT webhook_secret FROM account_secrets WHERE account_id = \(bind: account)").first() }
            .map { try $0.decode(column: "webhook_secret", as: String.self) }
    }

    static func storedText(_ row: any SQLRow) throws -> StoredText {
        StoredText(
            id: try row.decode(column: "id", as: String.self),
            direction: StoredText.Direction(rawValue: try row.decode(column: "direction", as: String.self)) ?? .fromHandset,
            iccid: try row.decode(column: "iccid", as: String.self),
            accountID: try row.decode(column: "account_id", as: String.self),
            peer: try row.decode(column: "peer", as: String.self),
            body: try row.decode(column: "body", as: String.self),
            segments: try row.decode(column: "segments", as: Int.self),
            receivedAt: try row.decode(column: "received_at", as: Double.self),
            state: StoredText.State(rawValue: try row.decode(column: "state", as: String.self)) ?? .queued,
            attempts: try row.decode(column: "attempts", as: Int.self),
            nextAttemptAt: try row.decode(column: "next_attempt_at", as: Double?.self),
            lastError: try row.decode(column: "last_error", as: String?.self),
            deliveredAt: try row.decode(column: "delivered_at", as: Double?.self),
            sipCode: try row.decode(column: "sip_code", as: Int?.self))
    }
}
