import CallControl
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresKit
import Rating
import SQLKit
import SQLiteKit

/// Where the data lives: an embedded SQLite file (the default, created on
/// first start) or a PostgreSQL database shared by a cluster of nodes.
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    public var description: String {
        switch self {
        case .sqlite(let path): return "SQLite file \(path)"
        case .postgres(let url):
            // Never log the password.
            guard var c = URLComponents(string: url) else { return "PostgreSQL" }
            if c.password != nil { c.password = "***" }
            return "PostgreSQL \(c.string ?? "")"
        }
    }
}

public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(String, String)
    case notFound(String)
    case invalid(field: String, reason: String)
    /// The object belongs to another account than the one the change was limited to.
    case forbidden(field: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let location, let why): return "cannot open \(location): \(why)"
        case .notFound(let what): return "\(what) not found"
        case .invalid(let field, let reason): return "\(field): \(reason)"
        case .forbidden(let field, let reason): return "\(field): \(reason)"
        }
    }
}

/// Money in the store: whole millionths (micros) in a BIGINT, so that both
/// backends add and subtract it exactly and atomically.
public enum MoneyColumn {
    public static func micros(_ m: Money) -> Int64 {
        if let exact = exactMillionths(m) { return exact }  // a CDR's cost: no Decimal arithmetic
        var scaled = m * 1_000_000, rounded = Decimal()
        NSDecimalRound(&rounded, &scaled, 0, .plain)
        return NSDecimalNumber(decimal: rounded).int64Value
    }
    public static func money(_ micros: Int64) -> Money { Decimal(micros) / 1_000_000 }
}

public enum CLIPolicy: String, Sendable, Codable {
    /// T7: a call with an invalid CLI is refused with `Invalid CLI`.
    case reject
    /// T7: it completes with `X-Warning: Invalid CLI` on the response.
    case warn
}

public struct Account: Sendable, Equatable {
    public var id: String
    public var name: String
    public var currency: String
    public var balance: Money
    public var creditLimit: Money
    public var cliPolicy: CLIPolicy

    public init(id: String, name: String, currency: String, balance: Money, creditLimit: Money, cliPolicy: CLIPolicy = .reject) {
        self.id = id; self.name = name; self.currency = currency; self.balance = balance
        self.creditLimit = creditLimit; self.cliPolicy = cliPolicy
    }
}

/// An account and the settings stored beside it.
public struct AccountRecord: Sendable, Equatable {
    public var account: Account
    /// Its own rate deck; nil means the deck named "default".
    public var rateDeck: String?
    public var limits: CallLimits
}

/// A call detail record (issue 3 §8).
public struct CDR: Sendable, Equatable {
    public var id: Int64?
    public var callID: String
    public var accountID: String
    public var trunkID: String?
    public var tag: String?
    public var from: String
    public var to: String
    public var callType: String?
    public var startAt: Double
    public var answerAt: Double?
    public var endAt: Double
    public var durationSeconds: Int
    public var billedSeconds: Int
    public var cost: Money
    public var finalStatus: Int
    public var reason: String?
    /// The switch stopped while the call was live (recorded at the next start).
    public var interrupted: Bool
    /// A text's CDR (call type "text"): the segments charged (S13); nil for calls.
    public var segments: Int?

    public init(id: Int64? = nil, callID: String, accountID: String, trunkID: String? = nil, tag: String? = nil,
                from: String, to: String, callType: String? = nil, startAt: Double, answerAt: Double? = nil,
                endAt: Double, durationSeconds: Int, billedSeconds: Int, cost: Money, finalStatus: Int,
                reason: String? = nil, interrupted: Bool = false, segments: Int? = nil) {
        self.id = id; self.callID = callID; self.accountID = accountID; self.trunkID = trunkID; self.tag = tag
        self.from = from; self.to = to; self.callType = callType; self.startAt = startAt; self.answerAt = answerAt
        self.endAt = endAt; self.durationSeconds = durationSeconds; self.billedSeconds = billedSeconds; self.cost = cost
        self.finalStatus = finalStatus; self.reason = reason; self.interrupted = interrupted; self.segments = segments
    }
}

public struct CDRQuery: Sendable {
    public var accountID: String?
    public var trunkID: String?
    /// T1: one term of a tag split on single "-".
    public var tagTerm: String?
    public var startFrom: Double?
    public var startBefore: Double?
    public var limit: Int

    public init(accountID: String? = nil, trunkID: String? = nil, tagTerm: String? = nil,
                startFrom: Double? = nil, startBefore: Double? = nil, limit: Int = 1000) {
        self.accountID = accountID; self.trunkID = trunkID; self.tagTerm = tagTerm
        self.startFrom = startFrom; self.startBefore = startBefore; self.limit = limit
    }
}

/// What a limit allows (T9): live calls, or calls admitted in a window; or
/// (T10) that the account can pay the call's first billing increment.
public enum LimitKind: Sendable, Equatable {
    /// At most this many live calls.
    case channels(Int)
    /// At most X calls admitted in the last Y seconds.
    case rate(RateLimitSetting)
    /// The account's balance + credit, less what its live calls hold, must
    /// cover this amount, which the call then holds until it ends (the key's
    /// ID part is the account).
    case balance(hold: Money)
}

/// A limit counted in the store (T9): a key such as "account:920700" and
/// what it allows.
public struct StoredLimit: Sendable, Equatable {
    public var key: String
    public var kind: LimitKind
    public init(key: String, kind: LimitKind) { self.key = key; self.kind = kind }
}

/// A live call and the node it is on, as the group commit carries it.
struct LiveCallStart: Sendable {
    var call: LiveCall
    var node: String?
    /// What the call holds of its account's balance (see `LimitKind.balance`).
    var heldMicros: Int64 = 0
}

/// A call to admit against limits counted in the store, as the group commit carries it.
struct PendingAdmission: Sendable {
    var call: LiveCall
    var node: String?
    var limits: [StoredLimit]
}

/// What an account has (balance + credit) and an upper bound on what its
/// answered live calls cost so far (see `Store.answeredCallsCostBound`).
public struct SpendBound: Sendable, Equatable {
    public var available: Money
    public var costBound: Money
    public init(available: Money, costBound: Money) { self.available = available; self.costBound = costBound }
}

/// That a live call was answered, and its rate, as the group commit carries it.
struct CallAnswer: Sendable {
    var callID: String
    var answeredAt: Double
    var rate: Rate
}

/// A live call that has been answered, and what it costs: what an account's
/// calls are costed together from (T10), on one node or, as recorded in the
/// store, across the nodes of a cluster.
public struct AnsweredCall: Sendable, Equatable {
    public var callID: String
    public var accountID: String
    /// The node it is on, when read from the store.
    public var node: String?
    public var rate: Rate
    public var answeredAt: Double

    public init(callID: String, accountID: String, node: String? = nil, rate: Rate, answeredAt: Double) {
        self.callID = callID; self.accountID = accountID; self.node = node; self.rate = rate; self.answeredAt = answeredAt
    }
}

/// A call that is up now; kept so that a crash can be recorded afterwards.
public struct LiveCall: Sendable, Equatable {
    public var callID: String
    public var accountID: String
    public var trunkID: String?
    public var tag: String?
    public var from: String
    public var to: String
    public var startAt: Double
    public init(callID: String, accountID: String, trunkID: String? = nil, tag: String? = nil, from: String, to: String, startAt: Double) {
        self.callID = callID; self.accountID = accountID; self.trunkID = trunkID; self.tag = tag
        self.from = from; self.to = to; self.startAt = startAt
    }
}

/// The data layer: one API over SQLite and PostgreSQL (SQLKit).
public final class Store: Sendable {
    enum Backend: Sendable { case sqlite, postgres }

    let backend: Backend
    let database: any SQLDatabase
    let shutdownPool: @Sendable () async throws -> Void
    public let location: StoreLocation

    public static func open(_ location: StoreLocation, logger: Logger = Logger(label: "switchboard.store"),
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> Store {
        try await open(location, logger: logger, group: group, migratingTo: .max)
    }

    /// `open`, with the schema migrated no further than `target`: the upgrade
    /// tests make a database as an earlier version left it.
    static func open(_ location: StoreLocation, logger: Logger = Logger(label: "switchboard.store"),
                     group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, migratingTo target: Int) async throws -> Store {
        let store: Store
        switch location {
        case .sqlite(let path):
            // One connection, used by one operation at a time (the gate): SQLite
            // writes are serial anyway, and a transaction must not interleave.
            let connection: SQLiteConnection
            do { connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger) } catch {
                throw StoreError.cannotOpen(location.description, String(describing: error))
            }
            _ = try await connection.sql().raw("PRAGMA journal_mode=WAL").all()
            try await connection.sql().raw("PRAGMA foreign_keys=ON").run()
            // In WAL mode NORMAL syncs at checkpoints, not every commit: a
            // committed CDR survives the process being killed (kill -9), though
            // not a power cut of the machine. PostgreSQL is the store for that.
            try await connection.sql().raw("PRAGMA synchronous=NORMAL").run()
            // Another process (provision, api-key, a second node on the same file)
            // may hold the write lock for a moment: wait for it rather than fail.
            _ = try await connection.sql().raw("PRAGMA busy_timeout=5000").all()
            store = Store(backend: .sqlite, database: connection.sql(), location: location, gate: AsyncGate()) {
                try await connection.close()
            }
        case .postgres(let url):
            let configuration: SQLPostgresConfiguration
            do { configuration = try SQLPostgresConfiguration(url: url) } catch {
                throw StoreError.cannotOpen(location.description, "the URL is not a PostgreSQL URL")
            }
            // The pool locks internally; AsyncKit predates Sendable annotations.
            nonisolated(unsafe) let pool = EventLoopGroupConnectionPool(
                source: PostgresConnectionSource(sqlConfiguration: configuration), maxConnectionsPerEventLoop: 4, on: group)
            store = Store(backend: .postgres, database: pool.database(logger: logger).sql(), location: location, gate: nil) {
                try await pool.shutdownAsync()
            }
        }
        do {
            try await store.migrate(upTo: target)
        } catch {
            try? await store.close()
            throw StoreError.cannotOpen(location.description, String(describing: error))
        }
        return store
    }

    /// Serialises SQLite use; nil for PostgreSQL, whose pool gives each
    /// operation its own connection.
    let gate: AsyncGate?

    init(backend: Backend, database: any SQLDatabase, location: StoreLocation, gate: AsyncGate?,
         shutdown: @escaping @Sendable () async throws -> Void) {
        self.backend = backend; self.database = database; self.location = location; self.gate = gate; self.shutdownPool = shutdown
    }

    /// Calls' CDRs and live-call records, group-committed (see `GroupCommit`).
    /// 17 values a CDR: 256 stay well inside SQLite's 32,766 bound parameters.
    let cdrWriter = GroupCommit<CDR, Bool>(maxBatch: 256) { store, cdrs in try await store.recordCallsTogether(cdrs) }
    let liveCallWriter = GroupCommit<LiveCallStart, Bool>(maxBatch: 256) { store, calls in try await store.callsStartedTogether(calls) }
    /// Admissions on PostgreSQL (see `admitCallsFunction`); the batch is one JSON value.
    let admissionWriter = GroupCommit<PendingAdmission, Int?>(maxBatch: 256) { store, batch in try await store.admitCallsTogether(batch) }
    /// 7 values an answer: 256 stay well inside PostgreSQL's 65,535 bound parameters.
    let answerWriter = GroupCommit<CallAnswer, Bool>(maxBatch: 256) { store, answers in try await store.callsAnsweredTogether(answers) }

    /// Runs one operation on the database (one at a time on SQLite).
    func run<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        guard let gate else { return try await body(database) }
        await gate.acquire()
        do {
            let r = try await body(database)
            await gate.release()
            return r
        } catch {
            await gate.release()
            throw error
        }
    }

    public func close() async throws { try await shutdownPool() }

    // MARK: Schema

    /// Migrations in order; each runs once, in a transaction, and is recorded.
    var migrations: [(version: Int, statements: [String])] {
        let serial = backend == .postgres ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY"
        return [
            (1, [
                """
                CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL, currency TEXT NOT NULL,
                    balance_micros BIGINT NOT NULL, credit_limit_micros BIGINT NOT NULL, cli_policy TEXT NOT NULL)
                """,
                """
                CREATE TABLE cdrs (id \(serial), call_id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL REFERENCES accounts(id),
                    trunk_id TEXT, tag TEXT, from_number TEXT NOT NULL, to_number TEXT NOT NULL, call_type TEXT,
                    start_at DOUBLE PRECISION NOT NULL, answer_at DOUBLE PRECISION, end_at DOUBLE PRECISION NOT NULL,
                    duration_seconds BIGINT NOT NULL, billed_seconds BIGINT NOT NULL, cost_micros BIGINT NOT NULL,
                    final_status INTEGER NOT NULL, reason TEXT, interrupted INTEGER NOT NULL)
                """,
                "CREATE INDEX cdrs_account_start ON cdrs (account_id, start_at)",
                "CREATE TABLE cdr_tag_terms (term TEXT NOT NULL, cdr_id BIGINT NOT NULL REFERENCES cdrs(id), PRIMARY KEY (term, cdr_id))",
                """
                CREATE TABLE live_calls (call_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, trunk_id TEXT, tag TEXT,
                    from_number TEXT NOT NULL, to_number TEXT NOT NULL, start_at DOUBLE PRECISION NOT NULL)
                """,
            ]),
            (2, [
                "CREATE TABLE rate_decks (name TEXT PRIMARY KEY, currency TEXT NOT NULL)",
                """
                CREATE TABLE rates (deck TEXT NOT NULL REFERENCES rate_decks(name), prefix TEXT NOT NULL, destination TEXT NOT NULL,
                    connection_micros BIGINT NOT NULL, per_minute_micros BIGINT NOT NULL,
                    increment_first INTEGER NOT NULL, increment_next INTEGER NOT NULL, PRIMARY KEY (deck, prefix))
                """,
                "ALTER TABLE accounts ADD COLUMN rate_deck TEXT",
            ]),
            (3, [
                "ALTER TABLE accounts ADD COLUMN limits TEXT",
                """
                CREATE TABLE trunks (id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
                    source_addresses TEXT NOT NULL, username TEXT UNIQUE, realm TEXT, ha1_md5 TEXT, ha1_sha256 TEXT, limits TEXT)
                """,
                "CREATE TABLE blacklist (scope TEXT NOT NULL, prefix TEXT NOT NULL, PRIMARY KEY (scope, prefix))",
                """
                CREATE TABLE api_keys (id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, account_id TEXT REFERENCES accounts(id),
                    label TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)
                """,
            ]),
            // SIP2SIM (S1, S2): a SIM's settings, its password only in the
            // cipher's stored form; registration status per SIM and node.
            // Times are Unix seconds, as elsewhere in the schema.
            (4, [
                """
                CREATE TABLE sims (iccid TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
                    sip_hostname TEXT NOT NULL, username TEXT NOT NULL, password_ciphertext TEXT NOT NULL,
                    webhook_url TEXT, linked_number TEXT, operator_name TEXT, call_rate_micros BIGINT,
                    updated_at DOUBLE PRECISION NOT NULL)
                """,
                "CREATE INDEX sims_account ON sims (account_id, iccid)",
                """
                CREATE TABLE sim_registrations (iccid TEXT NOT NULL REFERENCES sims(iccid) ON DELETE CASCADE, node TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('registered', 'failing', 'pending', 'unregistered')),
                    last_code INTEGER, last_reason TEXT, registered_until DOUBLE PRECISION, next_attempt DOUBLE PRECISION,
                    updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (iccid, node))
                """,
            ]),
            // S9: which node registers a SIM, and where a drain is moving it.
            (5, [
                """
                CREATE TABLE sim_placements (iccid TEXT PRIMARY KEY REFERENCES sims(iccid) ON DELETE CASCADE,
                    home TEXT, moving_to TEXT)
                """,
            ]),
            // Texts (S10, S11): the outbox, kept until delivered; `seq` orders
            // each SIM's texts; `dedupe_key` makes a re-sent MESSAGE one text.
            (6, [
                """
                CREATE TABLE texts (seq \(serial), id TEXT NOT NULL UNIQUE, direction TEXT NOT NULL, iccid TEXT NOT NULL,
                    account_id TEXT NOT NULL, peer TEXT NOT NULL, body TEXT NOT NULL, segments INTEGER NOT NULL,
                    received_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'failed')),
                    attempts INTEGER NOT NULL, next_attempt_at DOUBLE PRECISION, last_error TEXT, delivered_at DOUBLE PRECISION,
                    dedupe_key TEXT NOT NULL UNIQUE)
                """,
                "CREATE INDEX texts_due ON texts (state, direction, next_attempt_at)",
                "CREATE INDEX texts_sim ON texts (iccid, direction, state, seq)",
                "CREATE TABLE account_secrets (account_id TEXT PRIMARY KEY REFERENCES accounts(id), webhook_secret TEXT NOT NULL)",
            ]),
            // Texts to handsets (S10), linked numbers (S12) and text charges
            // (S13): a SIM's per-segment text rate and where its texts go, the
            // segments a text CDR charged, and the far end's final SIP code.
            (7, [
                "ALTER TABLE sims ADD COLUMN text_rate_micros BIGINT",
                "ALTER TABLE sims ADD COLUMN texts_out TEXT NOT NULL DEFAULT 'webhook'",
                "ALTER TABLE cdrs ADD COLUMN segments INTEGER",
                "ALTER TABLE texts ADD COLUMN sip_code INTEGER",
                // Texts to the customer's number find its SIM (S12).
                "CREATE INDEX sims_linked_number ON sims (linked_number)",
            ]),
            // Limits counted in the store (T9, correct across a cluster): the
            // channels each live call holds, the admissions still inside a rate
            // window, and which node a live call is on (so that a node's restart
            // records only its own calls as interrupted).
            (8, [
                "ALTER TABLE live_calls ADD COLUMN node TEXT",
                "CREATE TABLE limit_holds (call_id TEXT NOT NULL, limit_key TEXT NOT NULL, PRIMARY KEY (call_id, limit_key))",
                "CREATE INDEX limit_holds_key ON limit_holds (limit_key)",
                "CREATE TABLE limit_admissions (limit_key TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
                "CREATE INDEX limit_admissions_key ON limit_admissions (limit_key, expires_at)",
            ]),
            // Nodes of a cluster and when each was last seen (see `reclaimSilentNodes`).
            (9, ["CREATE TABLE nodes (name TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL)"]),
            // When a live call was answered and its rate (as the rates table
            // keeps rates), for costing an account's calls across nodes.
            (10, ["answered_at DOUBLE PRECISION", "rate_prefix TEXT", "rate_connection_micros BIGINT", "rate_per_minute_micros BIGINT",
                  "rate_increment_first INTEGER", "rate_increment_next INTEGER"].map { "ALTER TABLE live_calls ADD COLUMN \($0)" }),
            // What each live call holds of its account's balance (its first
            // billing increment), counted by every node at admission.
            (11, ["ALTER TABLE live_calls ADD COLUMN held_micros BIGINT NOT NULL DEFAULT 0"]),
            // The sweep's queries read an account's answered live calls (and the
            // SQLite admission sums what they hold): by account, not over every
            // live call of the cluster. On PostgreSQL, the limit counters and the
            // admission and CDR functions (PostgresFunctions.swift); SQLite runs
            // the same steps from Swift, in process.
            (12, ["CREATE INDEX live_calls_account ON live_calls (account_id)"]
                + (backend == .postgres ? Self.limitCountersMigration + [Self.admitCallsFunction, Self.recordCDRsFunction] : [])),
        ]
    }

    public func schemaVersion() async throws -> Int {
        let row = try await run { try await $0.raw("SELECT MAX(version) AS v FROM schema_migrations").first() }
        return try row?.decode(column: "v", as: Int?.self) ?? 0
    }

    func migrate(upTo target: Int = Int.max) async throws {
        try await run { try await $0.raw("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)").run() }
        let current = try await schemaVersion()
        for m in migrations where m.version > current && m.version <= target {
            let statements = m.statements
            let version = m.version
            try await transaction { db in
                for s in statements { try await db.raw(SQLQueryString(s)).run() }
                try await db.raw("INSERT INTO schema_migrations (version, applied_at) VALUES (\(bind: version), \(bind: Date().timeIntervalSince1970))").run()
            }
        }
    }

    /// Runs `body` on one connection inside BEGIN … COMMIT (ROLLBACK on error).
    func transaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await run { database in try await self.inSession(database, body) }
    }

    private func inSession<R: Sendable>(_ database: any SQLDatabase, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await database.withSession { db in
            try await db.raw(self.backend == .sqlite ? "BEGIN IMMEDIATE" : "BEGIN").run()
            do {
                let r = try await body(db)
                try await db.raw("COMMIT").run()
                return r
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    // MARK: Accounts

    /// Creates or updates an account (idempotent provisioning). The balance is
    /// set only when the account is created; later it moves by calls and top-ups.
    public func upsertAccount(_ a: Account) async throws {
        guard !a.id.isEmpty else { throw StoreError.invalid(field: "id", reason: "must not be empty") }
        guard a.currency.count == 3 else { throw StoreError.invalid(field: "currency", reason: "must be a 3-letter code such as GBP") }
        try await run { database in try await database.raw("""
            INSERT INTO accounts (id, name, currency, balance_micros, credit_limit_micros, cli_policy)
            VALUES (\(bind: a.id), \(bind: a.name), \(bind: a.currency), \(bind: MoneyColumn.micros(a.balance)),
                    \(bind: MoneyColumn.micros(a.creditLimit)), \(bind: a.cliPolicy.rawValue))
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, currency = excluded.currency,
                credit_limit_micros = excluded.credit_limit_micros, cli_policy = excluded.cli_policy
            """).run() }
    }

    public func account(id: String) async throws -> Account? {
        try await accountRecord(id: id)?.account
    }

    /// An account with its rate deck and limits, in one query.
    public func accountRecord(id: String) async throws -> AccountRecord? {
        try await accountRecords(id: id).first
    }

    /// Every account with its rate deck and limits, in one query (for the
    /// call path's periodic reload and the API's list).
    public func accountRecords() async throws -> [AccountRecord] {
        try await accountRecords(id: nil)
    }

    func accountRecords(id: String?) async throws -> [AccountRecord] {
        var sql = SQLQueryString("SELECT id, name, currency, balance_micros, credit_limit_micros, cli_policy, rate_deck, limits FROM accounts")
        if let id { sql.appendLiteral(" WHERE id = "); sql.appendInterpolation(bind: id) }
        sql.appendLiteral(" ORDER BY id")
        let query = sql
        return try await run { try await $0.raw(query).all() }.map { row in
            AccountRecord(
                account: Account(
                    id: try row.decode(column: "id", as: String.self), name: try row.decode(column: "name", as: String.self),
                    currency: try row.decode(column: "currency", as: String.self),
                    balance: MoneyColumn.money(try row.decode(column: "balance_micros", as: Int64.self)),
                    creditLimit: MoneyColumn.money(try row.decode(column: "credit_limit_micros", as: Int64.self)),
                    cliPolicy: CLIPolicy(rawValue: try row.decode(column: "cli_policy", as: String.self)) ?? .reject),
                rateDeck: try row.decode(column: "rate_deck", as: String?.self),
                limits: CallLimits.decode(try row.decode(column: "limits", as: String?.self)))
        }
    }

    /// Adds to (or, negative, takes from) a balance atomically; returns the new balance.
    public func adjustBalance(accountID: String, by amount: Money) async throws -> Money {
        guard let row = try await run({ database in try await database.raw("""
            UPDATE accounts SET balance_micros = balance_micros + \(bind: MoneyColumn.micros(amount))
            WHERE id = \(bind: accountID) RETURNING balance_micros
            """).first() }) else { throw StoreError.notFound("account \(accountID)") }
        return MoneyColumn.money(try row.decode(column: "balance_micros", as: Int64.self))
    }

    // MARK: Rate decks

    /// Replaces a rate deck's rates with `deck`'s, in one transaction, and
    /// reports what changed (provisioning is idempotent: the same deck twice
    /// changes nothing).
    @discardableResult
    public func putRateDeck(_ deck: RateDeck) async throws -> (added: Int, updated: Int, removed: Int) {
        let existing = try await rateDeck(named: deck.name)
        let old = Dictionary(uniqueKeysWithValues: (existing?.rates ?? []).map { ($0.prefix, $0) })
        let new = Dictionary(uniqueKeysWithValues: deck.rates.map { ($0.prefix, $0) })
        let added = new.keys.filter { old[$0] == nil }.count
        let updated = new.filter { old[$0.key] != nil && old[$0.key] != $0.value }.count
        let removed = old.keys.filter { new[$0] == nil }.count
        let rates = deck.rates
        try await transaction { db in
            try await db.raw("""
                INSERT INTO rate_decks (name, currency) VALUES (\(bind: deck.name), \(bind: deck.currency))
                ON CONFLICT (name) DO UPDATE SET currency = excluded.currency
                """).run()
            try await db.raw("DELETE FROM rates WHERE deck = \(bind: deck.name)").run()
            for r in rates {
                try await db.raw("""
                    INSERT INTO rates (deck, prefix, destination, connection_micros, per_minute_micros, increment_first, increment_next)
                    VALUES (\(bind: deck.name), \(bind: r.prefix), \(bind: r.destination), \(bind: MoneyColumn.micros(r.connectionCharge)),
                            \(bind: MoneyColumn.micros(r.perMinute)), \(bind: r.increments.first), \(bind: r.increments.next))
                    """).run()
            }
        }
        return (added, updated, removed)
    }

    public func rateDeck(named name: String) async throws -> RateDeck? {
        guard let head = try await run({ try await $0.raw("SELECT currency FROM rate_decks WHERE name = \(bind: name)").first() }) else {
            return nil
        }
        let rows = try await run { try await $0.raw("""
            SELECT prefix, destination, connection_micros, per_minute_micros, increment_first, increment_next
            FROM rates WHERE deck = \(bind: name) ORDER BY prefix
            """).all() }
        return try RateDeck(name: name, currency: try head.decode(column: "currency", as: String.self), rates: rows.map(Self.rate(from:)))
    }

    /// A rate from a row with the rates table's columns.
    static func rate(from row: any SQLRow) throws -> Rate {
        try Rate(prefix: try row.decode(column: "prefix", as: String.self),
                 destination: try row.decode(column: "destination", as: String.self),
                 connectionCharge: MoneyColumn.money(try row.decode(column: "connection_micros", as: Int64.self)),
                 perMinute: MoneyColumn.money(try row.decode(column: "per_minute_micros", as: Int64.self)),
                 increments: BillingIncrements(first: Int(try row.decode(column: "increment_first", as: Int64.self)),
                                               next: Int(try row.decode(column: "increment_next", as: Int64.self))))
    }

    /// The account's rate deck, else the one named "default" (T11).
    public func rateDeck(forAccount id: String) async throws -> RateDeck? {
        let row = try await run { try await $0.raw("SELECT rate_deck FROM accounts WHERE id = \(bind: id)").first() }
        if let name = try row?.decode(column: "rate_deck", as: String?.self), let deck = try await rateDeck(named: name) { return deck }
        return try await rateDeck(named: "default")
    }

    public func setRateDeck(accountID: String, deck: String?) async throws {
        try await run { try await $0.raw("UPDATE accounts SET rate_deck = \(bind: deck) WHERE id = \(bind: accountID)").run() }
    }

    // MARK: Calls and CDRs

    /// Whether limits are counted here rather than in each node's memory:
    /// PostgreSQL is the store a cluster shares; an SQLite file has one node.
    public var countsLimits: Bool { backend == .postgres }

    /// Records a call as live on `node` (before anything is sent on), with no
    /// limits to count: group-committed with other calls starting at the same time.
    public func callStarted(_ call: LiveCall, node: String? = nil) async throws {
        _ = try await liveCallWriter.submit(LiveCallStart(call: call, node: node), to: self)
    }

    /// Several calls' live records in one statement.
    func callsStartedTogether(_ starts: [LiveCallStart]) async throws -> [Bool] {
        try await run { db in try await Self.insertLiveCalls(starts, in: db) }
        return starts.map { _ in true }
    }

    /// Live-call rows (a multi-row insert); a call already live stays as it is.
    static func insertLiveCalls(_ starts: [LiveCallStart], in db: any SQLDatabase) async throws {
        guard !starts.isEmpty else { return }
        var sql: SQLQueryString = "INSERT INTO live_calls (call_id, account_id, trunk_id, tag, from_number, to_number, start_at, node, held_micros) VALUES "
        for (i, s) in starts.enumerated() {
            let c = s.call
            sql.appendLiteral(i == 0 ? "(" : ", (")
            sql.appendInterpolation(binds: [c.callID, c.accountID, c.trunkID, c.tag, c.from, c.to, c.startAt, s.node, s.heldMicros])
            sql.appendLiteral(")")
        }
        sql.appendLiteral(" ON CONFLICT (call_id) DO NOTHING")
        let query = sql
        try await db.raw(query).run()
    }

    /// Counts a call against `limits` and, if it fits all of them, records it
    /// as live on `node` holding its channels, in one transaction. Every node
    /// sharing the store counts the same calls (T9: correct across a cluster):
    /// each limit's key is locked for the transaction on PostgreSQL (SQLite
    /// has one writer). Returns the index of the first limit the call does not
    /// fit, in the order given (nothing is counted then), or nil when it was admitted.
    public func admitCall(_ call: LiveCall, node: String?, limits: [StoredLimit]) async throws -> Int? {
        if limits.isEmpty {
            try await callStarted(call, node: node)
            return nil
        }
        if backend == .postgres {
            return try await admissionWriter.submit(PendingAdmission(call: call, node: node, limits: limits), to: self)
        }
        // SQLite: one writer, in process; the same steps as the PostgreSQL function.
        let body: @Sendable (any SQLDatabase) async throws -> Int? = { db in
            for (i, limit) in limits.enumerated() {
                switch limit.kind {
                case .channels(let n):
                    let row = try await db.raw("SELECT COUNT(*) AS n FROM limit_holds WHERE limit_key = \(bind: limit.key)").first()
                    if try row?.decode(column: "n", as: Int.self) ?? 0 >= n { return i }
                case .rate(let r):
                    try await db.raw("DELETE FROM limit_admissions WHERE limit_key = \(bind: limit.key) AND expires_at <= \(bind: call.startAt)").run()
                    let row = try await db.raw("SELECT COUNT(*) AS n FROM limit_admissions WHERE limit_key = \(bind: limit.key)").first()
                    if try row?.decode(column: "n", as: Int.self) ?? 0 >= r.calls { return i }
                case .balance(let hold):
                    // What every node's live calls of the account hold, against the stored balance.
                    let row = try await db.raw("""
                        SELECT balance_micros + credit_limit_micros AS available,
                            (SELECT CAST(COALESCE(SUM(held_micros), 0) AS BIGINT) FROM live_calls WHERE account_id = \(bind: call.accountID)) AS held
                        FROM accounts WHERE id = \(bind: call.accountID)
                        """).first()
                    guard let row else { return i }
                    let available = try row.decode(column: "available", as: Int64.self), held = try row.decode(column: "held", as: Int64.self)
                    if available - held <= 0 || MoneyColumn.micros(hold) > available - held { return i }
                }
            }
            let heldMicros = limits.reduce(Int64(0)) { sum, limit in
                if case .balance(let hold) = limit.kind { return sum + MoneyColumn.micros(hold) } else { return sum }
            }
            try await Self.insertLiveCalls([LiveCallStart(call: call, node: node, heldMicros: heldMicros)], in: db)
            for limit in limits {
                switch limit.kind {
                case .channels:
                    try await db.raw("""
                        INSERT INTO limit_holds (call_id, limit_key) VALUES (\(bind: call.callID), \(bind: limit.key))
                        ON CONFLICT (call_id, limit_key) DO NOTHING
                        """).run()
                case .rate(let r):
                    try await db.raw("""
                        INSERT INTO limit_admissions (limit_key, expires_at) VALUES (\(bind: limit.key), \(bind: call.startAt + Double(r.seconds)))
                        """).run()
                case .balance:
                    break  // held in the live_calls row, until the call's CDR removes it
                }
            }
            return nil
        }
        return try await transaction(body)
    }

    /// Several calls' admissions, each as `admitCall` makes it, submitted
    /// together (an event loop hands over the calls of one pass at once; see
    /// `GroupCommit.submitAll`). Each result in the order given.
    public func admitCalls(_ calls: [(call: LiveCall, limits: [StoredLimit])], node: String?) async -> [Result<Int?, any Error>] {
        var results = [Result<Int?, any Error>?](repeating: nil, count: calls.count)
        var plain: [Int] = [], counted: [Int] = []
        for (i, c) in calls.enumerated() { if c.limits.isEmpty { plain.append(i) } else { counted.append(i) } }
        if !plain.isEmpty {
            let written = await liveCallWriter.submitAll(plain.map { LiveCallStart(call: calls[$0].call, node: node) }, to: self)
            for (i, r) in zip(plain, written) { results[i] = r.map { _ in nil } }
        }
        if !counted.isEmpty, backend == .postgres {
            let written = await admissionWriter.submitAll(
                counted.map { PendingAdmission(call: calls[$0].call, node: node, limits: calls[$0].limits) }, to: self)
            for (i, r) in zip(counted, written) { results[i] = r }
        } else {
            // SQLite counts limits one call at a time (its one writer, in process).
            for i in counted {
                do { results[i] = .success(try await admitCall(calls[i].call, node: node, limits: calls[i].limits)) } catch {
                    results[i] = .failure(error)
                }
            }
        }
        return results.map { $0 ?? .failure(StoreError.invalid(field: "batch", reason: "an admission of the batch was never written")) }
    }

    /// Channels held in the store under `key` (live calls counted against it).
    public func heldChannels(_ key: String) async throws -> Int {
        let row = try await run { try await $0.raw("SELECT COUNT(*) AS n FROM limit_holds WHERE limit_key = \(bind: key)").first() }
        return try row?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Writes the CDR of an ended call, its tag terms, and debits its cost, in
    /// one transaction. Idempotent per call ID: a repeated write changes
    /// nothing and debits nothing. Returns whether this write recorded it.
    /// Calls ending at the same moment share the transaction (group commit);
    /// the call returns once it has committed.
    @discardableResult
    public func recordCall(_ cdr: CDR) async throws -> Bool {
        try await cdrWriter.submit(cdr, to: self)
    }

    /// Several CDRs, each written as `recordCall` writes one, submitted
    /// together (see `admitCalls`). Each result in the order given.
    public func recordCalls(_ cdrs: [CDR]) async -> [Result<Bool, any Error>] {
        await cdrWriter.submitAll(cdrs, to: self)
    }

    /// Several calls' CDRs in one transaction (on PostgreSQL one statement),
    /// as `recordCall` writes one.
    func recordCallsTogether(_ cdrs: [CDR]) async throws -> [Bool] {
        if backend == .postgres { return try await run { db in try await Self.recordCDRsInOneStatement(cdrs, in: db) } }
        return try await transaction { db in try await Self.insertCDRs(cdrs, in: db) }
    }

    /// One CDR inside the caller's transaction (a text's CDR is written with
    /// the text's own state change); see `insertCDRs`.
    static func insertCDR(_ cdr: CDR, in db: any SQLDatabase) async throws -> Bool {
        try await insertCDRs([cdr], in: db)[0]
    }

    /// CDRs, their tag terms and debits, inside the caller's transaction: a
    /// multi-row insert, the tag terms of those inserted, one debit per
    /// account, and for calls the live-call rows and channel holds removed.
    /// Idempotent per call ID: a CDR already recorded, or repeated in the
    /// batch, changes nothing and debits nothing. Returns, per CDR, whether
    /// this write recorded it.
    static func insertCDRs(_ all: [CDR], in db: any SQLDatabase) async throws -> [Bool] {
        let (cdrs, firstOfID) = firstOfEachCall(all)
        guard !cdrs.isEmpty else { return all.map { _ in false } }
        var sql: SQLQueryString = """
            INSERT INTO cdrs (call_id, account_id, trunk_id, tag, from_number, to_number, call_type, start_at, answer_at,
                end_at, duration_seconds, billed_seconds, cost_micros, final_status, reason, interrupted, segments) VALUES
            """
        for (i, c) in cdrs.enumerated() {
            sql.appendLiteral(i == 0 ? " (" : ", (")
            sql.appendInterpolation(binds: [
                c.callID, c.accountID, c.trunkID, c.tag, c.from, c.to, c.callType, c.startAt, c.answerAt, c.endAt,
                Int64(c.durationSeconds), Int64(c.billedSeconds), MoneyColumn.micros(c.cost), c.finalStatus, c.reason,
                c.interrupted ? 1 : 0, c.segments,
            ])
            sql.appendLiteral(")")
        }
        sql.appendLiteral(" ON CONFLICT (call_id) DO NOTHING RETURNING id, call_id")
        let insertQuery = sql
        var idOf: [String: Int64] = [:]
        for row in try await db.raw(insertQuery).all() {
            idOf[try row.decode(column: "call_id", as: String.self)] = try row.decode(column: "id", as: Int64.self)
        }
        let inserted = cdrs.filter { idOf[$0.callID] != nil }
        guard !inserted.isEmpty else { return all.map { _ in false } }

        var terms: [(String, Int64)] = []
        for cdr in inserted {
            guard let id = idOf[cdr.callID], let tag = cdr.tag else { continue }
            for term in Set(CallControlHeaders.searchTerms(ofTag: tag)) { terms.append((term, id)) }
        }
        if !terms.isEmpty {
            var t: SQLQueryString = "INSERT INTO cdr_tag_terms (term, cdr_id) VALUES "
            for (i, (term, id)) in terms.enumerated() {
                t.appendLiteral(i == 0 ? "(" : ", (")
                t.appendInterpolation(binds: [term, id])
                t.appendLiteral(")")
            }
            let termQuery = t
            try await db.raw(termQuery).run()
        }
        var debit: [String: Int64] = [:]
        for cdr in inserted where cdr.cost != 0 { debit[cdr.accountID, default: 0] += MoneyColumn.micros(cdr.cost) }
        for (account, micros) in debit.sorted(by: { $0.key < $1.key }) where micros != 0 {
            try await db.raw("UPDATE accounts SET balance_micros = balance_micros - \(bind: micros) WHERE id = \(bind: account)").run()
        }
        // Calls were live until now; texts never are.
        let ended: [any Encodable & Sendable] = inserted.filter { $0.segments == nil }.map(\.callID)
        if !ended.isEmpty {
            try await db.raw("DELETE FROM live_calls WHERE call_id IN (\(binds: ended))").run()
            try await db.raw("DELETE FROM limit_holds WHERE call_id IN (\(binds: ended))").run()
        }
        return zip(all, firstOfID).map { cdr, first in first && idOf[cdr.callID] != nil }
    }

    /// The first CDR of each call ID goes in; a repeat in the same batch is
    /// a repeated write. Returns those and, per CDR, whether it is one of them.
    static func firstOfEachCall(_ all: [CDR]) -> (cdrs: [CDR], firstOfID: [Bool]) {
        var seen = Set<String>()
        let firstOfID = all.map { seen.insert($0.callID).inserted }
        return (zip(all, firstOfID).filter(\.1).map(\.0), firstOfID)
    }

    /// At start-up: calls that were live on this node when it stopped become
    /// CDRs marked interrupted (no charge is guessed), and give back their
    /// channels. Other nodes' live calls are theirs; rows from before nodes
    /// were recorded (node NULL) are taken by the first node to start.
    public func recordInterruptedCalls(node: String? = nil, now: Double) async throws -> Int {
        try await recordInterruptedCalls(node: node, includingUnassigned: true, now: now)
    }

    /// `includingUnassigned`: also calls recorded before live calls had a node
    /// (a node's own restart takes those; another node's reclaim does not).
    func recordInterruptedCalls(node: String?, includingUnassigned: Bool, now: Double) async throws -> Int {
        let unassigned = includingUnassigned ? "node IS NULL OR " : ""
        let rows = try await run { try await $0.raw("""
            SELECT call_id, account_id, trunk_id, tag, from_number, to_number, start_at FROM live_calls
            WHERE \(unsafeRaw: unassigned)node = \(bind: node ?? "")
            """).all() }
        var n = 0
        for row in rows {
            let cdr = CDR(callID: try row.decode(column: "call_id", as: String.self),
                          accountID: try row.decode(column: "account_id", as: String.self),
                          trunkID: try row.decode(column: "trunk_id", as: String?.self),
                          tag: try row.decode(column: "tag", as: String?.self),
                          from: try row.decode(column: "from_number", as: String.self),
                          to: try row.decode(column: "to_number", as: String.self),
                          startAt: try row.decode(column: "start_at", as: Double.self), endAt: now,
                          durationSeconds: 0, billedSeconds: 0, cost: 0, finalStatus: 0, reason: "Interrupted", interrupted: true)
            if try await recordCall(cdr) { n += 1 }
        }
        return n
    }

    // MARK: Answered calls (T10 across a cluster)

    /// Records that a live call was answered and what it costs (to the
    /// millionth, as rate decks are kept).
    /// Calls answered at the same moment share one statement (group commit).
    public func callAnswered(_ callID: String, at answeredAt: Double, rate: Rate) async throws {
        _ = try await answerWriter.submit(CallAnswer(callID: callID, answeredAt: answeredAt, rate: rate), to: self)
    }

    /// Several answers, each as `callAnswered` records it, submitted together (see `admitCalls`).
    public func callsAnswered(_ answers: [(callID: String, at: Double, rate: Rate)]) async -> [Result<Bool, any Error>] {
        await answerWriter.submitAll(answers.map { CallAnswer(callID: $0.callID, answeredAt: $0.at, rate: $0.rate) }, to: self)
    }

    /// Several answers: one UPDATE joined to the batch's values (one round
    /// trip on PostgreSQL; SQLite has UPDATE … FROM since 3.33).
    func callsAnsweredTogether(_ answers: [CallAnswer]) async throws -> [Bool] {
        var sql: SQLQueryString = "WITH v (call_id, answered_at, prefix, connection_micros, per_minute_micros, increment_first, increment_next) AS (VALUES "
        for (i, a) in answers.enumerated() {
            sql.appendLiteral(i == 0 ? "(" : ", (")
            sql.appendInterpolation(binds: [a.callID, a.answeredAt, a.rate.prefix, MoneyColumn.micros(a.rate.connectionCharge),
                                            MoneyColumn.micros(a.rate.perMinute), Int64(a.rate.increments.first), Int64(a.rate.increments.next)])
            sql.appendLiteral(")")
        }
        sql.appendLiteral("""
            ) UPDATE live_calls SET answered_at = v.answered_at, rate_prefix = v.prefix, rate_connection_micros = v.connection_micros,
                rate_per_minute_micros = v.per_minute_micros, rate_increment_first = v.increment_first, rate_increment_next = v.increment_next
            FROM v WHERE live_calls.call_id = v.call_id
            """)
        let query = sql
        try await run { try await $0.raw(query).run() }
        return answers.map { _ in true }
    }

    /// For each of these accounts (those that exist): what it has now (balance
    /// + credit, as stored) and no less than what its answered live calls on
    /// every node cost so far — each for its time since the answer (at least a
    /// second) plus its longer billing increment — summed by the database, one
    /// row per account. A node's sweep reads the calls
    /// themselves (`answeredCalls`) only for accounts whose bound reaches what
    /// they have: reading and costing every answered call each second cost a
    /// node with thousands of live calls more than the calls themselves.
    public func answeredCallsCostBound(accounts: [String], now: Double) async throws -> [String: SpendBound] {
        guard !accounts.isEmpty else { return [:] }
        let ids: [any Encodable & Sendable] = accounts
        // Portable SQL (no GREATEST/CEIL in SQLite): 2 millionths a call cover
        // the cost's rounding and the cast's; the sum is held below BIGINT's end.
        let rows = try await run { try await $0.raw("""
            SELECT id, available, CAST(CASE WHEN bound > 9000000000000000000 THEN 9000000000000000000 ELSE bound END AS BIGINT) AS bound
            FROM (SELECT a.id, a.balance_micros + a.credit_limit_micros AS available, COALESCE((
                    SELECT SUM(l.rate_connection_micros + 2 + l.rate_per_minute_micros
                        * ((CASE WHEN \(bind: now) - l.answered_at > 1 THEN \(bind: now) - l.answered_at ELSE 1 END)
                           + (CASE WHEN l.rate_increment_first > l.rate_increment_next THEN l.rate_increment_first ELSE l.rate_increment_next END))
                        / 60.0)
                    FROM live_calls l WHERE l.account_id = a.id AND l.answered_at IS NOT NULL), 0) AS bound
                FROM accounts a WHERE a.id IN (\(binds: ids))) AS t
            """).all() }
        var out: [String: SpendBound] = [:]
        for row in rows {
            out[try row.decode(column: "id", as: String.self)] = SpendBound(
                available: MoneyColumn.money(try row.decode(column: "available", as: Int64.self)),
                costBound: MoneyColumn.money(try row.decode(column: "bound", as: Int64.self)))
        }
        return out
    }

    /// The answered live calls of these accounts on every node, and what each
    /// account has now (balance + credit, as stored).
    public func answeredCalls(accounts: [String]) async throws -> (calls: [AnsweredCall], available: [String: Money]) {
        guard !accounts.isEmpty else { return ([], [:]) }
        let ids: [any Encodable & Sendable] = accounts
        // The rate's columns under the rates table's names, read as a rate is.
        let rows = try await run { try await $0.raw("""
            SELECT call_id, account_id, node, answered_at, rate_prefix AS prefix, '' AS destination,
                rate_connection_micros AS connection_micros, rate_per_minute_micros AS per_minute_micros,
                rate_increment_first AS increment_first, rate_increment_next AS increment_next
            FROM live_calls WHERE answered_at IS NOT NULL AND account_id IN (\(binds: ids))
            """).all() }
        let calls = try rows.map { row in
            AnsweredCall(callID: try row.decode(column: "call_id", as: String.self), accountID: try row.decode(column: "account_id", as: String.self),
                         node: try row.decode(column: "node", as: String?.self), rate: try Self.rate(from: row),
                         answeredAt: try row.decode(column: "answered_at", as: Double.self))
        }
        let balances = try await run { try await $0.raw("""
            SELECT id, balance_micros, credit_limit_micros FROM accounts WHERE id IN (\(binds: ids))
            """).all() }
        var available: [String: Money] = [:]
        for row in balances {
            available[try row.decode(column: "id", as: String.self)] =
                MoneyColumn.money(try row.decode(column: "balance_micros", as: Int64.self) + row.decode(column: "credit_limit_micros", as: Int64.self))
        }
        return (calls, available)
    }

    // MARK: Cluster nodes

    /// Records that `node` is alive at `now` (each node says so every few seconds).
    public func nodeSeen(_ node: String, now: Double) async throws {
        try await run { try await $0.raw("""
            INSERT INTO nodes (name, seen_at) VALUES (\(bind: node), \(bind: now))
            ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at
            """).run() }
    }

    /// A node that died and has not come back would hold its calls' channels
    /// for ever (T9 limits counted in the store): the calls of every node not
    /// seen for `silentFor` seconds are recorded as interrupted, as its own
    /// restart would (which gives their channels back), and the node is
    /// forgotten until it is seen again. Safe with several nodes doing it at
    /// once: a CDR is written once per call ID. Returns the nodes reclaimed
    /// and how many calls each had.
    public func reclaimSilentNodes(silentFor seconds: Double, now: Double, except node: String) async throws -> [(node: String, calls: Int)] {
        let cutoff = now - seconds
        let rows = try await run { try await $0.raw("""
            SELECT name FROM nodes WHERE seen_at < \(bind: cutoff) AND name <> \(bind: node) ORDER BY name
            """).all() }
        var reclaimed: [(node: String, calls: Int)] = []
        for row in rows {
            let name = try row.decode(column: "name", as: String.self)
            let calls = try await recordInterruptedCalls(node: name, includingUnassigned: false, now: now)
            // Only if still silent: a node seen again meanwhile keeps its row.
            try await run { try await $0.raw("DELETE FROM nodes WHERE name = \(bind: name) AND seen_at < \(bind: cutoff)").run() }
            reclaimed.append((name, calls))
        }
        return reclaimed
    }

    /// When each node was last seen.
    public func nodes() async throws -> [String: Double] {
        let rows = try await run { try await $0.raw("SELECT name, seen_at FROM nodes").all() }
        var out: [String: Double] = [:]
        for row in rows { out[try row.decode(column: "name", as: String.self)] = try row.decode(column: "seen_at", as: Double.self) }
        return out
    }

    public func cdrs(_ q: CDRQuery) async throws -> [CDR] {
        var sql = SQLQueryString("SELECT c.* FROM cdrs c")
        if let term = q.tagTerm { sql.appendLiteral(" JOIN cdr_tag_terms t ON t.cdr_id = c.id AND t.term = "); sql.appendInterpolation(bind: term) }
        sql.appendLiteral(" WHERE 1 = 1")
        if let a = q.accountID { sql.appendLiteral(" AND c.account_id = "); sql.appendInterpolation(bind: a) }
        if let t = q.trunkID { sql.appendLiteral(" AND c.trunk_id = "); sql.appendInterpolation(bind: t) }
        if let f = q.startFrom { sql.appendLiteral(" AND c.start_at >= "); sql.appendInterpolation(bind: f) }
        if let b = q.startBefore { sql.appendLiteral(" AND c.start_at < "); sql.appendInterpolation(bind: b) }
        sql.appendLiteral(" ORDER BY c.start_at, c.id LIMIT \(max(1, min(q.limit, 10_000)))")
        let query = sql
        return try await run { try await $0.raw(query).all() }.map { row in
            CDR(id: try row.decode(column: "id", as: Int64.self),
                callID: try row.decode(column: "call_id", as: String.self),
                accountID: try row.decode(column: "account_id", as: String.self),
                trunkID: try row.decode(column: "trunk_id", as: String?.self),
                tag: try row.decode(column: "tag", as: String?.self),
                from: try row.decode(column: "from_number", as: String.self),
                to: try row.decode(column: "to_number", as: String.self),
                callType: try row.decode(column: "call_type", as: String?.self),
                startAt: try row.decode(column: "start_at", as: Double.self),
                answerAt: try row.decode(column: "answer_at", as: Double?.self),
                endAt: try row.decode(column: "end_at", as: Double.self),
                durationSeconds: Int(try row.decode(column: "duration_seconds", as: Int64.self)),
                billedSeconds: Int(try row.decode(column: "billed_seconds", as: Int64.self)),
                cost: MoneyColumn.money(try row.decode(column: "cost_micros", as: Int64.self)),
                finalStatus: Int(try row.decode(column: "final_status", as: Int64.self)),
                reason: try row.decode(column: "reason", as: String?.self),
                interrupted: try row.decode(column: "interrupted", as: Int64.self) != 0,
                segments: try row.decode(column: "segments", as: Int64?.self).map(Int.init))
        }
    }
}

/// A FIFO async mutex.
actor AsyncGate {
    var busy = false
    var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !busy { busy = true; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}
