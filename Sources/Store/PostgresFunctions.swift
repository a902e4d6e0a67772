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
    /// `admitCall` on PostgreSQL, server-side: the same steps as the Swift
    /// body in one round trip instead of one per statement (about fifteen for
    /// an account and a trunk with limits), which on a cluster node was most
    /// of a call's cost. Arguments: the live call, then per limit its key, kind
    /// ('channels', 'rate' or 'balance'), amount (channels, calls, or micros
    /// held) and window in seconds (rate only). Returns the 0-based index of
    /// the first limit the call does not fit, or NULL when it was admitted.
    /// A single statement is its own transaction: the advisory locks are held
    /// until it ends.
    static let admitCallFunction = """
        CREATE OR REPLACE FUNCTION switchboard_admit_call(
            p_call_id TEXT, p_account_id TEXT, p_trunk_id TEXT, p_tag TEXT, p_from TEXT, p_to TEXT,
            p_start_at DOUBLE PRECISION, p_node TEXT,
            p_keys TEXT[], p_kinds TEXT[], p_amounts BIGINT[], p_windows DOUBLE PRECISION[]) RETURNS INTEGER
        LANGUAGE plpgsql AS $$
        DECLARE
            k TEXT;
            counted BIGINT;
            available BIGINT;
            held BIGINT := 0;
        BEGIN
            -- Every admission locks its keys in one order, so two sharing keys cannot deadlock.
            FOR k IN SELECT DISTINCT u.lock_key COLLATE "C" FROM unnest(p_keys) AS u(lock_key) ORDER BY 1 LOOP
                PERFORM pg_advisory_xact_lock(hashtext(k));
            END LOOP;
            FOR i IN 1 .. COALESCE(array_length(p_keys, 1), 0) LOOP
                IF p_kinds[i] = 'channels' THEN
                    SELECT COUNT(*) INTO counted FROM limit_holds WHERE limit_key = p_keys[i];
                    IF counted >= p_amounts[i] THEN RETURN i - 1; END IF;
                ELSIF p_kinds[i] = 'rate' THEN
                    DELETE FROM limit_admissions WHERE limit_key = p_keys[i] AND expires_at <= p_start_at;
                    SELECT COUNT(*) INTO counted FROM limit_admissions WHERE limit_key = p_keys[i];
                    IF counted >= p_amounts[i] THEN RETURN i - 1; END IF;
                ELSIF p_kinds[i] = 'balance' THEN
                    -- What every node's live calls of the account hold, against the stored balance.
                    SELECT balance_micros + credit_limit_micros INTO available FROM accounts WHERE id = p_account_id;
                    IF NOT FOUND THEN RETURN i - 1; END IF;
                    SELECT COALESCE(SUM(held_micros), 0) INTO counted FROM live_calls WHERE account_id = p_account_id;
                    IF available - counted <= 0 OR p_amounts[i] > available - counted THEN RETURN i - 1; END IF;
                    held := held + p_amounts[i];
                ELSE
                    RAISE EXCEPTION 'unknown limit kind %', p_kinds[i];
                END IF;
            END LOOP;
            INSERT INTO live_calls (call_id, account_id, trunk_id, tag, from_number, to_number, start_at, node, held_micros)
                VALUES (p_call_id, p_account_id, p_trunk_id, p_tag, p_from, p_to, p_start_at, p_node, held)
                ON CONFLICT (call_id) DO NOTHING;
            FOR i IN 1 .. COALESCE(array_length(p_keys, 1), 0) LOOP
                IF p_kinds[i] = 'channels' THEN
                    INSERT INTO limit_holds (call_id, limit_key) VALUES (p_call_id, p_keys[i])
                        ON CONFLICT (call_id, limit_key) DO NOTHING;
                ELSIF p_kinds[i] = 'rate' THEN
                    INSERT INTO limit_admissions (limit_key, expires_at) VALUES (p_keys[i], p_start_at + p_windows[i]);
                END IF;
            END LOOP;
            RETURN NULL;
        END
        $$
        """

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
            -- Calls were live until now; texts never are.
            DELETE FROM live_calls WHERE call_id IN (
                SELECT c.call_id FROM jsonb_to_recordset(p_cdrs) AS c(call_id TEXT, segments INTEGER)
                WHERE c.segments IS NULL AND c.call_id = ANY(inserted_calls));
            DELETE FROM limit_holds WHERE call_id IN (
                SELECT c.call_id FROM jsonb_to_recordset(p_cdrs) AS c(call_id TEXT, segments INTEGER)
                WHERE c.segments IS NULL AND c.call_id = ANY(inserted_calls));
            RETURN QUERY SELECT unnest(inserted_calls);
        END
        $$
        """

    /// A CDR as `switchboard_record_cdrs` reads it.
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

        /// JSON's encoder writes a nil optional as an absent key, which
        /// `jsonb_to_recordset` reads as NULL too; written out for clarity.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(call_id, forKey: .call_id); try c.encode(account_id, forKey: .account_id)
            try c.encode(trunk_id, forKey: .trunk_id); try c.encode(tag, forKey: .tag)
            try c.encode(from_number, forKey: .from_number); try c.encode(to_number, forKey: .to_number)
            try c.encode(call_type, forKey: .call_type); try c.encode(start_at, forKey: .start_at)
            try c.encode(answer_at, forKey: .answer_at); try c.encode(end_at, forKey: .end_at)
            try c.encode(duration_seconds, forKey: .duration_seconds); try c.encode(billed_seconds, forKey: .billed_seconds)
            try c.encode(cost_micros, forKey: .cost_micros); try c.encode(final_status, forKey: .final_status)
            try c.encode(reason, forKey: .reason); try c.encode(interrupted, forKey: .interrupted)
            try c.encode(segments, forKey: .segments)
        }

        enum Key: String, CodingKey {
            case call_id, account_id, trunk_id, tag, from_number, to_number, call_type, start_at, answer_at, end_at
            case duration_seconds, billed_seconds, cost_micros, final_status, reason, interrupted, segments
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
