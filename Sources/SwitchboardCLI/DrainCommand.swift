import ArgumentParser
import Foundation
import NodeConfiguration
import Store

/// `switchboard drain --from A --to B` — moves node A's SIM registrations to
/// node B without a gap (S9): B registers its own Contact first; A removes
/// its Contact alone once the store shows B registered. Both nodes must be
/// running on the same database; they pick the move up at their next reload.
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Move a node's SIM registrations to another node, make-before-break (S9).")

    @Option(help: "The node to drain (its node name).")
    var from: String

    @Option(help: "The node that takes the registrations over.")
    var to: String

    @Flag(help: "Leave SIMs placed on no node where they are (by default they count as the drained node's).")
    var placedOnly = false

    @Option(help: "Node configuration (for the database); defaults and SWITCHBOARD_DATABASE apply.")
    var config: String?

    func run() async throws {
        let store = try await openStore(config: config)
        do {
            let n = try await store.drain(from: from, to: to, includeUnplaced: !placedOnly)
            try await store.close()
            print("moving \(n) SIM\(n == 1 ? "" : "s") from \(from) to \(to): \(to) registers each first, then \(from) removes its own Contact")
        } catch {
            try? await store.close()
            print("error: \(error)")
            throw ExitCode(1)
        }
    }
}
