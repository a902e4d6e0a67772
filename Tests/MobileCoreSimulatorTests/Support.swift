import Foundation
import MobileCoreSimulator
import SIMs
import SIPTransport
import Testing
import TestSupport

let handsetA = "89440000000000000010"
let handsetB = "89440000000000000028"
/// Luhn-valid but not a handset of any test simulator.
let strangerICCID = "89440000000000000093"

func iccid(_ s: String) throws -> ICCID { try ICCID(s) }

func startSimulator(handsets: [String], switchPort: Int, answer: AnswerMode = .auto(after: .milliseconds(100)),
                    recordDirectory: String? = nil, http: Bool = false) async throws -> MobileCoreSimulator {
    let httpAddress: (host: String, port: Int)? = http ? ("127.0.0.1", 0) : nil
    return try await MobileCoreSimulator.start(SimulatorConfiguration(
        sip: SIPListenAddress(host: "127.0.0.1", port: 0, transport: .udp),
        http: httpAddress,
        switchHost: "127.0.0.1", switchPort: switchPort,
        handsets: try handsets.map(iccid), recordDirectory: recordDirectory, answerMode: answer))
}

func startSIPp(_ scenario: String, _ arguments: [String], port: Int) throws -> ExternalProcess {
    try ExternalProcess("sipp", ["-sf", fixture("sipp/\(scenario)"), "-i", "127.0.0.1", "-p", "\(port)", "-m", "1",
                                 "-nostdin", "-timeout", "30s", "-timeout_error"] + arguments)
}

func finish(_ sipp: ExternalProcess) async {
    let (status, output, timedOut) = await sipp.wait(timeout: .seconds(40))
    #expect(!timedOut, "SIPp did not finish")
    #expect(status == 0, "SIPp exit status \(status):\n\(output.suffix(3000))")
}
