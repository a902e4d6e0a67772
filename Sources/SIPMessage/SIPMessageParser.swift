#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bounds on what the parser accepts, so hostile input cannot cost unbounded memory.
public struct SIPParserLimits: Sendable {
    /// Largest message accepted, start line to end of body (a UDP datagram's maximum by default).
    public var maxMessageSize: Int
    /// Most header field lines in one message.
    public var maxHeaderCount: Int

    public init(maxMessageSize: Int = 65_535, maxHeaderCount: Int = 256) {
        self.maxMessageSize = maxMessageSize
        self.maxHeaderCount = maxHeaderCount
    }
    public static let `default` = SIPParserLimits()
}

extension SIPMessage {
    /// Parses one message from `bytes` with datagram semantics (RFC 3261 §18.3):
    /// the body is Content-Length bytes (the rest of the datagram if the header
    /// is absent); bytes after it are ignored.
    public init(parsing bytes: [UInt8], limits: SIPParserLimits = .default) throws(SIPParseError) {
        self = try SIPMessageParser.parse(bytes, limits: limits)
    }

    public init(parsing text: String, limits: SIPParserLimits = .default) throws(SIPParseError) {
        self = try SIPMessageParser.parse(Array(text.utf8), limits: limits)
    }
}

public enum SIPMessageParser {
    public static func parse(_ bytes: [UInt8], limits: SIPParserLimits = .default) throws(SIPParseError) -> SIPMessage {
        guard bytes.count <= limits.maxMessageSize else {
            throw .messageTooLarge(size: bytes.count, limit: limits.maxMessageSize)
        }
        let result: Result<SIPMessage, SIPParseError> = bytes.withUnsafeBufferPointer { b in
            do throws(SIPParseError) {
                let (startLine, fields, body) = try parse(b, limits: limits)
                return .success(SIPMessage(startLine: startLine, storage: bytes, fields: fields, body: body))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Finds the end of the line starting at `i`: returns (end of content, start of next line).
    @inline(__always)
    static func lineEnd(_ b: UnsafeBufferPointer<UInt8>, from i: Int, limit: Int) -> (Int, Int)? {
        guard i < limit, let base = b.baseAddress else { return nil }
        // memchr is vectorised; lines are short but many.
        guard let hit = memchr(base + i, Int32(ASCII.lf), limit - i) else { return nil }
        let j = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - base
        return (j > i && b[j - 1] == ASCII.cr ? j - 1 : j, j + 1)
    }

    static func parse(_ b: UnsafeBufferPointer<UInt8>, limits: SIPParserLimits) throws(SIPParseError)
        -> (SIPMessage.StartLine, [SIPMessage.Field], SIPMessage.Text)
    {
        let n = b.count
        var i = 0
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        while i < n, b[i] == ASCII.cr || b[i] == ASCII.lf { i += 1 }
        guard i < n else { throw .empty }

        guard let (slEnd, next) = lineEnd(b, from: i, limit: n) else {
            throw .malformedStartLine("no line end after the start line")
        }
        let (startLine, requestMethod) = try parseStartLine(b, i..<slEnd)
        i = next

        var fields: [SIPMessage.Field] = []
        fields.reserveCapacity(16)
        var bodyStart = n
        var sawBlankLine = false
        while i < n {
            let (le, nl) = lineEnd(b, from: i, limit: n) ?? (n, n)
            if le == i { bodyStart = nl; sawBlankLine = true; break }
            if b[i].isWhitespace {
                // Folded continuation of the previous field (RFC 3261 §7.3.1).
                guard let last = fields.indices.last, case .slice(let a, _) = fields[last].value else {
                    throw .malformedHeaderLine("continuation line before any header")
                }
                fields[last].value = .slice(a, Int32(trimmedLWS(b, Int(a)..<le).upperBound))
                i = nl
                continue
            }
            var c = i
            while c < le, b[c].isIn(.token) { c += 1 }
            let nameEnd = c
            while c < le, b[c].isWhitespace { c += 1 }
            guard nameEnd > i, c < le, b[c] == ASCII.colon else {
                let line = String(decoding: UnsafeBufferPointer(rebasing: b[i..<min(le, i + 40)]), as: UTF8.self)
                throw .malformedHeaderLine("'\(line)' is not 'name: value'")
            }
            var v = c + 1
            while v < le, b[v].isWhitespace { v += 1 }
            var ve = le
            while ve > v, b[ve - 1].isWhitespace { ve -= 1 }
            guard fields.count < limits.maxHeaderCount else { throw .tooManyHeaders(limit: limits.maxHeaderCount) }
            let kind = KnownHeader.lookup(UnsafeBufferPointer(rebasing: b[i..<nameEnd]))
            fields.append(SIPMessage.Field(kind: kind, name: .slice(Int32(i), Int32(nameEnd)), value: .slice(Int32(v), Int32(ve))))
            i = nl
        }
        if !sawBlankLine { bodyStart = n }

        let contentLength = try validate(fields, b, requestMethod: requestMethod)
        let available = n - bodyStart
        let bodyEnd: Int
        if let cl = contentLength {
            guard cl <= available else { throw .bodyTruncated(declared: cl, received: available) }
            bodyEnd = bodyStart + cl
        } else {
            bodyEnd = n
        }
        return (startLine, fields, .slice(Int32(bodyStart), Int32(bodyEnd)))
    }

    static func parseStartLine(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPParseError)
        -> (SIPMessage.StartLine, Range<Int>?)
    {
        func text(_ x: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[x]), as: UTF8.self) }
        if isVersion(b, r.lowerBound..<min(r.upperBound, r.lowerBound + 4), prefixOnly: true) {
            // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
            var sp = r.lowerBound
            while sp < r.upperBound, b[sp] != ASCII.sp { sp += 1 }
            let version = r.lowerBound..<sp
            guard isVersion(b, version, prefixOnly: false) else { throw .malformedStartLine("bad SIP version '\(text(version))'") }
            guard isSIP20(b, version) else { throw .unsupportedVersion(text(version)) }
            guard sp < r.upperBound else { throw .malformedStartLine("missing status code") }
            var e = sp + 1
            while e < r.upperBound, b[e] != ASCII.sp { e += 1 }
            let codeRange = (sp + 1)..<e
            guard codeRange.count == 3, let code = decimal(b, codeRange, max: 699), code >= 100 else {
                throw .invalidStatusCode(text(codeRange))
            }
            let reason = e < r.upperBound ? text((e + 1)..<r.upperBound) : ""
            return (.response(statusCode: Int(code), reasonPhrase: reason), nil)
        }
        // Request-Line = Method SP Request-URI SP SIP-Version: single spaces, no
        // white space elsewhere (RFC 4475 §3.1.2.6–3.1.2.8).
        // Split at white space without allocating: up to four pieces matter.
        var cuts = (r.upperBound, r.upperBound, r.upperBound)
        var spaces = 0
        for k in r where b[k] == ASCII.sp || b[k] == ASCII.tab {
            switch spaces {
            case 0: cuts.0 = k
            case 1: cuts.1 = k
            case 2: cuts.2 = k
            default: break
            }
            spaces += 1
            if spaces > 3 { break }
        }
        let methodRange = r.lowerBound..<cuts.0
        guard !methodRange.isEmpty else { throw .malformedStartLine("no method") }
        guard spaces >= 2 else { throw .malformedStartLine("missing SIP version in request line") }
        let uriRange = (cuts.0 + 1)..<cuts.1
        let versionRange = (cuts.1 + 1)..<cuts.2
        if spaces > 2 {
            let fourth = (cuts.2 + 1)..<r.upperBound
            if !uriRange.isEmpty, !versionRange.isEmpty,
               (fourth.isEmpty || (fourth.lowerBound..<r.upperBound).allSatisfy({ b[$0].isWhitespace })) {
                throw .malformedStartLine("white space after the SIP version")
            }
            if uriRange.isEmpty || versionRange.isEmpty { throw .malformedStartLine("more than one space between elements") }
            throw .invalidRequestURI("white space inside the Request-URI")
        }
        let parts = (methodRange, uriRange, versionRange)
        guard !parts.1.isEmpty, !parts.2.isEmpty else { throw .malformedStartLine("more than one space between elements") }
        let method = parts.0
        for k in method where !b[k].isIn(.token) { throw .malformedStartLine("method is not a token") }
        guard isVersion(b, parts.2, prefixOnly: false) else {
            throw .malformedStartLine("bad SIP version '\(text(parts.2))'")
        }
        guard isSIP20(b, parts.2) else { throw .unsupportedVersion(text(parts.2)) }
        let uri = parts.1
        let ranges: URIRanges
        do { ranges = try URIGrammar.parse(b, uri) } catch { throw .invalidRequestURI(error.reason) }
        // RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.5).
        if ranges.headers != nil { throw .invalidRequestURI("URI headers are not allowed in a Request-URI") }
        return (.request(method: SIPMethod.make(UnsafeBufferPointer(rebasing: b[method])), uri: text(uri)), method)
    }

    /// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (case-insensitive "SIP").
    static func isVersion(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, prefixOnly: Bool) -> Bool {
        guard r.count >= 4,
              b[r.lowerBound].lowercasedASCII == UInt8(ascii: "s"),
              b[r.lowerBound + 1].lowercasedASCII == UInt8(ascii: "i"),
              b[r.lowerBound + 2].lowercasedASCII == UInt8(ascii: "p"),
              b[r.lowerBound + 3] == ASCII.slash else { return false }
        if prefixOnly { return true }
        var c = Cursor(b, (r.lowerBound + 4)..<r.upperBound)
        guard !c.scan(.digit).isEmpty, c.consume(UInt8(ascii: ".")), !c.scan(.digit).isEmpty, c.atEnd else { return false }
        return true
    }

    static func isSIP20(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        r.count == 7 && b[r.lowerBound + 4] == UInt8(ascii: "2") && b[r.lowerBound + 5] == UInt8(ascii: ".")
            && b[r.lowerBound + 6] == UInt8(ascii: "0")
    }

    /// Checks the syntax of the headers the stack relies on; returns the Content-Length.
    static func validate(_ fields: [SIPMessage.Field], _ b: UnsafeBufferPointer<UInt8>, requestMethod: Range<Int>?) throws(SIPParseError) -> Int? {
        var contentLength: Int?
        for f in fields where f.kind != .other {
            guard case .slice(let a, let e) = f.value else { continue }
            let r = Int(a)..<Int(e)
            do {
                switch f.kind {
                case .via:
                    try splitTopLevelCommas(b, r) { el throws(GrammarError) in
                        guard !el.isEmpty else { throw GrammarError("empty Via value") }
                        _ = try HeaderGrammar.via(b, el)
                    }
                case .from, .to:
                    _ = try HeaderGrammar.nameAddr(b, r)
                case .contact:
                    let t = trimmedLWS(b, r)
                    if t.count == 1, b[t.lowerBound] == ASCII.star { break }
                    try splitTopLevelCommas(b, r) { el throws(GrammarError) in
                        guard !el.isEmpty else { throw GrammarError("empty Contact value") }
                        var badExpires = false
                        _ = try HeaderGrammar.nameAddr(b, el) { name, value in
                            if name.count == 7, equalsLowercase(b, name, "expires") {
                                if let value, decimal(b, value, max: UInt64(UInt32.max)) == nil { badExpires = true }
                            }
                        }
                        if badExpires { throw GrammarError("expires parameter is not a number up to 2^32-1") }
                    }
                case .route, .recordRoute:
                    try splitTopLevelCommas(b, r) { el throws(GrammarError) in
                        guard !el.isEmpty else { throw GrammarError("empty value") }
                        _ = try HeaderGrammar.nameAddr(b, el)
                    }
                case .callID:
                    try HeaderGrammar.callID(b, r)
                case .cseq:
                    let (_, m) = try HeaderGrammar.cseq(b, r)
                    if let rm = requestMethod, !bytesEqual(b, rm, m) {
                        throw SIPParseError.cseqMethodMismatch(
                            requestMethod: String(decoding: UnsafeBufferPointer(rebasing: b[rm]), as: UTF8.self),
                            cseqMethod: String(decoding: UnsafeBufferPointer(rebasing: b[m]), as: UTF8.self))
                    }
                case .maxForwards:
                    _ = try HeaderGrammar.number(b, r, max: 255, what: "Max-Forwards")
                case .contentLength:
                    guard !r.isEmpty, r.allSatisfy({ b[$0].isDigit }), let v = decimal(b, r, max: UInt64(Int32.max)) else {
                        throw SIPParseError.invalidContentLength(String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self))
                    }
                    // A second, different Content-Length is left for the layer above (RFC 4475 §3.3.10).
                    if contentLength == nil { contentLength = Int(v) }
                case .expires:
                    _ = try HeaderGrammar.number(b, r, max: UInt64(UInt32.max), what: "Expires")
                case .date:
                    try HeaderGrammar.date(b, r)
                case .retryAfter:
                    try HeaderGrammar.retryAfter(b, r)
                case .warning:
                    try splitTopLevelCommas(b, r) { el throws(GrammarError) in try HeaderGrammar.warning(b, el) }
                default:
                    break
                }
            } catch let error as GrammarError {
                throw SIPParseError.malformedHeader(name: f.kind.canonicalName, reason: error.reason)
            } catch let error as SIPParseError {
                throw error
            } catch {
                throw SIPParseError.malformedHeader(name: f.kind.canonicalName, reason: "\(error)")
            }
        }
        return contentLength
    }
}

func bytesEqual(_ b: UnsafeBufferPointer<UInt8>, _ x: Range<Int>, _ y: Range<Int>) -> Bool {
    guard x.count == y.count else { return false }
    var j = y.lowerBound
    for i in x { if b[i] != b[j] { return false }; j += 1 }
    return true
}

func equalsLowercase(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ s: StaticString) -> Bool {
    guard r.count == s.utf8CodeUnitCount else { return false }
    let p = s.utf8Start
    var j = 0
    for i in r { if b[i].lowercasedASCII != p[j] { return false }; j += 1 }
    return true
}
