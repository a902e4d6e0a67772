import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Store
import Testing
import TestSupport
import WebAPI

extension WebAPITests {
    /// Issue 5 §2: failed texts are visible in the control pages. Headless
    /// Chromium signs in with an account's API key (a wrong key is refused)
    /// and sees that account's texts with state, attempts, SIP code and last
    /// error, failed ones under the failed filter, never a text's body nor
    /// another account's texts.
    @Test func controlPagesShowTextsAndTheFailedOnesInABrowser() async throws {
        try await withAPI(.sqlite) { client, keys, store in
            let a = "8944101234567890128", b = "8944101234567890136"
            func put(_ id: String, _ direction: StoredText.Direction, _ sim: String, _ account: String, body: String) async throws {
                _ = try await store.acceptText(StoredText(id: id, direction: direction, iccid: sim, accountID: account, peer: "447700900123",
                                                          body: body, segments: 1, receivedAt: Date().timeIntervalSince1970), dedupeKey: id)
            }
            try await put("txt_ok", .fromHandset, a, "920700", body: "delivered words")
            try await put("txt_bad", .toHandset, a, "920700", body: "secret code 4711")
            try await put("txt_waiting", .toHandset, a, "920700", body: "queued words")
            try await put("txt_other", .fromHandset, b, "920701", body: "another account's")
            try await store.markTextDelivered(id: "txt_ok", at: Date().timeIntervalSince1970, attempts: 1)
            try await store.markTextAttemptFailed(id: "txt_bad", attempts: 1, error: "mobile core answered 404 Not Found",
                                                  nextAttemptAt: nil, sipCode: 404)

            let port = try #require(client.port)
            let browser = try ExternalProcess("python3", [fixture("control_pages_browser.py"), "--base", "http://127.0.0.1:\(port)",
                                                          "--key", keys.acme])
            let (status, output, timedOut) = await browser.wait(timeout: .seconds(90))
            #expect(status == 0 && !timedOut, "browser: \(output.suffix(3000))")
            let json = output.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any] ?? [:]
            #expect(json["unsigned_redirected_to"] as? String == "/login", "\(json)")
            #expect((json["wrong_key_alert"] as? String)?.contains("unknown, deleted or wrong") == true, "\(json)")
            #expect(json["signed_in_at"] as? String == "/texts")
            let all = (json["all"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(Set(all) == ["txt_ok", "txt_bad", "txt_waiting"], "account 920700's texts only: \(all)")
            let failed = json["failed"] as? [[String: Any]] ?? []
            #expect(failed.compactMap { $0["id"] as? String } == ["txt_bad"], "\(failed)")
            let cells = failed.first?["cells"] as? [String] ?? []
            #expect(cells.contains("404") && cells.contains("mobile core answered 404 Not Found") && cells.contains("failed"), "\(cells)")
            let text = json["page_text"] as? String ?? ""
            #expect(!text.contains("secret code") && !text.contains("queued words"), "a text's body was shown")
        }
    }

    /// The pages without a session send the browser to sign in; the API is unchanged.
    @Test func controlPagesNeedASignIn() async throws {
        try await withAPI(.sqlite) { client, keys, _ in
            let r = try await client.execute(uri: "/texts", method: .get)
            #expect(r.status == .seeOther && r.headers[.location] == "/login")
            let forged = try await client.execute(uri: "/texts", method: .get, headers: [.cookie: "sb_session=" + String(repeating: "a", count: 64)])
            #expect(forged.status == .seeOther && forged.headers[.location] == "/login")
            let login = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                 body: ByteBuffer(string: "key=\(keys.acme)"))
            #expect(login.status == .seeOther && login.headers[.location] == "/texts")
            let cookie = login.headers[.setCookie] ?? ""
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.hasPrefix("sb_session="), "\(cookie)")
            let page = try await client.execute(uri: "/texts", method: .get, headers: [.cookie: String(cookie.split(separator: ";")[0])])
            #expect(page.status == .ok && page.headers[.contentType]?.hasPrefix("text/html") == true)
            #expect(String(buffer: page.body).contains("Account 920700"))
            let api = try await client.call(.get, "/api/v1/texts", key: nil)
            #expect(api.status == 401, "the API still needs a key: \(api.text)")
        }
    }
}
