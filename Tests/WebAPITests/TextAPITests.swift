import Foundation
import Store
import Testing
import TestSupport
import WebAPI

extension WebAPITests {
    /// S11: a text's delivery state by id, for its account or an operator.
    @Test(arguments: StoreBackend.allCases)
    func textDeliveryStateById(backend: StoreBackend) async throws {
        try await withAPI(backend, logs: LogCollector()) { client, keys, store in
            _ = try await store.acceptText(StoredText(id: "txt_a1", direction: .fromHandset, iccid: "8944101234567890128", accountID: "920700",
                                                      peer: "+447700900123", body: "secret words", segments: 1, receivedAt: 1_800_000_000),
                                           dedupeKey: "a1/1")
            _ = try await store.acceptText(StoredText(id: "txt_b1", direction: .fromHandset, iccid: "8944101234567890136", accountID: "920701",
                                                      peer: "447700900999", body: "x", segments: 1, receivedAt: 1_800_000_000),
                                           dedupeKey: "b1/1")
            try await store.markTextAttemptFailed(id: "txt_a1", attempts: 3, error: "webhook answered 503", nextAttemptAt: 1_800_000_060)

            let queued = try await client.call(.get, "/api/v1/texts/txt_a1", key: keys.acme)
            #expect(queued.status == 200, "\(queued.text)")
            #expect(queued.json["state"] as? String == "queued" && queued.json["attempts"] as? Int == 3)
            #expect(queued.json["last_error"] as? String == "webhook answered 503")
            #expect(queued.json["next_attempt_at"] as? String == "2027-01-15T08:01:00Z")
            #expect(queued.json["direction"] as? String == "from_handset" && queued.json["peer"] as? String == "+447700900123")
            #expect(!queued.text.contains("secret words"))  // the body is not returned

            try await store.markTextDelivered(id: "txt_a1", at: 1_800_000_100, attempts: 4)
            let delivered = try await client.call(.get, "/api/v1/texts/txt_a1", key: keys.operatorKey)
            #expect(delivered.json["state"] as? String == "delivered" && delivered.json["delivered_at"] as? String == "2027-01-15T08:01:40Z")
            #expect(delivered.json["next_attempt_at"] is NSNull)

            let foreign = try await client.call(.get, "/api/v1/texts/txt_b1", key: keys.acme)
            #expect(foreign.status == 403 && foreign.errorField == "id", "\(foreign.text)")
            let unknown = try await client.call(.get, "/api/v1/texts/txt_nope", key: keys.operatorKey)
            #expect(unknown.status == 404 && unknown.errorField == "id")
            let bad = try await client.call(.get, "/api/v1/texts/a%20b", key: keys.operatorKey)
            #expect(bad.status == 422 && bad.errorField == "id", "\(bad.text)")
        }
    }
}
