import Foundation
import Rating
@testable import Store
import Testing
import TestSupport

// Every store test runs on both backends, each in a database of its own
// (TestSupport's freshDatabase; PostgreSQL from SWITCHBOARD_TEST_POSTGRES_URL,
// which scripts/test.sh sets after starting a throw-away server on loopback).

func m(_ s: String) -> Money { parseMoney(s) ?? -1 }

func cdr(_ callID: String, account: String = "920700", tag: String? = nil, start: Double = 1000, cost: String = "0.10") -> CDR {
    CDR(callID: callID, accountID: account, trunkID: "\(account)-L001", tag: tag, from: "441632960000", to: "447700900123",
        callType: "mobile", startAt: start, answerAt: start + 2, endAt: start + 62, durationSeconds: 60, billedSeconds: 60,
        cost: m(cost), finalStatus: 200)
}

@Suite("Store on SQLite and PostgreSQL")
struct StoreTests {
    @Test(arguments: StoreBackend.allCases)
    func migrationsRunOnceAndAccountsRoundTrip(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        #expect(try await store.schemaVersion() == 12)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("10.50"), creditLimit: m("5")))
        // Provisioning again updates details but never resets the balance.
        _ = try await store.adjustBalance(accountID: "920700", by: -m("0.25"))
        try await store.upsertAccount(Account(id: "920700", name: "Acme Ltd", currency: "GBP", balance: m("99"), creditLimit: m("7"), cliPolicy: .warn))
        let a = try #require(try await store.account(id: "920700"))
        #expect(a.name == "Acme Ltd")
        #expect(a.balance == m("10.25"))
        #expect(a.creditLimit == m("7"))
        #expect(a.cliPolicy == .warn)
        #expect(try await store.account(id: "nobody") == nil)
        await #expect(throws: StoreError.self) {
            try await store.upsertAccount(Account(id: "x", name: "x", currency: "POUNDS", balance: 0, creditLimit: 0))
        }
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func callsAreRecordedAndDebitedOnce(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("1.00"), creditLimit: 0))
        #expect(try await store.recordCall(cdr("call-1", cost: "0.123456")))
        #expect(try await store.recordCall(cdr("call-1", cost: "0.123456")) == false)  // a retried write
        #expect(try await store.account(id: "920700")?.balance == m("0.876544"))
        let all = try await store.cdrs(CDRQuery(accountID: "920700"))
        #expect(all.count == 1 && all.first?.cost == m("0.123456") && all.first?.billedSeconds == 60)
        try await store.close()
    }

    /// Two nodes on one database (two Store instances, as two processes would have):
    /// each call is recorded and debited once, whichever node writes it, however often.
    @Test(arguments: StoreBackend.allCases)
    func twoNodesDebitEachCallOnce(backend: StoreBackend) async throws {
        let first = try await openFreshStore(backend)
        let second: Store
        switch first.location {
        case .sqlite(let path): second = try await Store.open(.sqlite(path: path))
        case .postgres(let url): second = try await Store.open(.postgres(url: url))
        }
        try await first.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("100"), creditLimit: 0))
        let recorded = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<30 {
                // Every call's CDR is written by both nodes (a retried write after a failover).
                group.addTask { try await first.recordCall(cdr("n\(i)", cost: "0.01")) }
                group.addTask { try await second.recordCall(cdr("n\(i)", cost: "0.01")) }
            }
            var n = 0
            for try await ok in group where ok { n += 1 }
            return n
        }
        #expect(recorded == 30)
        #expect(try await second.account(id: "920700")?.balance == m("99.70"))
        try await second.close()
        try await first.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func concurrentCallsDebitExactly(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("100"), creditLimit: 0))
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<40 { group.addTask { try await store.recordCall(cdr("c\(i)", cost: "0.01")) } }
            for try await ok in group { #expect(ok) }
        }
        #expect(try await store.account(id: "920700")?.balance == m("99.60"))
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func cdrsAreFoundByTagTermNotByTheWholeTag(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 10, creditLimit: 0))
        try await store.upsertAccount(Account(id: "920701", name: "Other", currency: "GBP", balance: 10, creditLimit: 0))
        try await store.recordCall(cdr("t1", tag: "CUST001-AB384720", start: 100))
        try await store.recordCall(cdr("t2", tag: "CUST002-AB384720", start: 200))
        try await store.recordCall(cdr("t3", account: "920701", tag: "CUST001", start: 300))
        #expect(try await store.cdrs(CDRQuery(tagTerm: "CUST001")).map(\.callID) == ["t1", "t3"])
        #expect(try await store.cdrs(CDRQuery(tagTerm: "AB384720")).map(\.callID) == ["t1", "t2"])
        #expect(try await store.cdrs(CDRQuery(tagTerm: "CUST001-AB384720")).isEmpty)
        #expect(try await store.cdrs(CDRQuery(accountID: "920700", tagTerm: "CUST001")).map(\.callID) == ["t1"])
        #expect(try await store.cdrs(CDRQuery(startFrom: 150, startBefore: 300)).map(\.callID) == ["t2"])
        #expect(try await store.cdrs(CDRQuery(trunkID: "920701-L001")).map(\.callID) == ["t3"])
        #expect(try await store.cdrs(CDRQuery(tagTerm: "CUST001")).first?.tag == "CUST001-AB384720")
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func liveCallsBecomeInterruptedCDRsAfterARestart(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 10, creditLimit: 0))
        try await store.callStarted(LiveCall(callID: "live-1", accountID: "920700", tag: "X-1", from: "441632960000", to: "447700900123", startAt: 50))
        try await store.callStarted(LiveCall(callID: "done-1", accountID: "920700", from: "441632960000", to: "447700900123", startAt: 60))
        try await store.recordCall(cdr("done-1", start: 60))
        #expect(try await store.recordInterruptedCalls(now: 500) == 1)
        #expect(try await store.recordInterruptedCalls(now: 600) == 0)
        let interrupted = try await store.cdrs(CDRQuery()).filter(\.interrupted)
        #expect(interrupted.map(\.callID) == ["live-1"])
        #expect(interrupted.first?.endAt == 500 && interrupted.first?.cost == 0)
        try await store.close()
    }

    /// Limits counted in the store (T9, correct across a cluster): two nodes
    /// (two Store instances on one PostgreSQL database, as two processes would
    /// have) admit calls concurrently against a channel limit and a rate
    /// window; the store never lets more through than the limits allow, and an
    /// ended call gives its channel back. On SQLite (one node by design) the
    /// same counting through one instance (see `openSecondNode`).
    @Test(arguments: StoreBackend.allCases)
    func twoNodesShareChannelAndRateLimits(backend: StoreBackend) async throws {
        try await withTwoNodes(backend) { first, second in
            #expect(first.countsLimits == (backend == .postgres))
            try await sharedLimitsScenario(first, second)
        }
    }

    func sharedLimitsScenario(_ first: Store, _ second: Store) async throws {
        try await first.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("100"), creditLimit: 0))
        let channels = StoredLimit(key: "account:920700", kind: .channels(5))
        let rate = StoredLimit(key: "trunk:920700-L001", kind: .rate(RateLimitSetting(calls: 8, seconds: 10)))
        func live(_ id: String, at t: Double) -> LiveCall {
            LiveCall(callID: id, accountID: "920700", trunkID: "920700-L001", from: "441632960000", to: "447700900123", startAt: t)
        }
        // 20 calls at once, half through each node: 5 channels. Node b lists the
        // limits the other way round: each admission locks the keys in one order
        // whatever the list's, so the two cannot deadlock.
        let outcomes = try await withThrowingTaskGroup(of: (Int, Int?).self) { group in
            for i in 0..<20 {
                let node = i % 2 == 0 ? first : second
                let limits = i % 2 == 0 ? [channels, rate] : [rate, channels]
                group.addTask { (i, try await node.admitCall(live("c\(i)", at: 100), node: i % 2 == 0 ? "a" : "b", limits: limits)) }
            }
            var all: [(Int, Int?)] = []
            for try await o in group { all.append(o) }
            return all
        }
        let admitted = outcomes.filter { $0.1 == nil }.map { "c\($0.0)" }
        #expect(admitted.count == 5)
        // Every refusal names the channel limit, where each node listed it.
        let refusals = outcomes.filter { $0.1 != nil }
        #expect(refusals.count == 15 && refusals.allSatisfy { i, refused in refused == (i % 2 == 0 ? 0 : 1) })
        #expect(try await second.heldChannels("account:920700") == 5)

        // Two calls end (one written by each node): two channels free, then the
        // rate window (8 per 10 s, 5 used) lets three more in, not a fourth.
        try await first.recordCall(cdr(admitted[0], start: 100))
        try await second.recordCall(cdr(admitted[1], start: 100))
        #expect(try await first.heldChannels("account:920700") == 3)
        #expect(try await second.admitCall(live("d1", at: 101), node: "b", limits: [channels, rate]) == nil)
        #expect(try await first.admitCall(live("d2", at: 101), node: "a", limits: [channels, rate]) == nil)
        #expect(try await first.admitCall(live("d3", at: 101), node: "a", limits: [channels, rate]) == 0)
        for id in admitted.dropFirst(2) { try await first.recordCall(cdr(id, start: 100)) }
        #expect(try await second.admitCall(live("d3", at: 102), node: "b", limits: [channels, rate]) == nil)
        #expect(try await first.admitCall(live("d4", at: 103), node: "a", limits: [channels, rate]) == 1)  // 8 in the window
        // The first five admissions (t = 100) leave the window at t = 110.
        #expect(try await first.admitCall(live("d4", at: 110), node: "a", limits: [channels, rate]) == nil)
        #expect(try await first.heldChannels("account:920700") == 4)

        // Node a restarts: only its own live calls become interrupted CDRs and
        // give their channels back; node b's (d1, d3) stay live.
        #expect(try await first.recordInterruptedCalls(node: "a", now: 200) == 2)
        #expect(try await first.heldChannels("account:920700") == 2)
        #expect(try await second.recordInterruptedCalls(node: "b", now: 200) == 2)
        #expect(try await first.heldChannels("account:920700") == 0)
    }

    /// T10 at admission across a cluster: each admitted call holds its first
    /// increment (0.02) in the store, so 12 calls set up at once through two
    /// nodes on 0.05 of balance admit two, whichever node they came through;
    /// an ended call's hold goes with its live-call row (its CDR debits the
    /// balance instead). Credit counts as balance does.
    @Test(arguments: StoreBackend.allCases)
    func balanceHoldsAreCountedAcrossNodes(backend: StoreBackend) async throws {
        try await withTwoNodes(backend) { first, second in
            try await first.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("0.05"), creditLimit: 0))
            try await first.upsertAccount(Account(id: "555000", name: "Credit", currency: "GBP", balance: 0, creditLimit: m("0.03")))
            let hold = StoredLimit(key: "balance:920700", kind: .balance(hold: m("0.02")))
            func live(_ id: String, account: String = "920700") -> LiveCall {
                LiveCall(callID: id, accountID: account, trunkID: "\(account)-L001", from: "441632960000", to: "447700900123", startAt: 100)
            }
            let outcomes = try await withThrowingTaskGroup(of: (String, Int?).self) { group in
                for i in 0..<12 {
                    let node = i % 2 == 0 ? first : second
                    group.addTask { ("c\(i)", try await node.admitCall(live("c\(i)"), node: i % 2 == 0 ? "a" : "b", limits: [hold])) }
                }
                var all: [(String, Int?)] = []
                for try await o in group { all.append(o) }
                return all
            }
            let admitted = outcomes.filter { $0.1 == nil }.map(\.0)
            #expect(admitted.count == 2 && outcomes.filter { $0.1 == 0 }.count == 10)
            // One call ends having cost 0.01: 0.04 left, 0.02 of it held — one more fits, not two.
            try await second.recordCall(cdr(admitted[0], start: 100, cost: "0.01"))
            #expect(try await first.admitCall(live("d1"), node: "a", limits: [hold]) == nil)
            #expect(try await second.admitCall(live("d2"), node: "b", limits: [hold]) == 0)
            // Credit only: 0.03 pays one 0.02 hold.
            let credit = StoredLimit(key: "balance:555000", kind: .balance(hold: m("0.02")))
            #expect(try await first.admitCall(live("e1", account: "555000"), node: "a", limits: [credit]) == nil)
            #expect(try await second.admitCall(live("e2", account: "555000"), node: "b", limits: [credit]) == 0)
        }
    }

    /// On PostgreSQL admissions arriving together are one statement: within it
    /// each call is counted after the ones before it, and a refused call takes
    /// nothing. One batch, in order: two calls fill the channels, the third is
    /// refused by them (index 0), the fourth by the balance (index 1) though a
    /// channel-free list would fit, the fifth (another account) by nothing;
    /// then the rate window counts the batch's admissions.
    @Test func admissionsInOneBatchCountEachOtherOnPostgreSQL() async throws {
        try await withFreshStore(.postgres) { store in
            try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("0.05"), creditLimit: 0))
            try await store.upsertAccount(Account(id: "555000", name: "Other", currency: "GBP", balance: m("1"), creditLimit: 0))
            let channels = StoredLimit(key: "account:920700", kind: .channels(2))
            let hold = StoredLimit(key: "balance:920700", kind: .balance(hold: m("0.02")))
            let rate = StoredLimit(key: "trunk:920700-L001", kind: .rate(RateLimitSetting(calls: 3, seconds: 10)))
            func admission(_ id: String, account: String = "920700", _ limits: [StoredLimit]) -> PendingAdmission {
                PendingAdmission(call: LiveCall(callID: id, accountID: account, trunkID: "\(account)-L001", tag: id == "c1" ? "CUST1" : nil,
                                                from: "441632960000", to: "447700900123", startAt: 100),
                                 node: "a", limits: limits)
            }
            let outcome = try await store.admitCallsTogether([
                admission("c1", [channels, hold, rate]), admission("c2", [channels, hold, rate]), admission("c3", [channels, hold, rate]),
                admission("c4", [rate, hold]), admission("o1", account: "555000", [StoredLimit(key: "balance:555000", kind: .balance(hold: m("0.02")))]),
            ])
            #expect(outcome == [nil, nil, 0, 1, nil])
            #expect(try await store.heldChannels("account:920700") == 2)
            // Two of the trunk's three in the window are used: one more, not two.
            #expect(try await store.admitCall(LiveCall(callID: "d1", accountID: "555000", from: "4416", to: "4477", startAt: 101), node: "a",
                                              limits: [rate]) == nil)
            #expect(try await store.admitCall(LiveCall(callID: "d2", accountID: "555000", from: "4416", to: "4477", startAt: 101), node: "a",
                                              limits: [rate]) == 0)
            // The admitted calls are live on node a: a restart records them (and only them) as interrupted.
            #expect(try await store.recordInterruptedCalls(node: "a", now: 200) == 4)
            #expect(try await store.cdrs(CDRQuery(tagTerm: "CUST1")).map(\.callID) == ["c1"])
        }
    }

    /// On PostgreSQL admissions read counters (channels and admissions per
    /// limit key, what each account's live calls hold) that triggers keep on
    /// the rows they stand for. After 60 admissions on two accounts through two
    /// nodes at once (node b listing the limits the other way round) and half
    /// of the admitted calls ending at once through both, every counter still
    /// equals a count of its rows, and the limits held: 20 channels each.
    @Test func limitCountersMatchTheRowsTheyCountOnPostgreSQL() async throws {
        try await withTwoNodes(.postgres) { first, second in
            for id in ["920700", "555000"] {
                try await first.upsertAccount(Account(id: id, name: id, currency: "GBP", balance: m("1"), creditLimit: 0))
            }
            func limits(_ account: String, reversed: Bool) -> [StoredLimit] {
                let all = [StoredLimit(key: "balance:\(account)", kind: .balance(hold: m("0.01"))),
                           StoredLimit(key: "account:\(account)", kind: .channels(20)),
                           StoredLimit(key: "trunk:\(account)-L001", kind: .rate(RateLimitSetting(calls: 1000, seconds: 5)))]
                return reversed ? all.reversed() : all
            }
            let outcomes = try await withThrowingTaskGroup(of: (String, String, Int?).self) { group in
                for i in 0..<60 {
                    let account = i % 3 == 0 ? "555000" : "920700", onB = i % 2 == 1
                    group.addTask {
                        let call = LiveCall(callID: "c\(i)", accountID: account, trunkID: "\(account)-L001", from: "4416", to: "4477", startAt: 100)
                        return ("c\(i)", account, try await (onB ? second : first).admitCall(call, node: onB ? "b" : "a",
                                                                                              limits: limits(account, reversed: onB)))
                    }
                }
                var all: [(String, String, Int?)] = []
                for try await o in group { all.append(o) }
                return all
            }
            let admitted = outcomes.filter { $0.2 == nil }
            let admittedOf = { (account: String) in admitted.filter { call in call.1 == account } }
            #expect(admittedOf("920700").count == 20)
            #expect(admittedOf("555000").count == 20)
            let ending = ["920700", "555000"].flatMap { account in admittedOf(account).prefix(10) }
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for (i, call) in ending.enumerated() {
                    group.addTask { try await (i % 2 == 0 ? first : second).recordCall(cdr(call.0, account: call.1, start: 100, cost: "0.02")) }
                }
                for try await recorded in group { #expect(recorded) }
            }
            let mismatches = try await psql(first, """
                SELECT COUNT(*) FROM (
                    SELECT k.limit_key FROM limit_counts k
                    WHERE k.channels <> (SELECT COUNT(*) FROM limit_holds h WHERE h.limit_key = k.limit_key)
                        OR k.admissions <> (SELECT COUNT(*) FROM limit_admissions a WHERE a.limit_key = k.limit_key)
                    UNION ALL
                    SELECT ah.account_id FROM account_holds ah
                    WHERE ah.held_micros <> (SELECT COALESCE(SUM(held_micros), 0) FROM live_calls l WHERE l.account_id = ah.account_id)
                ) AS m
                """)
            #expect(mismatches == "0")
            #expect(try await psql(first, "SELECT channels FROM limit_counts WHERE limit_key = 'account:920700'") == "10")
            #expect(try await psql(first, "SELECT admissions FROM limit_counts WHERE limit_key = 'trunk:555000-L001'") == "20")
            #expect(try await psql(first, "SELECT held_micros FROM account_holds WHERE account_id = '555000'") == "100000")
        }
    }

    /// A rolling upgrade: nodes of version 11 (which count rows) left live
    /// calls in the database when a new node migrates it. Migration 12's
    /// counters start from those rows, admissions count them, and their CDRs
    /// release what they hold, without any counter going wrong.
    @Test func upgradeCountsTheLiveCallsAnEarlierVersionLeftOnPostgreSQL() async throws {
        let location = try await freshDatabase(.postgres).location
        let old = try await Store.open(location, migratingTo: 11)
        do {
            #expect(try await old.schemaVersion() == 11)
            try await old.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("1"), creditLimit: 0))
            // As a version-11 node admitted them: three live calls holding 0.10 of
            // the balance each, their channels, and their admissions in the trunk's
            // rate window (with one older admission already out of it).
            _ = try await psql(old, """
                INSERT INTO live_calls (call_id, account_id, trunk_id, from_number, to_number, start_at, node, held_micros) VALUES
                    ('v1', '920700', '920700-L001', '4416', '4477', 100, 'old', 100000),
                    ('v2', '920700', '920700-L001', '4416', '4477', 100, 'old', 100000),
                    ('v3', '920700', '920700-L001', '4416', '4477', 100, 'old', 100000);
                INSERT INTO limit_holds (call_id, limit_key) VALUES ('v1', 'account:920700'), ('v2', 'account:920700'), ('v3', 'account:920700');
                INSERT INTO limit_admissions (limit_key, expires_at) VALUES
                    ('trunk:920700-L001', 110), ('trunk:920700-L001', 110), ('trunk:920700-L001', 110), ('trunk:920700-L001', 50);
                """)
        } catch {
            try? await old.close()
            throw error
        }
        try await old.close()

        let store = try await Store.open(location)
        do {
            #expect(try await store.schemaVersion() == 12)
            #expect(try await psql(store, "SELECT channels || '/' || admissions FROM limit_counts WHERE limit_key = 'account:920700'") == "3/0")
            #expect(try await psql(store, "SELECT channels || '/' || admissions FROM limit_counts WHERE limit_key = 'trunk:920700-L001'") == "0/4")
            #expect(try await psql(store, "SELECT held_micros FROM account_holds WHERE account_id = '920700'") == "300000")
            // Four channels, four calls in 10 s, 0.10 held a call: one more call fits
            // (the old admission out of the window is not counted), not two.
            let limits = [StoredLimit(key: "account:920700", kind: .channels(4)),
                          StoredLimit(key: "trunk:920700-L001", kind: .rate(RateLimitSetting(calls: 4, seconds: 10))),
                          StoredLimit(key: "balance:920700", kind: .balance(hold: m("0.10")))]
            func call(_ id: String) -> LiveCall {
                LiveCall(callID: id, accountID: "920700", trunkID: "920700-L001", from: "4416", to: "4477", startAt: 101)
            }
            #expect(try await store.admitCall(call("n1"), node: "new", limits: limits) == nil)
            #expect(try await store.admitCall(call("n2"), node: "new", limits: limits) == 0)
            // An old call ends: its CDR gives back its channel and what it held.
            #expect(try await store.recordCall(cdr("v1", account: "920700", start: 100, cost: "0.02")))
            #expect(try await psql(store, "SELECT channels FROM limit_counts WHERE limit_key = 'account:920700'") == "3")
            #expect(try await psql(store, "SELECT held_micros FROM account_holds WHERE account_id = '920700'") == "300000")
            #expect(try await store.admitCall(call("n3"), node: "new", limits: limits) == 1)  // channel free; the window is full
            #expect(try await psql(store, "SELECT COUNT(*) FROM live_calls") == "3")
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    /// The output of one query, run by psql against a PostgreSQL store's database.
    func psql(_ store: Store, _ sql: String) async throws -> String {
        guard case .postgres(let url) = store.location else { throw TestDatabaseError.noPostgres }
        let process = try ExternalProcess(try postgresTool("psql"), [url, "-Atc", sql])
        let (status, output, _) = await process.wait(timeout: .seconds(30))
        #expect(status == 0, "psql: \(output)")
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What an event loop hands over for one pass (`admitCalls`,
    /// `callsAnswered`, `recordCalls`): each item written as on its own, the
    /// results in the order given — a refused admission at its own index, a
    /// CDR written twice in one batch debited once.
    @Test(arguments: StoreBackend.allCases)
    func callsHandedOverTogetherAreEachWrittenAsAlone(backend: StoreBackend) async throws {
        try await withFreshStore(backend) { store in
            try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("100"), creditLimit: 0))
            let channels = StoredLimit(key: "trunk:920700-L001", kind: .channels(1))
            func live(_ id: String) -> LiveCall {
                LiveCall(callID: id, accountID: "920700", trunkID: "920700-L001", from: "441632960000", to: "447700900123", startAt: 100)
            }
            #expect(try await store.admitCall(live("held"), node: "a", limits: [channels]) == nil)
            let admitted = await store.admitCalls([(live("p1"), []), (live("over"), [channels]), (live("p2"), [])], node: "a")
            #expect(admitted.map { try? $0.get() } == [.some(nil), .some(0), .some(nil)])  // "over": its first limit is full

            let rate = try Rate(prefix: "44", connectionCharge: 0, perMinute: m("0.60"), increments: .perSecond)
            let answered = await store.callsAnswered([("p1", 102, rate), ("p2", 103, rate)])
            #expect(answered.allSatisfy { (try? $0.get()) != nil })
            let live = try await store.answeredCalls(accounts: ["920700"]).calls
            #expect(live.map(\.callID).sorted() == ["p1", "p2"])
            #expect(live.first { $0.callID == "p2" }?.answeredAt == 103)

            let written = await store.recordCalls([cdr("p1", start: 100, cost: "0.01"), cdr("p2", start: 100, cost: "0.02"),
                                                   cdr("p1", start: 100, cost: "0.01")])
            #expect(written.map { try? $0.get() } == [true, true, false])
            #expect(try await store.account(id: "920700")?.balance == m("99.97"))
            #expect(try await store.cdrs(CDRQuery(accountID: "920700")).map(\.callID).sorted() == ["p1", "p2"])
            #expect(await store.recordCalls([]).isEmpty)
        }
    }

    /// A node that dies and does not come back: once it has not been seen for
    /// the silent period, another node records its live calls as interrupted
    /// and its channels come back; a node still being seen, unassigned calls
    /// (from before live calls had a node) and the reclaiming node's own calls
    /// are left alone. Two nodes reclaiming at once write each CDR once.
    @Test(arguments: StoreBackend.allCases)
    func silentNodesCallsAreRecordedAsInterrupted(backend: StoreBackend) async throws {
        try await withFreshStore(backend) { store in
            try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("100"), creditLimit: 0))
            let channels = StoredLimit(key: "account:920700", kind: .channels(3))
            func live(_ id: String) -> LiveCall {
                LiveCall(callID: id, accountID: "920700", trunkID: "920700-L001", from: "441632960000", to: "447700900123", startAt: 100)
            }
            for (id, node) in [("dead-1", "node-a"), ("dead-2", "node-a"), ("alive-1", "node-b")] {
                #expect(try await store.admitCall(live(id), node: node, limits: [channels]) == nil)
            }
            try await store.callStarted(live("unassigned"))
            #expect(try await store.admitCall(live("refused"), node: "node-b", limits: [channels]) == 0)  // 3 of 3 held

            try await store.nodeSeen("node-a", now: 100)
            try await store.nodeSeen("node-b", now: 100)
            try await store.nodeSeen("node-c", now: 100)
            // node-b and node-c keep saying they are alive; node-a stops at 100.
            try await store.nodeSeen("node-b", now: 150)
            try await store.nodeSeen("node-c", now: 150)
            #expect(try await store.reclaimSilentNodes(silentFor: 60, now: 155, except: "node-b").isEmpty)  // 55 s: not yet

            async let byB = store.reclaimSilentNodes(silentFor: 60, now: 161, except: "node-b")
            async let byC = store.reclaimSilentNodes(silentFor: 60, now: 161, except: "node-c")
            let (b, c) = try await (byB, byC)
            #expect(b.map(\.node) + c.map(\.node) == ["node-a", "node-a"] || (b + c).map(\.node) == ["node-a"])
            #expect((b + c).map(\.calls).reduce(0, +) == 2)  // each call recorded once, by one of them
            let interrupted = try await store.cdrs(CDRQuery(accountID: "920700")).filter(\.interrupted)
            #expect(interrupted.map(\.callID).sorted() == ["dead-1", "dead-2"])
            #expect(interrupted.allSatisfy { $0.endAt == 161 && $0.cost == 0 && $0.reason == "Interrupted" })
            #expect(try await store.heldChannels("account:920700") == 1)
            #expect(try await store.admitCall(live("after"), node: "node-b", limits: [channels]) == nil)
            // node-a is forgotten; the others are still known.
            #expect(try await store.nodes().keys.sorted() == ["node-b", "node-c"])
            // A node that comes back is seen again and reclaimed only if silent again.
            try await store.nodeSeen("node-a", now: 170)
            #expect(try await store.reclaimSilentNodes(silentFor: 60, now: 175, except: "node-b").isEmpty)
            // node-b's own restart takes its live call and the unassigned one.
            #expect(try await store.recordInterruptedCalls(node: "node-b", now: 180) == 3)
        }
    }

    /// Answered live calls are kept with their rate, for costing an account's
    /// calls together across nodes: only answered ones, only the accounts asked
    /// for, each with what the account has now (balance + credit).
    @Test(arguments: StoreBackend.allCases)
    func answeredCallsAreKeptWithTheirRate(backend: StoreBackend) async throws {
        try await withFreshStore(backend) { store in
            try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("0.09"), creditLimit: m("1")))
            try await store.upsertAccount(Account(id: "555000", name: "Other", currency: "GBP", balance: m("5"), creditLimit: 0))
            // Rates are kept to the millionth, in decks and here alike.
            let rate = try Rate(prefix: "44", connectionCharge: m("0.01"), perMinute: m("0.012345"), increments: BillingIncrements("30/6"))
            for (id, account, node) in [("a1", "920700", "node-a"), ("b1", "920700", "node-b"), ("u1", "920700", "node-a"), ("o1", "555000", "node-a")] {
                _ = try await store.admitCall(LiveCall(callID: id, accountID: account, from: "441632960000", to: "447700900123", startAt: 10),
                                              node: node, limits: [])
            }
            try await store.callAnswered("a1", at: 11.5, rate: rate)
            // Answered together: one batch (one statement on PostgreSQL), each row its own values.
            let other = try Rate(prefix: "1", connectionCharge: 0, perMinute: m("0.5"), increments: BillingIncrements("60/60"))
            #expect(try await store.callsAnsweredTogether([CallAnswer(callID: "b1", answeredAt: 12.25, rate: rate),
                                                           CallAnswer(callID: "o1", answeredAt: 13, rate: other)]) == [true, true])
            let (calls, available) = try await store.answeredCalls(accounts: ["920700"])
            #expect(calls.map(\.callID).sorted() == ["a1", "b1"])  // u1 not answered, o1 another account
            let b1 = try #require(calls.first { $0.callID == "b1" })
            #expect(b1.node == "node-b" && b1.answeredAt == 12.25 && b1.accountID == "920700")
            #expect(b1.rate == rate)  // prefix, amounts and increments back
            #expect(try await store.answeredCalls(accounts: ["555000"]).calls.map(\.rate) == [other])
            #expect(available == ["920700": m("1.09")])
            #expect(try await store.answeredCalls(accounts: []).calls.isEmpty)
            // The bound a sweep checks first, at t = 100: each answered call at its
            // rate for its time since the answer plus its longer increment (a1 88.5 s,
            // b1 87.75 s, each + 30 s at 0.012345/min, + 0.01 connection; o1 87 + 60 s
            // at 0.50/min), 2 millionths a call over; they cost 0.057035 and 1.00.
            let bounds = try await store.answeredCallsCostBound(accounts: ["920700", "555000", "nobody"], now: 100)
            #expect(bounds == ["920700": SpendBound(available: m("1.09"), costBound: m("0.068612")),
                               "555000": SpendBound(available: m("5"), costBound: m("1.225002"))])
            // An ended call leaves with its live row.
            try await store.recordCall(cdr("a1", start: 10))
            #expect(try await store.answeredCalls(accounts: ["920700"]).calls.map(\.callID) == ["b1"])
        }
    }

    /// Group commit: CDRs of calls ending together are written in one
    /// transaction, with the same outcome as one by one: each recorded and
    /// debited once (a repeat in the batch or of an earlier write changes
    /// nothing), tag terms searchable, live rows and channel holds removed.
    @Test(arguments: StoreBackend.allCases)
    func callsEndingTogetherAreWrittenAsOneByOne(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        do {
            try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("10"), creditLimit: 0))
            try await store.upsertAccount(Account(id: "555000", name: "Other", currency: "GBP", balance: m("10"), creditLimit: 0))
            for id in ["g1", "g2", "g3"] {
                _ = try await store.admitCall(LiveCall(callID: id, accountID: "920700", from: "441632960000", to: "447700900123", startAt: 1),
                                              node: "a", limits: [StoredLimit(key: "account:920700", kind: .channels(10))])
            }
            #expect(try await store.recordCall(cdr("g0", cost: "1.00")))
            let results = try await store.recordCallsTogether([
                cdr("g1", tag: "CUST001-AB1", cost: "0.10"), cdr("g0", cost: "1.00"), cdr("g2", account: "555000", cost: "0.25"),
                cdr("g1", tag: "CUST001-AB1", cost: "0.10"), cdr("g3", tag: "CUST002", cost: "0"),
            ])
            #expect(results == [true, false, true, false, true])
            #expect(try await store.account(id: "920700")?.balance == m("8.90"))
            #expect(try await store.account(id: "555000")?.balance == m("9.75"))
            #expect(try await store.cdrs(CDRQuery(tagTerm: "CUST001")).map(\.callID) == ["g1"])
            #expect(try await store.cdrs(CDRQuery(tagTerm: "AB1")).map(\.callID) == ["g1"])
            #expect(try await store.heldChannels("account:920700") == 0)
            #expect(try await store.recordInterruptedCalls(node: "a", now: 2) == 0)  // no live rows left
            // Forty calls ending at once through recordCall: gathered, each once.
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<40 { group.addTask { try await store.recordCall(cdr("h\(i % 20)", cost: "0.01")) } }
                var n = 0
                for try await ok in group where ok { n += 1 }
                #expect(n == 20)
            }
            #expect(try await store.account(id: "920700")?.balance == m("8.70"))
            // One bad CDR (an account that does not exist) among twenty ending at
            // once fails alone: its batch is written again one by one.
            let written = await withTaskGroup(of: (String, Bool).self) { group in
                for i in 0..<21 {
                    let record = i == 10 ? cdr("k\(i)", account: "nobody", cost: "0.01") : cdr("k\(i)", cost: "0.01")
                    group.addTask { (record.callID, (try? await store.recordCall(record)) == true) }
                }
                var all: [String: Bool] = [:]
                for await (id, ok) in group { all[id] = ok }
                return all
            }
            #expect(written.filter(\.value).count == 20 && written["k10"] == false)
            #expect(try await store.account(id: "920700")?.balance == m("8.50"))
        } catch {
            Issue.record("\(backend): \(error)")
        }
        try await store.close()
    }

    @Test func passwordsNeverAppearInTheLocationsDescription() {
        #expect(StoreLocation.postgres(url: "postgres://sw:s3cret@127.0.0.1:5432/db").description == "PostgreSQL postgres://sw:***@127.0.0.1:5432/db")
    }

    @Test func sqliteFileIsCreatedOnFirstOpenAndKeepsData() async throws {
        let path = NSTemporaryDirectory() + "switchboard-reopen-\(UUID().uuidString).sqlite"
        let first = try await Store.open(.sqlite(path: path))
        try await first.upsertAccount(Account(id: "1", name: "a", currency: "EUR", balance: m("3.5"), creditLimit: 0))
        try await first.close()
        #expect(FileManager.default.fileExists(atPath: path))
        let second = try await Store.open(.sqlite(path: path))
        #expect(try await second.account(id: "1")?.balance == m("3.5"))
        try await second.close()
    }
}
