import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Rating
import SIMs
import Store
import Testing
import TestSupport
import WebAPI

// Every API test runs on both store backends, each in a database of its own
// (TestSupport's freshDatabase), over real HTTP on loopback.

func m(_ s: String) -> Money { parseMoney(s) ?? -1 }

/// Log lines the server wrote, to check that no secret reaches the log.
final class LogCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }

    struct Handler: LogHandler {
        let collector: LogCollector
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            collector.append("\(event.level) \(event.message) \(fields) \(event.error.map { "\($0)" } ?? "")")
        }
    }
}

/// The keys a test uses: an operator key, and keys of accounts 920700 and 920701.
struct Keys: Sendable {
    var operatorKey: String
    var acme: String
    var other: String
}

/// A response as the tests read it.
struct Reply: @unchecked Sendable {
    var status: Int
    var headers: HTTPFields
    var text: String
    var json: [String: Any]

    var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
    var errorMessage: String? { (json["error"] as? [String: Any])?["message"] as? String }
}

extension TestClientProtocol {
    func call(_ method: HTTPRequest.Method, _ uri: String, key: String?, body: String? = nil, rawAuthorization: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [:]
        if let key { headers[.authorization] = "Bearer \(key)" }
        if let rawAuthorization { headers[.authorization] = rawAuthorization }
        if body != nil { headers[.contentType] = "application/json" }
        let r = try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        let text = String(buffer: r.body)
        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        return Reply(status: Int(r.status.code), headers: r.headers, text: text, json: json)
    }
}

/// The SIM password cipher the API tests' server uses (a fixed test key: 32 bytes of 0x02).
let apiTestCipher: SIMPasswordCipher? = try? SIMPasswordCipher(base64Key: Data(repeating: 2, count: 32).base64EncodedString())

/// Opens a store with two accounts and three keys, serves the API on a
/// loopback port, runs `body`, and closes the store.
func withAPI(_ backend: StoreBackend, logs: LogCollector? = nil, simCipher: SIMPasswordCipher? = apiTestCipher,
             textGateway: TextGatewaySettings = TextGatewaySettings(maxSegments: 2, mobileCoreConfigured: true),
             _ body: @Sendable (any TestClientProtocol, Keys, Store) async throws -> Void) async throws {
    let store = try await openFreshStore(backend)
    do {
        try await store.upsertAccount(Account(id: "920700", name: "Acme", currency: "GBP", balance: m("10"), creditLimit: 0))
        try await store.upsertAccount(Account(id: "920701", name: "Other", currency: "EUR", balance: m("5"), creditLimit: 0))
        let keys = Keys(operatorKey: try await APIKeys.create(in: store, accountID: nil, label: "ops").token,
                        acme: try await APIKeys.create(in: store, accountID: "920700", label: "acme").token,
                        other: try await APIKeys.create(in: store, accountID: "920701", label: "other").token)
        var logger = Logger(label: "webapi-test") { _ in
            if let logs { return LogCollector.Handler(collector: logs) }
            return SwiftLogNoOpLogHandler()
        }
        logger.logLevel = .trace
        let server = WebAPIServer(store: store, realm: "test.example", host: "127.0.0.1", port: 0, logger: logger,
                                  simPasswordCipher: simCipher, textGateway: textGateway)
        try await server.makeApplication().test(.live) { client in try await body(client, keys, store) }
    } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
}
