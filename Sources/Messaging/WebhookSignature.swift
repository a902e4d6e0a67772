import Crypto
import Foundation

/// The signature on a text webhook (S11): HMAC-SHA256 with the account's
/// webhook secret over `"<timestamp>.<body>"`, sent as
/// `X-Switchboard-Signature: t=<unix seconds>,v1=<hex>`. The timestamp is
/// signed so a receiver can refuse replays of old deliveries. A receiver
/// verifies it in a few lines (see the README).
public enum WebhookSignature {
    public static let header = "X-Switchboard-Signature"

    public static func sign(secret: [UInt8], timestamp: Int, body: [UInt8]) -> String {
        "t=\(timestamp),v1=\(mac(secret: secret, timestamp: timestamp, body: body))"
    }

    /// Whether `header` is a valid signature of `body` made within `tolerance`
    /// seconds of `now`.
    public static func verify(header value: String, secret: [UInt8], body: [UInt8], now: Int, tolerance: Int = 300) -> Bool {
        var timestamp: Int?
        var given: [String] = []
        for part in value.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { timestamp = Int(kv[1]) } else if kv[0] == "v1" { given.append(kv[1]) }
        }
        guard let timestamp, abs(now - timestamp) <= tolerance else { return false }
        let expected = Array(mac(secret: secret, timestamp: timestamp, body: body).utf8)
        // Constant time over equal lengths, so the comparison leaks nothing.
        return given.contains { g in
            let bytes = Array(g.utf8)
            guard bytes.count == expected.count else { return false }
            return zip(bytes, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
        }
    }

    static func mac(secret: [UInt8], timestamp: Int, body: [UInt8]) -> String {
        var message = Array("\(timestamp).".utf8)
        message += body
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(64)
        for byte in code { hex.append(digits[Int(byte >> 4)]); hex.append(digits[Int(byte & 0x0f)]) }
        return String(decoding: hex, as: UTF8.self)
    }
}

/// When to try a failed webhook delivery again: exponential from `base`,
/// capped at `cap`, with full jitter in [half, whole] so receivers coming
/// back are not hit by every switch at once; `giveUpAfter` seconds after the
/// text arrived it is marked failed.
public struct WebhookRetryPolicy: Sendable, Equatable {
    public var base: Double
    public var cap: Double
    public var giveUpAfter: Double

    public init(base: Double = 2, cap: Double = 300, giveUpAfter: Double = 86_400) {
        self.base = base; self.cap = cap; self.giveUpAfter = giveUpAfter
    }

    /// Seconds until attempt `failures + 1`, given `failures` so far (≥ 1);
    /// `unit` is a random number in [0, 1).
    public func delay(afterFailures failures: Int, unit: Double) -> Double {
        let exponent = min(max(failures - 1, 0), 30)
        let whole = min(cap, base * Double(1 << exponent))
        return whole * (0.5 + 0.5 * min(max(unit, 0), 1))
    }

    /// Nil when the text should be given up on.
    public func nextAttempt(afterFailures failures: Int, receivedAt: Double, now: Double, unit: Double) -> Double? {
        let at = now + delay(afterFailures: failures, unit: unit)
        return at - receivedAt > giveUpAfter ? nil : at
    }
}
