import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Rating
import SIMs
import SIPAuth
import Store
import Testing
import TestSupport
import WebAPI

/// Valid ICCIDs (Luhn check digits computed independently).
private let simAcme = "8944101234567890128"
private let simOther = "8944101234567890136"
private let simNobody = "89441012345678901237"

extension TestClientProtocol {
    /// A text-gateway request with any body bytes and headers.
    func postText(_ body: [UInt8], contentType: String = "application/json", authorization: String? = nil,
                  extra: HTTPFields = [:]) async throws -> Reply {
        var headers = extra
        headers[.contentType] = contentType
        if let authorization { headers[.authorization] = authorization }
        let r = try await execute(uri: "/api/v1/texts", method: .post, headers: headers, body: ByteBuffer(bytes: body))
        let text = String(buffer: r.body)
        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        return Reply(status: Int(r.status.code), headers: r.headers, text: text, json: json)
    }

    func postText(json: String, key: String?) async throws -> Reply {
        try await postText(Array(json.utf8), authorization: key.map { "Bearer \($0)" })
    }
}

extension WebAPITests {
    /// Two SIMs (one per account; only Acme's has a linked number and a text
    /// rate) and Acme's VoIP credentials: trunk user acme-d1 / s3cret-pw.
    func provisionTextGateway(_ store: Store) async throws {
        let cipher = try #require(apiTestCipher)
        try await store.upsertSIM(SIMRecord(iccid: try ICCID(simAcme), accountID: "920700", sipHostname: "pbx.acme.example", username: "u1",
                                            passwordCiphertext: try cipher.encrypt("pw-1", iccid: try ICCID(simAcme)),
                                            linkedNumber: "447700900123", textRate: m("0.04")))
        try await store.upsertSIM(SIMRecord(iccid: try ICCID(simOther), accountID: "920701", sipHostname: "pbx.other.example", username: "u2",
                                            passwordCiphertext: try cipher.encrypt("pw-2", iccid: try ICCID(simOther)), textRate: m("6")))
        try await store.putTrunk(Trunk(accountID: "920700", name: "D1", username: "acme-d1", realm: "test.example",
                                       ha1MD5: DigestComputation.ha1(algorithm: .md5, username: "acme-d1", realm: "test.example", password: "s3cret-pw")))
    }

    /// S10: a text to a handset is accepted (202, queued, stored for the
    /// mobile core) with an API key, HTTP Basic VoIP credentials, or
    /// form fields; a retried request with the same Idempotency-Key is the same text.
    @Test(arguments: StoreBackend.allCases)
    func textGatewayAcceptsTextsWithEachKindOfCredential(backend: StoreBackend) async throws {
        let logs = LogCollector()
        try await withAPI(backend, logs: logs) { client, keys, store in
            try await provisionTextGateway(store)

            let r = try await client.postText(json: #"{"to": "\#(simAcme)", "text": "Your code is 4711"}"#, key: keys.acme)
            #expect(r.status == 202, "\(r.text)")
            let id = try #require(r.json["id"] as? String)
            #expect(r.json["state"] as? String == "queued" && r.json["direction"] as? String == "to_handset")
            #expect(r.json["peer"] as? String == "447700900123", "the SIM's linked number is the default sender")
            #expect(r.json["segments"] as? Int == 1 && r.headers[.location] == "/api/v1/texts/\(id)")
            let stored = try #require(try await store.text(id: id))
            #expect(stored.body == "Your code is 4711" && stored.iccid == simAcme && stored.accountID == "920700" && stored.direction == .toHandset)

            // HTTP Basic with the account's VoIP username and password.
            let basic = "Basic " + Data("acme-d1:s3cret-pw".utf8).base64EncodedString()
            let viaBasic = try await client.postText(Array(#"{"to": "\#(simAcme)", "text": "hi", "from": "+441632960000"}"#.utf8),
                                                    authorization: basic)
            #expect(viaBasic.status == 202 && viaBasic.json["peer"] as? String == "441632960000", "\(viaBasic.text)")

            // Form-encoded, credentials as fields (what a shell script with curl sends).
            let form = "to=\(simAcme)&text=caf%C3%A9+at+8&from=Acme&username=acme-d1&password=s3cret-pw"
            let viaForm = try await client.postText(Array(form.utf8), contentType: "application/x-www-form-urlencoded")
            #expect(viaForm.status == 202, "\(viaForm.text)")
            let formID = try #require(viaForm.json["id"] as? String)
            let formText = try #require(try await store.text(id: formID))
            #expect(formText.body == "café at 8" && formText.peer == "Acme")

            // The same Idempotency-Key: the first text again, not a second one.
            var headers: HTTPFields = [:]
            headers[HTTPField.Name("Idempotency-Key")!] = "order-77"
            let first = try await client.postText(Array(#"{"to": "\#(simAcme)", "text": "once"}"#.utf8), authorization: "Bearer \(keys.acme)",
                                                  extra: headers)
            let again = try await client.postText(Array(#"{"to": "\#(simAcme)", "text": "once"}"#.utf8), authorization: "Bearer \(keys.acme)",
                                                  extra: headers)
            #expect(first.status == 202 && again.status == 202 && first.json["id"] as? String == again.json["id"] as? String)
            let reused = try await client.postText(Array(#"{"to": "\#(simAcme)", "text": "twice?"}"#.utf8), authorization: "Bearer \(keys.acme)",
                                                   extra: headers)
            #expect(reused.status == 422 && reused.errorField == "Idempotency-Key", "\(reused.text)")

            // An operator may text any SIM; one without a linked number needs a sender.
            let noSender = try await client.postText(json: #"{"to": "\#(simOther)", "text": "hi"}"#, key: keys.operatorKey)
            #expect(noSender.status == 422 && noSender.errorField == "from", "\(noSender.text)")
            #expect(!logs.all.contains("s3cret-pw"), "a VoIP password reached the log")
        }
    }

    /// S10 and issue 5 §6: every wrong request gets its precise status and the field at fault.
    @Test(arguments: StoreBackend.allCases)
    func textGatewayRefusesBadRequestsPrecisely(backend: StoreBackend) async throws {
        let logs = LogCollector()
        try await withAPI(backend, logs: logs) { client, keys, store in
            try await provisionTextGateway(store)
            let ok = #""to": "\#(simAcme)", "text": "hello""#

            // Credentials.
            let none = try await client.postText(Array("{\(ok)}".utf8))
            #expect(none.status == 401 && none.errorField == "Authorization", "\(none.text)")
            let badKey = try await client.postText(json: "{\(ok)}", key: "sbk_0000000000000000_nope")
            #expect(badKey.status == 401)
            let wrongPassword = try await client.postText(Array("{\(ok)}".utf8),
                                                          authorization: "Basic " + Data("acme-d1:guess".utf8).base64EncodedString())
            #expect(wrongPassword.status == 401 && wrongPassword.errorMessage == "the VoIP username or password is wrong", "\(wrongPassword.text)")
            let wrongFields = try await client.postText(Array("to=\(simAcme)&text=hi&username=acme-d1&password=guess".utf8),
                                                        contentType: "application/x-www-form-urlencoded")
            #expect(wrongFields.status == 401)
            let unknownUser = try await client.postText(Array("to=\(simAcme)&text=hi&username=nobody&password=s3cret-pw".utf8),
                                                        contentType: "application/x-www-form-urlencoded")
            #expect(unknownUser.status == 401 && unknownUser.errorMessage == wrongPassword.errorMessage)

            // The destination.
            let foreign = try await client.postText(json: #"{"to": "\#(simOther)", "text": "hi", "from": "Acme"}"#, key: keys.acme)
            #expect(foreign.status == 403 && foreign.errorField == "to", "\(foreign.text)")
            let basicForeign = try await client.postText(Array(#"{"to": "\#(simOther)", "text": "hi", "from": "Acme"}"#.utf8),
                                                         authorization: "Basic " + Data("acme-d1:s3cret-pw".utf8).base64EncodedString())
            #expect(basicForeign.status == 403 && basicForeign.errorField == "to")
            let unknown = try await client.postText(json: #"{"to": "\#(simNobody)", "text": "hi"}"#, key: keys.acme)
            #expect(unknown.status == 404 && unknown.errorField == "to", "\(unknown.text)")
            let notICCID = try await client.postText(json: #"{"to": "8944101234567890127", "text": "hi"}"#, key: keys.acme)
            #expect(notICCID.status == 422 && notICCID.errorField == "to", "\(notICCID.text)")
            let missingTo = try await client.postText(json: #"{"text": "hi"}"#, key: keys.acme)
            #expect(missingTo.status == 422 && missingTo.errorField == "to")

            // The text.
            let empty = try await client.postText(json: #"{"to": "\#(simAcme)", "text": ""}"#, key: keys.acme)
            #expect(empty.status == 422 && empty.errorField == "text", "\(empty.text)")
            let long = String(repeating: "a", count: 307)  // 3 GSM-7 segments; the test server takes 2
            let tooLong = try await client.postText(json: #"{"to": "\#(simAcme)", "text": "\#(long)"}"#, key: keys.acme)
            #expect(tooLong.status == 422 && tooLong.errorField == "text" && tooLong.errorMessage?.contains("needs 3 segments") == true,
                    "\(tooLong.text)")
            let twoUCS2 = String(repeating: "é€😀", count: 30)  // 120 UTF-16 units, UCS-2: 2 segments
            let fits = try await client.postText(json: #"{"to": "\#(simAcme)", "text": "\#(twoUCS2)"}"#, key: keys.acme)
            #expect(fits.status == 202 && fits.json["segments"] as? Int == 2, "\(fits.text)")
            var invalidJSON = Array(#"{"to": "\#(simAcme)", "text": "caf"#.utf8)
            invalidJSON += [0xC3, 0x28] + Array(#""}"#.utf8)
            let badUTF8 = try await client.postText(invalidJSON, authorization: "Bearer \(keys.acme)")
            #expect(badUTF8.status == 400 && badUTF8.errorField == "body" && badUTF8.errorMessage == "the body is not valid UTF-8", "\(badUTF8.text)")
            let badFormUTF8 = try await client.postText(Array("to=\(simAcme)&text=caf%C3%28".utf8), contentType: "application/x-www-form-urlencoded",
                                                        authorization: "Bearer \(keys.acme)")
            #expect(badFormUTF8.status == 422 && badFormUTF8.errorField == "text", "\(badFormUTF8.text)")
            let number = try await client.postText(json: #"{"to": "\#(simAcme)", "text": 42}"#, key: keys.acme)
            #expect(number.status == 422 && number.errorField == "text")
            let badSender = try await client.postText(json: #"{"to": "\#(simAcme)", "text": "hi", "from": "<script>"}"#, key: keys.acme)
            #expect(badSender.status == 422 && badSender.errorField == "from")
            let extra = try await client.postText(json: #"{"to": "\#(simAcme)", "text": "hi", "priority": "high"}"#, key: keys.acme)
            #expect(extra.status == 422 && extra.errorField == "priority")

            // The body.
            let huge = try await client.postText(Array(#"{"to": "\#(simAcme)", "text": "\#(String(repeating: "x", count: 20_000))"}"#.utf8),
                                                 authorization: "Bearer \(keys.acme)")
            #expect(huge.status == 413 && huge.errorField == "body", "\(huge.text)")
            let plain = try await client.postText(Array("hello".utf8), contentType: "text/plain", authorization: "Bearer \(keys.acme)")
            #expect(plain.status == 415 && plain.errorField == "Content-Type")
            let notJSON = try await client.postText(json: "{to:", key: keys.acme)
            #expect(notJSON.status == 400 && notJSON.errorField == "body")

            // The charge must be covered: account 920701 has 5 EUR, its SIM costs 6 per segment.
            let broke = try await client.postText(json: #"{"to": "\#(simOther)", "text": "hi", "from": "Ops"}"#, key: keys.other)
            #expect(broke.status == 402 && broke.errorField == "to", "\(broke.text)")

            // Nothing refused was queued: only the one UCS-2 text that fitted.
            let queued = try await store.dueTexts(.toHandset, now: Date().timeIntervalSince1970 + 1)
            #expect(queued.count == 1 && queued.first?.segments == 2)
            #expect(!logs.all.contains("s3cret-pw") && !logs.all.contains("guess"))
        }
    }

    @Test func textGatewayNeedsAMobileCore() async throws {
        try await withAPI(.sqlite, textGateway: TextGatewaySettings(mobileCoreConfigured: false)) { client, keys, store in
            try await provisionTextGateway(store)
            let r = try await client.postText(json: #"{"to": "\#(simAcme)", "text": "hi"}"#, key: keys.acme)
            #expect(r.status == 503 && r.errorField == "to" && r.errorMessage?.contains("mobile_core") == true, "\(r.text)")
        }
    }

    /// A SIM's text settings: `text_rate` is the operator's, `texts_out`
    /// "linked_number" needs a linked number; both are shown.
    @Test(arguments: StoreBackend.allCases)
    func simTextSettings(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, _ in
            let base = #""account": "920700", "sip_hostname": "pbx.acme.example", "username": "u1", "password": "pw""#
            let created = try await client.call(.put, "/api/v1/sims/\(simAcme)", key: keys.operatorKey,
                                                body: "{\(base), \"text_rate\": \"0.04\", \"linked_number\": \"+447700900123\", \"texts_out\": \"linked_number\"}")
            #expect(created.status == 201 && created.json["text_rate"] as? String == "0.04" && created.json["texts_out"] as? String == "linked_number",
                    "\(created.text)")
            let cheaper = try await client.call(.put, "/api/v1/sims/\(simAcme)", key: keys.acme,
                                                body: "{\(base), \"text_rate\": \"0.01\", \"linked_number\": \"+447700900123\"}")
            #expect(cheaper.status == 403 && cheaper.errorField == "text_rate", "\(cheaper.text)")
            let noNumber = try await client.call(.put, "/api/v1/sims/\(simAcme)", key: keys.operatorKey, body: "{\(base), \"texts_out\": \"linked_number\"}")
            #expect(noNumber.status == 422 && noNumber.errorField == "texts_out", "\(noNumber.text)")
            let bad = try await client.call(.put, "/api/v1/sims/\(simAcme)", key: keys.operatorKey, body: "{\(base), \"texts_out\": \"email\"}")
            #expect(bad.status == 422 && bad.errorField == "texts_out")
            let plain = try await client.call(.put, "/api/v1/sims/\(simAcme)", key: keys.operatorKey, body: "{\(base)}")
            #expect(plain.status == 200 && plain.json["texts_out"] as? String == "webhook" && plain.json["text_rate"] is NSNull, "\(plain.text)")
        }
    }
}
