import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SIPAuth
import Store

/// Signed-in browser sessions of the control pages: a random token in an
/// HttpOnly, SameSite=Strict cookie, mapped to the caller whose API key
/// signed in. Kept in memory on the node (a restart signs everyone out).
actor PageSessions {
    static let lifetime: Double = 12 * 3600
    var sessions: [String: (caller: Caller, expires: Double)] = [:]

    func open(_ caller: Caller, now: Double = Date().timeIntervalSince1970) -> String {
        if sessions.count >= 10_000 { sessions = sessions.filter { $0.value.expires > now } }
        var rng = SystemRandomNumberGenerator()
        let token = hex((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
        sessions[token] = (caller, now + Self.lifetime)
        return token
    }

    func caller(_ token: String, now: Double = Date().timeIntervalSince1970) -> Caller? {
        guard let s = sessions[token] else { return nil }
        guard s.expires > now else { sessions[token] = nil; return nil }
        return s.caller
    }

    func close(_ token: String) { sessions[token] = nil }
}

/// The web control pages (SPEC.md "Operating it"), first slice: sign in with
/// an API key, and the texts page, where queued, delivered and failed texts
/// are seen with their attempts, last error and SIP code (issue 5 §2).
/// Server-rendered HTML, no script; every value is escaped.
struct ControlPages: Sendable {
    let store: Store
    let sessions = PageSessions()
    static let cookie = "sb_session"

    func register(on router: Router<APIRequestContext>) {
        router.get("/") { _, _ in Self.redirect("/texts") }
        router.get("/login") { _, _ in Self.page("Sign in", Self.loginForm(error: nil)) }
        router.post("/login") { request, context in try await signIn(request, context) }
        router.post("/logout") { request, _ in
            if let token = Self.sessionToken(request) { await sessions.close(token) }
            var r = Self.redirect("/login")
            r.headers[.setCookie] = "\(Self.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            return r
        }
        router.get("/texts") { request, _ in try await textsPage(request) }
    }

    func signIn(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 16 * 1024)
        let key = (try? FormBody.fields(Array(body.readableBytesView)))?["key"]?.trimmingCharacters(in: .whitespaces) ?? ""
        let caller: Caller
        do { caller = try await APIKeys.authenticate("Bearer \(key)", store: store) } catch {
            var r = Self.page("Sign in", Self.loginForm(error: "That API key is unknown, deleted or wrong."))
            r.status = .unauthorized
            return r
        }
        let token = await sessions.open(caller)
        var r = Self.redirect("/texts")
        r.headers[.setCookie] = "\(Self.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(PageSessions.lifetime))"
        return r
    }

    func textsPage(_ request: Request) async throws -> Response {
        guard let token = Self.sessionToken(request), let caller = await sessions.caller(token) else { return Self.redirect("/login") }
        var q = TextQuery(limit: 500, newestFirst: true)
        q.accountID = caller.accountID
        let stateFilter = request.uri.queryParameters["state"].flatMap { StoredText.State(rawValue: String($0)) }
        q.state = stateFilter
        let texts = try await store.texts(q)
        var html = "<nav>"
        for (label, value) in [("All", nil), ("Queued", "queued"), ("Delivered", "delivered"), ("Failed", "failed")] as [(String, String?)] {
            let current = stateFilter?.rawValue == value
            html += "<a href=\"/texts\(value.map { "?state=\($0)" } ?? "")\"\(current ? " aria-current=\"page\"" : "")>\(label)</a> "
        }
        html += "</nav><p>\(Self.escape(caller.accountID.map { "Account \($0)" } ?? "Operator")): \(texts.count) text\(texts.count == 1 ? "" : "s")\(stateFilter.map { " \($0.rawValue)" } ?? "").</p>"
        html += "<table><thead><tr><th>Received (UTC)</th><th>Direction</th><th>SIM</th><th>Peer</th><th>State</th><th>Attempts</th>"
        html += "<th>SIP code</th><th>Last error</th><th>Id</th></tr></thead><tbody>"
        for t in texts {
            html += "<tr data-id=\"\(Self.escape(t.id))\" data-state=\"\(t.state.rawValue)\">"
            for cell in [RFC3339.format(t.receivedAt), t.direction.rawValue.replacingOccurrences(of: "_", with: " "), t.iccid, t.peer,
                         t.state.rawValue, "\(t.attempts)", t.sipCode.map(String.init) ?? "", t.lastError ?? "", t.id] {
                html += "<td>\(Self.escape(cell))</td>"
            }
            html += "</tr>"
        }
        html += "</tbody></table>"
        return Self.page("Texts", html, signedIn: true)
    }

    // MARK: HTML

    static func sessionToken(_ request: Request) -> String? {
        guard let header = request.headers[.cookie] else { return nil }
        for part in header.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == cookie, kv[1].count == 64 { return String(kv[1]) }
        }
        return nil
    }

    static func loginForm(error: String?) -> String {
        (error.map { "<p role=\"alert\">\(escape($0))</p>" } ?? "")
            + """
            <form method="post" action="/login">
            <label for="key">API key</label>
            <input id="key" name="key" type="password" autocomplete="off" required placeholder="sbk_…">
            <button type="submit">Sign in</button>
            </form>
            <p>Create a key with <code>switchboard api-key create [--account ID]</code>.</p>
            """
    }

    static func page(_ title: String, _ body: String, signedIn: Bool = false) -> Response {
        let signOut = signedIn ? "<form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>" : ""
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title)) · Switchboard</title>
            <style>body{font:14px system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
            tr[data-state=failed]{background:#fdd}nav a{margin-right:.75rem}[aria-current]{font-weight:bold}header{display:flex;gap:1rem;align-items:center}</style>
            </head><body><header><h1>\(escape(title))</h1>\(signOut)</header>
            \(body)
            </body></html>
            """
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        // No script anywhere; styles only inline; forms only to this origin; never framed.
        if let csp = HTTPField.Name("Content-Security-Policy") {
            headers[csp] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
        }
        if let nosniff = HTTPField.Name("X-Content-Type-Options") { headers[nosniff] = "nosniff" }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func redirect(_ to: String) -> Response {
        Response(status: .seeOther, headers: [.location: to, .cacheControl: "no-store"])
    }

    /// Text for HTML content and attribute values.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
