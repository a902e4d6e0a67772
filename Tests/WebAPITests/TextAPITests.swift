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

    /// Texts are listed by state, direction, SIM and time (e.g. the failed
    /// ones), without their bodies, an account key seeing only its own.
    @Test(arguments: StoreBackend.allCases)
    func textsAreListedByStateDirectionAndSIM(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, store in
            let a = "8944101234567890128", b = "8944101234567890136"
            func put(_ id: String, _ direction: StoredText.Direction, _ sim: String, _ account: String, at: Double) async throws {
                _ = try await store.acceptText(StoredText(id: id, direction: direction, iccid: sim, accountID: account, peer: "447700900123",
                                                          body: "body of \(id)", segments: 1, receivedAt: at), dedupeKey: id)
            }
            try await put("txt_1", .fromHandset, a, "920700", at: 1_800_000_000)
            try await put("txt_2", .toHandset, a, "920700", at: 1_800_000_010)
            try await put("txt_3", .toHandset, b, "920701", at: 1_800_000_020)
            try await put("txt_4", .toNetwork, a, "920700", at: 1_800_000_030)
            try await store.markTextAttemptFailed(id: "txt_2", attempts: 1, error: "mobile core answered 404 Not Found", nextAttemptAt: nil, sipCode: 404)
            try await store.markTextDelivered(id: "txt_1", at: 1_800_000_001, attempts: 1)

            func ids(_ query: String, key: String) async throws -> [String] {
                let r = try await client.call(.get, "/api/v1/texts\(query)", key: key)
                #expect(r.status == 200, "\(query): \(r.text)")
                #expect(!r.text.contains("body of"), "a listed text showed its body")
                return (r.json["texts"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            }
            #expect(try await ids("", key: keys.operatorKey) == ["txt_1", "txt_2", "txt_3", "txt_4"])
            #expect(try await ids("", key: keys.acme) == ["txt_1", "txt_2", "txt_4"])
            #expect(try await ids("?state=failed", key: keys.acme) == ["txt_2"])
            #expect(try await ids("?direction=to_handset", key: keys.operatorKey) == ["txt_2", "txt_3"])
            #expect(try await ids("?iccid=\(a)&state=queued", key: keys.operatorKey) == ["txt_4"])
            #expect(try await ids("?from=1800000010&to=1800000030", key: keys.operatorKey) == ["txt_2", "txt_3"])
            #expect(try await ids("?limit=1", key: keys.operatorKey) == ["txt_1"])
            let failed = try await client.call(.get, "/api/v1/texts?state=failed", key: keys.acme)
            let row = (failed.json["texts"] as? [[String: Any]])?.first
            #expect(row?["sip_code"] as? Int == 404 && row?["last_error"] as? String == "mobile core answered 404 Not Found")

            let foreign = try await client.call(.get, "/api/v1/texts?account=920701", key: keys.acme)
            #expect(foreign.status == 403 && foreign.errorField == "account")
            for (query, field) in [("?state=lost", "state"), ("?direction=up", "direction"), ("?iccid=123", "iccid"), ("?limit=0", "limit"),
                                   ("?colour=red", "colour"), ("?from=1800000010&to=1800000000", "to")] {
                let r = try await client.call(.get, "/api/v1/texts\(query)", key: keys.operatorKey)
                #expect(r.status == 422 && r.errorField == field, "\(query): \(r.text)")
            }
        }
    }
}
