/// Where a call dialled on a SIP2SIM handset goes (SPEC.md S4–S7), decided
/// from the dialled string alone, before anything is sent anywhere.
public enum HandsetCallRoute: Sendable, Equatable {
    /// To the customer's SIP server with this Request-URI user (S4: digits as
    /// dialled, a leading `+` dropped; `*`/`#` service strings kept, S6).
    case customer(String)
    /// To the emergency services gateway, never the customer (S5).
    case emergency(String)
    /// A GSM supplementary-service or profile code the network handles itself (S6).
    case networkCode(String)
    /// The handset withheld its number (S7).
    case withheld
    /// Nothing dialable: empty, or characters a number cannot have.
    case invalid(String)
}

/// The handset side of SIP2SIM calls: what a dialled string means and how a
/// caller's number is shown to the handset. Configuration supplies the lists
/// (S5 and S6 say "the list is configuration").
public struct HandsetDialPlan: Sendable, Equatable {
    /// Numbers that go to the emergency gateway (e.g. 999, 112, 911, 901).
    public var emergencyNumbers: Set<String>
    /// GSM service codes (3GPP TS 22.030 §6.5: the SC in `*SC#`, `**SC*…#`,
    /// `*#SC#`, `##SC#`) and profile-switch codes never passed to the customer.
    public var networkServiceCodes: Set<String>

    /// TS 22.030 Annex B supplementary-service codes, `06` (show IMEI) and `02`
    /// (a common profile switch).
    public static let defaultNetworkServiceCodes: [String] = [
        "002", "004", "02", "03", "06", "21", "30", "31", "33", "35", "43", "61", "62", "67", "76", "77",
        "330", "331", "332", "333", "351", "353",
    ]

    public init(emergencyNumbers: [String], networkServiceCodes: [String] = HandsetDialPlan.defaultNetworkServiceCodes) {
        self.emergencyNumbers = Set(emergencyNumbers)
        self.networkServiceCodes = Set(networkServiceCodes)
    }

    /// Classifies a call from the handset. `dialled` is the Request-URI user,
    /// percent-decoded; `withheld` is whether the handset asked for privacy
    /// (RFC 3323 `Privacy: id`/`header`, or an anonymous From).
    public func route(dialled raw: String, withheld: Bool) -> HandsetCallRoute {
        // Visual separators (RFC 3966 §5.1.1) are not part of the number.
        let dialled = String(raw.filter { !"-.() ".contains($0) })
        // Emergency calls go through even when the number is withheld (S5 before S7).
        if emergencyNumbers.contains(dialled) { return .emergency(dialled) }
        if dialled.first == "*" || dialled.first == "#" {
            guard dialled.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "*" || $0 == "#" || $0 == "+") }),
                  dialled.contains(where: \.isNumber) else { return .invalid(raw) }
            if let code = serviceCode(of: dialled), networkServiceCodes.contains(code) { return .networkCode(dialled) }
            return withheld ? .withheld : .customer(dialled)
        }
        let digits = dialled.hasPrefix("+") ? String(dialled.dropFirst()) : dialled
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return .invalid(raw) }
        if emergencyNumbers.contains(digits) { return .emergency(digits) }
        return withheld ? .withheld : .customer(digits)
    }

    /// The service code of an MMI string (TS 22.030 §6.5.2): after the
    /// procedure prefix (`*`, `#`, `*#`, `**`, `##`), up to the next `*` or `#`.
    /// Nil when the string is not of that form (it must end in `#`).
    func serviceCode(of s: String) -> String? {
        guard s.hasSuffix("#") else { return nil }
        var rest = Substring(s)
        for prefix in ["**", "##", "*#", "*", "#"] where rest.hasPrefix(prefix) {
            rest = rest.dropFirst(prefix.count)
            break
        }
        let code = rest.prefix { $0.isNumber }
        guard !code.isEmpty else { return nil }
        return String(code)
    }

    /// The caller's number as shown to the handset (S3): a number in full
    /// international form without `+` (no leading 0, 11–15 digits, E.164 §6)
    /// gets the `+`; anything else (national, short codes, names) passes unchanged.
    public static func presentedCLI(_ cli: String) -> String {
        guard (11...15).contains(cli.count), cli.first != "0", cli.allSatisfy({ $0.isASCII && $0.isNumber }) else { return cli }
        return "+" + cli
    }
}
