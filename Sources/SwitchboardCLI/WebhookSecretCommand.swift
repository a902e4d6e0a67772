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
        let store = try await openStore(config: config)
        let secret: String?
        do {
            secret = try await store.account(id: account) == nil ? nil : try await store.webhookSecret(account: account)
        } catch {
            try? await store.close()
            print("error: \(error)")
            throw ExitCode(1)
        }
        try await store.close()
        guard let secret else { print("error: no account \(account)"); throw ExitCode(1) }
        print(secret)
    }
}
