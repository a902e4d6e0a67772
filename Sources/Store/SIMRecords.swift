import Foundation
import Rating
import SIMs
import SQLKit

/// What a create-or-update did.
public enum UpsertOutcome: String, Sendable, Equatable {
    case created, updated, unchanged
}

/// Where a handset's texts go (S11, S12).
public enum SIMTextsOut: String, Sendable, Equatable, CaseIterable {
    /// POSTed to the SIM's webhook_url (S11).
    case webhook
    /// Sent on to the number dialled, through a carrier gateway, as from the
    /// SIM's linked number (S12).
    case linkedNumber = "linked_number"
}

/// A SIP2SIM SIM's settings (SPEC.md S1): where its outbound registration
/// goes and with which credentials, where its texts go, and what its calls cost.
public struct SIMRecord: Sendable, Equatable {
    public var iccid: ICCID
    public var accountID: String
    /// The customer's SIP server (a domain resolved per RFC 3263, or host:port).
    public var sipHostname: String
    public var username: String
    /// The password in `SIMPasswordCipher`'s stored form; never the plaintext.
    public var passwordCiphertext: String
    /// Where texts from the handset are POSTed (S11).
    public var webhookURL: String?
    /// The customer's number linked to the SIM (S12), digits in international form.
    public var linkedNumber: String?
    /// The network name shown on the handset.
    public var operatorName: String?
    /// Per-minute call rate (S13); nil means the account's rate deck applies.
    public var callRate: Money?
    /// Charge per text segment, each direction (S13); nil means texts are free.
    public var textRate: Money?
    /// Where the handset's texts go.
    public var textsOut: SIMTextsOut
    /// When the settings last changed; set by the store.
    public var updatedAt: Date

    public init(iccid: ICCID, accountID: String, sipHostname: String, username: String, passwordCiphertext: String,
                webhookURL: String? = nil, linkedNumber: String? = nil, operatorName: String? = nil, callRate: Money? = nil,
                textRate: Money? = nil, textsOut: SIMTextsOut = .webhook, updatedAt: Date = Date(timeIntervalSince1970: 0)) {
        self.iccid = iccid; self.accountID = accountID; self.sipHostname = sipHostname; self.username = username
        self.passwordCiphertext = passwordCiphertext; self.webhookURL = webhookURL; self.linkedNumber = linkedNumber
        self.operatorName = operatorName; self.callRate = callRate; self.textRate = textRate; self.textsOut = textsOut
        self.updatedAt = updatedAt
    }

    /// Equal in everything but `updatedAt` (money compared as the store keeps it, in millionths).
    public func hasSameSettings(as other: SIMRecord) -> Bool {
        iccid == other.iccid && accountID == other.accountID && sipHostname == other.sipHostname && username == other.username
            && passwordCiphertext == other.passwordCiphertext && webhookURL == other.webhookURL && linkedNumber == other.linkedNumber
            && operatorName == other.operatorName && callRate.map(MoneyColumn.micros) == other.callRate.map(MoneyColumn.micros)
            && textRate.map(MoneyColumn.micros) == other.textRate.map(MoneyColumn.micros) && textsOut == other.textsOut
    }
}

/// The state of a SIM's outbound registration from one node (S2).
public enum SIMRegistrationState: String, Sendable, Equatable, CaseIterable {
    case registered, failing, pending, unregistered
}

/// One node's registration of one SIM, as the registration agent reports it.
public struct SIMRegistrationStatus: Sendable, Equatable {
    public var iccid: ICCID
    /// The node registering (its `node.name`).
    public var node: String
    public var state: SIMRegistrationState
    /// The registrar's last final response code, e.g. 200 or 403.
    public var lastCode: Int?
    /// Its reason phrase, or what went wrong (DNS, timeout…).
    public var lastReason: String?
    /// When the current registration expires.
    public var registeredUntil: Date?
    /// When the next REGISTER (refresh or retry after back-off) is due.
    public var nextAttempt: Date?
    public var updatedAt: Date

    public init(iccid: ICCID, node: String, state: SIMRegistrationState, lastCode: Int? = nil, lastReason: String? = nil,
                registeredUntil: Date? = nil, nextAttempt: Date? = nil, updatedAt: Date = Date()) {
        self.iccid = iccid; self.node = node; self.state = state; self.lastCode = lastCode; self.lastReason = lastReason
        self.registeredUntil = registeredUntil; self.nextAttempt = nextAttempt; self.updatedAt = updatedAt
    }
}

extension Store {
    // MARK: SIMs

    static let simColumns = """
        iccid, account_id, sip_hostname, username, password_ciphertext, webhook_url, linked_number, operator_name, \
        call_rate_micros, text_rate_micros, texts_out, updated_at
        """

    /// Creates or updates a SIM's settings. Nothing is written when they are
    /// unchanged (so `updatedAt` moves only on a change); otherwise `updatedAt`
    /// becomes `now`. The account must exist: an unknown one is
    /// `StoreError.invalid(field: "account", …)`. The password must be in
    /// `SIMPasswordCipher`'s stored form (`StoreError.invalid(field: "password", …)`
    /// otherwise): a plaintext password is never written.
    ///
    /// With `ownedBy`, an existing SIM is changed only if it belongs to that
    /// account (`StoreError.forbidden(field: "iccid", …)` otherwise), checked in
    /// the same transaction as the write: an account's API key can never take
    /// over another account's SIM, even one created a moment before.
    @discardableResult
    public func upsertSIM(_ sim: SIMRecord, now: Date = Date(), ownedBy: String? = nil) async throws -> UpsertOutcome {
        try Self.validate(sim)
        // A concurrent create of the same ICCID (PostgreSQL) makes our insert
        // do nothing; the next round sees that row and updates it.
        for _ in 0..<3 {
            if let outcome = try await transaction({ db in try await self.upsertSIM(sim, now: now, ownedBy: ownedBy, in: db) }) {
                return outcome
            }
        }
        throw StoreError.invalid(field: "iccid", reason: "SIM \(sim.iccid) is being changed concurrently; try again")
    }

    private func upsertSIM(_ sim: SIMRecord, now: Date, ownedBy: String?, in db: any SQLDatabase) async throws -> UpsertOutcome? {
        guard try await db.raw("SELECT id FROM accounts WHERE id = \(bind: sim.accountID)").first() != nil else {
            throw StoreError.invalid(field: "account", reason: "account '\(sim.accountID.prefix(64))' does not exist")
        }
        let lock = backend == .postgres ? " FOR UPDATE" : ""
        let existing = try await db.raw("SELECT \(unsafeRaw: Self.simColumns) FROM sims WHERE iccid = \(bind: sim.iccid.digits)\(unsafeRaw: lock)")
            .first().map(Self.simRecord)
        let rate = sim.callRate.map(MoneyColumn.micros)
        let textRate = sim.textRate.map(MoneyColumn.micros)
        let time = now.timeIntervalSince1970
        if let existing {
            if let ownedBy, existing.accountID != ownedBy {
                throw StoreError.forbidden(field: "iccid", reason: "SIM \(sim.iccid) belongs to another account")
            }
            if existing.hasSameSettings(as: sim) { return .unchanged }
            try await db.raw("""
                UPDATE sims SET account_id = \(bind: sim.accountID), sip_hostname = \(bind: sim.sipHostname), username = \(bind: sim.username),
                    password_ciphertext = \(bind: sim.passwordCiphertext), webhook_url = \(bind: sim.webhookURL),
                    linked_number = \(bind: sim.linkedNumber), operator_name = \(bind: sim.operatorName), call_rate_micros = \(bind: rate),
                    text_rate_micros = \(bind: textRate), texts_out = \(bind: sim.textsOut.rawValue), updated_at = \(bind: time)
                WHERE iccid = \(bind: sim.iccid.digits)
                """).run()
            return .updated
        }
        let inserted = try await db.raw("""
            INSERT INTO sims (\(unsafeRaw: Self.simColumns))
            VALUES (\(bind: sim.iccid.digits), \(bind: sim.accountID), \(bind: sim.sipHostname), \(bind: sim.username),
                    \(bind: sim.passwordCiphertext), \(bind: sim.webhookURL), \(bind: sim.linkedNumber), \(bind: sim.operatorName),
                    \(bind: rate), \(bind: textRate), \(bind: sim.textsOut.rawValue), \(bind: time))
            ON CONFLICT (iccid) DO NOTHING RETURNING iccid
            """).first()
        return inserted == nil ? nil : .created
    }

    static func validate(_ sim: SIMRecord) throws {
        for (field, value) in [("sip_hostname", sim.sipHostname), ("username", sim.username)] where value.isEmpty {
            throw StoreError.invalid(field: field, reason: "must not be empty")
        }
        guard SIMPasswordCipher.isStoredForm(sim.passwordCiphertext) else {
            throw StoreError.invalid(field: "password", reason: "must be stored encrypted (SIMPasswordCipher), never as plaintext")
        }
        if sim.textsOut == .linkedNumber, (sim.linkedNumber ?? "").isEmpty {
            throw StoreError.invalid(field: "texts_out", reason: "'linked_number' needs the SIM's linked_number")
        }
        for (field, value) in [("call_rate", sim.callRate), ("text_rate", sim.textRate)] {
            guard let rate = value else { continue }
            guard rate >= 0 else { throw StoreError.invalid(field: field, reason: "must not be negative") }
            guard MoneyColumn.money(MoneyColumn.micros(rate)) == rate else {
                throw StoreError.invalid(field: field, reason: "has more than 6 decimal places")
            }
        }
    }

    public func sim(iccid: ICCID) async throws -> SIMRecord? {
        try await run { try await $0.raw("SELECT \(unsafeRaw: Self.simColumns) FROM sims WHERE iccid = \(bind: iccid.digits)").first() }
            .map(Self.simRecord)
    }

    /// The SIM a customer's number is linked to (S12), digits in international
    /// form; the first by ICCID if (wrongly) several share it.
    public func sim(linkedNumber: String) async throws -> SIMRecord? {
        try await run { try await $0.raw("""
            SELECT \(unsafeRaw: Self.simColumns) FROM sims WHERE linked_number = \(bind: linkedNumber) ORDER BY iccid LIMIT 1
            """).first() }.map(Self.simRecord)
    }

    /// Every SIM, by ICCID, in one query (the registration agent reloads them all every minute).
    public func sims() async throws -> [SIMRecord] {
        try await run { try await $0.raw("SELECT \(unsafeRaw: Self.simColumns) FROM sims ORDER BY iccid").all() }.map(Self.simRecord)
    }

    /// One account's SIMs, by ICCID.
    public func sims(account: String) async throws -> [SIMRecord] {
        try await run { try await $0.raw("""
            SELECT \(unsafeRaw: Self.simColumns) FROM sims WHERE account_id = \(bind: account) ORDER BY iccid
            """).all() }.map(Self.simRecord)
    }

    /// Deletes a SIM and its registration status rows; whether it existed.
    /// With `account`, only if the SIM belongs to that account.
    @discardableResult
    public func deleteSIM(iccid: ICCID, account: String? = nil) async throws -> Bool {
        try await transaction { db in
            var delete = SQLQueryString("DELETE FROM sims WHERE iccid = ")
            delete.appendInterpolation(bind: iccid.digits)
            if let account { delete.appendLiteral(" AND account_id = "); delete.appendInterpolation(bind: account) }
            delete.appendLiteral(" RETURNING iccid")
            guard try await db.raw(delete).first() != nil else { return false }
            // The foreign key cascades; said here too, so that it never depends on it.
            try await db.raw("DELETE FROM sim_registrations WHERE iccid = \(bind: iccid.digits)").run()
            return true
        }
    }

    static func simRecord(_ row: any SQLRow) throws -> SIMRecord {
        let rate = try row.decode(column: "call_rate_micros", as: Int64?.self)
        return SIMRecord(
            iccid: try ICCID(try row.decode(column: "iccid", as: String.self)),
            accountID: try row.decode(column: "account_id", as: String.self),
            sipHostname: try row.decode(column: "sip_hostname", as: String.self),
            username: try row.decode(column: "username", as: String.self),
            passwordCiphertext: try row.decode(column: "password_ciphertext", as: String.self),
            webhookURL: try row.decode(column: "webhook_url", as: String?.self),
            linkedNumber: try row.decode(column: "linked_number", as: String?.self),
            operatorName: try row.decode(column: "operator_name", as: String?.self),
            callRate: rate.map(MoneyColumn.money),
            textRate: try row.decode(column: "text_rate_micros", as: Int64?.self).map(MoneyColumn.money),
            textsOut: SIMTextsOut(rawValue: try row.decode(column: "texts_out", as: String.self)) ?? .webhook,
            updatedAt: Date(timeIntervalSince1970: try row.decode(column: "updated_at", as: Double.self)))
    }

    // MARK: SIM registration status

    /// Records one node's registration status of a SIM (replacing that node's
    /// previous one). Returns false, recording nothing, when the SIM no longer
    /// exists (it was deleted while its registration was being ended).
    @discardableResult
    public func recordRegistrationStatus(_ status: SIMRegistrationStatus) async throws -> Bool {
        guard !status.node.isEmpty else { throw StoreError.invalid(field: "node", reason: "must not be empty") }
        if let code = status.lastCode, !(100...699).contains(code) {
            throw StoreError.invalid(field: "last_code", reason: "\(code) is not a SIP status code (100…699)")
        }
        // Keeps the SIM row from being deleted until this commits (PostgreSQL;
        // SQLite runs one transaction at a time).
        let lock = backend == .postgres ? " FOR KEY SHARE" : ""
        return try await transaction { db in
            guard try await db.raw("SELECT iccid FROM sims WHERE iccid = \(bind: status.iccid.digits)\(unsafeRaw: lock)").first() != nil else {
                return false
            }
            try await db.raw("""
                INSERT INTO sim_registrations (iccid, node, state, last_code, last_reason, registered_until, next_attempt, updated_at)
                VALUES (\(bind: status.iccid.digits), \(bind: status.node), \(bind: status.state.rawValue), \(bind: status.lastCode),
                        \(bind: status.lastReason), \(bind: status.registeredUntil?.timeIntervalSince1970),
                        \(bind: status.nextAttempt?.timeIntervalSince1970), \(bind: status.updatedAt.timeIntervalSince1970))
                ON CONFLICT (iccid, node) DO UPDATE SET state = excluded.state, last_code = excluded.last_code,
                    last_reason = excluded.last_reason, registered_until = excluded.registered_until,
                    next_attempt = excluded.next_attempt, updated_at = excluded.updated_at
                """).run()
            return true
        }
    }

    /// A SIM's registration status on every node that reported one, by node.
    public func registrationStatuses(iccid: ICCID) async throws -> [SIMRegistrationStatus] {
        try await run { try await $0.raw("""
            SELECT iccid, node, state, last_code, last_reason, registered_until, next_attempt, updated_at
            FROM sim_registrations WHERE iccid = \(bind: iccid.digits) ORDER BY node
            """).all() }.map { row in
            let state = try row.decode(column: "state", as: String.self)
            return SIMRegistrationStatus(
                iccid: try ICCID(try row.decode(column: "iccid", as: String.self)),
                node: try row.decode(column: "node", as: String.self),
                state: SIMRegistrationState(rawValue: state) ?? .unregistered,
                lastCode: try row.decode(column: "last_code", as: Int?.self),
                lastReason: try row.decode(column: "last_reason", as: String?.self),
                registeredUntil: try row.decode(column: "registered_until", as: Double?.self).map(Date.init(timeIntervalSince1970:)),
                nextAttempt: try row.decode(column: "next_attempt", as: Double?.self).map(Date.init(timeIntervalSince1970:)),
                updatedAt: Date(timeIntervalSince1970: try row.decode(column: "updated_at", as: Double.self)))
        }
    }
}
