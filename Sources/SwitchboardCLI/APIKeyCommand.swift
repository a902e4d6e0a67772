import ArgumentParser
import Foundation
import NodeConfiguration
import Store
import WebAPI

/// `switchboard api-key create|delete` — keys for the REST API. The key is
/// printed once; the store keeps only the SHA-256 of its secret.
struct APIKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-key",
        abstract: "Create or delete REST API keys.",
        subcommands: [Create.self, Delete.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key and print it (once: only its hash is stored).",
            discussion: "Without --account the key is an operator key: every account, rate decks, platform blacklists.")

        @Option(help: "Limit the key to this account's objects.")
        var account: String?

        @Option(help: "A note on what the key is for.")
        var label: String = ""

        @Option(help: "Node configuration (for the database); defaults and SWITCHBOARD_DATABASE apply.")
        var config: String?

        func run() async throws {
            let store = try await openStore(config: config)
            do {
                let key = try await APIKeys.create(in: store, accountID: account, label: label)
                try await store.close()
                print(key.token)
                FileHandle.standardError.write(Data("""
                    created \(account.map { "account \($0)" } ?? "operator") key \(key.id); it is shown only now. \
                    Send it as 'Authorization: Bearer <key>'.\n
                    """.utf8))
            } catch {
                try? await store.close()
                print("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a key by its id (the part after sbk_).")

        @Argument(help: "The key id.")
        var id: String

        @Option(help: "Node configuration (for the database); defaults and SWITCHBOARD_DATABASE apply.")
        var config: String?

        func run() async throws {
            let store = try await openStore(config: config)
            let deleted: Bool
            do { deleted = try await store.deleteAPIKey(id: id) } catch {
                try? await store.close()
                print("error: \(error)")
                throw ExitCode(1)
            }
            try await store.close()
            guard deleted else { print("error: no API key with id \(id)"); throw ExitCode(1) }
            print("deleted key \(id)")
        }
    }
}
