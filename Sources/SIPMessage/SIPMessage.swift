/// A SIP request or response (RFC 3261 §7).
///
/// A parsed message keeps the bytes it came from; header values are ranges
/// into them and become strings only when read, so parsing allocates little.
/// Header fields keep their order, including unknown ones, and repeated lines
/// stay separate lines.
public struct SIPMessage: Sendable {
    public enum StartLine: Sendable, Equatable {
        case request(method: SIPMethod, uri: String)
        case response(statusCode: Int, reasonPhrase: String)
    }

    public var startLine: StartLine

    /// Bytes of the parsed message that unchanged fields and the body refer to.
    @usableFromInline var storage: [UInt8]
    @usableFromInline var fields: [Field]
    @usableFromInline var bodyText: Text

    @usableFromInline
    enum Text: Sendable {
        case slice(Int32, Int32)
        case owned(String)
        case ownedBytes([UInt8])
    }

    @usableFromInline
    struct Field: Sendable {
        var kind: KnownHeader
        var name: Text
        var value: Text
    }

    public init(request method: SIPMethod, uri: String) {
        startLine = .request(method: method, uri: uri)
        storage = []; fields = []; bodyText = .ownedBytes([])
    }

    public init(response statusCode: Int, reasonPhrase: String? = nil) {
        startLine = .response(statusCode: statusCode, reasonPhrase: reasonPhrase ?? SIPMessage.standardReasonPhrase(statusCode))
        storage = []; fields = []; bodyText = .ownedBytes([])
    }

    init(startLine: StartLine, storage: [UInt8], fields: [Field], body: Text) {
        self.startLine = startLine; self.storage = storage; self.fields = fields; self.bodyText = body
    }

    // MARK: Start line

    public var isRequest: Bool { if case .request = startLine { return true } else { return false } }
    public var method: SIPMethod? { if case .request(let m, _) = startLine { return m } else { return nil } }
    public var requestURI: String? { if case .request(_, let u) = startLine { return u } else { return nil } }
    public var statusCode: Int? { if case .response(let c, _) = startLine { return c } else { return nil } }
    public var reasonPhrase: String? { if case .response(_, let r) = startLine { return r } else { return nil } }

    // MARK: Header fields

    /// Number of header field lines.
    public var headerCount: Int { fields.count }

    /// All header fields in order, as (name as written, value unfolded).
    public var headerFields: [(name: String, value: String)] {
        fields.map { (string($0.name, kind: $0.kind), string($0.value)) }
    }

    /// Values of every line of the header, in order (multi-value lines not split).
    public func values(_ name: SIPHeaderName) -> [String] {
        var out: [String] = []
        for f in fields where matches(f, name) { out.append(string(f.value)) }
        return out
    }

    /// The first line's value.
    public func firstValue(_ name: SIPHeaderName) -> String? {
        for f in fields where matches(f, name) { return string(f.value) }
        return nil
    }

    public func contains(_ name: SIPHeaderName) -> Bool { fields.contains { matches($0, name) } }

    public func count(_ name: SIPHeaderName) -> Int { fields.reduce(0) { $0 + (matches($1, name) ? 1 : 0) } }

    /// Every comma-separated value of the header across all its lines
    /// (RFC 3261 §7.3.1), commas inside quotes and <> respected.
    public func splitValues(_ name: SIPHeaderName) -> [String] {
        var out: [String] = []
        withFieldBytes(name) { b, r in
            try? splitTopLevelCommas(b, r) { e throws(GrammarError) in
                if !e.isEmpty { out.append(unfolded(b, e)) }
            }
        }
        return out
    }

    public mutating func append(_ name: SIPHeaderName, _ value: String) {
        fields.append(Field(kind: name.known, name: name.known == .other ? .owned(name.canonical) : .owned(""), value: .owned(value)))
    }

    /// Adds the field before every other field of that name (e.g. a new top Via).
    public mutating func prepend(_ name: SIPHeaderName, _ value: String) {
        let f = Field(kind: name.known, name: name.known == .other ? .owned(name.canonical) : .owned(""), value: .owned(value))
        if let i = fields.firstIndex(where: { matches($0, name) }) { fields.insert(f, at: i) } else { fields.append(f) }
    }

    /// Replaces every line of the header with one line holding `value` (at the first one's place).
    public mutating func set(_ name: SIPHeaderName, _ value: String) {
        if let i = fields.firstIndex(where: { matches($0, name) }) {
            fields[i].value = .owned(value)
            var j = fields.count - 1
            while j > i { if matches(fields[j], name) { fields.remove(at: j) }; j -= 1 }
        } else {
            append(name, value)
        }
    }

    public mutating func remove(_ name: SIPHeaderName) {
        let keep = fields.filter { !matches($0, name) }
        fields = keep
    }

    /// Removes the first line of the header (e.g. the top Via of a response).
    public mutating func removeFirst(_ name: SIPHeaderName) {
        if let i = fields.firstIndex(where: { matches($0, name) }) { fields.remove(at: i) }
    }

    /// Removes every header whose name satisfies `predicate` (given the lower-cased name).
    public mutating func removeAll(where predicate: (String) -> Bool) {
        // Usually nothing matches (T13 stripping of every relayed message):
        // then the fields are left as they are rather than copied.
        guard fields.contains(where: { predicate(string($0.name, kind: $0.kind).lowercased()) }) else { return }
        let keep = fields.filter { !predicate(string($0.name, kind: $0.kind).lowercased()) }
        fields = keep
    }

    // MARK: Body

    public var body: [UInt8] {
        get {
            switch bodyText {
            case .slice(let a, let b): return Array(storage[Int(a)..<Int(b)])
            case .owned(let s): return Array(s.utf8)
            case .ownedBytes(let bytes): return bytes
            }
        }
        set { bodyText = .ownedBytes(newValue) }
    }

    public var bodyCount: Int {
        switch bodyText {
        case .slice(let a, let b): return Int(b - a)
        case .owned(let s): return s.utf8.count
        case .ownedBytes(let bytes): return bytes.count
        }
    }

    // MARK: Internals

    @inline(__always)
    func matches(_ f: Field, _ name: SIPHeaderName) -> Bool {
        guard f.kind == name.known else { return false }
        if f.kind != .other { return true }
        switch f.name {
        case .slice(let a, let b):
            let n = name.custom.utf8
            guard n.count == Int(b - a) else { return false }
            return storage.withUnsafeBufferPointer { buf in
                var i = Int(a)
                for c in n { if buf[i].lowercasedASCII != c { return false }; i += 1 }
                return true
            }
        case .owned(let s): return s.lowercased() == name.custom
        case .ownedBytes(let bytes): return String(decoding: bytes, as: UTF8.self).lowercased() == name.custom
        }
    }

    func string(_ t: Text, kind: KnownHeader = .other) -> String {
        if kind != .other { return kind.canonicalName }
        return string(t)
    }

    func string(_ t: Text) -> String {
        switch t {
        case .slice(let a, let b): return storage.withUnsafeBufferPointer { unfolded($0, Int(a)..<Int(b)) }
        case .owned(let s): return s
        case .ownedBytes(let bytes): return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Calls `body` with the bytes of each line of the header.
    func withFieldBytes(_ name: SIPHeaderName, _ body: (UnsafeBufferPointer<UInt8>, Range<Int>) -> Void) {
        for f in fields where matches(f, name) {
            switch f.value {
            case .slice(let a, let b):
                storage.withUnsafeBufferPointer { body($0, Int(a)..<Int(b)) }
            case .owned(let s):
                var s = s
                s.withUTF8 { body($0, 0..<$0.count) }
            case .ownedBytes(let bytes):
                bytes.withUnsafeBufferPointer { body($0, 0..<$0.count) }
            }
        }
    }

    /// The first line's bytes.
    func withFirstFieldBytes<R>(_ name: SIPHeaderName, _ body: (UnsafeBufferPointer<UInt8>, Range<Int>) -> R) -> R? {
        guard let f = fields.first(where: { matches($0, name) }) else { return nil }
        switch f.value {
        case .slice(let a, let b): return storage.withUnsafeBufferPointer { body($0, Int(a)..<Int(b)) }
        case .owned(let s):
            var s = s
            return s.withUTF8 { body($0, 0..<$0.count) }
        case .ownedBytes(let bytes): return bytes.withUnsafeBufferPointer { body($0, 0..<$0.count) }
        }
    }

    public static func standardReasonPhrase(_ code: Int) -> String {
        switch code {
        case 100: return "Trying"
        case 180: return "Ringing"
        case 181: return "Call Is Being Forwarded"
        case 182: return "Queued"
        case 183: return "Session Progress"
        case 200: return "OK"
        case 202: return "Accepted"
        case 301: return "Moved Permanently"
        case 302: return "Moved Temporarily"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 402: return "Payment Required"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 407: return "Proxy Authentication Required"
        case 408: return "Request Timeout"
        case 410: return "Gone"
        case 413: return "Request Entity Too Large"
        case 414: return "Request-URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Unsupported URI Scheme"
        case 420: return "Bad Extension"
        case 421: return "Extension Required"
        case 423: return "Interval Too Brief"
        case 480: return "Temporarily Unavailable"
        case 481: return "Call/Transaction Does Not Exist"
        case 482: return "Loop Detected"
        case 483: return "Too Many Hops"
        case 484: return "Address Incomplete"
        case 485: return "Ambiguous"
        case 486: return "Busy Here"
        case 487: return "Request Terminated"
        case 488: return "Not Acceptable Here"
        case 491: return "Request Pending"
        case 493: return "Undecipherable"
        case 500: return "Server Internal Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Server Time-out"
        case 505: return "Version Not Supported"
        case 513: return "Message Too Large"
        case 600: return "Busy Everywhere"
        case 603: return "Decline"
        case 604: return "Does Not Exist Anywhere"
        case 606: return "Not Acceptable"
        default: return "Unknown"
        }
    }
}
