import CallControl
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Provisioning
import Rating
import ServiceLifecycle
import SIMs
import Store

/// The per-request context: who is calling, once the key is checked.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var caller: Caller?
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        caller = nil
    }
    /// Request bodies are small JSON documents (a rate deck of ~20,000 rates fits).
    public var maxUploadSize: Int { 4 * 1024 * 1024 }
}

/// The JSON REST API under `/api/v1` (SPEC.md "Operating it"): accounts,
/// top-ups, trunks, rate decks, blacklists, CDRs, SIMs; described by the OpenAPI
/// document served at `/api/v1/openapi.yaml`.
///
///     let server = WebAPIServer(store: store, realm: "switchboard", host: "127.0.0.1", port: 8080, logger: logger)
///     let api = server.makeService()
///     try await api.run()                          // until `api.stop()` (graceful) or cancellation
///     // or, in a ServiceGroup with other services:
///     let app = server.makeApplication()           // a ServiceLifecycle Service
public struct WebAPIServer: Sendable {
    public let store: Store
    /// The SIP digest realm trunk passwords are hashed for: the realm the node challenges with.
    public let realm: String
    public let host: String
    public let port: Int
    public let logger: Logger
    /// Encrypts SIM passwords (the node's `sims.password_key`); without one,
    /// a SIM's password cannot be set (503).
    public let simPasswordCipher: SIMPasswordCipher?
    /// The text gateway to handsets (S10).
    public let textGateway: TextGatewaySettings

    public init(store: Store, realm: String = "switchboard", host: String, port: Int, logger: Logger,
                simPasswordCipher: SIMPasswordCipher? = nil, textGateway: TextGatewaySettings = TextGatewaySettings(mobileCoreConfigured: false)) {
        self.store = store; self.realm = realm; self.host = host; self.port = port; self.logger = logger
        self.simPasswordCipher = simPasswordCipher; self.textGateway = textGateway
    }

    /// The routes, also used to answer 405 for a known path with another method.
    public static let routes: [(method: HTTPRequest.Method, path: String)] = [
        (.get, "/api/v1/openapi.yaml"),
        (.get, "/api/v1/accounts"),
        (.get, "/api/v1/accounts/{id}"),
        (.put, "/api/v1/accounts/{id}"),
        (.post, "/api/v1/accounts/{id}/topups"),
        (.get, "/api/v1/accounts/{id}/trunks"),
        (.get, "/api/v1/trunks/{id}"),
        (.put, "/api/v1/trunks/{id}"),
        (.delete, "/api/v1/trunks/{id}"),
        (.get, "/api/v1/rate-decks/{name}"),
        (.put, "/api/v1/rate-decks/{name}"),
        (.get, "/api/v1/blacklists/{scope}"),
        (.put, "/api/v1/blacklists/{scope}"),
        (.get, "/api/v1/cdrs"),
        (.get, "/api/v1/sims"),
        (.get, "/api/v1/sims/{iccid}"),
        (.put, "/api/v1/sims/{iccid}"),
        (.delete, "/api/v1/sims/{iccid}"),
        (.get, "/api/v1/sims/{iccid}/registration"),
        (.get, "/api/v1/texts"),
        (.post, "/api/v1/texts"),
        (.get, "/api/v1/texts/{id}"),
    ]

    /// The router with every route and the auth/error/log middleware.
    public func makeRouter() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: APIMiddleware(store: store, logger: logger))
        // The control pages share the server; they sign in with the same keys.
        ControlPages(store: store).register(on: router)
        let h = Handlers(store: store, realm: realm, simCipher: simPasswordCipher, texts: textGateway)
        for (method, path) in Self.routes {
            // OpenAPI's {name} is Hummingbird's :name.
            let hbPath = path.split(separator: "/").map { $0.hasPrefix("{") ? ":" + $0.dropFirst().dropLast() : $0 }.joined(separator: "/")
            router.on(RouterPath("/" + hbPath), method: method) { request, context in
                try await h.handle(method, path, request, context)
            }
        }
        return router
    }

    /// A Hummingbird application (a ServiceLifecycle `Service`) serving the API.
    /// `onServerRunning` receives the bound port (useful with port 0).
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol {
        let logger = self.logger
        return Application(
            router: makeRouter(),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "switchboard"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                logger.info("REST API listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
                await onServerRunning(bound)
            },
            logger: logger)
    }

    /// The API as a service that can be stopped gracefully (a node's stop).
    public func makeService() -> WebAPIService { WebAPIService(makeApplication(), logger: logger) }
}

/// The REST API running in its own service group, so that a stopping node
/// can stop it gracefully: no new connections, and each request already
/// being read or handled is answered before its connection closes, where
/// cancelling would cut it off (a provisioning request would get no answer
/// whether or not it was stored).
public final class WebAPIService: Sendable {
    let group: ServiceGroup

    init(_ application: some ApplicationProtocol, logger: Logger) {
        group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [application], logger: logger))
    }

    /// Serves until `stop` (or cancellation).
    public func run() async throws { try await group.run() }

    /// Stops taking connections and lets requests in flight finish; `run` returns once they have.
    public func stop() async { await group.triggerGracefulShutdown() }
}

/// Authenticates (except for the OpenAPI document), turns every error into
/// the JSON error body, and logs one line per request — never the key's
/// secret or a request body.
struct APIMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let store: Store
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // The control pages keep their own sessions (cookies) and answer in HTML.
        guard request.uri.path.hasPrefix("/api/") else { return try await next(request, context) }
        var context = context
        let response: Response
        var problem: String?
        do {
            let path = request.uri.path
            if request.method == .post && path == "/api/v1/texts" {
                // The text gateway also takes the account's VoIP credentials
                // (Basic, or username/password fields the handler checks).
                let header = request.headers[.authorization]
                if let (user, password) = try VoIPCredentials.basic(header) {
                    context.caller = try await VoIPCredentials.authenticate(username: user, password: password, store: store)
                } else if header != nil {
                    context.caller = try await APIKeys.authenticate(header, store: store)
                }
            } else if !(request.method == .get && path == "/api/v1/openapi.yaml") {
                context.caller = try await APIKeys.authenticate(request.headers[.authorization], store: store)
            }
            response = try await next(request, context)
        } catch {
            let e = Self.apiError(error, request: request)
            problem = e.status.code >= 500 ? "\(error)" : e.message
            response = try e.response(from: request, context: context)
        }
        var metadata: Logger.Metadata = [
            "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
        ]
        if let caller = context.caller { metadata["key"] = "\(caller.keyID)" }
        if let problem { metadata["problem"] = "\(problem)" }
        let level: Logger.Level = response.status.code >= 500 ? .error : response.status.code >= 400 ? .notice : .info
        logger.log(level: level, "api request", metadata: metadata)
        return response
    }

    static func apiError(_ error: any Error, request: Request) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as ProvisioningError: return APIError(e)
        case StoreError.invalid(let field, let reason): return .invalid(field, reason)
        case StoreError.notFound(let what): return .notFound("id", "\(what) does not exist")
        case StoreError.forbidden(let field, let reason): return .forbidden(field, reason)
        case let e as HTTPError where e.status == .notFound:
            let path = request.uri.path
            let allowed = WebAPIServer.routes.filter { matches($0.path, path) }.map(\.method.rawValue)
            if !allowed.isEmpty {
                var e = APIError(.methodNotAllowed, field: "method", "\(request.method) is not allowed on \(path) (allowed: \(allowed.joined(separator: ", ")))")
                e.headers[.allow] = allowed.joined(separator: ", ")
                return e
            }
            return .notFound("path", "no API route \(path.prefix(200)); see /api/v1/openapi.yaml")
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, field: "body", "the request body is larger than 4 MiB")
        case let e as HTTPError where e.status == .contentTooLarge:
            return APIError(.contentTooLarge, field: "body", "the request body is larger than 4 MiB")
        case let e as HTTPError where e.status.code < 500:
            return APIError(e.status, field: "request", e.body ?? e.status.reasonPhrase)
        default:
            return APIError(.internalServerError, field: "", "internal error; the server log has the details")
        }
    }

    /// Whether `path` fits the route pattern (`{x}` matches one non-empty segment).
    static func matches(_ pattern: String, _ path: String) -> Bool {
        let p = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let s = path.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == s.count else { return false }
        return zip(p, s).allSatisfy { $0.hasPrefix("{") ? !$1.isEmpty : $0 == $1 }
    }
}

/// The route handlers.
struct Handlers: Sendable {
    let store: Store
    let realm: String
    let simCipher: SIMPasswordCipher?
    let texts: TextGatewaySettings

    func handle(_ method: HTTPRequest.Method, _ route: String, _ request: Request, _ context: APIRequestContext) async throws -> Response {
        if route == "/api/v1/openapi.yaml" {
            return Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        if method == .post && route == "/api/v1/texts" {
            var request = request
            return try await postText(&request, context)
        }
        guard let caller = context.caller else { throw APIError.unauthorized("an API key is required") }
        func param(_ name: String) throws(APIError) -> String {
            guard let raw = context.parameters.get(name), let v = raw.removingPercentEncoding, !v.isEmpty else {
                throw APIError.notFound(name, "the path has no \(name)")
            }
            return v
        }
        var request = request
        switch (method, route) {
        case (.get, "/api/v1/accounts"): return try await listAccounts(caller)
        case (.get, "/api/v1/accounts/{id}"): return try await getAccount(try param("id"), caller)
        case (.put, "/api/v1/accounts/{id}"):
            return try await putAccount(try param("id"), try await body(&request, context), caller)
        case (.post, "/api/v1/accounts/{id}/topups"):
            return try await topUp(try param("id"), try await body(&request, context), caller)
        case (.get, "/api/v1/accounts/{id}/trunks"): return try await listTrunks(try param("id"), caller)
        case (.get, "/api/v1/trunks/{id}"): return try await getTrunk(try param("id"), caller)
        case (.put, "/api/v1/trunks/{id}"): return try await putTrunk(try param("id"), try await body(&request, context), caller)
        case (.delete, "/api/v1/trunks/{id}"): return try await deleteTrunk(try param("id"), caller)
        case (.get, "/api/v1/rate-decks/{name}"): return try await getRateDeck(try param("name"), caller)
        case (.put, "/api/v1/rate-decks/{name}"):
            return try await putRateDeck(try param("name"), try await body(&request, context), caller)
        case (.get, "/api/v1/blacklists/{scope}"): return try await getBlacklist(try param("scope"), caller)
        case (.put, "/api/v1/blacklists/{scope}"):
            return try await putBlacklist(try param("scope"), try await body(&request, context), caller)
        case (.get, "/api/v1/cdrs"):
            return try await cdrs(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, caller)
        case (.get, "/api/v1/sims"):
            return try await listSIMs(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, caller)
        case (.get, "/api/v1/sims/{iccid}"): return try await getSIM(try param("iccid"), caller)
        case (.put, "/api/v1/sims/{iccid}"): return try await putSIM(try param("iccid"), try await body(&request, context), caller)
        case (.delete, "/api/v1/sims/{iccid}"): return try await deleteSIM(try param("iccid"), caller)
        case (.get, "/api/v1/sims/{iccid}/registration"): return try await simRegistration(try param("iccid"), caller)
        case (.get, "/api/v1/texts/{id}"): return try await getText(try param("id"), caller)
        case (.get, "/api/v1/texts"):
            return try await listTexts(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, caller)
        default: throw HTTPError(.notFound)
        }
    }

    func body(_ request: inout Request, _ context: APIRequestContext) async throws -> [String: Any] {
        let bytes = try await request.collectBody(upTo: context.maxUploadSize)
        return try JSONIn.object(bytes)
    }

    // MARK: Accounts

    func existingAccount(_ id: String, field: String = "id") async throws -> Account {
        try await existingAccountRecord(id, field: field).account
    }

    func existingAccountRecord(_ id: String, field: String = "id") async throws -> AccountRecord {
        guard let r = try await store.accountRecord(id: id) else { throw APIError.notFound(field, "account '\(id.prefix(64))' does not exist") }
        return r
    }

    func listAccounts(_ caller: Caller) async throws -> Response {
        let records: [AccountRecord]
        if let own = caller.accountID {
            records = try await store.accountRecord(id: own).map { [$0] } ?? []
        } else {
            records = try await store.accountRecords()
        }
        return try JSONOut.response(Out.Accounts(accounts: records.map(Out.Account.init)))
    }

    func getAccount(_ id: String, _ caller: Caller) async throws -> Response {
        try caller.mayAccess(account: id, field: "id")
        return try JSONOut.response(Out.Account(try await existingAccountRecord(id)))
    }

    func putAccount(_ rawID: String, _ b: [String: Any], _ caller: Caller) async throws -> Response {
        // Balance, credit limit and limits are the operator's: an account key
        // could otherwise raise its own credit.
        try caller.mustBeOperator("id", "creating or changing an account")
        let id = try FieldParser.accountID(rawID, "id")
        try FieldParser.onlyKnownKeys(b, ["balance", "cli_policy", "credit_limit", "currency", "id", "limits", "name", "rate_deck"], "")
        if let bodyID = b["id"], !FieldParser.isNull(bodyID), (bodyID as? String) != id {
            throw APIError.invalid("id", "the body's id must match the path's ('\(id)') or be left out")
        }
        let before = try await store.account(id: id)
        let currency = try FieldParser.currency(b["currency"], "currency")
        if let before, before.currency != currency {
            throw APIError.invalid("currency", "account \(id) keeps its balance and CDRs in \(before.currency); its currency cannot change")
        }
        // Set on creation only; afterwards top-ups and calls move it (a balance sent with an update is ignored).
        let balance = try FieldParser.money(FieldParser.isNull(b["balance"]) ? "0" : b["balance"], "balance", allowNegative: true)
        let account = Account(
            id: id, name: try FieldParser.string(b["name"], "name"), currency: currency, balance: before?.balance ?? balance,
            creditLimit: try FieldParser.money(FieldParser.isNull(b["credit_limit"]) ? "0" : b["credit_limit"], "credit_limit"),
            cliPolicy: try FieldParser.cliPolicy(b["cli_policy"], "cli_policy"))
        let deck = try FieldParser.optionalString(b["rate_deck"], "rate_deck")
        if let deck, try await store.rateDeck(named: deck) == nil {
            throw APIError.invalid("rate_deck", "rate deck '\(deck.prefix(64))' does not exist (create it with PUT /api/v1/rate-decks/\(deck.prefix(64)))")
        }
        let limits = try FieldParser.limits(b["limits"], "limits", account: true)
        try await store.upsertAccount(account)
        try await store.setRateDeck(accountID: id, deck: deck)
        try await store.setLimits(accountID: id, limits)
        return try JSONOut.response(Out.Account(try await existingAccountRecord(id)), status: before == nil ? .created : .ok)
    }

    func topUp(_ id: String, _ b: [String: Any], _ caller: Caller) async throws -> Response {
        try caller.mustBeOperator("id", "topping up a balance")
        try FieldParser.onlyKnownKeys(b, ["amount"], "")
        let amount = try FieldParser.money(b["amount"], "amount", allowNegative: true)
        guard amount != 0 else { throw APIError.invalid("amount", "must not be zero (a positive amount adds, a negative one takes away)") }
        let account = try await existingAccount(id)
        let balance = try await store.adjustBalance(accountID: id, by: amount)
        return try JSONOut.response(Out.Balance(account: id, currency: account.currency, balance: Out.money(balance)))
    }

    // MARK: Trunks

    func listTrunks(_ accountID: String, _ caller: Caller) async throws -> Response {
        try caller.mayAccess(account: accountID, field: "id")
        _ = try await existingAccount(accountID)
        return try JSONOut.response(Out.Trunks(trunks: try await store.trunks(accountID: accountID).map(Out.Trunk.init)))
    }

    func getTrunk(_ id: String, _ caller: Caller) async throws -> Response {
        guard let ref = TrunkReference(id) else { throw APIError.notFound("id", "'\(id.prefix(64))' is not a trunk ID (ACCOUNT-NAME)") }
        try caller.mayAccess(account: ref.account, field: "id")
        guard let t = try await store.trunk(id: id) else { throw APIError.notFound("id", "trunk '\(id)' does not exist") }
        return try JSONOut.response(Out.Trunk(t))
    }

    func putTrunk(_ id: String, _ b: [String: Any], _ caller: Caller) async throws -> Response {
        guard let ref = TrunkReference(id), ref.account.allSatisfy(\.isASCII) else {
            throw APIError.invalid("id", "'\(id.prefix(64))' is not a trunk ID: ACCOUNT-NAME (account: letters and digits; name: letters, digits, '_', '-')")
        }
        try caller.mayAccess(account: ref.account, field: "id")
        _ = try FieldParser.trunkName(ref.trunk, "id")
        _ = try await existingAccount(ref.account)
        try FieldParser.onlyKnownKeys(b, ["account", "id", "limits", "name", "password", "source_addresses", "username"], "")
        for (key, expected) in [("id", id), ("account", ref.account), ("name", ref.trunk)] {
            if let v = b[key], !FieldParser.isNull(v), (v as? String) != expected {
                throw APIError.invalid(key, "must match the path ('\(expected)') or be left out")
            }
        }
        var trunk = Trunk(accountID: ref.account, name: ref.trunk,
                          sourceAddresses: try FieldParser.sourceAddresses(b["source_addresses"], "source_addresses"),
                          limits: try FieldParser.limits(b["limits"], "limits", account: false))
        let before = try await store.trunk(id: id)
        let username = try FieldParser.optionalString(b["username"], "username")
        if let username, FieldParser.isNull(b["password"]), let before, before.username == username, before.realm == realm,
           before.ha1MD5 != nil || before.ha1SHA256 != nil {
            // Same user name, no new password: keep the stored digests.
            trunk.username = username; trunk.realm = before.realm; trunk.ha1MD5 = before.ha1MD5; trunk.ha1SHA256 = before.ha1SHA256
        } else if let credentials = try FieldParser.credentials(username: b["username"], password: b["password"], "") {
            trunk = ProvisioningFile.TrunkEntry.hashed(trunk, username: credentials.username, password: credentials.password, realm: realm)
        }
        if let u = trunk.username, try await store.trunks().contains(where: { $0.username == u && $0.id != id }) {
            throw APIError.invalid("username", "user name '\(u.prefix(64))' is already used by another trunk; user names are unique across the platform")
        }
        try await store.putTrunk(trunk)
        guard let saved = try await store.trunk(id: id) else { throw APIError.notFound("id", "trunk '\(id)' does not exist") }
        return try JSONOut.response(Out.Trunk(saved), status: before == nil ? .created : .ok)
    }

    func deleteTrunk(_ id: String, _ caller: Caller) async throws -> Response {
        guard let ref = TrunkReference(id) else { throw APIError.notFound("id", "'\(id.prefix(64))' is not a trunk ID (ACCOUNT-NAME)") }
        try caller.mayAccess(account: ref.account, field: "id")
        guard try await store.deleteTrunk(id: id) else { throw APIError.notFound("id", "trunk '\(id)' does not exist") }
        try await store.setBlacklist(.trunk(id), prefixes: [])  // its blacklist goes with it
        return Response(status: .noContent)
    }

    // MARK: Rate decks

    func getRateDeck(_ name: String, _ caller: Caller) async throws -> Response {
        try caller.mustBeOperator("name", "reading rate decks")
        guard let deck = try await store.rateDeck(named: name) else { throw APIError.notFound("name", "rate deck '\(name.prefix(64))' does not exist") }
        return try JSONOut.response(Out.RateDeck(deck))
    }

    func putRateDeck(_ name: String, _ b: [String: Any], _ caller: Caller) async throws -> Response {
        try caller.mustBeOperator("name", "changing rate decks")
        guard name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }) else {
            throw APIError.invalid("name", "'\(name.prefix(64))' is not a rate deck name (1–64 letters, digits, '_', '-', '.')")
        }
        try FieldParser.onlyKnownKeys(b, ["currency", "name", "rates"], "")
        if let v = b["name"], !FieldParser.isNull(v), (v as? String) != name { throw APIError.invalid("name", "must match the path ('\(name)') or be left out") }
        if FieldParser.isNull(b["rates"]) { throw APIError.invalid("rates", "is required (a list of rates; [] for none)") }
        let deck = try FieldParser.rateDeck(name: name, b, "")
        let existed = try await store.rateDeck(named: name) != nil
        try await store.putRateDeck(deck)
        guard let saved = try await store.rateDeck(named: name) else { throw APIError.notFound("name", "rate deck '\(name)' does not exist") }
        return try JSONOut.response(Out.RateDeck(saved), status: existed ? .ok : .created)
    }

    // MARK: Blacklists

    /// Parses and authorises a scope; 404 if it names no existing account or trunk.
    func scope(_ text: String, _ caller: Caller, writing: Bool) async throws -> BlacklistScope {
        let scope: BlacklistScope
        do { scope = try FieldParser.blacklistScope(text, "scope") } catch { throw APIError(error, status: .notFound) }
        switch scope {
        case .platform:
            try caller.mustBeOperator("scope", writing ? "changing the platform blacklist" : "reading the platform blacklist")
        case .account(let a):
            try caller.mayAccess(account: a, field: "scope")
            _ = try await existingAccount(a, field: "scope")
        case .trunk(let t):
            if let ref = TrunkReference(t) { try caller.mayAccess(account: ref.account, field: "scope") }
            guard try await store.trunk(id: t) != nil else { throw APIError.notFound("scope", "trunk '\(t.prefix(64))' does not exist") }
        }
        return scope
    }

    func getBlacklist(_ text: String, _ caller: Caller) async throws -> Response {
        let s = try await scope(text, caller, writing: false)
        return try JSONOut.response(Out.Blacklist(scope: s.description, prefixes: try await store.blacklist(s)))
    }

    func putBlacklist(_ text: String, _ b: [String: Any], _ caller: Caller) async throws -> Response {
        let s = try await scope(text, caller, writing: true)
        try FieldParser.onlyKnownKeys(b, ["prefixes", "scope"], "")
        if let v = b["scope"], !FieldParser.isNull(v), (v as? String) != s.description {
            throw APIError.invalid("scope", "must match the path ('\(s)') or be left out")
        }
        try await store.setBlacklist(s, prefixes: try FieldParser.prefixes(b["prefixes"], "prefixes"))
        return try JSONOut.response(Out.Blacklist(scope: s.description, prefixes: try await store.blacklist(s)))
    }

    // MARK: CDRs

    static let cdrParameters = ["account", "from", "limit", "tag", "to", "trunk"]

    /// A list query's parameters, each known, given once and not empty; else 422 naming it.
    static func checkedQuery(_ query: [(String, String)], known: [String]) throws(APIError) -> [(String, String)] {
        var seen = Set<String>()
        for (key, value) in query {
            guard known.contains(key) else {
                throw APIError.invalid(String(key.prefix(64)), "unknown query parameter (known: \(known.joined(separator: ", ")))")
            }
            guard seen.insert(key).inserted else { throw APIError.invalid(key, "is given more than once") }
            guard !value.isEmpty else { throw APIError.invalid(key, "is empty") }
        }
        return query
    }

    func cdrs(_ query: [(String, String)], _ caller: Caller) async throws -> Response {
        var q = CDRQuery()
        for (key, value) in try Self.checkedQuery(query, known: Self.cdrParameters) {
            switch key {
            case "account": q.accountID = try FieldParser.accountID(value, "account")
            case "trunk":
                guard TrunkReference(value) != nil else { throw APIError.invalid("trunk", "'\(value.prefix(64))' is not a trunk ID (ACCOUNT-NAME)") }
                q.trunkID = value
            case "tag":
                guard value.count <= 128 else { throw APIError.invalid("tag", "is longer than 128 characters") }
                q.tagTerm = value
            case "from": q.startFrom = try Self.time(value, "from")
            case "to": q.startBefore = try Self.time(value, "to")
            default:  // limit
                guard let n = Int(value), (1...10_000).contains(n) else { throw APIError.invalid("limit", "must be a whole number 1…10000, got '\(value.prefix(32))'") }
                q.limit = n
            }
        }
        if let f = q.startFrom, let t = q.startBefore, t <= f { throw APIError.invalid("to", "must be after from") }
        if let own = caller.accountID {
            if let a = q.accountID { try caller.mayAccess(account: a, field: "account") }
            if let t = q.trunkID, let ref = TrunkReference(t) { try caller.mayAccess(account: ref.account, field: "trunk") }
            q.accountID = own
        }
        return try JSONOut.response(Out.CDRs(cdrs: try await store.cdrs(q).map(Out.CDR.init)))
    }

    // MARK: SIMs

    static let simFields = ["account", "call_rate", "iccid", "linked_number", "operator_name", "password", "sip_hostname", "text_rate",
                            "texts_out", "username", "webhook_url"]

    /// A path ICCID; 422 naming `iccid` (with the Luhn message) when it is not one.
    func iccid(_ text: String) throws(APIError) -> ICCID {
        do { return try FieldParser.iccid(text, "iccid") } catch { throw APIError(error) }
    }

    /// The SIM, if the caller may see it: 404 if there is none, 403 if it is another account's.
    func existingSIM(_ id: ICCID, _ caller: Caller) async throws -> SIMRecord {
        guard let sim = try await store.sim(iccid: id) else { throw APIError.notFound("iccid", "SIM \(id) does not exist") }
        try caller.mayAccess(account: sim.accountID, field: "iccid")
        return sim
    }

    func listSIMs(_ query: [(String, String)], _ caller: Caller) async throws -> Response {
        var account: String?
        for (key, value) in query {
            guard key == "account" else { throw APIError.invalid(String(key.prefix(64)), "unknown query parameter (known: account)") }
            guard account == nil else { throw APIError.invalid(key, "is given more than once") }
            account = try FieldParser.accountID(value, "account")
        }
        if let own = caller.accountID {
            if let account { try caller.mayAccess(account: account, field: "account") }
            account = own
        }
        let sims: [SIMRecord]
        if let account { sims = try await store.sims(account: account) } else { sims = try await store.sims() }
        return try JSONOut.response(Out.SIMs(sims: sims.map(Out.SIM.init)))
    }

    func getSIM(_ raw: String, _ caller: Caller) async throws -> Response {
        try JSONOut.response(Out.SIM(try await existingSIM(try iccid(raw), caller)))
    }

    /// Creates or updates a SIM. The body describes it whole, except that
    /// `password` may be left out to keep the stored one (required on create),
    /// `account` may be left out to keep the SIM's account (an account key's
    /// SIMs are always its own), and `call_rate` and `text_rate` are the
    /// operator's: an account key may leave them out (kept) or repeat them, not change them.
    func putSIM(_ raw: String, _ b: [String: Any], _ caller: Caller) async throws -> Response {
        let id = try iccid(raw)
        try FieldParser.onlyKnownKeys(b, Self.simFields, "")
        if let v = b["iccid"], !FieldParser.isNull(v), (try? FieldParser.iccid(v, "iccid")) != id {
            throw APIError.invalid("iccid", "the body's iccid must match the path's ('\(id)') or be left out")
        }
        let before = try await store.sim(iccid: id)
        if let before { try caller.mayAccess(account: before.accountID, field: "iccid") }
        let account: String
        if !FieldParser.isNull(b["account"]) {
            account = try FieldParser.accountID(b["account"], "account")
            try caller.mayAccess(account: account, field: "account")
        } else if let own = caller.accountID {
            account = own
        } else if let before {
            account = before.accountID
        } else {
            throw APIError.invalid("account", "is required when creating a SIM")
        }
        guard try await store.account(id: account) != nil else {
            throw APIError.invalid("account", "account '\(account)' does not exist")
        }
        let hostname = try FieldParser.sipHostname(b["sip_hostname"], "sip_hostname")
        let username = try FieldParser.sipUsername(b["username"], "username")
        let webhook = FieldParser.isNull(b["webhook_url"]) ? nil : try FieldParser.webhookURL(b["webhook_url"], "webhook_url")
        let linked = FieldParser.isNull(b["linked_number"]) ? nil : try FieldParser.phoneNumber(b["linked_number"], "linked_number")
        let operatorName = FieldParser.isNull(b["operator_name"]) ? nil : try FieldParser.operatorName(b["operator_name"], "operator_name")
        func rate(_ field: String, _ current: Money?, _ what: String) throws -> Money? {
            let given = FieldParser.isNull(b[field]) ? nil : try FieldParser.money(b[field], field)
            guard caller.accountID != nil else { return given }
            if b.keys.contains(field), given.map(MoneyColumn.micros) != current.map(MoneyColumn.micros) {
                try caller.mustBeOperator(field, what)
            }
            return current
        }
        let callRate = try rate("call_rate", before?.callRate, "setting a SIM's call rate")
        let textRate = try rate("text_rate", before?.textRate, "setting a SIM's text rate")
        let ciphertext: String
        if FieldParser.isNull(b["password"]) {
            guard let before else { throw APIError.invalid("password", "is required when creating a SIM") }
            ciphertext = before.passwordCiphertext
        } else {
            let password = try FieldParser.simPassword(b["password"], "password")
            guard let simCipher else {
                throw APIError(.serviceUnavailable, field: "password", "this node has no SIM password key, so it cannot store SIM passwords")
            }
            ciphertext = try ProvisioningFile.storedPassword(password, iccid: id, before: before?.passwordCiphertext, cipher: simCipher)
        }
        let record = SIMRecord(iccid: id, accountID: account, sipHostname: hostname, username: username, passwordCiphertext: ciphertext,
                               webhookURL: webhook, linkedNumber: linked, operatorName: operatorName, callRate: callRate,
                               textRate: textRate,
                               textsOut: FieldParser.isNull(b["texts_out"]) ? .webhook : try FieldParser.textsOut(b["texts_out"], "texts_out"))
        let outcome = try await store.upsertSIM(record, ownedBy: caller.accountID)
        guard let saved = try await store.sim(iccid: id) else { throw APIError.notFound("iccid", "SIM \(id) does not exist") }
        return try JSONOut.response(Out.SIM(saved), status: outcome == .created ? .created : .ok)
    }

    func deleteSIM(_ raw: String, _ caller: Caller) async throws -> Response {
        let id = try iccid(raw)
        _ = try await existingSIM(id, caller)
        guard try await store.deleteSIM(iccid: id, account: caller.accountID) else {
            throw APIError.notFound("iccid", "SIM \(id) does not exist")
        }
        return Response(status: .noContent)
    }

    func simRegistration(_ raw: String, _ caller: Caller) async throws -> Response {
        let id = try iccid(raw)
        _ = try await existingSIM(id, caller)
        let rows = try await store.registrationStatuses(iccid: id)
        return try JSONOut.response(Out.SIMRegistrations(iccid: id.digits, registrations: rows.map(Out.SIMRegistration.init)))
    }

    /// A text's delivery state (S11): queued / delivered / failed, attempts, last error.
    func getText(_ id: String, _ caller: Caller) async throws -> Response {
        guard id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw APIError.invalid("id", "a text id is letters, digits and _ (e.g. txt_…), at most 64")
        }
        guard let text = try await store.text(id: id) else { throw APIError.notFound("id", "text \(id) does not exist") }
        try caller.mayAccess(account: text.accountID, field: "id")
        return try JSONOut.response(Out.Text(text))
    }

    static let textParameters = ["account", "iccid", "direction", "state", "from", "to", "limit"]

    /// Texts, oldest first (S10, S11: e.g. `?state=failed` for what could not be delivered).
    func listTexts(_ query: [(String, String)], _ caller: Caller) async throws -> Response {
        var q = TextQuery()
        for (key, value) in try Self.checkedQuery(query, known: Self.textParameters) {
            switch key {
            case "account": q.accountID = try FieldParser.accountID(value, "account")
            case "iccid": q.iccid = try iccid(value).digits
            case "direction":
                guard let d = StoredText.Direction(rawValue: value) else {
                    throw APIError.invalid("direction", "must be from_handset, to_handset or to_network, got '\(value.prefix(32))'")
                }
                q.direction = d
            case "state":
                guard let s = StoredText.State(rawValue: value) else {
                    throw APIError.invalid("state", "must be queued, delivered or failed, got '\(value.prefix(32))'")
                }
                q.state = s
            case "from": q.from = try Self.time(value, "from")
            case "to": q.to = try Self.time(value, "to")
            default:  // limit
                guard let n = Int(value), (1...1000).contains(n) else { throw APIError.invalid("limit", "must be a whole number 1…1000, got '\(value.prefix(32))'") }
                q.limit = n
            }
        }
        if let f = q.from, let t = q.to, t <= f { throw APIError.invalid("to", "must be after from") }
        if let own = caller.accountID {
            if let a = q.accountID { try caller.mayAccess(account: a, field: "account") }
            q.accountID = own
        }
        return try JSONOut.response(Out.Texts(texts: try await store.texts(q).map(Out.Text.init)))
    }

    /// Unix seconds ("1700000000", "1700000000.5") or RFC 3339.
    static func time(_ text: String, _ field: String) throws(APIError) -> Double {
        if text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let t = Double(text), t.isFinite { return t }
        if let t = RFC3339.parse(text) { return t }
        throw APIError.invalid(field, "'\(text.prefix(64))' is neither Unix seconds (1700000000) nor an RFC 3339 time (2024-03-01T12:00:00Z)")
    }
}
