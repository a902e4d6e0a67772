import Crypto
import Foundation
import SIPAuth
import Store

/// Who is calling: an operator key (every account, rate decks, platform
/// blacklists) or an account key (that account's own objects only).
public enum Caller: Sendable, Equatable, CustomStringConvertible {
    case platformOperator(keyID: String)
    case account(String, keyID: String)

    public var keyID: String {
        switch self {
        case .platformOperator(let k), .account(_, let k): return k
        }
    }

    /// The account an account key is limited to; nil for an operator.
    public var accountID: String? {
        if case .account(let a, _) = self { return a }
        return nil
    }

    public var description: String {
        switch self {
        case .platformOperator(let k): return "operator key \(k)"
        case .account(let a, let k): return "account \(a) key \(k)"
        }
    }

    /// 403 unless the caller may see and change `account`'s objects.
    func mayAccess(account: String, field: String) throws(APIError) {
        guard let own = accountID, own != account else { return }
        throw .forbidden(field, "this API key belongs to account \(own); it cannot see or change account \(account)'s objects")
    }

    /// 403 unless the caller is an operator.
    func mustBeOperator(_ field: String, _ what: String) throws(APIError) {
        guard let own = accountID else { return }
        throw .forbidden(field, "\(what) needs an operator API key; this key belongs to account \(own)")
    }
}

/// API keys: `sbk_<id>_<secret>`. The id is public (it names the key in logs
/// and in `switchboard api-key delete`); only SHA-256(secret) is stored.
public enum APIKeys {
    public struct Created: Sendable {
        public var id: String
        /// The whole bearer token, shown once.
        public var token: String
    }

    /// Makes a key (64-bit id, 256-bit secret from the system's CSPRNG) and
    /// stores its hash. `accountID` nil makes an operator key.
    public static func create(in store: Store, accountID: String?, label: String, now: Double = Date().timeIntervalSince1970) async throws -> Created {
        if let accountID, try await store.account(id: accountID) == nil { throw StoreError.notFound("account \(accountID)") }
        var rng = SystemRandomNumberGenerator()
        let id = hex((0..<8).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
        let secret = hex((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
        try await store.putAPIKey(id: id, secretHash: secretHash(secret), accountID: accountID, label: label, now: now)
        return Created(id: id, token: "sbk_\(id)_\(secret)")
    }

    /// Lower-case hex SHA-256 of the secret, as stored.
    public static func secretHash(_ secret: String) -> String { hex(SHA256.hash(data: Array(secret.utf8))) }

    /// Splits `sbk_<id>_<secret>`; nil if the token does not have that shape.
    static func parse(_ token: String) -> (id: String, secret: String)? {
        let parts = token.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "sbk", !parts[1].isEmpty, !parts[2].isEmpty, parts[1].count <= 64, parts[2].count <= 256,
              token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { return nil }
        return (String(parts[1]), String(parts[2]))
    }

    /// Resolves an `Authorization` header value to a caller; 401 otherwise.
    static func authenticate(_ header: String?, store: Store) async throws -> Caller {
        guard let header, !header.isEmpty else {
            throw APIError.unauthorized("an API key is required: send 'Authorization: Bearer sbk_<id>_<secret>'", error: nil)
        }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw APIError.unauthorized("the Authorization header must be 'Bearer sbk_<id>_<secret>'", error: "invalid_request")
        }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard let (id, secret) = parse(token) else {
            throw APIError.unauthorized("the bearer token is not an API key of the form sbk_<id>_<secret>")
        }
        let stored = try await store.apiKey(id: id)
        // Hash and compare even for an unknown id, so both paths cost the same.
        let matches = constantTimeEqual(Array(secretHash(secret).utf8), Array((stored?.secretHash ?? String(repeating: "0", count: 64)).utf8))
        guard let stored, matches else { throw APIError.unauthorized("the API key is unknown, deleted or wrong") }
        if let account = stored.accountID { return .account(account, keyID: id) }
        return .platformOperator(keyID: id)
    }
}
