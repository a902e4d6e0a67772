import Foundation
import Testing

/// A peer program (SIPp, dnsmasq…) run by a test. Stopped with SIGKILL: the
/// test runner's children have SIGTERM blocked (shared/notes/toolchain.md).
final class ExternalProcess: @unchecked Sendable {
    let process = Process()
    let name: String
    /// Output goes to a file, not a pipe: a peer that prints a lot (SIPp's
    /// screens) would block on a full pipe.
    let outputURL: URL

    init(_ executable: String, _ arguments: [String], directory: URL? = nil) throws {
        name = (executable as NSString).lastPathComponent
        guard let path = ExternalProcess.find(executable) else {
            throw ExternalProcessError.notInstalled(executable)
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-\(name)-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: outputURL)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    static func find(_ executable: String) -> String? {
        if executable.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil }
        for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
            let p = dir + "/" + executable
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Waits up to `timeout` for the process to exit; kills it if it does not.
    /// Returns the exit status and everything it printed.
    func wait(timeout: Duration) async -> (status: Int32, output: String, timedOut: Bool) {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let timedOut = process.isRunning
        if timedOut { kill() }
        process.waitUntilExit()
        let data = (try? Data(contentsOf: outputURL)) ?? Data()
        try? FileManager.default.removeItem(at: outputURL)
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), timedOut)
    }

    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    deinit { kill() }
}

enum ExternalProcessError: Error, CustomStringConvertible {
    case notInstalled(String)
    var description: String {
        switch self {
        case .notInstalled(let p): return "\(p) is not installed: run the README's test command (bash scripts/test.sh), which installs it"
        }
    }
}

/// A UDP/TCP port nobody is using right now, for a peer that needs a fixed one.
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// SIPp's final statistics: "Successful call" and "Failed call" counters.
struct SIPpResult {
    let status: Int32
    let output: String
    var successful: Int? { counter("Successful call") }
    var failed: Int? { counter("Failed call") }

    func counter(_ name: String) -> Int? {
        // Lines look like: "Successful call           |        0                  |       20"
        for line in output.split(separator: "\n") where line.contains(name) {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if let last = cells.last, let n = Int(last) { return n }
        }
        return nil
    }
}
