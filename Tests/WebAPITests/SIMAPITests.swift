import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Rating
import SIMs
import Store
import Testing
import TestSupport
import WebAPI

/// Valid ICCIDs (Luhn check digits computed independently).
private let iccidA = "8944101234567890128"
private let iccidB = "8944101234567890136"
private let iccidC = "89441012345678901237"

extension WebAPITests {
    @Test(arguments: StoreBackend.allCases)
    func simsRoundTripWithAWriteOnlyPassword(backend: StoreBackend) async throws {
        let logs = LogCollector()
        try await withAPI(backend, logs: logs) { client, keys, store in
            let cipher = try #require(apiTestCipher)
            let password = "Sim-Passw0rd-xyz"
            let body = """
                {"account": "920700", "sip_hostname": "pbx.acme.example", "username": "sim0128", "password": "\(password)",
                 "webhook_url": "https://acme.example/texts", "linked_number": "+447700900123", "operator_name": "Acme Mobile",
                 "call_rate": "0.015"}
                """
            let created = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.operatorKey, body: body)
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json["iccid"] as? String == iccidA && created.json["account"] as? String == "920700")
            #expect(created.json["sip_hostname"] as? String == "pbx.acme.example" && created.json["username"] as? String == "sim0128")
            #expect(created.json["linked_number"] as? String == "447700900123" && created.json["call_rate"] as? String == "0.015")
            #expect(created.json["operator_name"] as? String == "Acme Mobile" && created.json["webhook_url"] as? String == "https://acme.example/texts")
            #expect(created.json["password"] == nil && !created.text.contains(password))
            // Stored encrypted, bound to the ICCID; never returned in any form.
            let stored = try #require(try await store.sim(iccid: try ICCID(iccidA)))
            #expect(try cipher.decrypt(stored.passwordCiphertext, iccid: stored.iccid) == password)
            #expect(!created.text.contains(stored.passwordCiphertext))

            let got = try await client.call(.get, "/api/v1/sims/\(iccidA)", key: keys.acme)
            #expect(got.status == 200 && got.json["username"] as? String == "sim0128" && !got.text.contains(password))
            let updatedAt = try #require(got.json["updated_at"] as? String)

            // The same settings with the same password: 200 and nothing rewritten (GCM ciphertexts differ; compared decrypted).
            let same = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.operatorKey, body: body)
            #expect(same.status == 200 && same.json["updated_at"] as? String == updatedAt)
            #expect(try await store.sim(iccid: try ICCID(iccidA))?.passwordCiphertext == stored.passwordCiphertext)

            // An update without a password keeps it; optional fields left out are cleared.
            let moved = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.operatorKey,
                                              body: #"{"sip_hostname": "[2001:db8::1]:5080", "username": "sim0128"}"#)
            #expect(moved.status == 200, "\(moved.text)")
            #expect(moved.json["account"] as? String == "920700" && moved.json["webhook_url"] is NSNull && moved.json["call_rate"] is NSNull)
            let kept = try #require(try await store.sim(iccid: try ICCID(iccidA)))
            #expect(try cipher.decrypt(kept.passwordCiphertext, iccid: kept.iccid) == password && kept.sipHostname == "[2001:db8::1]:5080")
            // A new password replaces it.
            let renewed = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.operatorKey,
                                                body: #"{"sip_hostname": "pbx.acme.example", "username": "sim0128", "password": "another one"}"#)
            #expect(renewed.status == 200)
            let after = try #require(try await store.sim(iccid: try ICCID(iccidA)))
            #expect(try cipher.decrypt(after.passwordCiphertext, iccid: after.iccid) == "another one")

            try await store.upsertSIM(SIMRecord(iccid: try ICCID(iccidC), accountID: "920701", sipHostname: "sip.other.example", username: "o1",
                                                passwordCiphertext: try cipher.encrypt("x", iccid: try ICCID(iccidC))))
            func iccids(_ uri: String, key: String) async throws -> [String] {
                let r = try await client.call(.get, uri, key: key)
                #expect(r.status == 200, "\(uri): \(r.text)")
                return (r.json["sims"] as? [[String: Any]])?.compactMap { $0["iccid"] as? String } ?? []
            }
            #expect(try await iccids("/api/v1/sims", key: keys.operatorKey) == [iccidC, iccidA])  // by ICCID as text
            #expect(try await iccids("/api/v1/sims?account=920701", key: keys.operatorKey) == [iccidC])
            #expect(try await iccids("/api/v1/sims?account=930000", key: keys.operatorKey) == [])

            // Registration status, per node.
            let none = try await client.call(.get, "/api/v1/sims/\(iccidA)/registration", key: keys.acme)
            #expect(none.status == 200 && none.json["iccid"] as? String == iccidA && (none.json["registrations"] as? [Any])?.isEmpty == true)
            let t = Date(timeIntervalSince1970: 1_700_000_000)
            try await store.recordRegistrationStatus(SIMRegistrationStatus(
                iccid: try ICCID(iccidA), node: "node-1", state: .registered, lastCode: 200, lastReason: "OK",
                registeredUntil: t + 3600, nextAttempt: t + 3300, updatedAt: t))
            try await store.recordRegistrationStatus(SIMRegistrationStatus(
                iccid: try ICCID(iccidA), node: "node-2", state: .failing, lastCode: 403, lastReason: "Forbidden", nextAttempt: t + 60, updatedAt: t))
            let reg = try await client.call(.get, "/api/v1/sims/\(iccidA)/registration", key: keys.acme)
            let rows = try #require(reg.json["registrations"] as? [[String: Any]])
            #expect(rows.compactMap { $0["node"] as? String } == ["node-1", "node-2"])
            #expect(rows.first?["state"] as? String == "registered" && rows.first?["last_code"] as? Int == 200)
            #expect(rows.first?["registered_until"] as? String == "2023-11-14T23:13:20Z")
            #expect(rows.last?["state"] as? String == "failing" && rows.last?["last_reason"] as? String == "Forbidden")
            #expect(rows.last?["registered_until"] is NSNull && rows.last?["next_attempt"] as? String == "2023-11-14T22:14:20Z")

            // Delete: the SIM and its status go.
            #expect(try await client.call(.delete, "/api/v1/sims/\(iccidA)", key: keys.operatorKey).status == 204)
            #expect(try await client.call(.get, "/api/v1/sims/\(iccidA)", key: keys.operatorKey).status == 404)
            #expect(try await client.call(.get, "/api/v1/sims/\(iccidA)/registration", key: keys.operatorKey).status == 404)
            #expect(try await client.call(.delete, "/api/v1/sims/\(iccidA)", key: keys.operatorKey).status == 404)
            #expect(try await store.registrationStatuses(iccid: try ICCID(iccidA)).isEmpty)
        }
        // The password never reaches the log.
        #expect(logs.all.contains("/api/v1/sims/\(iccidA)"))
        #expect(!logs.all.contains("Sim-Passw0rd-xyz") && !logs.all.contains("another one"))
    }

    @Test(arguments: StoreBackend.allCases)
    func accountKeysManageOnlyTheirOwnSIMs(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, store in
            // An account key creates a SIM for its own account (account left out).
            let mine = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.acme,
                                             body: #"{"sip_hostname": "pbx.acme.example", "username": "u1", "password": "pw"}"#)
            #expect(mine.status == 201 && mine.json["account"] as? String == "920700", "\(mine.text)")
            // … never for another account.
            let elsewhere = try await client.call(.put, "/api/v1/sims/\(iccidB)", key: keys.acme,
                                                  body: #"{"account": "920701", "sip_hostname": "h.example", "username": "u1", "password": "pw"}"#)
            #expect(elsewhere.status == 403 && elsewhere.errorField == "account")
            #expect(try await store.sim(iccid: try ICCID(iccidB)) == nil)
            // Another account's key can neither see, change, take over nor delete it.
            let peek = try await client.call(.get, "/api/v1/sims/\(iccidA)", key: keys.other)
            #expect(peek.status == 403 && peek.errorField == "iccid")
            #expect(try await client.call(.get, "/api/v1/sims/\(iccidA)/registration", key: keys.other).status == 403)
            let takeover = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.other,
                                                 body: #"{"sip_hostname": "evil.example", "username": "u1", "password": "pw"}"#)
            #expect(takeover.status == 403 && takeover.errorField == "iccid")
            #expect(try await client.call(.delete, "/api/v1/sims/\(iccidA)", key: keys.other).status == 403)
            #expect(try await store.sim(iccid: try ICCID(iccidA))?.sipHostname == "pbx.acme.example")
            // Lists: an account key sees its own SIMs only, and may not ask for another account's.
            #expect((try await client.call(.get, "/api/v1/sims", key: keys.other).json["sims"] as? [Any])?.isEmpty == true)
            #expect((try await client.call(.get, "/api/v1/sims", key: keys.acme).json["sims"] as? [Any])?.count == 1)
            let foreignList = try await client.call(.get, "/api/v1/sims?account=920700", key: keys.other)
            #expect(foreignList.status == 403 && foreignList.errorField == "account")

            // The call rate is the operator's: an account key may keep or repeat it, not set it.
            let raise = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.acme,
                                              body: #"{"sip_hostname": "pbx.acme.example", "username": "u1", "call_rate": "0"}"#)
            #expect(raise.status == 403 && raise.errorField == "call_rate")
            let priced = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.operatorKey,
                                               body: #"{"sip_hostname": "pbx.acme.example", "username": "u1", "call_rate": "0.02"}"#)
            #expect(priced.status == 200 && priced.json["call_rate"] as? String == "0.02")
            let keep = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.acme,
                                             body: #"{"sip_hostname": "pbx2.acme.example", "username": "u1"}"#)
            #expect(keep.status == 200 && keep.json["call_rate"] as? String == "0.02" && keep.json["sip_hostname"] as? String == "pbx2.acme.example")
            let repeated = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.acme,
                                                 body: #"{"sip_hostname": "pbx2.acme.example", "username": "u1", "call_rate": "0.020"}"#)
            #expect(repeated.status == 200)
            // Its own SIM it may delete.
            #expect(try await client.call(.delete, "/api/v1/sims/\(iccidA)", key: keys.acme).status == 204)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func simErrorsNameTheField(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, _ in
            let op = keys.operatorKey
            func expectError(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, status: Int, field: String,
                             message: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let r = try await client.call(method, uri, key: op, body: body)
                #expect(r.status == status, "\(method) \(uri): \(r.text)", sourceLocation: sourceLocation)
                #expect(r.errorField == field, "\(method) \(uri): \(r.text)", sourceLocation: sourceLocation)
                if let message { #expect(r.errorMessage == message, sourceLocation: sourceLocation) }
            }
            let luhn = "the ICCID's check digit is 7 but its Luhn check digit is 8; check for a mistyped digit"
            let ok = #""sip_hostname": "h.example", "username": "u1", "password": "pw""#
            try await expectError(.put, "/api/v1/sims/8944101234567890127", #"{"account": "920700", \#(ok)}"#, status: 422, field: "iccid", message: luhn)
            try await expectError(.get, "/api/v1/sims/8944101234567890127", status: 422, field: "iccid", message: luhn)
            try await expectError(.delete, "/api/v1/sims/8944101234567890127", status: 422, field: "iccid", message: luhn)
            try await expectError(.get, "/api/v1/sims/8944101234567890127/registration", status: 422, field: "iccid", message: luhn)
            try await expectError(.get, "/api/v1/sims/89441", status: 422, field: "iccid", message: "an ICCID has 19 or 20 digits, not 5")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "930000", \#(ok)}"#, status: 422, field: "account",
                                  message: "account '930000' does not exist")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{\#(ok)}"#, status: 422, field: "account",
                                  message: "is required when creating a SIM")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", "sip_hostname": "h.example", "username": "u1"}"#,
                                  status: 422, field: "password", message: "is required when creating a SIM")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", "sip_hostname": "h.example", "username": "u1", "password": ""}"#,
                                  status: 422, field: "password")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", "username": "u1", "password": "pw"}"#,
                                  status: 422, field: "sip_hostname", message: "is required")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", "sip_hostname": "h .example", "username": "u1", "password": "pw"}"#,
                                  status: 422, field: "sip_hostname")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", \#(ok), "webhook_url": "mailto:x@y.example"}"#,
                                  status: 422, field: "webhook_url")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", \#(ok), "linked_number": "12"}"#,
                                  status: 422, field: "linked_number")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", \#(ok), "call_rate": 0.01}"#,
                                  status: 422, field: "call_rate")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", \#(ok), "colour": "red"}"#, status: 422, field: "colour")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", #"{"account": "920700", \#(ok), "iccid": "\#(iccidB)"}"#, status: 422, field: "iccid")
            try await expectError(.put, "/api/v1/sims/\(iccidA)", "[]", status: 400, field: "body")
            try await expectError(.get, "/api/v1/sims?acount=920700", status: 422, field: "acount")
            try await expectError(.get, "/api/v1/sims?account=92-07", status: 422, field: "account")
            try await expectError(.get, "/api/v1/sims/\(iccidA)", status: 404, field: "iccid")
            try await expectError(.post, "/api/v1/sims/\(iccidA)", "{}", status: 405, field: "method")
        }
    }

    @Test func withoutAPasswordKeySIMPasswordsAreRefused() async throws {
        try await withAPI(.sqlite, simCipher: nil) { client, keys, _ in
            let r = try await client.call(.put, "/api/v1/sims/\(iccidA)", key: keys.operatorKey,
                                          body: #"{"account": "920700", "sip_hostname": "h.example", "username": "u1", "password": "pw"}"#)
            #expect(r.status == 503 && r.errorField == "password")
        }
    }
}
