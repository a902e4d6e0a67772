import Foundation
import SIPMessage
import Testing

/// Loads an RFC 4475 torture message from Tests/Fixtures/rfc4475 (valid/ or invalid/).
func torture(_ name: String) throws -> [UInt8] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/rfc4475")
    for dir in ["valid", "invalid"] {
        let url = root.appendingPathComponent(dir).appendingPathComponent(name + ".dat")
        if let data = try? Data(contentsOf: url) { return [UInt8](data) }
    }
    Issue.record("fixture \(name).dat not found under \(root.path)")
    throw CocoaError(.fileNoSuchFile)
}

func parsed(_ name: String) throws -> SIPMessage {
    try SIPMessage(parsing: try torture(name))
}

/// The parse error for a message that must be rejected.
func rejection(_ name: String) throws -> SIPParseError? {
    do {
        _ = try SIPMessage(parsing: try torture(name))
        return nil
    } catch let e as SIPParseError {
        return e
    }
}

let uas = RequestScreening(role: .userAgentServer)
let proxy = RequestScreening(role: .proxy)
let registrar = RequestScreening(role: .registrar)
