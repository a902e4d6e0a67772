import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Encrypts SIM SIP passwords for storage (SPEC.md S1: "encrypted at rest").
///
/// AES-256-GCM with a random 96-bit nonce per password. The ICCID is bound as
/// additional authenticated data, so a ciphertext copied onto another SIM's row
/// does not decrypt. Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag); the
/// version prefix leaves room to rotate the scheme.
///
/// Plaintext passwords only ever live in memory; nothing here logs.
public struct SIMPasswordCipher: Sendable {
    // Raw bytes, not a SymmetricKey: SymmetricKey is not Sendable, and the
    // cipher is shared between the API, provisioning and the registration agent.
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// Key length in bytes (AES-256).
    public static let keyByteCount = 32
    static let prefix = "v1:"

    public init(key: SymmetricKey) throws(SIMPasswordCipherError) {
        guard key.bitCount == SIMPasswordCipher.keyByteCount * 8 else {
            throw .badKeyLength(key.bitCount / 8)
        }
        self.keyBytes = key.withUnsafeBytes { Array($0) }
    }

    /// A key given as base64 of 32 bytes (the `sims.password_key` setting).
    public init(base64Key: String) throws(SIMPasswordCipherError) {
        guard let data = Data(base64Encoded: base64Key.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw .keyNotBase64
        }
        try self.init(key: SymmetricKey(data: data))
    }

    /// A fresh random key, base64-encoded, for a new key file or config value.
    public static func generateBase64Key() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    public func encrypt(_ password: String, iccid: ICCID) throws(SIMPasswordCipherError) -> String {
        do {
            let sealed = try AES.GCM.seal(Data(password.utf8), using: key, authenticating: Data(iccid.digits.utf8))
            guard let combined = sealed.combined else { throw SIMPasswordCipherError.sealFailed }
            return SIMPasswordCipher.prefix + combined.base64EncodedString()
        } catch let error as SIMPasswordCipherError {
            throw error
        } catch {
            throw .sealFailed
        }
    }

    /// Whether `stored` has the shape of this cipher's stored form (it may
    /// still not decrypt). The store refuses anything else, so that a
    /// plaintext password can never be written by mistake.
    public static func isStoredForm(_ stored: String) -> Bool {
        guard stored.hasPrefix(prefix), let data = Data(base64Encoded: String(stored.dropFirst(prefix.count))) else { return false }
        return data.count >= 12 + 16  // nonce and tag at least
    }

    public func decrypt(_ stored: String, iccid: ICCID) throws(SIMPasswordCipherError) -> String {
        guard stored.hasPrefix(SIMPasswordCipher.prefix) else { throw .unknownFormat }
        guard let combined = Data(base64Encoded: String(stored.dropFirst(SIMPasswordCipher.prefix.count))) else {
            throw .unknownFormat
        }
        do {
            let box = try AES.GCM.SealedBox(combined: combined)
            let plain = try AES.GCM.open(box, using: key, authenticating: Data(iccid.digits.utf8))
            guard let text = String(data: plain, encoding: .utf8) else { throw SIMPasswordCipherError.wrongKey }
            return text
        } catch {
            // Authentication failure: another key, or a ciphertext from another SIM.
            throw .wrongKey
        }
    }

    /// Reads the key file at `path`, creating it (mode 0600, a fresh random key)
    /// when it does not exist. A node without `sims.password_key` keeps its SIM
    /// passwords readable across restarts this way.
    public static func loadOrCreateKeyFile(at path: String) throws(SIMPasswordCipherError) -> SIMPasswordCipher {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            // O_EXCL: of two processes starting at once (serve and provision),
            // one creates the file and the other reads it; neither replaces a
            // key the other already uses. Mode 0600 from the start.
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            if fd >= 0 {
                let bytes = Array((generateBase64Key() + "\n").utf8)
                let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                let closed = close(fd)
                guard written == bytes.count, closed == 0 else {
                    unlink(path)
                    throw .keyFileUnwritable(path)
                }
            } else if errno != EEXIST {
                throw .keyFileUnwritable(path)
            }
        }
        guard let data = manager.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .keyFileUnreadable(path)
        }
        do {
            return try SIMPasswordCipher(base64Key: text)
        } catch {
            throw .keyFileInvalid(path, error)
        }
    }
}

public indirect enum SIMPasswordCipherError: Error, Equatable, CustomStringConvertible {
    case badKeyLength(Int)
    case keyNotBase64
    case sealFailed
    case unknownFormat
    case wrongKey
    case keyFileUnwritable(String)
    case keyFileUnreadable(String)
    case keyFileInvalid(String, SIMPasswordCipherError)

    public var description: String {
        switch self {
        case .badKeyLength(let bytes):
            "the SIM password key must be \(SIMPasswordCipher.keyByteCount) bytes (base64), not \(bytes)"
        case .keyNotBase64: "the SIM password key is not valid base64"
        case .sealFailed: "could not encrypt the SIM password"
        case .unknownFormat: "the stored SIM password is not in the v1 encrypted format"
        case .wrongKey:
            "the stored SIM password does not decrypt with this node's key (a different sims.password_key?)"
        case .keyFileUnwritable(let path): "cannot create the SIM password key file \(path)"
        case .keyFileUnreadable(let path): "cannot read the SIM password key file \(path)"
        case .keyFileInvalid(let path, let inner): "the SIM password key file \(path) is invalid: \(inner)"
        }
    }
}
