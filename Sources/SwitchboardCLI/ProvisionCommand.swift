import ArgumentParser
import Foundation
import NodeConfiguration
import Provisioning
import SIMs
import Store

/// `switchboard provision FILE` — imports accounts, rate decks, trunks, limits,
/// blacklists and SIMs, idempotently. SIM passwords are encrypted with the
/// node's key (`sims.password_key`, else the key file next to the SQLite file).
struct ProvisionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Import accounts, rate decks, trunks, limits, blacklists and SIMs from a YAML or JSON file (re-running changes nothing).")

    @Argument(help: "The file to import.")
    var file: String

    @Option(help: "The digest realm trunk passwords are hashed for (the realm the node challenges with).")
    var realm: String = "switchboard"

    @Option(help: "Node configuration (for the database and the SIM password key); defaults, SWITCHBOARD_DATABASE and SWITCHBOARD_SIM_PASSWORD_KEY apply.")
    var config: String?

    func run() async throws {
        let node: NodeConfiguration
        do { node = try NodeConfiguration.load(path: config) } catch { print("error: \(error)"); throw ExitCode(78) }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { print("error: cannot read \(file)"); throw ExitCode(66) }
        let parsed: ProvisioningFile
        do { parsed = try ProvisioningFile(yaml: text) } catch { print("error: \(file): \(error)"); throw ExitCode(65) }
        // Only a file with SIMs needs the key (and may create the key file).
        var cipher: SIMPasswordCipher?
        if !parsed.sims.isEmpty {
            do { cipher = try node.simPasswordCipher() } catch { print("error: \(error)"); throw ExitCode(78) }
        }
        let store = try await openStore(node)
        do {
            let report = try await parsed.apply(to: store, realm: realm, cipher: cipher)
            print(report)
            try await store.close()
        } catch {
            try? await store.close()
            print("error: \(error)")
            throw ExitCode(1)
        }
    }
}
