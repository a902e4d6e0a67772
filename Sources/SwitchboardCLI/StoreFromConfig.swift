import ArgumentParser
import NodeConfiguration
import Store

/// The store named by a node configuration, for the one-shot commands
/// (provision, drain, api-key, webhook-secret). A bad configuration exits 78
/// naming the key; a store that cannot be opened exits 1.
func openStore(config: String?) async throws -> Store {
    let node: NodeConfiguration
    do { node = try NodeConfiguration.load(path: config) } catch { print("error: \(error)"); throw ExitCode(78) }
    return try await openStore(node)
}

func openStore(_ node: NodeConfiguration) async throws -> Store {
    do { return try await Store.open(node.storeLocation) } catch { print("error: \(error)"); throw ExitCode(1) }
}

extension NodeConfiguration {
    var storeLocation: StoreLocation {
        switch database {
        case .sqlite(let path): return .sqlite(path: path)
        case .postgres(let url): return .postgres(url: url)
        }
    }
}
