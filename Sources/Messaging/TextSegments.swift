/// How a text travels over the radio (3GPP TS 23.038, TS 23.040 §9.2.3.24.1):
/// GSM 7-bit default alphabet when every character is in it, else UCS-2; a
/// text too long for one SMS is split into concatenated segments, each
/// losing room to the user-data header. Segments are what is charged (S13).
public struct TextSegments: Sendable, Equatable {
    public enum Encoding: String, Sendable, Equatable { case gsm7 = "GSM-7", ucs2 = "UCS-2" }

    public var encoding: Encoding
    /// Septets (GSM-7, escapes counting two) or UTF-16 code units (UCS-2).
    public var units: Int
    public var segments: Int

    public init(_ text: String) {
        var septets = 0
        var gsm = true
        for scalar in text.unicodeScalars {
            if Self.basic.contains(scalar) { septets += 1 } else if Self.extended.contains(scalar) { septets += 2 } else {
                gsm = false
                break
            }
        }
        if gsm {
            encoding = .gsm7
            units = septets
            segments = Self.count(units, single: 160, each: 153, escapesSplit: text)
        } else {
            encoding = .ucs2
            units = text.utf16.count
            segments = units <= 70 ? 1 : Self.ucs2Parts(text)
        }
        if units == 0 { segments = 0 }
    }

    /// Segments of `units` septets: one up to `single`, else `each` per part
    /// (an escape pair is never split across parts, which can add a part).
    static func count(_ units: Int, single: Int, each: Int, escapesSplit text: String) -> Int {
        if units <= single { return 1 }
        var parts = 1, used = 0
        for scalar in text.unicodeScalars {
            let width = extended.contains(scalar) ? 2 : 1
            if used + width > each { parts += 1; used = 0 }
            used += width
        }
        return parts
    }

    /// UCS-2 parts of 67 units, a surrogate pair (an emoji) never split
    /// across two parts, which can add a part.
    static func ucs2Parts(_ text: String) -> Int {
        var parts = 1, used = 0
        for scalar in text.unicodeScalars {
            let width = scalar.utf16.count
            if used + width > 67 { parts += 1; used = 0 }
            used += width
        }
        return parts
    }

    /// TS 23.038 §6.2.1 default alphabet.
    static let basic: Set<Unicode.Scalar> = {
        let chars = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
        return Set(chars.unicodeScalars)
    }()

    /// TS 23.038 §6.2.1.1 extension table (sent as ESC + character: two septets).
    static let extended: Set<Unicode.Scalar> = Set("^{}\\[~]|€\u{0C}".unicodeScalars)
}
