/// An Integrated Circuit Card Identifier: the number printed on a SIM and the
/// key of its SIP2SIM settings (SPEC.md S1).
///
/// ITU-T E.118: 19 or 20 digits whose last digit is a Luhn check digit over
/// the others. A mistyped ICCID would silently register the wrong SIM, so the
/// check digit is validated, not just the length.
public struct ICCID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The digits, including the check digit.
    public let digits: String

    public init(_ text: String) throws(ICCIDError) {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw .empty }
        guard trimmed.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw .notDigits(trimmed)
        }
        guard trimmed.utf8.count == 19 || trimmed.utf8.count == 20 else {
            throw .wrongLength(trimmed.utf8.count)
        }
        let body = trimmed.utf8.dropLast()
        let expected = ICCID.luhnCheckDigit(body.map { Int($0 - UInt8(ascii: "0")) })
        let given = Int((trimmed.utf8.last ?? 0) - UInt8(ascii: "0"))
        guard expected == given else { throw .badCheckDigit(expected: expected, given: given) }
        self.digits = trimmed
    }

    public var description: String { digits }

    public static func < (lhs: ICCID, rhs: ICCID) -> Bool { lhs.digits < rhs.digits }

    /// The Luhn (mod 10) check digit for `payload`: double every second digit
    /// from the right, sum digit-wise, and take what makes the total a multiple of 10.
    public static func luhnCheckDigit(_ payload: [Int]) -> Int {
        var sum = 0
        for (offset, digit) in payload.reversed().enumerated() {
            if offset % 2 == 0 {
                let doubled = digit * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += digit
            }
        }
        return (10 - sum % 10) % 10
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(digits)
    }
}

public enum ICCIDError: Error, Equatable, CustomStringConvertible {
    case empty
    case notDigits(String)
    case wrongLength(Int)
    case badCheckDigit(expected: Int, given: Int)

    public var description: String {
        switch self {
        case .empty: "an ICCID is required"
        case .notDigits: "an ICCID is digits only (0-9)"
        case .wrongLength(let count): "an ICCID has 19 or 20 digits, not \(count)"
        case .badCheckDigit(let expected, let given):
            "the ICCID's check digit is \(given) but its Luhn check digit is \(expected); check for a mistyped digit"
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars = scalars.dropFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
