import ArgumentParser

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "Carrier softswitch: SIP trunking with call controls, and SIP2SIM.",
        subcommands: [Serve.self, ProvisionCommand.self, DrainCommand.self, APIKeyCommand.self, WebhookSecretCommand.self, SIP.self, SimulatorCommand.self]
    )
}

struct SIP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sip",
        abstract: "SIP message tools.",
        subcommands: [ParseCommand.self, OptionsCommand.self]
    )
}
