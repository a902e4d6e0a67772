// Character classes of the RFC 3261 §25.1 ABNF as 256-bit masks. The masks
// are literals (generated once from the class definitions in the comment of
// each case), so a membership test is a shift and an AND with no table look-up
// through a lazily initialised global.

@usableFromInline
enum ByteClass: Sendable {
    /// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
    case token
    /// word: token characters plus ( ) < > : \\ " / [ ] ? { } (Call-ID)
    case word
    /// unreserved = alphanum / mark
    case unreserved
    /// user = unreserved / escaped / user-unreserved ("&" "=" "+" "$" "," ";" "?" "/")
    case user
    /// password = unreserved / escaped / "&" / "=" / "+" / "$" / ","
    case password
    /// paramchar = param-unreserved ("[" "]" "/" ":" "&" "+" "$") / unreserved / escaped
    case param
    /// hname/hvalue = hnv-unreserved ("[" "]" "/" "?" ":" "+" "$") / unreserved / escaped
    case header
    /// hostname and IPv4 characters: alphanum "-" "."
    case hostname
    /// DIGIT
    case digit
    /// ALPHA
    case alpha
    /// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    case scheme
    /// absoluteURI characters (RFC 2396 uric, with "%" escapes)
    case uric

    @inlinable @inline(__always)
    var masks: (UInt64, UInt64, UInt64, UInt64) {
        switch self {
        case .token: return (0x03FF6CA200000000, 0x47FFFFFF87FFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .word: return (0xD7FFEFA600000000, 0x6FFFFFFFBFFFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .unreserved: return (0x03FF678200000000, 0x47FFFFFE87FFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .user: return (0xABFFFFF200000000, 0x47FFFFFE87FFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .password: return (0x23FF7FF200000000, 0x47FFFFFE87FFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .param: return (0x07FFEFF200000000, 0x47FFFFFEAFFFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .header: return (0x87FFEFB200000000, 0x47FFFFFEAFFFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .hostname: return (0x03FF600000000000, 0x07FFFFFE07FFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .digit: return (0x03FF000000000000, 0x0000000000000000, 0x0000000000000000, 0x0000000000000000)
        case .alpha: return (0x0000000000000000, 0x07FFFFFE07FFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .scheme: return (0x03FF680000000000, 0x07FFFFFE07FFFFFE, 0x0000000000000000, 0x0000000000000000)
        case .uric: return (0xAFFFFFFA00000000, 0x47FFFFFEAFFFFFFF, 0x0000000000000000, 0x0000000000000000)
        }
    }

    @inlinable @inline(__always)
    func contains(_ b: UInt8) -> Bool {
        let m = masks
        let word: UInt64
        switch b >> 6 {
        case 0: word = m.0
        case 1: word = m.1
        case 2: word = m.2
        default: word = m.3
        }
        return (word >> UInt64(b & 63)) & 1 == 1
    }
}

extension UInt8 {
    @inlinable @inline(__always) func isIn(_ c: ByteClass) -> Bool { c.contains(self) }
    @inlinable var isWhitespace: Bool { self == 0x20 || self == 0x09 }
    /// Linear white space inside a header value: folding has left CR LF in place.
    @inlinable var isLWS: Bool { self == 0x20 || self == 0x09 || self == 0x0D || self == 0x0A }
    @inlinable var lowercasedASCII: UInt8 { (self >= 0x41 && self <= 0x5A) ? self | 0x20 : self }
    @inlinable var isDigit: Bool { self >= 0x30 && self <= 0x39 }
    @inlinable var isHexDigit: Bool {
        isDigit || (self >= 0x41 && self <= 0x46) || (self >= 0x61 && self <= 0x66)
    }
    @inlinable var hexValue: UInt8 {
        if isDigit { return self - 0x30 }
        return (self | 0x20) - 0x61 + 10
    }
}

enum ASCII {
    static let cr: UInt8 = 0x0D, lf: UInt8 = 0x0A, sp: UInt8 = 0x20, tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A, semicolon: UInt8 = 0x3B, comma: UInt8 = 0x2C
    static let equals: UInt8 = 0x3D, quote: UInt8 = 0x22, backslash: UInt8 = 0x5C
    static let lessThan: UInt8 = 0x3C, greaterThan: UInt8 = 0x3E, slash: UInt8 = 0x2F
    static let at: UInt8 = 0x40, question: UInt8 = 0x3F, ampersand: UInt8 = 0x26
    static let percent: UInt8 = 0x25, leftBracket: UInt8 = 0x5B, rightBracket: UInt8 = 0x5D
    static let star: UInt8 = 0x2A
}

/// Removes %-escapes (RFC 3261 §19.1.4: URIs compare after unescaping).
func percentDecoded(_ s: Substring) -> String {
    guard s.utf8.contains(ASCII.percent) else { return String(s) }
    var out = [UInt8](); out.reserveCapacity(s.utf8.count)
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if b == ASCII.percent, it.count >= 2, it[it.startIndex].isHexDigit, it[it.startIndex + 1].isHexDigit {
            out.append(it[it.startIndex].hexValue << 4 | it[it.startIndex + 1].hexValue)
            it = it.dropFirst(2)
        } else {
            out.append(b)
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Replaces line folding (CRLF followed by SP/HT, RFC 3261 §7.3.1) and runs of
/// white space with a single space, and trims both ends.
func unfolded(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
    var needsWork = false
    for i in range where bytes[i] == ASCII.cr || bytes[i] == ASCII.lf { needsWork = true; break }
    if !needsWork { return String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self) }
    var out = [UInt8](); out.reserveCapacity(range.count)
    var pendingSpace = false
    for i in range {
        let b = bytes[i]
        if b.isLWS { pendingSpace = !out.isEmpty; continue }
        if pendingSpace { out.append(ASCII.sp); pendingSpace = false }
        out.append(b)
    }
    return String(decoding: out, as: UTF8.self)
}
