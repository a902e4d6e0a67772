extension SIPMessageParser {
    /// Where the first message in a stream buffer ends (RFC 3261 §18.3: on
    /// stream transports Content-Length frames the body).
    public enum Frame: Equatable, Sendable {
        /// More bytes are needed.
        case needMore
        /// Only CRLF keep-alives (RFC 5626 §4.4.1) so far: drop this many bytes.
        case keepAlive(Int)
        /// A message occupies bytes `start..<end`.
        case message(start: Int, end: Int)
    }

    public static func frame(_ b: UnsafeBufferPointer<UInt8>, limits: SIPParserLimits = .default) throws(SIPParseError) -> Frame {
        var start = 0
        while start < b.count, b[start] == ASCII.cr || b[start] == ASCII.lf { start += 1 }
        if start == b.count { return start == 0 ? .needMore : .keepAlive(start) }
        // Find the blank line ending the headers.
        var i = start
        var headerEnd: Int?
        while i < b.count {
            if b[i] == ASCII.lf {
                if i + 1 < b.count, b[i + 1] == ASCII.lf { headerEnd = i + 2; break }
                if i + 2 < b.count, b[i + 1] == ASCII.cr, b[i + 2] == ASCII.lf { headerEnd = i + 3; break }
            }
            i += 1
        }
        guard let headerEnd else {
            if b.count - start > limits.maxMessageSize { throw .messageTooLarge(size: b.count - start, limit: limits.maxMessageSize) }
            return .needMore
        }
        // Content-Length (or "l") at the start of a header line.
        var contentLength: Int?
        var line = start
        while line < headerEnd {
            var e = line
            while e < headerEnd, b[e] != ASCII.lf { e += 1 }
            var c = line
            while c < e, b[c].isIn(.token) { c += 1 }
            let name = line..<c
            if (name.count == 1 && b[line].lowercasedASCII == UInt8(ascii: "l")) || equalsLowercase(b, name, "content-length") {
                while c < e, b[c].isWhitespace { c += 1 }
                if c < e, b[c] == ASCII.colon {
                    let v = trimmedLWS(b, (c + 1)..<e)
                    guard let n = decimal(b, v, max: UInt64(Int32.max)) else {
                        throw .invalidContentLength(String(decoding: UnsafeBufferPointer(rebasing: b[v]), as: UTF8.self))
                    }
                    // Two different lengths leave the stream unframeable.
                    if let contentLength, contentLength != Int(n) {
                        throw .invalidContentLength("conflicting Content-Length values \(contentLength) and \(n)")
                    }
                    contentLength = Int(n)
                }
            }
            line = e + 1
        }
        guard let contentLength else {
            throw .invalidContentLength("missing on a stream transport")
        }
        let end = headerEnd + contentLength
        if end - start > limits.maxMessageSize { throw .messageTooLarge(size: end - start, limit: limits.maxMessageSize) }
        return end <= b.count ? .message(start: start, end: end) : .needMore
    }

    /// Builds the stateless error response for a request that failed to parse
    /// (RFC 3261 §8.2 / §16.3), from its raw Via, From, To, Call-ID and CSeq
    /// lines. Nil when the bytes are not a request or carry no Via to answer to.
    public static func errorResponse(for bytes: [UInt8], error: SIPParseError) -> SIPMessage? {
        var lines: [(KnownHeader, String)] = []
        var isRequest = false
        bytes.withUnsafeBufferPointer { b in
            var i = 0
            while i < b.count, b[i] == ASCII.cr || b[i] == ASCII.lf { i += 1 }
            guard i < b.count, !isVersion(b, i..<min(b.count, i + 4), prefixOnly: true) else { return }
            isRequest = true
            var first = true
            while i < b.count {
                var e = i
                while e < b.count, b[e] != ASCII.lf { e += 1 }
                var le = e
                if le > i, b[le - 1] == ASCII.cr { le -= 1 }
                if le == i { break }
                defer { i = e + 1 }
                if first { first = false; continue }
                var c = i
                while c < le, b[c].isIn(.token) { c += 1 }
                let kind = KnownHeader.lookup(UnsafeBufferPointer(rebasing: b[i..<c]))
                guard [.via, .from, .to, .callID, .cseq].contains(kind) else { continue }
                while c < le, b[c].isWhitespace { c += 1 }
                guard c < le, b[c] == ASCII.colon else { continue }
                let v = trimmedLWS(b, (c + 1)..<le)
                // Keep what is echoed printable: never reflect control characters.
                let text = String(decoding: UnsafeBufferPointer(rebasing: b[v]), as: UTF8.self)
                    .filter { !($0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false) }
                lines.append((kind, String(text.prefix(1024))))
            }
        }
        guard isRequest, lines.contains(where: { $0.0 == .via }) else { return nil }
        var r = SIPMessage(response: error.statusCode, reasonPhrase: error.reasonPhrase)
        for kind in [KnownHeader.via, .from, .to, .callID, .cseq] {
            for (k, v) in lines where k == kind { r.append(SIPHeaderName(known: kind), v) }
        }
        return r
    }
}
