import Foundation
import Synchronization

/// A peer program (SIPp, dnsmasq, the switchboard binary…) run by a test,
/// started with posix_spawn and reaped with waitpid so that nothing depends
/// on Foundation's process monitor. Stopped with SIGKILL: the test runner's
/// children have SIGTERM blocked (shared/notes/toolchain.md).
public final class ExternalProcess: @unchecked Sendable {
    public let name: String
    public let pid: pid_t
    /// Output goes to a file, not a pipe: a peer that prints a lot (SIPp's
    /// screens) would block on a full pipe.
    let outputPath: String
    /// SIPp's message and error logs (see `SIPpTrace`), summarised in a failed run's output.
    private let trace: SIPpTrace?
    private let lock = NSLock()
    private var exitStatus: Int32?

    public init(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws {
        name = (executable as NSString).lastPathComponent
        guard let path = ExternalProcess.find(executable) else { throw ExternalProcessError.notInstalled(executable) }
        outputPath = NSTemporaryDirectory() + "switchboard-\(name)-\(UUID().uuidString).log"
        trace = name == "sipp" ? SIPpTrace() : nil
        let arguments = arguments + (trace?.arguments ?? [])
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children start with no blocked signals, whatever the runner blocks.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        // Its own process group, so that a peer that forks workers (Kamailio)
        // is stopped whole.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw ExternalProcessError.spawnFailed(executable, rc) }
        pid = child
    }

    public static func find(_ executable: String) -> String? {
        if executable.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil }
        // PATH first (the python3 that scripts/test.sh installed packages for), then
        // the system directories (sbin is not on every PATH: kamailio, dnsmasq).
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for dir in path + ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] where !dir.isEmpty {
            let p = dir + "/" + executable
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Reaps the child if it has exited; returns its exit status.
    private func poll() -> Int32? {
        lock.lock(); defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return nil }
        let exited = (status & 0x7F) == 0
        exitStatus = exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return exitStatus
    }

    public var isRunning: Bool { poll() == nil }

    /// What it has printed so far, while it runs.
    public var outputSoFar: String { ExternalProcess.read(outputPath) }

    /// Waits up to `timeout` for the process to exit; kills it if it does not.
    /// Returns the exit status and everything it printed.
    public func wait(timeout: Duration) async -> (status: Int32, output: String, timedOut: Bool) {
        let deadline = ContinuousClock.now + timeout
        while poll() == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let timedOut = poll() == nil
        if timedOut { kill() }
        var status = poll()
        while status == nil { usleep(10_000); status = poll() }
        var output = ExternalProcess.read(outputPath)
        if let trace, status != 0 || timedOut {
            output += trace.summary(messages: ExternalProcess.read(trace.messagePath), errors: ExternalProcess.read(trace.errorPath))
        }
        return (status ?? -1, output, timedOut)
    }

    static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8))
            ?? String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data(), as: UTF8.self)
    }

    /// Kills the whole process group (the peer and any workers it forked).
    public func kill() {
        Foundation.kill(-pid, SIGKILL)
    }

    deinit {
        kill()
        var status: Int32 = 0
        if exitStatus == nil { _ = waitpid(pid, &status, 0) }
        unlink(outputPath)
        if let trace { unlink(trace.messagePath); unlink(trace.errorPath) }
    }
}

/// A SIPp run keeps its message log and error log, so that a run that fails —
/// often only on a loaded CI machine — says what was on the wire: the last
/// messages sent and received (time, direction, start line, CSeq) and SIPp's
/// last complaints (e.g. which message it found unexpected, and where).
struct SIPpTrace {
    let messagePath: String
    let errorPath: String

    init() {
        let base = NSTemporaryDirectory() + "switchboard-sipp-\(UUID().uuidString)"
        messagePath = base + "-messages.log"
        errorPath = base + "-errors.log"
    }

    var arguments: [String] { ["-trace_msg", "-message_file", messagePath, "-trace_err", "-error_file", errorPath] }

    /// The last `last` messages, one line each, then the error log's last lines.
    func summary(messages: String, errors: String, last: Int = 14) -> String {
        // Each message in the log starts with a line of dashes and a timestamp,
        // then "UDP message sent (N bytes):" or "... received [N] bytes :", a blank line, the message.
        var trail: [String] = []
        var time = "", direction = "", startLine: String?, cseq = ""
        func flush() {
            if let startLine { trail.append("\(time) \(direction) \(startLine)\(cseq.isEmpty ? "" : " (\(cseq))")") }
            startLine = nil; cseq = ""; direction = ""
        }
        // SIP lines end in CRLF, which Swift counts as one Character: split on any newline.
        for line in messages.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("-----") {
                flush()
                time = String(line.split(separator: " ").last ?? "")
            } else if line.contains("message sent") {
                direction = "sent    "
            } else if line.contains("message received") {
                direction = "received"
            } else if startLine == nil, !direction.isEmpty {
                startLine = String(line.prefix(90))
            } else if line.lowercased().hasPrefix("cseq:") {
                cseq = line.trimmingCharacters(in: .whitespaces)
            }
        }
        flush()
        // An event in the error log spans lines (it quotes the message): its last 700 characters, on one line.
        let complaints = errors.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: " | ").suffix(700)
        return "\n--- SIPp's last \(min(last, trail.count)) of \(trail.count) messages:\n"
            + trail.suffix(last).map { "  " + $0 }.joined(separator: "\n")
            + (complaints.isEmpty ? "" : "\n--- SIPp's error log, its end: …" + complaints) + "\n"
    }
}

public enum ExternalProcessError: Error, CustomStringConvertible {
    case notInstalled(String)
    case spawnFailed(String, Int32)
    public var description: String {
        switch self {
        case .notInstalled(let p): return "\(p) is not installed: run the README's test command (bash scripts/test.sh), which installs it"
        case .spawnFailed(let p, let rc): return "could not start \(p): error \(rc)"
        }
    }
}

/// A port nobody is using right now, for a peer that needs a fixed one (see `freeTCPPort`).
public func freePort() -> Int { freeTCPPort() }

/// Ports handed out in this test process: never handed out twice.
private let handedOutPorts = Mutex<Set<Int>>([])

/// A port for a server a test starts later (SIPp, Kamailio, dnsmasq, an HTTP
/// receiver, `serve`), free for both TCP and UDP now. It is below the
/// kernel's ephemeral range (32768-60999), so no socket bound to port 0 —
/// the many client connections and listeners of a parallel test run — can
/// take it meanwhile, and it is never handed out twice in this process.
public func freeTCPPort() -> Int {
    func bindable(_ port: Int, _ type: Int32) -> Bool {
        let fd = socket(AF_INET, type, 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
    while true {
        // 26000-32767: below the ephemeral range and above the fixed ports of scripts/demo.sh (25060-25100), which a test runs.
        let port = Int.random(in: 26_000..<32_768)
        guard handedOutPorts.withLock({ $0.insert(port).inserted }) else { continue }
        if bindable(port, Int32(SOCK_STREAM.rawValue)) && bindable(port, Int32(SOCK_DGRAM.rawValue)) { return port }
    }
}

/// Polls until `condition` holds or `timeout` passes; returns whether it held.
@discardableResult
public func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
