import Foundation
import SIPAuth
import Testing

/// A file under Tests/Fixtures.
public func fixture(_ path: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(path).path
}

/// Kamailio as a digest-authenticating registrar (auth_db over db_text).
public final class KamailioRegistrar {
    public let process: ExternalProcess
    public let port: Int
    public let directory: String

    /// Users as (username, password); the realm is the From domain, 127.0.0.1.
    /// `config` is a file under Tests/Fixtures/kamailio whose `__NAME__`
    /// placeholders are replaced from `replacements`.
    public init(users: [(String, String)], config: String = "registrar.cfg", replacements: [String: String] = [:]) async throws {
        port = freePort()
        directory = NSTemporaryDirectory() + "kamailio-registrar-\(UUID().uuidString)"
        let db = directory + "/dbtext"
        try FileManager.default.createDirectory(atPath: db, withIntermediateDirectories: true)
        try "id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n".write(toFile: db + "/version", atomically: true, encoding: .utf8)
        var subscribers = "id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string) \n"
        for (i, (user, password)) in users.enumerated() {
            let ha1 = DigestAlgorithm.md5.hash("\(user):127.0.0.1:\(password)")
            subscribers += "\(i + 1):\(user):127.0.0.1:\(password):\(ha1):\(ha1)\n"
        }
        try subscribers.write(toFile: db + "/subscriber", atomically: true, encoding: .utf8)
        var text = try String(contentsOfFile: fixture("kamailio/\(config)"), encoding: .utf8)
            .replacingOccurrences(of: "__DBTEXT_DIR__", with: db)
        for (name, value) in replacements { text = text.replacingOccurrences(of: "__\(name)__", with: value) }
        try text.write(toFile: directory + "/registrar.cfg", atomically: true, encoding: .utf8)
        process = try ExternalProcess("kamailio", [
            "-f", directory + "/registrar.cfg", "-DD", "-E", "-l", "udp:127.0.0.1:\(port)",
            "-Y", directory, "-w", directory, "-m", "32", "-M", "8", "-n", "1",
        ])
        try await Task.sleep(for: .milliseconds(1500))
        if !process.isRunning {
            let (_, output, _) = await process.wait(timeout: .seconds(1))
            Issue.record("kamailio registrar did not start: \(output.suffix(2000))")
        }
    }

    deinit {
        process.kill()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
