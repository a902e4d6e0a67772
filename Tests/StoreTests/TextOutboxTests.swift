import Foundation
import Rating
import Store
import Testing
import TestSupport

/// The text outbox (S11): a text is kept until delivered, once per MESSAGE,
/// one SIM's texts in order, and an attempt is claimed by one node only.
@Suite("Text outbox on SQLite and PostgreSQL")
struct TextOutboxTests {
    func text(_ id: String, sim: String, at: Double) -> StoredText {
        StoredText(id: id, direction: .fromHandset, iccid: sim, accountID: "920700", peer: "447700900123", body: "text \(id)",
                   segments: 1, receivedAt: at)
    }

    @Test(arguments: StoreBackend.allCases)
    func textsAreKeptOnceDeliveredInOrderAndClaimedOnce(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 1, creditLimit: 0))
        let a = "8944101234567890128", b = "8944101234567890136"
        #expect(try await store.acceptText(text("t1", sim: a, at: 100), dedupeKey: "c1/1").inserted)
        // The same MESSAGE again (same Call-ID and CSeq) is the same text.
        let again = try await store.acceptText(text("t1bis", sim: a, at: 101), dedupeKey: "c1/1")
        #expect(!again.inserted && again.0.id == "t1")
        _ = try await store.acceptText(text("t2", sim: a, at: 102), dedupeKey: "c2/1")
        _ = try await store.acceptText(text("t3", sim: b, at: 103), dedupeKey: "c3/1")

        // One per SIM, the oldest first.
        #expect(try await store.dueTexts(.fromHandset, now: 200).map(\.id) == ["t1", "t3"])
        #expect(try await store.dueTexts(.fromHandset, now: 50).isEmpty)

        // A claim moves the next attempt; a second claim of the same attempt fails.
        #expect(try await store.claimText(id: "t1", now: 200, until: 215))
        #expect(try await !store.claimText(id: "t1", now: 200, until: 215))
        try await store.markTextAttemptFailed(id: "t1", attempts: 1, error: "webhook answered 503", nextAttemptAt: 201)
        // t2 waits behind t1 even though it is due.
        #expect(try await store.dueTexts(.fromHandset, now: 202).map(\.id) == ["t1", "t3"])
        try await store.markTextDelivered(id: "t1", at: 203, attempts: 2)
        #expect(try await store.dueTexts(.fromHandset, now: 204).map(\.id) == ["t2", "t3"])
        try await store.markTextAttemptFailed(id: "t3", attempts: 9, error: "gone", nextAttemptAt: nil)

        let t1 = try #require(try await store.text(id: "t1"))
        #expect(t1.state == .delivered && t1.attempts == 2 && t1.deliveredAt == 203 && t1.lastError == nil)
        let t3 = try #require(try await store.text(id: "t3"))
        #expect(t3.state == .failed && t3.lastError == "gone")
        // Kept until delivered, not after: a final text's body is erased; a queued one keeps it.
        #expect(t1.body.isEmpty && t3.body.isEmpty)
        #expect(try await store.text(id: "t2")?.body == "text t2")
        #expect(try await store.dueTexts(.fromHandset, now: 300).map(\.id) == ["t2"])

        // The webhook secret is made once and kept.
        let secret = try await store.webhookSecret(account: "920700")
        #expect(secret.hasPrefix("whsec_") && secret.count == 70)
        #expect(try await store.webhookSecret(account: "920700") == secret)
        try await store.close()
    }

    /// S13: a text's CDR is written and debited with the text's own change,
    /// once: a MESSAGE sent again, or a delivery recorded twice, charges nothing more.
    @Test(arguments: StoreBackend.allCases)
    func textChargesAreWrittenWithTheTextAndOnlyOnce(backend: StoreBackend) async throws {
        let store = try await openFreshStore(backend)
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: 1, creditLimit: 0))
        let sim = "8944101234567890128"
        func charge(_ t: StoredText, _ status: Int) -> CDR {
            CDR(callID: t.id, accountID: "920700", from: t.iccid, to: t.peer, callType: "text", startAt: t.receivedAt, endAt: t.receivedAt,
                durationSeconds: 0, billedSeconds: 0, cost: m("0.04") * Money(t.segments), finalStatus: status, segments: t.segments)
        }
        var incoming = text("in1", sim: sim, at: 100)
        incoming.segments = 2
        _ = try await store.acceptText(incoming, dedupeKey: "c1/1", charge: charge(incoming, 202))
        _ = try await store.acceptText(incoming, dedupeKey: "c1/1", charge: charge(incoming, 202))  // the same MESSAGE again
        let outgoing = StoredText(id: "out1", direction: .toHandset, iccid: sim, accountID: "920700", peer: "Acme", body: "hi",
                                  segments: 1, receivedAt: 110)
        _ = try await store.acceptText(outgoing, dedupeKey: "api/out1")
        try await store.markTextDelivered(id: "out1", at: 111, attempts: 1, sipCode: 200, charge: charge(outgoing, 200))
        try await store.markTextDelivered(id: "out1", at: 112, attempts: 1, sipCode: 200, charge: charge(outgoing, 200))

        let cdrs = try await store.cdrs(CDRQuery(accountID: "920700"))
        #expect(cdrs.map(\.callID) == ["in1", "out1"] && cdrs.map(\.segments) == [2, 1] && cdrs.map(\.cost) == [m("0.08"), m("0.04")])
        #expect(try await store.account(id: "920700")?.balance == m("0.88"))
        #expect(try await store.text(id: "out1")?.sipCode == 200)
        try await store.close()
    }
}
