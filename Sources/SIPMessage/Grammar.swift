// Byte-level recognisers for the RFC 3261 §25 grammar. They return ranges into
// the message bytes and report parameters through a non-escaping callback, so
// validating a message allocates nothing; the typed accessors run the same
// recognisers and turn the ranges into strings.

struct GrammarError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

struct Cursor {
    let b: UnsafeBufferPointer<UInt8>
    var i: Int
    let end: Int

    init(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        self.b = b; self.i = range.lowerBound; self.end = range.upperBound
    }

    var atEnd: Bool { i >= end }
    var peek: UInt8? { i < end ? b[i] : nil }

    mutating func skipLWS() { while i < end, b[i].isLWS { i += 1 } }

    /// Skips LWS, then takes `c` if it is next (SWS c SWS, as in SEMI, EQUAL, SLASH).
    mutating func consumeSeparator(_ c: UInt8) -> Bool {
        let save = i
        skipLWS()
        if i < end, b[i] == c { i += 1; skipLWS(); return true }
        i = save
        return false
    }

    mutating func consume(_ c: UInt8) -> Bool {
        if i < end, b[i] == c { i += 1; return true }
        return false
    }

    @discardableResult
    mutating func scan(_ cls: ByteClass) -> Range<Int> {
        let start = i
        while i < end, b[i].isIn(cls) { i += 1 }
        return start..<i
    }

    /// A run of `cls` characters in which every `%` starts a valid escape (RFC 3261 §25.1 escaped).
    mutating func scanEscaped(_ cls: ByteClass, what: String) throws(GrammarError) -> Range<Int> {
        let start = i
        while i < end, b[i].isIn(cls) {
            if b[i] == ASCII.percent {
                guard i + 2 < end, b[i + 1].isHexDigit, b[i + 2].isHexDigit else {
                    throw GrammarError("bad %-escape in \(what)")
                }
                i += 3
            } else {
                i += 1
            }
        }
        return start..<i
    }

    /// quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE. Returns the
    /// range inside the quotes.
    mutating func quotedString() throws(GrammarError) -> Range<Int> {
        guard consume(ASCII.quote) else { throw GrammarError("expected a quoted string") }
        let start = i
        while i < end {
            let c = b[i]
            if c == ASCII.quote { let r = start..<i; i += 1; return r }
            if c == ASCII.backslash {
                // quoted-pair excludes CR and LF (RFC 3261 §25.1).
                guard i + 1 < end, b[i + 1] != ASCII.cr, b[i + 1] != ASCII.lf else {
                    throw GrammarError("bad escape in quoted string")
                }
                i += 2
                continue
            }
            i += 1
        }
        throw GrammarError("unterminated quoted string")
    }

    /// host = hostname / IPv4address / IPv6reference (RFC 3261 §25.1), in one
    /// pass; a ":" after it starts the port.
    mutating func host(missing: String) throws(GrammarError) -> Range<Int> {
        let s = i
        if peek == ASCII.leftBracket {
            i += 1
            while let x = peek, x.isHexDigit || x == ASCII.colon || x == UInt8(ascii: ".") { i += 1 }
            guard consume(ASCII.rightBracket) else { throw GrammarError("unterminated IPv6 reference") }
            return s..<i
        }
        let h = scan(.hostname)
        guard !h.isEmpty else { throw GrammarError(missing) }
        return h
    }

    func string(_ r: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self)
    }
}

/// Unsigned decimal with an upper bound; nil if empty, not all digits, or too large.
func decimal(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, max: UInt64) -> UInt64? {
    guard !r.isEmpty else { return nil }
    var v: UInt64 = 0
    for i in r {
        let c = b[i]
        guard c.isDigit else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
        guard !o1, !o2, s <= max else { return nil }
        v = s
    }
    return v
}

func trimmedLWS(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Range<Int> {
    var lo = r.lowerBound, hi = r.upperBound
    while lo < hi, b[lo].isLWS { lo += 1 }
    while hi > lo, b[hi - 1].isLWS { hi -= 1 }
    return lo..<hi
}

/// Splits a header value on commas that are outside quoted strings and angle
/// brackets (RFC 3261 §7.3.1). Elements are trimmed.
func splitTopLevelCommas(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ body: (Range<Int>) throws(GrammarError) -> Void) throws(GrammarError) {
    var start = r.lowerBound
    var i = r.lowerBound
    var inQuotes = false, inAngle = false
    while i < r.upperBound {
        let c = b[i]
        if inQuotes {
            if c == ASCII.backslash { i += 2; continue }
            if c == ASCII.quote { inQuotes = false }
        } else if c == ASCII.quote {
            inQuotes = true
        } else if c == ASCII.lessThan {
            inAngle = true
        } else if c == ASCII.greaterThan {
            inAngle = false
        } else if c == ASCII.comma, !inAngle {
            try body(trimmedLWS(b, start..<i))
            start = i + 1
        }
        i += 1
    }
    try body(trimmedLWS(b, start..<min(i, r.upperBound)))
}

// MARK: - URIs

struct URIRanges {
    var scheme: Range<Int>
    var isSIP: Bool
    var user: Range<Int>?
    var password: Range<Int>?
    var host: Range<Int>
    var port: UInt16?
    var params: Range<Int>      // from the first ";" (exclusive) to the end of params
    var headers: Range<Int>?    // after "?"
    var opaque: Range<Int>      // everything after "scheme:"
}

enum URIGrammar {
    static func isSIPScheme(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        let n = r.count
        guard n == 3 || n == 4 else { return false }
        let s = b[r.lowerBound].lowercasedASCII, i = b[r.lowerBound + 1].lowercasedASCII, p = b[r.lowerBound + 2].lowercasedASCII
        guard s == UInt8(ascii: "s"), i == UInt8(ascii: "i"), p == UInt8(ascii: "p") else { return false }
        return n == 3 || b[r.lowerBound + 3].lowercasedASCII == UInt8(ascii: "s")
    }

    /// Parses a whole URI occupying exactly `r`. `onParam` sees each uri-parameter.
    static func parse(
        _ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>,
        onParam: (Range<Int>, Range<Int>?) -> Void = { _, _ in },
        onHeader: (Range<Int>, Range<Int>) -> Void = { _, _ in }
    ) throws(GrammarError) -> URIRanges {
        var c = Cursor(b, r)
        guard let first = c.peek, first.isIn(.alpha) else { throw GrammarError("URI must start with a scheme") }
        let scheme = c.scan(.scheme)
        guard c.consume(ASCII.colon) else { throw GrammarError("URI scheme is not followed by ':'") }
        let opaque = c.i..<r.upperBound
        guard isSIPScheme(b, scheme) else {
            // absoluteURI (RFC 3261 §25.1, RFC 2396): opaque characters, no white space.
            guard !opaque.isEmpty else { throw GrammarError("URI has nothing after its scheme") }
            _ = try c.scanEscaped(.uric, what: "URI")
            guard c.atEnd else { throw GrammarError("invalid character in URI") }
            return URIRanges(scheme: scheme, isSIP: false, user: nil, password: nil, host: opaque, port: nil,
                             params: r.upperBound..<r.upperBound, headers: nil, opaque: opaque)
        }
        var user: Range<Int>?, password: Range<Int>?
        // user and password cannot hold an unescaped "@", and neither can
        // anything after the host, so the first "@" ends the userinfo.
        var at: Int?
        var k = c.i
        while k < r.upperBound { if b[k] == ASCII.at { at = k; break }; k += 1 }
        if let at {
            var u = Cursor(b, c.i..<at)
            let ur = try u.scanEscaped(.user, what: "URI user")
            guard !ur.isEmpty else { throw GrammarError("empty user part in URI") }
            user = ur
            if u.consume(ASCII.colon) { password = try u.scanEscaped(.password, what: "URI password") }
            guard u.atEnd else { throw GrammarError("invalid character in URI user part") }
            c.i = at + 1
        }
        let host = try c.host(missing: "URI has no host")
        return try finish(b, r, &c, scheme: scheme, user: user, password: password, host: host, opaque: opaque, onParam: onParam, onHeader: onHeader)
    }

    private static func finish(
        _ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ c: inout Cursor,
        scheme: Range<Int>, user: Range<Int>?, password: Range<Int>?, host: Range<Int>, opaque: Range<Int>,
        onParam: (Range<Int>, Range<Int>?) -> Void, onHeader: (Range<Int>, Range<Int>) -> Void
    ) throws(GrammarError) -> URIRanges {
        var port: UInt16?
        if c.consume(ASCII.colon) {
            let pr = c.scan(.digit)
            guard let p = decimal(b, pr, max: 65535) else { throw GrammarError("invalid port in URI") }
            port = UInt16(p)
        }
        let paramsStart = c.i
        while c.consume(ASCII.semicolon) {
            let name = try c.scanEscaped(.param, what: "URI parameter")
            guard !name.isEmpty else { throw GrammarError("empty URI parameter") }
            var value: Range<Int>?
            if c.consume(ASCII.equals) {
                let v = try c.scanEscaped(.param, what: "URI parameter value")
                guard !v.isEmpty else { throw GrammarError("empty URI parameter value") }
                value = v
            }
            onParam(name, value)
        }
        let params = (paramsStart == c.i ? c.i : paramsStart + 1)..<c.i
        var headers: Range<Int>?
        if c.consume(ASCII.question) {
            let hs = c.i
            repeat {
                let n = try c.scanEscaped(.header, what: "URI header")
                guard !n.isEmpty, c.consume(ASCII.equals) else { throw GrammarError("malformed URI header") }
                let v = try c.scanEscaped(.header, what: "URI header value")
                onHeader(n, v)
            } while c.consume(ASCII.ampersand)
            headers = hs..<c.i
        }
        guard c.atEnd else { throw GrammarError("invalid character in URI") }
        return URIRanges(scheme: scheme, isSIP: true, user: user, password: password, host: host, port: port,
                         params: params, headers: headers, opaque: opaque)
    }
}

// MARK: - Header field values

struct NameAddrRanges {
    var displayName: Range<Int>?   // inside the quotes, or the token run
    var displayNameQuoted: Bool
    var uri: Range<Int>
    var uriBracketed: Bool
}

enum HeaderGrammar {
    /// generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string.
    /// Parses `*( SEMI generic-param )` up to the end of the cursor.
    static func genericParams(_ c: inout Cursor, onParam: (Range<Int>, Range<Int>?) -> Void) throws(GrammarError) {
        c.skipLWS()
        while !c.atEnd {
            guard c.consume(ASCII.semicolon) else { throw GrammarError("expected ';' before parameter") }
            c.skipLWS()
            let name = c.scan(.token)
            guard !name.isEmpty else { throw GrammarError("empty parameter") }
            var value: Range<Int>?
            if c.consumeSeparator(ASCII.equals) {
                if c.peek == ASCII.quote {
                    let q = try c.quotedString()
                    value = (q.lowerBound - 1)..<(q.upperBound + 1)
                } else {
                    let s = c.i
                    while let x = c.peek, x.isIn(.token) || x == ASCII.colon || x == ASCII.leftBracket || x == ASCII.rightBracket { c.i += 1 }
                    guard s < c.i else { throw GrammarError("empty value for parameter") }
                    value = s..<c.i
                }
            }
            onParam(name, value)
            c.skipLWS()
        }
    }

    /// (name-addr / addr-spec) *( SEMI generic-param ) — From, To, Contact, Route,
    /// Record-Route and friends (RFC 3261 §20.10, §20.20, §20.39).
    static func nameAddr(
        _ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>,
        onParam: (Range<Int>, Range<Int>?) -> Void = { _, _ in }
    ) throws(GrammarError) -> NameAddrRanges {
        var c = Cursor(b, r)
        c.skipLWS()
        var display: Range<Int>?
        var quoted = false
        var hasAngle = false
        if c.peek == ASCII.quote {
            display = try c.quotedString()
            quoted = true
            c.skipLWS()
            guard c.peek == ASCII.lessThan else { throw GrammarError("quoted display name must be followed by <URI>") }
            hasAngle = true
        } else {
            // Name-addr form if a "<" appears; anything before it must be tokens and LWS.
            var k = c.i
            while k < c.end, b[k] != ASCII.lessThan { k += 1 }
            if k < c.end {
                hasAngle = true
                let d = trimmedLWS(b, c.i..<k)
                if !d.isEmpty {
                    for x in d where !(b[x].isIn(.token) || b[x].isLWS) {
                        throw GrammarError("display name must be a quoted string or tokens")
                    }
                    display = d
                }
                c.i = k
            }
        }
        let uri: Range<Int>
        if hasAngle {
            _ = c.consume(ASCII.lessThan)
            let s = c.i
            while let x = c.peek, x != ASCII.greaterThan {
                // RAQUOT/LAQUOT allow no white space inside the brackets (RFC 4475 §3.1.2.14).
                if x.isLWS { throw GrammarError("white space inside <>") }
                c.i += 1
            }
            guard c.consume(ASCII.greaterThan) else { throw GrammarError("missing '>'") }
            uri = s..<(c.i - 1)
            _ = try URIGrammar.parse(b, uri)
        } else {
            // addr-spec form: the URI stops at the first ";" (header parameters follow)
            // and may not contain "?", "," or ";" of its own (RFC 3261 §20.10).
            let s = c.i
            while let x = c.peek, x != ASCII.semicolon, !x.isLWS { c.i += 1 }
            uri = s..<c.i
            guard !uri.isEmpty else { throw GrammarError("missing URI") }
            var k = s
            while k < uri.upperBound {
                if b[k] == ASCII.question || b[k] == ASCII.comma {
                    throw GrammarError("a URI with '?' or ',' must be enclosed in <>")
                }
                k += 1
            }
            _ = try URIGrammar.parse(b, uri)
        }
        try genericParams(&c, onParam: onParam)
        return NameAddrRanges(displayName: display, displayNameQuoted: quoted, uri: uri, uriBracketed: hasAngle)
    }

    struct ViaRanges {
        var protocolName: Range<Int>
        var protocolVersion: Range<Int>
        var transport: Range<Int>
        var host: Range<Int>
        var port: UInt16?
    }

    /// via-parm = sent-protocol LWS sent-by *( SEMI via-params )  (RFC 3261 §20.42)
    static func via(
        _ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>,
        onParam: (Range<Int>, Range<Int>?) -> Void = { _, _ in }
    ) throws(GrammarError) -> ViaRanges {
        var c = Cursor(b, r)
        c.skipLWS()
        let name = c.scan(.token)
        guard !name.isEmpty, c.consumeSeparator(ASCII.slash) else { throw GrammarError("bad sent-protocol") }
        let version = c.scan(.token)
        guard !version.isEmpty, c.consumeSeparator(ASCII.slash) else { throw GrammarError("bad sent-protocol") }
        let transport = c.scan(.token)
        guard !transport.isEmpty else { throw GrammarError("missing transport") }
        let ws = c.i
        c.skipLWS()
        guard c.i > ws else { throw GrammarError("missing sent-by") }
        let host = try c.host(missing: "missing sent-by host")
        var port: UInt16?
        if c.consumeSeparator(ASCII.colon) {
            let pr = c.scan(.digit)
            guard let p = decimal(b, pr, max: 65535) else { throw GrammarError("invalid sent-by port") }
            port = UInt16(p)
        }
        try genericParams(&c, onParam: onParam)
        return ViaRanges(protocolName: name, protocolVersion: version, transport: transport, host: host, port: port)
    }

    /// CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16). Numbers above 2^32-1 are
    /// rejected (RFC 4475 §3.1.2.4).
    static func cseq(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) -> (UInt32, Range<Int>) {
        var c = Cursor(b, r)
        c.skipLWS()
        let digits = c.scan(.digit)
        guard !digits.isEmpty else { throw GrammarError("missing sequence number") }
        guard let n = decimal(b, digits, max: UInt64(UInt32.max)) else { throw GrammarError("sequence number exceeds 2^32-1") }
        let ws = c.i
        c.skipLWS()
        guard c.i > ws else { throw GrammarError("missing method") }
        let m = c.scan(.token)
        c.skipLWS()
        guard !m.isEmpty, c.atEnd else { throw GrammarError("invalid method") }
        return (UInt32(n), m)
    }

    /// Call-ID = word [ "@" word ]
    static func callID(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) {
        var c = Cursor(b, r)
        guard !c.scan(.word).isEmpty else { throw GrammarError("empty or invalid Call-ID") }
        if c.consume(ASCII.at) { guard !c.scan(.word).isEmpty else { throw GrammarError("empty host part") } }
        guard c.atEnd else { throw GrammarError("invalid character") }
    }

    /// delta-seconds with an upper bound.
    static func number(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, max: UInt64, what: String) throws(GrammarError) -> UInt64 {
        guard !r.isEmpty, r.allSatisfy({ b[$0].isDigit }) else { throw GrammarError("\(what) must be a decimal number") }
        guard let v = decimal(b, r, max: max) else { throw GrammarError("\(what) exceeds \(max)") }
        return v
    }

    /// Retry-After = delta-seconds [ comment ] *( SEMI retry-param )
    static func retryAfter(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) {
        var c = Cursor(b, r)
        _ = try number(b, c.scan(.digit), max: UInt64(UInt32.max), what: "Retry-After")
        c.skipLWS()
        if c.consume(UInt8(ascii: "(")) {
            var depth = 1
            while let x = c.peek, depth > 0 {
                if x == UInt8(ascii: "(") { depth += 1 } else if x == UInt8(ascii: ")") { depth -= 1 }
                c.i += 1
            }
            guard depth == 0 else { throw GrammarError("unterminated comment") }
        }
        try genericParams(&c) { _, _ in }
    }

    /// warning-value = 3DIGIT SP warn-agent SP warn-text (RFC 3261 §20.43)
    static func warning(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) {
        var c = Cursor(b, r)
        let code = c.scan(.digit)
        guard code.count == 3 else { throw GrammarError("warn-code must be three digits") }
        guard c.consume(ASCII.sp) else { throw GrammarError("missing warn-agent") }
        let agent = c.i
        while let x = c.peek, !x.isLWS { c.i += 1 }
        guard c.i > agent, c.consume(ASCII.sp) else { throw GrammarError("missing warn-text") }
        _ = try c.quotedString()
        guard c.atEnd else { throw GrammarError("trailing characters") }
    }

    /// rfc1123-date = wkday "," SP date1 SP time SP "GMT" (RFC 3261 §20.17: only GMT).
    static func date(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) {
        let s = String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self)
        let parts = s.split(separator: " ", omittingEmptySubsequences: false)
        let days = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard parts.count == 6, days.contains(String(parts[0])),
              parts[1].count == 2, parts[1].allSatisfy(\.isASCII), Int(parts[1]) != nil,
              months.contains(String(parts[2])),
              parts[3].count == 4, Int(parts[3]) != nil,
              parts[4].count == 8, parts[4].split(separator: ":").count == 3
        else { throw GrammarError("not an RFC 1123 date") }
        guard parts[5] == "GMT" else { throw GrammarError("time zone must be GMT") }
    }
}
