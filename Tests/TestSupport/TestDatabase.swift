import Foundation
import Store

/// The two store backends every store-facing test runs on.
public enum StoreBackend: String, CaseIterable, Sendable {
    case sqlite, postgres
}

public enum TestDatabaseError: Error, CustomStringConvertible {
    case noPostgres
    case psql(String)

    public var description: String {
        switch self {
        case .noPostgres:
            return "SWITCHBOARD_TEST_POSTGRES_URL is not set: run the README's test command (bash scripts/test.sh), which starts PostgreSQL"
        case .psql(let output): return "could not create a test database: \(output.prefix(500))"
        }
    }
}

/// A database of its own for one test: a new SQLite file, or a new database
/// on the test PostgreSQL server (SWITCHBOARD_TEST_POSTGRES_URL, started by
/// scripts/test.sh). Tests never share rows, so they may run side by side.
public func freshDatabase(_ backend: StoreBackend) async throws -> (url: String, location: StoreLocation) {
    switch backend {
    case .sqlite:
        let path = NSTemporaryDirectory() + "switchboard-test-\(UUID().uuidString).sqlite"
        return ("sqlite:\(path)", .sqlite(path: path))
    case .postgres:
        guard let base = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"],
              var components = URLComponents(string: base) else { throw TestDatabaseError.noPostgres }
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        let psql = try ExternalProcess(try postgresTool("psql"), [base, "-q", "-c", "CREATE DATABASE \(name)"])
        let (status, output, _) = await psql.wait(timeout: .seconds(30))
        guard status == 0 else { throw TestDatabaseError.psql(output) }
        components.path = "/\(name)"
        let url = components.string ?? base
        return (url, .postgres(url: url))
    }
}

/// A migrated, empty store in a fresh database.
public func openFreshStore(_ backend: StoreBackend) async throws -> Store {
    try await Store.open(try await freshDatabase(backend).location)
}

/// A PostgreSQL client program from the installed server's bin directory.
public func postgresTool(_ name: String) throws -> String {
    let dirs = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
    for d in dirs.sorted().reversed() {
        let p = "/usr/lib/postgresql/\(d)/bin/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    if let p = ExternalProcess.find(name) { return p }
    throw ExternalProcessError.notInstalled(name)
}

/// Another node on `first`'s database: on PostgreSQL a Store of its own (a
/// pool, as another process has); on SQLite `first` itself. Nodes on one
/// SQLite file are separate processes, serialised by BEGIN IMMEDIATE; a second
/// connection in this process would busy-wait on SQLiteNIO's two pool threads
/// next to other tests' and could starve the writer holding the lock until
/// the busy timeout. Close it with `closeSecondNode`.
public func openSecondNode(_ first: Store) async throws -> Store {
    switch first.location {
    case .sqlite: return first
    case .postgres(let url): return try await Store.open(.postgres(url: url))
    }
}

/// Closes a store from `openSecondNode` (not `first`, which its test closes).
public func closeSecondNode(_ second: Store, of first: Store) async throws {
    if second !== first { try await second.close() }
}

/// A migrated, empty store in a fresh database, closed after `body` whether
/// or not it throws; its error is rethrown.
public func withFreshStore(_ backend: StoreBackend, _ body: (Store) async throws -> Void) async throws {
    try await withTwoNodes(backend) { store, _ in try await body(store) }
}

/// Two nodes on one fresh database (see `openSecondNode`), both closed after
/// `body` whether or not it throws; its error is rethrown.
public func withTwoNodes(_ backend: StoreBackend, _ body: (_ first: Store, _ second: Store) async throws -> Void) async throws {
    let first = try await openFreshStore(backend)
    let second = try await openSecondNode(first)
    do {
        try await body(first, second)
    } catch {
        try? await closeSecondNode(second, of: first)
        try? await first.close()
        throw error
    }
    try await closeSecondNode(second, of: first)
    try await first.close()
}
