extension SIPMessage {
    /// The message as bytes on the wire. Content-Length always states the body's
    /// real size (written in place of any Content-Length field, or appended).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(serializedSizeBound)
        serialize(into: &out)
        return out
    }

    /// Room for the whole message, so the bytes are written into one
    /// allocation: a message built here (an INVITE to a gateway, a response)
    /// has no parsed storage to size it by, and growing the array as it is
    /// written reallocated it three or four times per message.
    var serializedSizeBound: Int {
        var n = 64  // start line's fixed parts, Content-Length, blank line
        switch startLine {
        case .request(let method, let uri): n += method.rawValue.utf8.count + uri.utf8.count
        case .response(_, let reason): n += reason.utf8.count
        }
        for f in fields { n += size(f.name) + size(f.value) + f.kind.canonicalName.utf8.count + 4 }
        return n + size(bodyText)
    }

    private func size(_ t: Text) -> Int {
        switch t {
        case .slice(let a, let e): return Int(e - a)
        case .owned(let s): return s.utf8.count
        case .ownedBytes(let bytes): return bytes.count
        }
    }

    private func appendContentLength(_ out: inout [UInt8]) {
        out.append(contentsOf: "Content-Length: ".utf8)
        appendDecimal(bodyCount, &out)
        out.append(ASCII.cr); out.append(ASCII.lf)
    }

    /// Digits of a non-negative integer, without making a String.
    private func appendDecimal(_ value: Int, _ out: inout [UInt8]) {
        var v = max(0, value), divisor = 1
        while v / divisor >= 10 { divisor *= 10 }
        repeat {
            out.append(UInt8(truncatingIfNeeded: 0x30 + v / divisor))
            v %= divisor
            divisor /= 10
        } while divisor > 0
    }

    public func serialize(into out: inout [UInt8]) {
        switch startLine {
        case .request(let method, let uri):
            out.append(contentsOf: method.rawValue.utf8); out.append(ASCII.sp)
            out.append(contentsOf: uri.utf8); out.append(contentsOf: " SIP/2.0\r\n".utf8)
        case .response(let code, let reason):
            out.append(contentsOf: "SIP/2.0 ".utf8); appendDecimal(code, &out)
            out.append(ASCII.sp); out.append(contentsOf: reason.utf8); out.append(contentsOf: "\r\n".utf8)
        }
        var wroteLength = false
        storage.withUnsafeBufferPointer { b in
            for f in fields {
                if f.kind == .contentLength {
                    if wroteLength { continue }
                    wroteLength = true
                    appendContentLength(&out)
                    continue
                }
                if f.kind != .other {
                    out.append(contentsOf: f.kind.canonicalName.utf8)
                } else {
                    append(f.name, b, &out)
                }
                out.append(ASCII.colon); out.append(ASCII.sp)
                switch f.value {
                case .slice(let a, let e):
                    let r = Int(a)..<Int(e)
                    if r.contains(where: { b[$0] == ASCII.cr || b[$0] == ASCII.lf }) {
                        out.append(contentsOf: unfolded(b, r).utf8)
                    } else {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: b[r]))
                    }
                default:
                    append(f.value, b, &out)
                }
                out.append(ASCII.cr); out.append(ASCII.lf)
            }
            if !wroteLength { appendContentLength(&out) }
            out.append(ASCII.cr); out.append(ASCII.lf)
            switch bodyText {
            case .slice(let a, let e): out.append(contentsOf: UnsafeBufferPointer(rebasing: b[Int(a)..<Int(e)]))
            case .owned(let s): out.append(contentsOf: s.utf8)
            case .ownedBytes(let bytes): out.append(contentsOf: bytes)
            }
        }
    }

    private func append(_ t: Text, _ b: UnsafeBufferPointer<UInt8>, _ out: inout [UInt8]) {
        switch t {
        case .slice(let a, let e): out.append(contentsOf: UnsafeBufferPointer(rebasing: b[Int(a)..<Int(e)]))
        case .owned(let s): out.append(contentsOf: s.utf8)
        case .ownedBytes(let bytes): out.append(contentsOf: bytes)
        }
    }

    /// The message as text (bodies that are not UTF-8 are shown with replacement characters).
    public var text: String { String(decoding: serialized(), as: UTF8.self) }
}

extension SIPMessage {
    /// A response to this request that copies Via, From, To, Call-ID and CSeq
    /// (RFC 3261 §8.2.6.2), adding `toTag` to To if it has none, then `headers`.
    public func makeResponse(_ statusCode: Int, reasonPhrase: String? = nil, toTag: String? = nil,
                             headers: [(SIPHeaderName, String)] = []) -> SIPMessage {
        var r = SIPMessage(response: statusCode, reasonPhrase: reasonPhrase)
        // Fields copied unchanged still refer to the request's bytes, which the
        // response shares (an array, not copied) instead of a String per field.
        r.storage = storage
        r.fields.reserveCapacity(8)
        func copy(_ f: Field) { r.fields.append(Field(kind: f.kind, name: f.kind == .other ? .owned(string(f.name)) : .owned(""), value: f.value)) }
        for f in fields where f.kind == .via { copy(f) }
        if let f = fields.first(where: { $0.kind == .from }) { copy(f) }
        if let f = fields.first(where: { $0.kind == .to }) {
            if let toTag, statusCode != 100, let to = self.to, to.tag == nil {
                r.append(.to, string(f.value) + ";tag=" + toTag)
            } else {
                copy(f)
            }
        }
        if let f = fields.first(where: { $0.kind == .callID }) { copy(f) }
        if let f = fields.first(where: { $0.kind == .cseq }) { copy(f) }
        // Record-Route is copied into 2xx and 1xx to INVITE (§12.1.1).
        if statusCode > 100, statusCode < 300 {
            for f in fields where f.kind == .recordRoute { copy(f) }
        }
        if statusCode == 100, let ts = firstValue(.timestamp) { r.append(.timestamp, ts) }
        for (name, value) in headers { r.append(name, value) }
        return r
    }
}
