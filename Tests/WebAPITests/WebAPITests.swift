import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Rating
import SIPAuth
import Store
import Testing
import TestSupport
import WebAPI
import Yams

@Suite("REST API over HTTP on SQLite and PostgreSQL")
struct WebAPITests {
    @Test(arguments: StoreBackend.allCases)
    func authentication(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, store in
            // No key, a malformed header, a token of the wrong shape, a wrong secret: 401 with WWW-Authenticate.
            let none = try await client.call(.get, "/api/v1/accounts", key: nil)
            #expect(none.status == 401 && none.errorField == "Authorization")
            #expect(none.headers[.wwwAuthenticate] == "Bearer realm=\"switchboard\"")
            let basic = try await client.call(.get, "/api/v1/accounts", key: nil, rawAuthorization: "Basic dXNlcjpwYXNz")
            #expect(basic.status == 401 && basic.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            #expect(try await client.call(.get, "/api/v1/accounts", key: "not-a-key").status == 401)
            let parts = keys.acme.split(separator: "_")
            let wrongSecret = "sbk_\(parts[1])_\(String(repeating: "0", count: parts[2].count))"
            let wrong = try await client.call(.get, "/api/v1/accounts", key: wrongSecret)
            #expect(wrong.status == 401 && wrong.errorMessage == "the API key is unknown, deleted or wrong")
            #expect(wrong.headers[.wwwAuthenticate] == "Bearer realm=\"switchboard\", error=\"invalid_token\"")
            #expect(try await client.call(.get, "/api/v1/accounts", key: "sbk_0000000000000000_\(parts[2])").status == 401)

            // The right keys.
            #expect(try await client.call(.get, "/api/v1/accounts", key: keys.operatorKey).status == 200)
            #expect(try await client.call(.get, "/api/v1/accounts/920700", key: keys.acme).status == 200)
            // An account key on another account's objects: 403, naming the field.
            let foreign = try await client.call(.get, "/api/v1/accounts/920701", key: keys.acme)
            #expect(foreign.status == 403 && foreign.errorField == "id")
            #expect(try await client.call(.get, "/api/v1/accounts/920701/trunks", key: keys.acme).status == 403)
            #expect(try await client.call(.put, "/api/v1/trunks/920701-L1", key: keys.acme, body: #"{"source_addresses": []}"#).status == 403)
            #expect(try await client.call(.get, "/api/v1/blacklists/account:920701", key: keys.acme).status == 403)
            let cdrs = try await client.call(.get, "/api/v1/cdrs?account=920701", key: keys.acme)
            #expect(cdrs.status == 403 && cdrs.errorField == "account")
            // … and on operator-only objects.
            #expect(try await client.call(.get, "/api/v1/rate-decks/default", key: keys.acme).status == 403)
            #expect(try await client.call(.put, "/api/v1/rate-decks/cheap", key: keys.acme, body: #"{"currency": "GBP", "rates": []}"#).status == 403)
            #expect(try await client.call(.get, "/api/v1/blacklists/platform", key: keys.acme).status == 403)
            #expect(try await client.call(.put, "/api/v1/blacklists/platform", key: keys.acme, body: #"{"prefixes": []}"#).status == 403)
            let raise = try await client.call(.put, "/api/v1/accounts/920700", key: keys.acme,
                                              body: #"{"name": "Acme", "currency": "GBP", "credit_limit": "1000000"}"#)
            #expect(raise.status == 403)
            #expect(try await client.call(.post, "/api/v1/accounts/920700/topups", key: keys.acme, body: #"{"amount": "100"}"#).status == 403)
            // An account key lists only its own account.
            let mine = try await client.call(.get, "/api/v1/accounts", key: keys.other)
            #expect((mine.json["accounts"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["920701"])

            // A deleted key stops working.
            try await store.deleteAPIKey(id: String(parts[1]))
            #expect(try await client.call(.get, "/api/v1/accounts/920700", key: keys.acme).status == 401)
            // The stored hash is SHA-256 of the secret, not the secret.
            let opParts = keys.operatorKey.split(separator: "_")
            let stored = try #require(try await store.apiKey(id: String(opParts[1])))
            #expect(stored.secretHash == APIKeys.secretHash(String(opParts[2])) && stored.secretHash != String(opParts[2]))
            #expect(stored.accountID == nil)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func accountsRoundTrip(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, store in
            try await store.putRateDeck(try RateDeck(name: "wholesale", currency: "GBP", rates: []))
            let body = """
                {"name": "New Co", "currency": "GBP", "balance": "12.50", "credit_limit": "5", "cli_policy": "warn",
                 "rate_deck": "wholesale",
                 "limits": {"channels": 10, "rate": {"calls": 5, "seconds": 1},
                            "call_types": {"international": {"channels": 2}},
                            "low_balance": {"below": "5.00", "channels": 1}}}
                """
            let created = try await client.call(.put, "/api/v1/accounts/930000", key: keys.operatorKey, body: body)
            #expect(created.status == 201, "\(created.text)")
            let got = try await client.call(.get, "/api/v1/accounts/930000", key: keys.operatorKey)
            #expect(got.status == 200)
            #expect(got.json["balance"] as? String == "12.50" && got.json["credit_limit"] as? String == "5.00")
            #expect(got.json["cli_policy"] as? String == "warn" && got.json["rate_deck"] as? String == "wholesale")
            let limits = try #require(got.json["limits"] as? [String: Any])
            #expect(limits["channels"] as? Int == 10)
            #expect((limits["low_balance"] as? [String: Any])?["below"] as? String == "5.00")
            #expect(((limits["call_types"] as? [String: Any])?["international"] as? [String: Any])?["channels"] as? Int == 2)
            #expect(try await store.limits(accountID: "930000").rate == RateLimitSetting(calls: 5, seconds: 1))

            // An update: the balance in the body is ignored (only top-ups and calls move it); limits left out are cleared.
            let updated = try await client.call(.put, "/api/v1/accounts/930000", key: keys.operatorKey,
                                                body: #"{"name": "New Co Ltd", "currency": "GBP", "balance": "999"}"#)
            #expect(updated.status == 200 && updated.json["name"] as? String == "New Co Ltd")
            #expect(updated.json["balance"] as? String == "12.50" && updated.json["rate_deck"] is NSNull)
            #expect(try await store.limits(accountID: "930000").isEmpty)

            // Top-ups, both ways, exact decimals.
            let topup = try await client.call(.post, "/api/v1/accounts/930000/topups", key: keys.operatorKey, body: #"{"amount": "0.10"}"#)
            #expect(topup.status == 200 && topup.json["balance"] as? String == "12.60")
            let debit = try await client.call(.post, "/api/v1/accounts/930000/topups", key: keys.operatorKey, body: #"{"amount": "-0.000001"}"#)
            #expect(debit.json["balance"] as? String == "12.599999")
            #expect(try await store.account(id: "930000")?.balance == m("12.599999"))

            let all = try await client.call(.get, "/api/v1/accounts", key: keys.operatorKey)
            #expect((all.json["accounts"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["920700", "920701", "930000"])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func trunksKeepOnlyDigestsOfPasswords(backend: StoreBackend) async throws {
        let logs = LogCollector()
        try await withAPI(backend, logs: logs) { client, keys, store in
            let password = "s3cret-Passw0rd"
            let body = """
                {"source_addresses": ["192.0.2.0/24", "2001:db8::1"], "username": "acme-l001", "password": "\(password)",
                 "limits": {"channels": 4, "rate": {"calls": 2, "seconds": 1}}}
                """
            // An account key manages its own trunks.
            let created = try await client.call(.put, "/api/v1/trunks/920700-L001", key: keys.acme, body: body)
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json["has_password"] as? Bool == true && created.json["realm"] as? String == "test.example")
            #expect(!created.text.contains(password) && created.json["password"] == nil)
            let stored = try #require(try await store.trunk(id: "920700-L001"))
            let md5 = DigestComputation.ha1(algorithm: .md5, username: "acme-l001", realm: "test.example", password: password)
            #expect(stored.ha1MD5 == md5)
            #expect(stored.ha1SHA256 == DigestComputation.ha1(algorithm: .sha256, username: "acme-l001", realm: "test.example", password: password))
            #expect(!created.text.contains(md5))  // digests are password equivalents: never sent either

            let got = try await client.call(.get, "/api/v1/trunks/920700-L001", key: keys.acme)
            #expect(got.status == 200 && got.json["source_addresses"] as? [String] == ["192.0.2.0/24", "2001:db8::1"])
            #expect(got.json["username"] as? String == "acme-l001" && !got.text.contains(md5))
            #expect(((got.json["limits"] as? [String: Any])?["rate"] as? [String: Any])?["calls"] as? Int == 2)

            // The same user name without a password keeps the digests; a new user name needs one.
            let kept = try await client.call(.put, "/api/v1/trunks/920700-L001", key: keys.acme,
                                             body: #"{"source_addresses": ["198.51.100.7"], "username": "acme-l001"}"#)
            #expect(kept.status == 200 && kept.json["has_password"] as? Bool == true)
            #expect(try await store.trunk(id: "920700-L001")?.ha1MD5 == md5)
            let renamed = try await client.call(.put, "/api/v1/trunks/920700-L001", key: keys.acme, body: #"{"username": "acme-new"}"#)
            #expect(renamed.status == 422 && renamed.errorField == "password")
            // User names are unique across the platform.
            let clash = try await client.call(.put, "/api/v1/trunks/920701-T1", key: keys.other,
                                              body: #"{"username": "acme-l001", "password": "another-password"}"#)
            #expect(clash.status == 422 && clash.errorField == "username")

            let list = try await client.call(.get, "/api/v1/accounts/920700/trunks", key: keys.acme)
            #expect((list.json["trunks"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["920700-L001"])
            // Without credentials: none kept.
            let plain = try await client.call(.put, "/api/v1/trunks/920700-L001", key: keys.operatorKey, body: #"{"source_addresses": ["198.51.100.7"]}"#)
            #expect(plain.status == 200 && plain.json["has_password"] as? Bool == false && plain.json["username"] is NSNull)

            #expect(try await client.call(.delete, "/api/v1/trunks/920700-L001", key: keys.acme).status == 204)
            let gone = try await client.call(.get, "/api/v1/trunks/920700-L001", key: keys.acme)
            #expect(gone.status == 404 && gone.errorField == "id")
            #expect(try await client.call(.delete, "/api/v1/trunks/920700-L001", key: keys.acme).status == 404)

            // Nothing secret reached the log: not the password, not the key secrets, not the digests.
            let log = logs.all
            #expect(log.contains("api request"))
            #expect(!log.contains(password) && !log.contains(md5))
            for key in [keys.acme, keys.other, keys.operatorKey] { #expect(!log.contains(String(key.split(separator: "_")[2]))) }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func rateDecksAndBlacklistsRoundTrip(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, store in
            let deck = """
                {"currency": "GBP", "rates": [
                  {"prefix": "44", "destination": "UK", "per_minute": "0.01"},
                  {"prefix": "447", "destination": "UK mobile", "connection": "0.005", "per_minute": "0.123456", "increments": "1/1"}]}
                """
            let put = try await client.call(.put, "/api/v1/rate-decks/default", key: keys.operatorKey, body: deck)
            #expect(put.status == 201, "\(put.text)")
            #expect(try await client.call(.put, "/api/v1/rate-decks/default", key: keys.operatorKey, body: deck).status == 200)
            let got = try await client.call(.get, "/api/v1/rate-decks/default", key: keys.operatorKey)
            let rates = try #require(got.json["rates"] as? [[String: Any]])
            #expect(rates.count == 2 && rates[1]["per_minute"] as? String == "0.123456" && rates[1]["increments"] as? String == "1/1")
            #expect(rates[0]["connection"] as? String == "0.00" && rates[0]["increments"] as? String == "60/60")
            #expect(try await store.rateDeck(forAccount: "920700")?.rate(for: "447700900123")?.perMinute == m("0.123456"))
            #expect(try await client.call(.get, "/api/v1/rate-decks/nothing", key: keys.operatorKey).status == 404)

            let platform = try await client.call(.put, "/api/v1/blacklists/platform", key: keys.operatorKey, body: #"{"prefixes": ["+4490", "4487"]}"#)
            #expect(platform.status == 200 && platform.json["prefixes"] as? [String] == ["4487", "4490"])
            let own = try await client.call(.put, "/api/v1/blacklists/account:920700", key: keys.acme, body: #"{"prefixes": ["4470"]}"#)
            #expect(own.status == 200 && own.json["scope"] as? String == "account:920700")
            #expect(try await client.call(.get, "/api/v1/blacklists/account%3A920700", key: keys.acme).json["prefixes"] as? [String] == ["4470"])
            #expect(try await store.allBlacklists()[.account("920700")] == ["4470"])
            // A trunk's blacklist needs the trunk.
            let noTrunk = try await client.call(.put, "/api/v1/blacklists/trunk:920700-L9", key: keys.acme, body: #"{"prefixes": ["1"]}"#)
            #expect(noTrunk.status == 404 && noTrunk.errorField == "scope")
            try await store.putTrunk(Trunk(accountID: "920700", name: "L9"))
            #expect(try await client.call(.put, "/api/v1/blacklists/trunk:920700-L9", key: keys.acme, body: #"{"prefixes": ["1900"]}"#).status == 200)
            #expect(try await store.blacklist(.trunk("920700-L9")) == ["1900"])
            let badScope = try await client.call(.get, "/api/v1/blacklists/everyone", key: keys.operatorKey)
            #expect(badScope.status == 404 && badScope.errorField == "scope")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func cdrQueries(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, store in
            func cdr(_ id: String, account: String = "920700", trunk: String = "L001", tag: String?, start: Double, cost: String) -> CDR {
                CDR(callID: id, accountID: account, trunkID: "\(account)-\(trunk)", tag: tag, from: "441632960000", to: "447700900123",
                    callType: "mobile", startAt: start, answerAt: start + 2, endAt: start + 62, durationSeconds: 60, billedSeconds: 60,
                    cost: m(cost), finalStatus: 200)
            }
            let t0 = 1_700_000_000.0  // 2023-11-14T22:13:20Z
            try await store.recordCall(cdr("c1", tag: "CUST001-AB384720", start: t0, cost: "0.123456"))
            try await store.recordCall(cdr("c2", trunk: "L002", tag: "CUST002-AB384720", start: t0 + 3600, cost: "0.05"))
            try await store.recordCall(cdr("c3", tag: nil, start: t0 + 7200, cost: "0"))
            try await store.recordCall(cdr("c4", account: "920701", tag: "CUST001", start: t0 + 10, cost: "1"))

            func ids(_ query: String, key: String) async throws -> [String] {
                let r = try await client.call(.get, "/api/v1/cdrs\(query)", key: key)
                #expect(r.status == 200, "\(query): \(r.text)")
                return (r.json["cdrs"] as? [[String: Any]])?.compactMap { $0["call_id"] as? String } ?? []
            }
            // T1: by any term of the tag, not by the whole tag.
            #expect(try await ids("?tag=CUST001", key: keys.operatorKey) == ["c1", "c4"])
            #expect(try await ids("?tag=AB384720", key: keys.operatorKey) == ["c1", "c2"])
            #expect(try await ids("?tag=CUST001-AB384720", key: keys.operatorKey) == [])
            #expect(try await ids("?trunk=920700-L002", key: keys.operatorKey) == ["c2"])
            #expect(try await ids("?account=920700&from=\(Int(t0 + 1))&to=\(Int(t0 + 7200))", key: keys.operatorKey) == ["c2"])
            #expect(try await ids("?from=2023-11-14T22:13:20Z&to=2023-11-14T23:13:21%2B00:00", key: keys.operatorKey) == ["c1", "c4", "c2"])
            #expect(try await ids("?from=2023-11-14T23:13:20.000%2B01:00&limit=1", key: keys.operatorKey) == ["c1"])
            // An account key sees its own account's CDRs only.
            #expect(try await ids("?tag=CUST001", key: keys.acme) == ["c1"])
            #expect(try await ids("", key: keys.other) == ["c4"])
            #expect(try await client.call(.get, "/api/v1/cdrs?trunk=920701-L001", key: keys.acme).status == 403)

            let one = try await client.call(.get, "/api/v1/cdrs?tag=AB384720&limit=1", key: keys.operatorKey)
            let c = try #require((one.json["cdrs"] as? [[String: Any]])?.first)
            #expect(c["cost"] as? String == "0.123456")  // money as a decimal string, never a float
            #expect(c["start_at"] as? String == "2023-11-14T22:13:20Z" && c["answer_at"] as? String == "2023-11-14T22:13:22Z")
            #expect(c["tag"] as? String == "CUST001-AB384720" && c["trunk"] as? String == "920700-L001" && c["billed_seconds"] as? Int == 60)
            #expect(one.text.contains(#""cost":"0.123456""#))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func errorsAreJSONAndNameTheField(backend: StoreBackend) async throws {
        try await withAPI(backend) { client, keys, _ in
            let op = keys.operatorKey
            func expectError(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, status: Int, field: String,
                             message: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let r = try await client.call(method, uri, key: op, body: body)
                #expect(r.status == status, "\(method) \(uri): \(r.text)", sourceLocation: sourceLocation)
                #expect(r.errorField == field, "\(method) \(uri): \(r.text)", sourceLocation: sourceLocation)
                #expect(r.headers[.contentType] == "application/json", sourceLocation: sourceLocation)
                #expect(r.errorMessage?.isEmpty == false, sourceLocation: sourceLocation)
                if let message { #expect(r.errorMessage == message, sourceLocation: sourceLocation) }
            }
            // 400: not JSON, or not an object.
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "#, status: 400, field: "body")
            try await expectError(.put, "/api/v1/accounts/930000", "[1, 2]", status: 400, field: "body", message: "the body must be a JSON object")
            try await expectError(.put, "/api/v1/accounts/930000", nil, status: 400, field: "body")
            try await expectError(.put, "/api/v1/accounts/930000", String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000),
                                  status: 400, field: "body")
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "currency": "GBP", "credit_limit": 1e999}"#, status: 400, field: "body")
            try await expectError(.put, "/api/v1/rate-decks/huge", #"{"currency": "GBP", "rates": [""# + String(repeating: " ", count: 5 << 20) + "]}",
                                  status: 413, field: "body")
            // 422: each names the field.
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "currency": "pounds"}"#, status: 422, field: "currency",
                                  message: "'pounds' is not a currency code such as GBP")
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "currency": "GBP", "credit_limit": 1.5}"#, status: 422,
                                  field: "credit_limit", message: "write amounts as strings, e.g. \"0.0125\"")
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "currency": "GBP", "credit_limit": "1.0000001"}"#, status: 422,
                                  field: "credit_limit")
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "currency": "GBP", "limits": {"rate": {"calls": 5}}}"#,
                                  status: 422, field: "limits.rate.seconds", message: "is required")
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "currency": "GBP", "colour": "red"}"#, status: 422, field: "colour")
            try await expectError(.put, "/api/v1/accounts/930000", #"{"name": "A", "currency": "GBP", "rate_deck": "none"}"#, status: 422, field: "rate_deck")
            try await expectError(.put, "/api/v1/accounts/93-0000", #"{"name": "A", "currency": "GBP"}"#, status: 422, field: "id")
            try await expectError(.put, "/api/v1/accounts/920700", #"{"name": "A", "currency": "EUR"}"#, status: 422, field: "currency")
            try await expectError(.put, "/api/v1/trunks/920700-L1", #"{"source_addresses": ["192.0.2.1", "10.0.0.300"]}"#, status: 422,
                                  field: "source_addresses[1]", message: "'10.0.0.300' is not an IP address or CIDR block")
            try await expectError(.put, "/api/v1/trunks/920700-L1", #"{"password": "longenough"}"#, status: 422, field: "username")
            try await expectError(.put, "/api/v1/trunks/920700-L1", #"{"username": "u", "password": "short"}"#, status: 422, field: "password")
            try await expectError(.put, "/api/v1/trunks/920700-L1", #"{"limits": {"low_balance": {"below": "1"}}}"#, status: 422,
                                  field: "limits.low_balance")
            try await expectError(.put, "/api/v1/trunks/bad", #"{}"#, status: 422, field: "id")
            try await expectError(.put, "/api/v1/rate-decks/d", #"{"currency": "GBP", "rates": [{"prefix": "44"}]}"#, status: 422,
                                  field: "rates[0].per_minute", message: "is required")
            try await expectError(.put, "/api/v1/rate-decks/d", #"{"currency": "GBP", "rates": [{"prefix": "44", "per_minute": "1", "increments": "60"}]}"#,
                                  status: 422, field: "rates[0].increments")
            try await expectError(.put, "/api/v1/rate-decks/d", #"{"currency": "GBP"}"#, status: 422, field: "rates")
            try await expectError(.put, "/api/v1/blacklists/platform", #"{"prefixes": ["44", "44x"]}"#, status: 422, field: "prefixes[1]")
            // A whole JSON number is an exact amount: accepted; a fraction is not.
            #expect(try await client.call(.post, "/api/v1/accounts/920700/topups", key: op, body: #"{"amount": 10}"#).json["balance"] as? String == "20.00")
            try await expectError(.post, "/api/v1/accounts/920700/topups", #"{"amount": 0.1}"#, status: 422, field: "amount")
            try await expectError(.post, "/api/v1/accounts/920700/topups", #"{"amount": "0"}"#, status: 422, field: "amount")
            try await expectError(.post, "/api/v1/accounts/920700/topups", #"{"amount": "ten"}"#, status: 422, field: "amount")
            try await expectError(.get, "/api/v1/cdrs?acount=920700", status: 422, field: "acount")
            try await expectError(.get, "/api/v1/cdrs?from=yesterday", status: 422, field: "from")
            try await expectError(.get, "/api/v1/cdrs?from=2024-02-30T00:00:00Z", status: 422, field: "from")
            try await expectError(.get, "/api/v1/cdrs?from=200&to=100", status: 422, field: "to")
            try await expectError(.get, "/api/v1/cdrs?limit=0", status: 422, field: "limit")
            // 404: unknown objects and routes; 405: a known route with another method.
            try await expectError(.get, "/api/v1/accounts/404404", status: 404, field: "id")
            try await expectError(.post, "/api/v1/accounts/404404/topups", #"{"amount": "1"}"#, status: 404, field: "id")
            try await expectError(.get, "/api/v1/accounts/404404/trunks", status: 404, field: "id")
            try await expectError(.put, "/api/v1/trunks/404404-L1", #"{}"#, status: 404, field: "id")
            try await expectError(.get, "/api/v1/nothing-here", status: 404, field: "path")
            try await expectError(.get, "/api/v2/accounts", status: 404, field: "path")
            // "/" is the control pages' (sign-in): HTML, not the API's JSON.
            let root = try await client.call(.get, "/", key: nil)
            #expect(root.status == 303 && root.headers[.location] == "/texts")
            try await expectError(.delete, "/api/v1/accounts/920700", status: 405, field: "method")
        }
    }

    @Test func openAPIDocumentDescribesEveryRoute() async throws {
        try await withAPI(.sqlite) { client, keys, store in
            let r = try await client.call(.get, "/api/v1/openapi.yaml", key: nil)  // no key needed
            #expect(r.status == 200 && r.headers[.contentType]?.hasPrefix("application/yaml") == true)
            let doc = try #require(try Yams.load(yaml: r.text) as? [String: Any])
            #expect(doc["openapi"] as? String == "3.1.0")
            let paths = try #require(doc["paths"] as? [String: [String: Any]])
            var documented = Set<String>()
            for (path, item) in paths {
                for method in ["get", "put", "post", "delete", "patch"] where item[method] != nil { documented.insert("\(method.uppercased()) \(path)") }
            }
            // Exactly the routes the router has (Hummingbird's :x is OpenAPI's {x}).
            let server = WebAPIServer(store: store, host: "127.0.0.1", port: 0, logger: .init(label: "t"))
            // (The control pages share the router; they are not API operations.)
            let registered = Set(server.makeRouter().routes.map { route in
                let path = route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                return "\(route.method) /" + path.joined(separator: "/")
            }.filter { $0.contains(" /api/") })
            #expect(registered.count == WebAPIServer.routes.count)
            #expect(documented == registered, "documented but not served: \(documented.subtracting(registered)); served but not documented: \(registered.subtracting(documented))")
            // Every operation documents auth errors, the error schema is there, and bearer auth is the scheme.
            let components = try #require(doc["components"] as? [String: Any])
            #expect((components["schemas"] as? [String: Any])?["Error"] != nil)
            #expect(((components["securitySchemes"] as? [String: Any])?["apiKey"] as? [String: Any])?["scheme"] as? String == "bearer")
            for (path, item) in paths where path != "/api/v1/openapi.yaml" {
                for (method, op) in item where ["get", "put", "post", "delete"].contains(method) {
                    let responses = (op as? [String: Any])?["responses"] as? [String: Any]
                    #expect(responses?["401"] != nil, "\(method) \(path) does not document 401")
                }
            }
            // A full OpenAPI 3.1 validation (scripts/test.sh installs openapi-spec-validator).
            let file = NSTemporaryDirectory() + "switchboard-openapi-\(UUID().uuidString).yaml"
            try r.text.write(toFile: file, atomically: true, encoding: .utf8)
            defer { unlink(file) }
            let validator = try ExternalProcess("python3", [
                "-c", "import openapi_spec_validator as v, yaml, sys; v.validate(yaml.safe_load(open(sys.argv[1]))); print('valid')", file,
            ])
            let (status, text, _) = await validator.wait(timeout: .seconds(60))
            #expect(status == 0 && text.contains("valid"), "openapi-spec-validator: \(text.suffix(2000))")
            _ = keys
        }
    }
}
