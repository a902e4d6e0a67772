extension SIPMessage {
    /// The message as bytes on the wire. Content-Length always states the body's
    /// real size (written in place of any Content-Length field, or appended).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(storage.count + 128)
        serialize(into: &out)
        return out
    }

    public func serialize(into out: inout [UInt8]) {
        switch startLine {
        case .request(let method, let uri):
            out.append(contentsOf: method.rawValue.utf8); out.append(ASCII.sp)
            out.append(contentsOf: uri.utf8); out.append(contentsOf: " SIP/2.0\r\n".utf8)
        case .response(let code, let reason):
            out.append(contentsOf: "SIP/2.0 ".utf8); out.append(contentsOf: String(code).utf8)
            out.append(ASCII.sp); out.append(contentsOf: reason.utf8); out.append(contentsOf: "\r\n".utf8)
        }
        var wroteLength = false
        storage.withUnsafeBufferPointer { b in
            for f in fields {
                if f.kind == .contentLength {
                    if wroteLength { continue }
                    wroteLength = true
                    out.append(contentsOf: "Content-Length: \(bodyCount)\r\n".utf8)
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
            if !wroteLength { out.append(contentsOf: "Content-Length: \(bodyCount)\r\n".utf8) }
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
    /// (RFC 3261 §8.2.6.2), adding `toTag` to To if it has none.
    public func makeResponse(_ statusCode: Int, reasonPhrase: String? = nil, toTag: String? = nil) -> SIPMessage {
        var r = SIPMessage(response: statusCode, reasonPhrase: reasonPhrase)
        for f in fields where f.kind == .via { r.fields.append(Field(kind: .via, name: .owned(""), value: .owned(string(f.value)))) }
        if let v = firstValue(.from) { r.append(.from, v) }
        if let v = firstValue(.to) {
            if let toTag, statusCode != 100, let to = self.to, to.tag == nil {
                r.append(.to, v + ";tag=" + toTag)
            } else {
                r.append(.to, v)
            }
        }
        if let v = firstValue(.callID) { r.append(.callID, v) }
        if let v = firstValue(.cseq) { r.append(.cseq, v) }
        // Record-Route is copied into 2xx and 1xx to INVITE (§12.1.1).
        if statusCode > 100, statusCode < 300 {
            for v in values(.recordRoute) { r.append(.recordRoute, v) }
        }
        if statusCode == 100, let ts = firstValue(.timestamp) { r.append(.timestamp, ts) }
        return r
    }
}
