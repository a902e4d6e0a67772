import Foundation
import Rating
import SIMs
import Store
import Testing
import TestSupport

/// Valid ICCIDs (Luhn check digits computed independently).
enum TestICCID {
    static let a = "8944101234567890128"
    static let b = "8944101234567890136"
    static let c = "89441012345678901237"
}

func iccid(_ s: String) throws -> ICCID { try ICCID(s) }

let testCipher: SIMPasswordCipher = {
    // A fixed key for tests only (32 bytes of 0x01).
    guard let c = try? SIMPasswordCipher(base64Key: Data(repeating: 1, count: 32).base64EncodedString()) else {
        fatalError("test key rejected")
    }
    return c
}()

func simRecord(_ digits: String, account: String = "920700", host: String = "sip.example.com", password: String = "sip-secret",
               callRate: Money? = nil) throws -> SIMRecord {
    let id = try ICCID(digits)
    return SIMRecord(iccid: id, accountID: account, sipHostname: host, username: "u\(digits.suffix(4))",
                     passwordCiphertext: try testCipher.encrypt(password, iccid: id), webhookURL: "https://hooks.example.com/sms",
                     linkedNumber: "447700900123", operatorName: "Acme Mobile", callRate: callRate)
}

extension StoreTests {
    @Test(arguments: StoreBackend.allCases)
    func simsAreCreatedUpdatedOrUnchanged(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 0, creditLimit: 0))
        try await store.upsertAccount(Account(id: "920701", name: "Other", currency: "GBP", balance: 0, creditLimit: 0))
        let t0 = Date(timeIntervalSince1970: 1_700_000_000)
        let a = try simRecord(TestICCID.a, callRate: m("0.012345"))
        #expect(try await store.upsertSIM(a, now: t0) == .created)
        #expect(try await store.upsertSIM(a, now: t0 + 60) == .unchanged)
        let stored = try #require(try await store.sim(iccid: try iccid(TestICCID.a)))
        #expect(stored.hasSameSettings(as: a))
        #expect(stored.updatedAt.timeIntervalSince1970 == 1_700_000_000)  // unchanged: not rewritten
        #expect(stored.callRate == m("0.012345") && stored.linkedNumber == "447700900123" && stored.operatorName == "Acme Mobile")
        #expect(try testCipher.decrypt(stored.passwordCiphertext, iccid: stored.iccid) == "sip-secret")

        var moved = a
        moved.sipHostname = "sip2.example.com"
        moved.callRate = nil
        moved.webhookURL = nil
        #expect(try await store.upsertSIM(moved, now: t0 + 120) == .updated)
        let updated = try #require(try await store.sim(iccid: a.iccid))
        #expect(updated.sipHostname == "sip2.example.com" && updated.callRate == nil && updated.webhookURL == nil)
        #expect(updated.updatedAt.timeIntervalSince1970 == 1_700_000_120)

        try await store.upsertSIM(try simRecord(TestICCID.c, account: "920701"))
        try await store.upsertSIM(try simRecord(TestICCID.b))
        // By ICCID as text ("…01237" sorts before "…0128"), the same on both backends.
        #expect(try await store.sims().map(\.iccid.digits) == [TestICCID.c, TestICCID.a, TestICCID.b])
        #expect(try await store.sims(account: "920700").map(\.iccid.digits) == [TestICCID.a, TestICCID.b])
        #expect(try await store.sims(account: "920701").map(\.iccid.digits) == [TestICCID.c])
        #expect(try await store.sims(account: "nobody").isEmpty)
        #expect(try await store.sim(iccid: try iccid("8944101234567890144")) == nil)
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func simsAreCheckedOnTheWayIn(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 0, creditLimit: 0))
        // The account must exist: a typed error naming the field, not a database constraint failure.
        await #expect(throws: StoreError.invalid(field: "account", reason: "account '999' does not exist")) {
            try await store.upsertSIM(try simRecord(TestICCID.a, account: "999"))
        }
        #expect(try await store.sims().isEmpty)
        // A plaintext password is refused.
        var plain = try simRecord(TestICCID.a)
        plain.passwordCiphertext = "sip-secret"
        await #expect(throws: StoreError.invalid(field: "password", reason: "must be stored encrypted (SIMPasswordCipher), never as plaintext")) {
            try await store.upsertSIM(plain)
        }
        var noHost = try simRecord(TestICCID.a)
        noHost.sipHostname = ""
        await #expect(throws: StoreError.invalid(field: "sip_hostname", reason: "must not be empty")) { try await store.upsertSIM(noHost) }
        await #expect(throws: StoreError.invalid(field: "call_rate", reason: "has more than 6 decimal places")) {
            try await store.upsertSIM(try simRecord(TestICCID.a, callRate: m("0.0000001")))
        }
        // Moving a SIM to another account that exists is an update.
        try await store.upsertAccount(Account(id: "920701", name: "Other", currency: "GBP", balance: 0, creditLimit: 0))
        #expect(try await store.upsertSIM(try simRecord(TestICCID.a)) == .created)
        #expect(try await store.upsertSIM(try simRecord(TestICCID.a, account: "920701")) == .updated)
        #expect(try await store.sim(iccid: try iccid(TestICCID.a))?.accountID == "920701")
        // Limited to an account (an account's API key): another account's SIM is neither changed nor deleted.
        await #expect(throws: StoreError.forbidden(field: "iccid", reason: "SIM \(TestICCID.a) belongs to another account")) {
            try await store.upsertSIM(try simRecord(TestICCID.a, host: "evil.example"), ownedBy: "920700")
        }
        #expect(try await store.upsertSIM(try simRecord(TestICCID.b), ownedBy: "920700") == .created)
        #expect(try await store.deleteSIM(iccid: try iccid(TestICCID.a), account: "920700") == false)
        #expect(try await store.sim(iccid: try iccid(TestICCID.a))?.sipHostname == "sip.example.com")
        #expect(try await store.deleteSIM(iccid: try iccid(TestICCID.a), account: "920701"))
        try await store.close()
    }

    @Test(arguments: StoreBackend.allCases)
    func registrationStatusIsKeptPerNodeAndGoesWithTheSIM(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 0, creditLimit: 0))
        try await store.upsertSIM(try simRecord(TestICCID.a))
        try await store.upsertSIM(try simRecord(TestICCID.b))
        let id = try iccid(TestICCID.a)
        let t = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(try await store.recordRegistrationStatus(SIMRegistrationStatus(iccid: id, node: "node-b", state: .pending, updatedAt: t)))
        #expect(try await store.recordRegistrationStatus(SIMRegistrationStatus(
            iccid: id, node: "node-a", state: .failing, lastCode: 403, lastReason: "Forbidden", nextAttempt: t + 30, updatedAt: t)))
        // The same node again replaces its row.
        let registered = SIMRegistrationStatus(iccid: id, node: "node-b", state: .registered, lastCode: 200, lastReason: "OK",
                                               registeredUntil: t + 3600, nextAttempt: t + 3000, updatedAt: t + 1)
        #expect(try await store.recordRegistrationStatus(registered))
        let rows = try await store.registrationStatuses(iccid: id)
        #expect(rows.map(\.node) == ["node-a", "node-b"])
        #expect(rows.first?.state == .failing && rows.first?.lastCode == 403 && rows.first?.lastReason == "Forbidden")
        #expect(rows.first?.registeredUntil == nil && rows.first?.nextAttempt?.timeIntervalSince1970 == 1_700_000_030)
        #expect(rows.last?.state == .registered && rows.last?.registeredUntil?.timeIntervalSince1970 == 1_700_003_600)
        #expect(rows.last?.updatedAt.timeIntervalSince1970 == 1_700_000_001)
        await #expect(throws: StoreError.self) {
            try await store.recordRegistrationStatus(SIMRegistrationStatus(iccid: id, node: "node-a", state: .failing, lastCode: 7))
        }
        try await store.recordRegistrationStatus(SIMRegistrationStatus(iccid: try iccid(TestICCID.b), node: "node-a", state: .registered))

        // Deleting a SIM deletes its status rows, and only its own.
        #expect(try await store.deleteSIM(iccid: id))
        #expect(try await store.deleteSIM(iccid: id) == false)
        #expect(try await store.sim(iccid: id) == nil)
        #expect(try await store.registrationStatuses(iccid: id).isEmpty)
        #expect(try await store.registrationStatuses(iccid: try iccid(TestICCID.b)).count == 1)
        // A late report for the deleted SIM records nothing.
        #expect(try await store.recordRegistrationStatus(SIMRegistrationStatus(iccid: id, node: "node-a", state: .unregistered)) == false)
        #expect(try await store.registrationStatuses(iccid: id).isEmpty)
        try await store.close()
    }

    /// Two nodes writing the same new SIM at once: one creates it, the other
    /// sees it (unchanged or updated), never two "created".
    @Test(arguments: StoreBackend.allCases)
    func concurrentCreatesOfOneSIMCreateOnce(backend: StoreBackend) async throws {
        try await withTwoNodes(backend) { first, second in
            try await first.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 0, creditLimit: 0))
            let sim = try simRecord(TestICCID.a)
            let outcomes = try await withThrowingTaskGroup(of: UpsertOutcome.self) { group in
                for i in 0..<8 { group.addTask { try await (i % 2 == 0 ? first : second).upsertSIM(sim) } }
                var all: [UpsertOutcome] = []
                for try await o in group { all.append(o) }
                return all
            }
            #expect(outcomes.filter { $0 == .created }.count == 1)
            #expect(outcomes.filter { $0 == .unchanged }.count == 7)
        }
    }
}
