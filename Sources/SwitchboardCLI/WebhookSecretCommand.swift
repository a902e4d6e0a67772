import ArgumentParser
import Foundation
import NodeConfiguration
import Store

/// `switchboard webhook-secret ACCOUNT` — prints the secret the account's
/// text webhooks are signed with (S11), making it on first use.
struct WebhookSecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook-secret",
        abstract: "Print an account's webhook signing secret (made on first use).",
        discussion: "Text webhooks carry X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" with this secret>.")

    @Argument(help: "The account id.")
    var account: String

    @Option(help: "Node configuration (for the database); defaults and SWITCHBOARD_DATABASE apply.")
    var config: String?

    func run() async throws {
        let node: NodeConfiguration
        do { node = try NodeConfiguration.load(path: config) } catch { print("error: \(error)"); throw ExitCode(78) }
        let location: StoreLocation
        switch node.database {
        case .sqlite(let path): location = .sqlite(path: path)
        case .postgres(let url): location = .postgres(url: url)
        }
        let store = try await Store.open(location)
        do {
            guard try await store.account(id: account) != nil else {
                try? await store.close()
                print("error: no account \(account)")
                throw ExitCode(1)
            }
            let secret = try await store.webhookSecret(account: account)
            try await store.close()
            print(secret)
        } catch let e as ExitCode {
            throw e
        } catch {
            try? await store.close()
            print("error: \(error)")
            throw ExitCode(1)
        }
    }
}
