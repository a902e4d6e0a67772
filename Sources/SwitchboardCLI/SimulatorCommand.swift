import ArgumentParser
import Foundation
import Logging
import MobileCoreSimulator
import SIMs
import SIPTransport

/// `switchboard simulator` — a mobile core with handsets for tests, demos and
/// benchmarks (see README "Mobile-core simulator").
struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulator",
        abstract: "Run a mobile-core simulator: handsets (ICCIDs) that call, answer and text through the switch.",
        discussion: "Control it over HTTP: POST /handsets/{iccid}/calls, GET /calls, POST /calls/{id}/hangup, POST /handsets/{iccid}/texts …"
    )

    @Option(help: "The simulator's SIP address: [udp:|tcp:]HOST:PORT.")
    var sip: String = "udp:127.0.0.1:5070"

    @Option(help: "The address to put in Contact, From/PAI and SDP (required when --sip listens on 0.0.0.0 or ::).")
    var advertise: String?

    @Option(help: "The control API's address: HOST:PORT.")
    var http: String = "127.0.0.1:8070"

    @Option(name: .customLong("switch"), help: "The switch's SIP address (where calls and texts go): HOST:PORT.")
    var switchAddress: String

    @Option(help: "A handset's ICCID (19–20 digits, Luhn-checked); repeat for more.")
    var handset: [String] = []

    @Option(help: "A file of ICCIDs, one a line (blank lines and # comments ignored).")
    var handsetsFrom: String?

    @Option(help: "UDP ports for RTP, one per call: FIRST-LAST.")
    var rtpPorts: String = "30000-30999"

    @Option(help: "Write each call's received A-law audio to DIR/<call id>.alaw.")
    var recordDir: String?

    @Option(help: "Seconds a handset rings before it answers.")
    var answerAfter: Double = 0.2

    @Flag(help: "Handsets ring until POST /calls/{id}/answer or /reject.")
    var manualAnswer = false

    @Option(help: "Frequency of the tone the handsets send, in Hz.")
    var toneHz: Double = 1_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func parse() throws -> SimulatorConfiguration {
        var sipText = sip
        var transport = SIPTransportProtocol.udp
        if sipText.lowercased().hasPrefix("udp:") { sipText.removeFirst(4) } else if sipText.lowercased().hasPrefix("tcp:") {
            sipText.removeFirst(4); transport = .tcp
        }
        let (sipHost, sipPort) = try hostPort(sipText, option: "--sip")
        if advertise == nil, sipHost == "0.0.0.0" || sipHost == "::" {
            throw ValidationError("--sip listens on every address: give --advertise with the address the switch reaches this host at")
        }
        let (httpHost, httpPort) = try hostPort(http, option: "--http")
        let (switchHost, switchPort) = try hostPort(switchAddress, option: "--switch")
        var texts = handset
        if let handsetsFrom {
            let content: String
            do { content = try String(contentsOfFile: handsetsFrom, encoding: .utf8) } catch {
                throw ValidationError("--handsets-from: cannot read \(handsetsFrom): \(error.localizedDescription)")
            }
            texts += content.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        var iccids: [ICCID] = []
        for t in texts {
            do { iccids.append(try ICCID(t)) } catch { throw ValidationError("handset '\(t)': \(error.description)") }
        }
        guard !iccids.isEmpty else { throw ValidationError("give at least one --handset ICCID or --handsets-from FILE") }
        let bounds = rtpPorts.split(separator: "-").compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] >= 1024, bounds[0] < bounds[1], bounds[1] <= 65_535 else {
            throw ValidationError("--rtp-ports is FIRST-LAST with 1024 ≤ FIRST < LAST ≤ 65535, e.g. 30000-30999; got '\(rtpPorts)'")
        }
        guard answerAfter >= 0, answerAfter <= 3_600 else { throw ValidationError("--answer-after is seconds from 0 to 3600") }
        guard toneHz > 0, toneHz < 4_000 else { throw ValidationError("--tone-hz must be above 0 and below 4000 (8 kHz sampling)") }
        return SimulatorConfiguration(
            sip: SIPListenAddress(host: sipHost, port: sipPort, transport: transport), http: (httpHost, httpPort),
            switchHost: switchHost, switchPort: switchPort, handsets: iccids, rtpPorts: bounds[0]...bounds[1],
            recordDirectory: recordDir,
            answerMode: manualAnswer ? .manual : .auto(after: .milliseconds(Int64((answerAfter * 1_000).rounded()))),
            toneHz: toneHz, advertisedHost: advertise)
    }

    func hostPort(_ text: String, option: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw ValidationError("\(option) is HOST:PORT, e.g. 127.0.0.1:5070; got '\(text)'")
        }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !host.isEmpty else { throw ValidationError("\(option) needs a host before the port; got '\(text)'") }
        return (host, port)
    }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
        _ = try parse()
    }

    func run() async throws {
        var logger = Logger(label: "switchboard.simulator")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let configuration = try parse()
        let simulator: MobileCoreSimulator
        do { simulator = try await MobileCoreSimulator.start(configuration, logger: logger) } catch {
            print("error: \(error)")
            throw ExitCode(1)
        }
        print("simulator: SIP \(configuration.sip.transport) \(configuration.sip.host):\(simulator.sipPort), "
              + "control API http://\(configuration.http?.host ?? "-"):\(await simulator.httpPort ?? 0), "
              + "\(configuration.handsets.count) handset(s), switch \(configuration.switchHost):\(configuration.switchPort)")
        while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
        await simulator.shutdown()
    }
}
