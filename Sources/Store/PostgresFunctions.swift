import CallControl
import Foundation
import SQLKit

/// Work done on PostgreSQL by a function of its own (created by migration 12),
/// so that it takes one round trip instead of one per statement. On a cluster
/// node each round trip costs a hand-over to the connection's event loop and
/// back, and a call's admission and CDR took about twenty of them. SQLite runs
/// the same steps from Swift (`admitCall`, `insertCDRs`), in process; the store
/// tests run every one of them on both backends.
extension Store {
    /// Counters that an admission reads instead of counting rows (which
    /// costs as many row visits as the account has live calls, or admissions
    /// in its window, per admission): per limit key its channels held and
    /// admissions in the window, per account what its live calls hold. Kept
    /// by triggers on the rows they count, so no path that adds or removes
    /// such a row can make them drift; the triggers are created before the
    /// counts are taken from the rows already there, and lock those tables
    /// until the migration commits, so none is missed. Every transaction
    /// that updates counter rows locks them in one order (account_holds, then
    /// limit_counts, each by key), so two cannot deadlock: the admission and
    /// CDR functions lock theirs first.
    static let limitCountersMigration = [
        "CREATE TABLE limit_counts (limit_key TEXT PRIMARY KEY, channels BIGINT NOT NULL DEFAULT 0, admissions BIGINT NOT NULL DEFAULT 0)",
        "CREATE TABLE account_holds (account_id TEXT PRIMARY KEY, held_micros BIGINT NOT NULL DEFAULT 0)",
        """
        CREATE OR REPLACE FUNCTION switchboard_count_rows() RETURNS TRIGGER LANGUAGE plpgsql AS $$
        DECLARE
            k TEXT;
            d BIGINT;
        BEGIN
            IF TG_TABLE_NAME IN ('limit_holds', 'limit_admissions') THEN
                IF TG_OP = 'INSERT' THEN k := NEW.limit_key; d := 1; ELSE k := OLD.limit_key; d := -1; END IF;
                INSERT INTO limit_counts AS lc (limit_key, channels, admissions)
                    VALUES (k, CASE WHEN TG_TABLE_NAME = 'limit_holds' THEN d ELSE 0 END,
                            CASE WHEN TG_TABLE_NAME = 'limit_admissions' THEN d ELSE 0 END)
                    ON CONFLICT (limit_key) DO UPDATE
                    SET channels = lc.channels + EXCLUDED.channels, admissions = lc.admissions + EXCLUDED.admissions;
            ELSE
                IF TG_OP IN ('DELETE', 'UPDATE') THEN
                    IF OLD.held_micros <> 0 THEN
                        UPDATE account_holds SET held_micros = held_micros - OLD.held_micros WHERE account_id = OLD.account_id;
                    END IF;
                END IF;
                IF TG_OP IN ('INSERT', 'UPDATE') THEN
                    IF NEW.held_micros <> 0 THEN
                        INSERT INTO account_holds AS ah (account_id, held_micros) VALUES (NEW.account_id, NEW.held_micros)
                            ON CONFLICT (account_id) DO UPDATE SET held_micros = ah.held_micros + NEW.held_micros;
                    END IF;
                END IF;
            END IF;
            RETURN NULL;
        END
        $$
        """,
        "CREATE TRIGGER limit_holds_counted AFTER INSERT OR DELETE ON limit_holds FOR EACH ROW EXECUTE FUNCTION switchboard_count_rows()",
        "CREATE TRIGGER limit_admissions_counted AFTER INSERT OR DELETE ON limit_admissions FOR EACH ROW EXECUTE FUNCTION switchboard_count_rows()",
        """
        CREATE TRIGGER live_calls_held AFTER INSERT OR DELETE OR UPDATE OF held_micros, account_id ON live_calls
            FOR EACH ROW EXECUTE FUNCTION switchboard_count_rows()
        """,
        "INSERT INTO limit_counts (limit_key, channels) SELECT limit_key, COUNT(*) FROM limit_holds GROUP BY limit_key",
        """
        INSERT INTO limit_counts AS lc (limit_key, admissions) SELECT limit_key, COUNT(*) FROM limit_admissions GROUP BY limit_key
            ON CONFLICT (limit_key) DO UPDATE SET admissions = EXCLUDED.admissions
        """,
        "INSERT INTO account_holds (account_id, held_micros) SELECT account_id, SUM(held_micros) FROM live_calls GROUP BY account_id",
    ]

    /// `admitCall` on PostgreSQL, server-side, for the calls arriving at the
    /// same moment (group commit): for each call in order, the same steps as
    /// the Swift body, each call seeing the ones before it, with the counts
    /// read from the counters of `limitCountersMigration`. Calls come as a JSON
    /// array of objects named as the live-call columns, each with its `limits`
    /// (key, kind 'channels', 'rate' or 'balance', amount: channels, calls, or
    /// micros held; window_seconds for rates). Returns per call (0-based
    /// position) the 0-based index of the first limit it does not fit, or NULL
    /// when it was admitted. A statement is its own transaction: the advisory
    /// locks (every key of the batch, in one order on every node, so two
    /// batches sharing keys cannot deadlock) are held until it ends.
    static let admitCallsFunction = """
        CREATE OR REPLACE FUNCTION switchboard_admit_calls(p_calls JSONB)
            RETURNS TABLE (call_position INTEGER, refused INTEGER)
        LANGUAGE plpgsql AS $$
        DECLARE
            k TEXT;
            c RECORD;
            l RECORD;
            counted BIGINT;
            available BIGINT;
            held BIGINT;
        BEGIN
            -- The counter rows locked below serialise admissions sharing a key by
            -- themselves; these locks are kept while nodes of the version before
            -- the counters (which take only these) may share the database.
            FOR k IN
                SELECT DISTINCT x.key COLLATE "C"
                FROM jsonb_array_elements(p_calls) AS e(item), jsonb_to_recordset(e.item->'limits') AS x(key TEXT)
                ORDER BY 1
            LOOP
                PERFORM pg_advisory_xact_lock(hashtext(k));
            END LOOP;
            -- The counter rows this batch's inserts and deletes will update, created
            -- if new and locked now, one by one in the order every transaction that
            -- updates them takes them (see `limitCountersMigration`).
            FOR k IN
                SELECT DISTINCT r.account_id COLLATE "C"
                FROM jsonb_array_elements(p_calls) AS e(item), jsonb_to_record(e.item) AS r(account_id TEXT)
                ORDER BY 1
            LOOP
                INSERT INTO account_holds AS ah (account_id) VALUES (k)
                    ON CONFLICT (account_id) DO UPDATE SET held_micros = ah.held_micros;
            END LOOP;
            FOR k IN
                SELECT DISTINCT x.key COLLATE "C"
                FROM jsonb_array_elements(p_calls) AS e(item), jsonb_to_recordset(e.item->'limits') AS x(key TEXT, kind TEXT)
                WHERE x.kind IN ('channels', 'rate')
                ORDER BY 1
            LOOP
                INSERT INTO limit_counts AS lc (limit_key) VALUES (k)
                    ON CONFLICT (limit_key) DO UPDATE SET channels = lc.channels;
            END LOOP;
            <<calls>>
            FOR c IN
                SELECT (e.n - 1)::INTEGER AS pos, e.item->'limits' AS limits, r.*
                FROM jsonb_array_elements(p_calls) WITH ORDINALITY AS e(item, n),
                    jsonb_to_record(e.item) AS r(call_id TEXT, account_id TEXT, trunk_id TEXT, tag TEXT, from_number TEXT,
                        to_number TEXT, start_at DOUBLE PRECISION, node TEXT)
                ORDER BY e.n
            LOOP
                held := 0;
                call_position := c.pos;
                FOR l IN
                    SELECT (x.n - 1)::INTEGER AS pos, y.*
                    FROM jsonb_array_elements(c.limits) WITH ORDINALITY AS x(item, n),
                        jsonb_to_record(x.item) AS y(key TEXT, kind TEXT, amount BIGINT, window_seconds DOUBLE PRECISION)
                    ORDER BY x.n
                LOOP
                    IF l.kind = 'channels' THEN
                        SELECT COALESCE(MAX(channels), 0) INTO counted FROM limit_counts WHERE limit_key = l.key;
                    ELSIF l.kind = 'rate' THEN
                        DELETE FROM limit_admissions WHERE limit_key = l.key AND expires_at <= c.start_at;
                        SELECT COALESCE(MAX(admissions), 0) INTO counted FROM limit_counts WHERE limit_key = l.key;
                    ELSIF l.kind = 'balance' THEN
                        -- What every node's live calls of the account hold, against the stored balance.
                        SELECT balance_micros + credit_limit_micros INTO available FROM accounts WHERE id = c.account_id;
                        IF NOT FOUND THEN refused := l.pos; RETURN NEXT; CONTINUE calls; END IF;
                        SELECT COALESCE(MAX(held_micros), 0) INTO counted FROM account_holds WHERE account_id = c.account_id;
                        IF available - counted <= 0 OR l.amount > available - counted THEN
                            refused := l.pos; RETURN NEXT; CONTINUE calls;
                        END IF;
                        held := held + l.amount;
                        CONTINUE;
                    ELSE
                        RAISE EXCEPTION 'unknown limit kind %', l.kind;
                    END IF;
                    IF counted >= l.amount THEN refused := l.pos; RETURN NEXT; CONTINUE calls; END IF;
                END LOOP;
                INSERT INTO live_calls (call_id, account_id, trunk_id, tag, from_number, to_number, start_at, node, held_micros)
                    VALUES (c.call_id, c.account_id, c.trunk_id, c.tag, c.from_number, c.to_number, c.start_at, c.node, held)
                    ON CONFLICT (call_id) DO NOTHING;
                INSERT INTO limit_holds (call_id, limit_key)
                    SELECT c.call_id, y.key FROM jsonb_to_recordset(c.limits) AS y(key TEXT, kind TEXT) WHERE y.kind = 'channels'
                    ON CONFLICT (call_id, limit_key) DO NOTHING;
                INSERT INTO limit_admissions (limit_key, expires_at)
                    SELECT y.key, c.start_at + y.window_seconds
                    FROM jsonb_to_recordset(c.limits) AS y(key TEXT, kind TEXT, window_seconds DOUBLE PRECISION) WHERE y.kind = 'rate';
                refused := NULL;
                RETURN NEXT;
            END LOOP;
        END
        $$
        """

    /// A call to admit as `switchboard_admit_calls` reads it (a nil optional
    /// is an absent key, which it reads as NULL).
    struct AdmissionRow: Encodable {
        struct Limit: Encodable { var key: String, kind: String, amount: Int64, window_seconds: Double }
        var call_id: String, account_id: String, trunk_id: String?, tag: String?, from_number: String, to_number: String
        var start_at: Double, node: String?
        var limits: [Limit]

        init(_ a: PendingAdmission) {
            call_id = a.call.callID; account_id = a.call.accountID; trunk_id = a.call.trunkID; tag = a.call.tag
            from_number = a.call.from; to_number = a.call.to; start_at = a.call.startAt; node = a.node
            limits = a.limits.map { limit in
                switch limit.kind {
                case .channels(let n): Limit(key: limit.key, kind: "channels", amount: Int64(n), window_seconds: 0)
                case .rate(let r): Limit(key: limit.key, kind: "rate", amount: Int64(r.calls), window_seconds: Double(r.seconds))
                case .balance(let hold): Limit(key: limit.key, kind: "balance", amount: MoneyColumn.micros(hold), window_seconds: 0)
                }
            }
        }
    }

    /// Admissions arriving together, in one statement (see `admitCallsFunction`).
    func admitCallsTogether(_ batch: [PendingAdmission]) async throws -> [Int?] {
        let json = String(decoding: try JSONEncoder().encode(batch.map(AdmissionRow.init)), as: UTF8.self)
        let rows = try await run { try await $0.raw("""
            SELECT call_position, refused FROM switchboard_admit_calls(CAST(\(bind: json) AS JSONB))
            """).all() }
        var refused = [Int?](repeating: nil, count: batch.count)
        var answered = 0
        for row in rows {
            let position = try row.decode(column: "call_position", as: Int.self)
            guard refused.indices.contains(position) else { continue }
            refused[position] = try row.decode(column: "refused", as: Int?.self)
            answered += 1
        }
        guard answered == batch.count else {
            throw StoreError.invalid(field: "admission", reason: "the store answered \(answered) of \(batch.count) admissions")
        }
        return refused
    }

    /// `insertCDRs` on PostgreSQL, server-side: the batch's CDRs (those not
    /// already recorded), their tag terms, one debit per account (accounts
    /// locked in one order on every node, so two batches cannot deadlock),
    /// and for calls the live-call rows and channel holds removed. The CDRs
    /// and tag terms come as JSON arrays of objects named as the columns
    /// (JSON carries their NULLs). Returns the call IDs it recorded.
    static let recordCDRsFunction = """
        CREATE OR REPLACE FUNCTION switchboard_record_cdrs(p_cdrs JSONB, p_terms JSONB) RETURNS SETOF TEXT
        LANGUAGE plpgsql AS $$
        DECLARE
            inserted_ids BIGINT[];
            inserted_calls TEXT[];
            ended TEXT[];
            debit RECORD;
        BEGIN
            WITH ins AS (
                INSERT INTO cdrs (call_id, account_id, trunk_id, tag, from_number, to_number, call_type, start_at, answer_at,
                    end_at, duration_seconds, billed_seconds, cost_micros, final_status, reason, interrupted, segments)
                SELECT c.call_id, c.account_id, c.trunk_id, c.tag, c.from_number, c.to_number, c.call_type, c.start_at, c.answer_at,
                    c.end_at, c.duration_seconds, c.billed_seconds, c.cost_micros, c.final_status, c.reason, c.interrupted, c.segments
                FROM jsonb_to_recordset(p_cdrs) AS c(call_id TEXT, account_id TEXT, trunk_id TEXT, tag TEXT, from_number TEXT,
                    to_number TEXT, call_type TEXT, start_at DOUBLE PRECISION, answer_at DOUBLE PRECISION, end_at DOUBLE PRECISION,
                    duration_seconds BIGINT, billed_seconds BIGINT, cost_micros BIGINT, final_status INTEGER, reason TEXT,
                    interrupted INTEGER, segments INTEGER)
                ON CONFLICT (call_id) DO NOTHING
                RETURNING id, call_id)
            SELECT array_agg(ins.id), array_agg(ins.call_id) INTO inserted_ids, inserted_calls FROM ins;
            IF inserted_calls IS NULL THEN RETURN; END IF;
            INSERT INTO cdr_tag_terms (term, cdr_id)
                SELECT DISTINCT t.term, i.id
                FROM jsonb_to_recordset(p_terms) AS t(call_id TEXT, term TEXT)
                JOIN unnest(inserted_calls, inserted_ids) AS i(call_id, id) ON i.call_id = t.call_id;
            FOR debit IN
                SELECT c.account_id COLLATE "C" AS account_id, SUM(c.cost_micros) AS total
                FROM jsonb_to_recordset(p_cdrs) AS c(call_id TEXT, account_id TEXT, cost_micros BIGINT)
                WHERE c.call_id = ANY(inserted_calls)
                GROUP BY 1 HAVING SUM(c.cost_micros) <> 0 ORDER BY 1
            LOOP
                UPDATE accounts SET balance_micros = balance_micros - debit.total WHERE id = debit.account_id;
            END LOOP;
            -- Calls were live until now; texts never are. Their counter rows are
            -- locked first, in the order admissions lock them (`limitCountersMigration`).
            SELECT array_agg(c.call_id) INTO ended FROM jsonb_to_recordset(p_cdrs) AS c(call_id TEXT, segments INTEGER)
                WHERE c.segments IS NULL AND c.call_id = ANY(inserted_calls);
            IF ended IS NOT NULL THEN
                PERFORM 1 FROM account_holds WHERE account_id IN (SELECT l.account_id FROM live_calls l WHERE l.call_id = ANY(ended))
                    ORDER BY account_id COLLATE "C" FOR UPDATE;
                PERFORM 1 FROM limit_counts WHERE limit_key IN (SELECT h.limit_key FROM limit_holds h WHERE h.call_id = ANY(ended))
                    ORDER BY limit_key COLLATE "C" FOR UPDATE;
                DELETE FROM live_calls WHERE call_id = ANY(ended);
                DELETE FROM limit_holds WHERE call_id = ANY(ended);
            END IF;
            RETURN QUERY SELECT unnest(inserted_calls);
        END
        $$
        """

    /// A CDR as `switchboard_record_cdrs` reads it (a nil optional is an
    /// absent key, which it reads as NULL).
    struct CDRRow: Encodable {
        var call_id: String, account_id: String, trunk_id: String?, tag: String?, from_number: String, to_number: String
        var call_type: String?, start_at: Double, answer_at: Double?, end_at: Double, duration_seconds: Int, billed_seconds: Int
        var cost_micros: Int64, final_status: Int, reason: String?, interrupted: Int, segments: Int?

        init(_ c: CDR) {
            call_id = c.callID; account_id = c.accountID; trunk_id = c.trunkID; tag = c.tag; from_number = c.from; to_number = c.to
            call_type = c.callType; start_at = c.startAt; answer_at = c.answerAt; end_at = c.endAt
            duration_seconds = c.durationSeconds; billed_seconds = c.billedSeconds; cost_micros = MoneyColumn.micros(c.cost)
            final_status = c.finalStatus; reason = c.reason; interrupted = c.interrupted ? 1 : 0; segments = c.segments
        }
    }

    struct TagTermRow: Encodable { var call_id: String, term: String }

    /// `insertCDRs` in one statement (see `recordCDRsFunction`), outside any
    /// transaction of the caller's: the statement is its own.
    static func recordCDRsInOneStatement(_ all: [CDR], in db: any SQLDatabase) async throws -> [Bool] {
        let (cdrs, firstOfID) = firstOfEachCall(all)
        guard !cdrs.isEmpty else { return all.map { _ in false } }
        var terms: [TagTermRow] = []
        for cdr in cdrs {
            guard let tag = cdr.tag else { continue }
            for term in Set(CallControlHeaders.searchTerms(ofTag: tag)) { terms.append(TagTermRow(call_id: cdr.callID, term: term)) }
        }
        let encoder = JSONEncoder()
        let cdrJSON = String(decoding: try encoder.encode(cdrs.map(CDRRow.init)), as: UTF8.self)
        let termJSON = String(decoding: try encoder.encode(terms), as: UTF8.self)
        let rows = try await db.raw("""
            SELECT r.call_id FROM switchboard_record_cdrs(CAST(\(bind: cdrJSON) AS JSONB), CAST(\(bind: termJSON) AS JSONB)) AS r(call_id)
            """).all()
        let recorded = Set(try rows.map { try $0.decode(column: "call_id", as: String.self) })
        return zip(all, firstOfID).map { cdr, first in first && recorded.contains(cdr.callID) }
    }
}
