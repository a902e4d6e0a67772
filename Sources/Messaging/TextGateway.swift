import SIMs

/// A text-gateway request that cannot be taken (S10), naming the field and
/// saying what is wrong; the API answers it as 422.
public struct TextGatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(_ field: String, _ message: String) { self.field = field; self.message = message }
    public var description: String { "\(field): \(message)" }
}

/// The rules of the text gateway to handsets (S10), apart from any I/O: what
/// a destination, a text and a sender must be, and what the mobile core's
/// answer to the MESSAGE means.
public enum TextGateway {
    /// A MESSAGE over UDP must stay under 1,300 bytes (RFC 3428 §9); the
    /// body gets what the headers leave.
    public static let maxBodyBytes = 1_000

    public static func destination(_ raw: String?) throws(TextGatewayError) -> ICCID {
        guard let raw, !raw.isEmpty else { throw TextGatewayError("to", "required: the ICCID of the SIM to text (19 or 20 digits)") }
        do { return try ICCID(raw) } catch {
            throw TextGatewayError("to", "'\(raw.prefix(40))' is not an ICCID: \(error)")
        }
    }

    /// The text's segments, if it may be sent: not empty, at most
    /// `maxSegments` concatenated segments and `maxBodyBytes` of UTF-8.
    public static func segments(of text: String?, maxSegments: Int) throws(TextGatewayError) -> TextSegments {
        guard let text else { throw TextGatewayError("text", "required: the text to send") }
        guard !text.isEmpty else { throw TextGatewayError("text", "is empty; a text needs at least one character") }
        let s = TextSegments(text)
        guard s.segments <= maxSegments else {
            let each = s.encoding == .gsm7 ? "153 GSM-7 characters" : "67 UCS-2 characters"
            throw TextGatewayError("text", "needs \(s.segments) segments (\(s.units) \(s.encoding == .gsm7 ? "septets" : "UTF-16 units"), "
                                   + "\(s.encoding.rawValue)); at most \(maxSegments) are sent (\(each) each)")
        }
        let bytes = text.utf8.count
        guard bytes <= maxBodyBytes else {
            throw TextGatewayError("text", "is \(bytes) bytes of UTF-8; a text to a handset is at most \(maxBodyBytes) (one SIP MESSAGE, RFC 3428 §9)")
        }
        return s
    }

    /// Who the handset sees the text from: the request's `from` (a number,
    /// digits with an optional leading +, or an alphanumeric sender of up to
    /// 11 characters, TS 23.040 §9.1.2.5), else the SIM's linked number.
    public static func sender(_ from: String?, linkedNumber: String?) throws(TextGatewayError) -> String {
        guard let from, !from.isEmpty else {
            guard let linked = linkedNumber, !linked.isEmpty else {
                throw TextGatewayError("from", "required: the SIM has no linked number to send from; give a number or a sender name")
            }
            return linked
        }
        let digits = from.hasPrefix("+") ? from.dropFirst() : Substring(from)
        if !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }) { return String(digits) }
        if from.count <= 11, from.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == " " || $0 == "-" || $0 == ".") }),
           from.contains(where: \.isLetter) {
            return from
        }
        throw TextGatewayError("from", "'\(from.prefix(40))' is neither a number (digits, optional leading +, at most 20) "
                               + "nor a sender name (1 to 11 letters, digits, space, '-' or '.', with a letter)")
    }

    /// What the mobile core's final answer to a MESSAGE means for the text.
    public enum Outcome: Sendable, Equatable {
        case delivered
        /// Try again later: the core or the handset may be back (timeout,
        /// 408, 480 Temporarily Unavailable, 5xx other than 501).
        case retry
        /// It will not be taken: the text fails with this code.
        case failed
    }

    /// RFC 3428 §7: a 2xx means the MESSAGE was taken for delivery.
    public static func outcome(ofFinalCode code: Int) -> Outcome {
        switch code {
        case 200..<300: .delivered
        case 408, 480, 500, 502, 503, 504, 513: .retry
        default: .failed
        }
    }
}
