// Character classes of the RFC 3261 §25.1 ABNF, as 256-entry lookup tables so
// that the hot parsing loops cost one load per byte.

@usableFromInline
struct ByteClass: OptionSet, Sendable {
    @usableFromInline let rawValue: UInt16
    @inlinable init(rawValue: UInt16) { self.rawValue = rawValue }

    /// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
    static let token = ByteClass(rawValue: 1 << 0)
    /// word adds ( ) < > : \ " / [ ] ? { } to token (Call-ID).
    static let word = ByteClass(rawValue: 1 << 1)
    /// unreserved = alphanum / mark
    static let unreserved = ByteClass(rawValue: 1 << 2)
    /// user = 1*( unreserved / escaped / user-unreserved )
    static let user = ByteClass(rawValue: 1 << 3)
    /// password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
    static let password = ByteClass(rawValue: 1 << 4)
    /// paramchar = param-unreserved / unreserved / escaped
    static let param = ByteClass(rawValue: 1 << 5)
    /// hname / hvalue characters: hnv-unreserved / unreserved / escaped
    static let header = ByteClass(rawValue: 1 << 6)
    /// hostname characters, IPv4 digits and IPv6 reference characters
    static let host = ByteClass(rawValue: 1 << 7)
    static let digit = ByteClass(rawValue: 1 << 8)
    static let alpha = ByteClass(rawValue: 1 << 9)
    /// URI scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    static let scheme = ByteClass(rawValue: 1 << 10)
    /// characters allowed in an absoluteURI's opaque part (RFC 2396 uric + "%")
    static let uric = ByteClass(rawValue: 1 << 11)

    @usableFromInline
    static let table: [ByteClass] = {
        var t = [ByteClass](repeating: [], count: 256)
        func add(_ chars: String, _ c: ByteClass) { for b in chars.utf8 { t[Int(b)].insert(c) } }
        let alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        let mark = "-_.!~*'()"
        add(alnum, [.token, .word, .unreserved, .user, .password, .param, .header, .host, .scheme, .uric])
        add("0123456789", .digit)
        add("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", .alpha)
        add("-.!%*_+`'~", .token)
        add("-.!%*_+`'~()<>:\\\"/[]?{}", .word)
        add(mark, [.unreserved, .user, .password, .param, .header, .uric])
        add("%", [.user, .password, .param, .header, .uric])
        add("&=+$,;?/", .user)
        add("&=+$,", .password)
        add("[]/:&+$", .param)
        add("[]/?:+$", .header)
        add("-.:[]", .host)
        add("+-.", .scheme)
        add(";/?:@&=+$,[]#", .uric)
        return t
    }()
}

extension UInt8 {
    @inlinable func isIn(_ c: ByteClass) -> Bool { ByteClass.table[Int(self)].contains(c) }
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
