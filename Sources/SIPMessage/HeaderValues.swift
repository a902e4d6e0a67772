/// `name[=value]` as in URI parameters and generic-param (RFC 3261 §25.1).
public struct SIPParameter: Sendable, Hashable {
    public var name: String
    public var value: String?
    public init(_ name: String, _ value: String? = nil) { self.name = name; self.value = value }
}

extension Array where Element == SIPParameter {
    /// Value of the first parameter with this name (case-insensitive):
    /// nil if absent, `.some(nil)` if present without a value.
    public func value(_ name: String) -> String?? {
        for p in self where p.name.caseInsensitiveEquals(name) { return .some(p.value) }
        return nil
    }
    public func has(_ name: String) -> Bool { contains { $0.name.caseInsensitiveEquals(name) } }
    public mutating func set(_ name: String, _ value: String?) {
        if let i = firstIndex(where: { $0.name.caseInsensitiveEquals(name) }) { self[i].value = value }
        else { append(SIPParameter(name, value)) }
    }
    public mutating func remove(_ name: String) { removeAll { $0.name.caseInsensitiveEquals(name) } }

    var serializedParameters: String {
        var s = ""
        for p in self { s += ";" + p.name; if let v = p.value { s += "=" + v } }
        return s
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { $0.lowercasedASCII == $1.lowercasedASCII }
    }
}

/// A SIP or SIPS URI (RFC 3261 §19.1), a tel URI, or any other absolute URI
/// (kept opaque). Components hold the text as written, escapes included.
public struct SIPURI: Sendable, Hashable, CustomStringConvertible {
    /// Lower-cased scheme: "sip", "sips", "tel", …
    public var scheme: String
    public var user: String?
    public var password: String?
    /// Host for sip/sips (IPv6 in brackets); empty for other schemes.
    public var host: String
    public var port: UInt16?
    public var parameters: [SIPParameter]
    public var headers: [SIPParameter]
    /// For schemes other than sip/sips: everything after "scheme:".
    public var opaque: String?

    public init(scheme: String = "sip", user: String? = nil, host: String, port: UInt16? = nil, parameters: [SIPParameter] = []) {
        self.scheme = scheme; self.user = user; self.password = nil; self.host = host; self.port = port
        self.parameters = parameters; self.headers = []; self.opaque = nil
    }

    public init(_ text: String) throws(SIPParseError) {
        var text = text
        let result: Result<SIPURI, SIPParseError> = text.withUTF8 { b in
            do { return .success(try SIPURI(b, 0..<b.count)) } catch let e as GrammarError {
                return .failure(.malformedURI(e.reason))
            } catch { return .failure(.malformedURI("\(error)")) }
        }
        self = try result.get()
    }

    init(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) {
        var params: [SIPParameter] = []
        var headers: [SIPParameter] = []
        func s(_ x: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[x]), as: UTF8.self) }
        let u = try URIGrammar.parse(b, r, onParam: { n, v in params.append(SIPParameter(s(n), v.map(s))) },
                                     onHeader: { n, v in headers.append(SIPParameter(s(n), s(v))) })
        scheme = s(u.scheme).lowercased()
        if u.isSIP {
            user = u.user.map(s); password = u.password.map(s); host = s(u.host); port = u.port
            opaque = nil
        } else {
            user = nil; password = nil; host = ""; port = nil; opaque = s(u.opaque)
        }
        self.parameters = params
        self.headers = headers
    }

    public var isSIP: Bool { scheme == "sip" || scheme == "sips" }
    /// The user part with %-escapes decoded (RFC 3261 §19.1.4).
    public var decodedUser: String? { user.map { percentDecoded($0[...]) } }
    public var transportParameter: String? { parameters.value("transport").flatMap { $0 } }
    public var hasLooseRouting: Bool { parameters.has("lr") }

    public var description: String {
        guard isSIP else { return scheme + ":" + (opaque ?? "") }
        var s = scheme + ":"
        if let user { s += user; if let password { s += ":" + password }; s += "@" }
        s += host
        if let port { s += ":\(port)" }
        s += parameters.serializedParameters
        if !headers.isEmpty { s += "?" + headers.map { $0.name + "=" + ($0.value ?? "") }.joined(separator: "&") }
        return s
    }
}

/// name-addr / addr-spec with header parameters: From, To, Contact, Route …
public struct SIPNameAddress: Sendable, Hashable, CustomStringConvertible {
    /// Display name with quotes and escapes removed.
    public var displayName: String?
    public var uri: SIPURI
    public var parameters: [SIPParameter]

    public init(displayName: String? = nil, uri: SIPURI, parameters: [SIPParameter] = []) {
        self.displayName = displayName; self.uri = uri; self.parameters = parameters
    }

    public init(_ text: String) throws(SIPParseError) {
        var text = text
        let result: Result<SIPNameAddress, SIPParseError> = text.withUTF8 { b in
            do { return .success(try SIPNameAddress(b, 0..<b.count)) } catch let e as GrammarError {
                return .failure(.malformedHeader(name: "name-addr", reason: e.reason))
            } catch { return .failure(.malformedHeader(name: "name-addr", reason: "\(error)")) }
        }
        self = try result.get()
    }

    init(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) {
        var params: [SIPParameter] = []
        func s(_ x: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[x]), as: UTF8.self) }
        let na = try HeaderGrammar.nameAddr(b, r) { n, v in params.append(SIPParameter(s(n), v.map(s))) }
        if let d = na.displayName {
            if na.displayNameQuoted {
                var out = [UInt8](); var i = d.lowerBound
                while i < d.upperBound { if b[i] == ASCII.backslash, i + 1 < d.upperBound { i += 1 }; out.append(b[i]); i += 1 }
                displayName = String(decoding: out, as: UTF8.self)
            } else {
                displayName = unfolded(b, d)
            }
        } else {
            displayName = nil
        }
        uri = try SIPURI(b, na.uri)
        parameters = params
    }

    public var tag: String? {
        get { parameters.value("tag").flatMap { $0 } }
        set { if let newValue { parameters.set("tag", newValue) } else { parameters.remove("tag") } }
    }

    public var description: String {
        var s = ""
        if let displayName {
            var q = "\""
            for ch in displayName { if ch == "\"" || ch == "\\" { q.append("\\") }; q.append(ch) }
            s += q + "\" "
        }
        s += "<" + uri.description + ">" + parameters.serializedParameters
        return s
    }
}

/// A Contact value: an address or `*` (RFC 3261 §20.10, used to remove all bindings).
public enum SIPContact: Sendable, Hashable, CustomStringConvertible {
    case wildcard
    case address(SIPNameAddress)

    public var address: SIPNameAddress? { if case .address(let a) = self { return a } else { return nil } }
    public var description: String {
        switch self {
        case .wildcard: return "*"
        case .address(let a): return a.description
        }
    }
}

/// One Via value (RFC 3261 §20.42, RFC 3581 rport).
public struct SIPVia: Sendable, Hashable, CustomStringConvertible {
    /// Upper-cased transport: UDP, TCP, TLS, SCTP, …
    public var transport: String
    public var host: String
    public var port: UInt16?
    public var parameters: [SIPParameter]

    public init(transport: String, host: String, port: UInt16?, branch: String, rport: Bool = true) {
        self.transport = transport; self.host = host; self.port = port
        self.parameters = [SIPParameter("branch", branch)]
        if rport { parameters.append(SIPParameter("rport")) }
    }

    public init(_ text: String) throws(SIPParseError) {
        var text = text
        let result: Result<SIPVia, SIPParseError> = text.withUTF8 { b in
            do { return .success(try SIPVia(b, 0..<b.count)) } catch let e as GrammarError {
                return .failure(.malformedHeader(name: "Via", reason: e.reason))
            } catch { return .failure(.malformedHeader(name: "Via", reason: "\(error)")) }
        }
        self = try result.get()
    }

    init(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(GrammarError) {
        var params: [SIPParameter] = []
        func s(_ x: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[x]), as: UTF8.self) }
        let v = try HeaderGrammar.via(b, r) { n, v in params.append(SIPParameter(s(n), v.map(s))) }
        transport = s(v.transport).uppercased()
        host = s(v.host)
        port = v.port
        parameters = params
    }

    public var branch: String? { parameters.value("branch").flatMap { $0 } }
    public var received: String? {
        get { parameters.value("received").flatMap { $0 } }
        set { if let newValue { parameters.set("received", newValue) } else { parameters.remove("received") } }
    }
    public var maddr: String? { parameters.value("maddr").flatMap { $0 } }
    /// rport: `.some(nil)` when requested without a value (RFC 3581 §3).
    public var rport: String?? { parameters.value("rport") }
    /// RFC 3261 §17.2.3: branches starting with the magic cookie are unique per transaction.
    public var hasMagicCookie: Bool { branch?.hasPrefix("z9hG4bK") ?? false }
    public var sentBy: String { port.map { "\(host):\($0)" } ?? host }

    public var description: String {
        "SIP/2.0/\(transport) \(sentBy)" + parameters.serializedParameters
    }
}

public struct SIPCSeq: Sendable, Hashable, CustomStringConvertible {
    public var number: UInt32
    public var method: SIPMethod
    public init(_ number: UInt32, _ method: SIPMethod) { self.number = number; self.method = method }
    public var description: String { "\(number) \(method)" }
}

// MARK: - Typed accessors

extension SIPMessage {
    /// Every Via value, top first.
    public var vias: [SIPVia] {
        var out: [SIPVia] = []
        withFieldBytes(.via) { b, r in
            try? splitTopLevelCommas(b, r) { el throws(GrammarError) in out.append(try SIPVia(b, el)) }
        }
        return out
    }

    public var topVia: SIPVia? {
        withFirstFieldBytes(.via) { b, r -> SIPVia? in
            var first: Range<Int>?
            try? splitTopLevelCommas(b, r) { el throws(GrammarError) in if first == nil { first = el } }
            guard let first else { return nil }
            return try? SIPVia(b, first)
        } ?? nil
    }

    public var from: SIPNameAddress? { nameAddress(.from) }
    public var to: SIPNameAddress? { nameAddress(.to) }
    public var fromTag: String? { from?.tag }
    public var toTag: String? { to?.tag }

    func nameAddress(_ name: SIPHeaderName) -> SIPNameAddress? {
        withFirstFieldBytes(name) { b, r in try? SIPNameAddress(b, r) } ?? nil
    }

    public var callID: String? { firstValue(.callID) }

    public var cseq: SIPCSeq? {
        withFirstFieldBytes(.cseq) { b, r -> SIPCSeq? in
            guard let (n, m) = try? HeaderGrammar.cseq(b, r) else { return nil }
            return SIPCSeq(n, SIPMethod.make(UnsafeBufferPointer(rebasing: b[m])))
        } ?? nil
    }

    public var maxForwards: Int? {
        withFirstFieldBytes(.maxForwards) { b, r in decimal(b, r, max: 255).map(Int.init) } ?? nil
    }

    public var contentLength: Int? {
        withFirstFieldBytes(.contentLength) { b, r in decimal(b, r, max: UInt64(Int32.max)).map(Int.init) } ?? nil
    }

    public var expires: UInt32? {
        withFirstFieldBytes(.expires) { b, r in decimal(b, r, max: UInt64(UInt32.max)).map(UInt32.init) } ?? nil
    }

    /// Media type without parameters, lower-cased (e.g. "application/sdp").
    public var contentType: String? {
        guard let v = firstValue(.contentType) else { return nil }
        guard let media = v.split(separator: ";", maxSplits: 1).first else { return nil }
        return String(media.filter { $0 != " " && $0 != "\t" }).lowercased()
    }

    public var contacts: [SIPContact] { addressList(.contact) }
    public var routes: [SIPNameAddress] { addressList(.route).compactMap(\.address) }
    public var recordRoutes: [SIPNameAddress] { addressList(.recordRoute).compactMap(\.address) }

    func addressList(_ name: SIPHeaderName) -> [SIPContact] {
        var out: [SIPContact] = []
        withFieldBytes(name) { b, r in
            let t = trimmedLWS(b, r)
            if t.count == 1, b[t.lowerBound] == ASCII.star { out.append(.wildcard); return }
            try? splitTopLevelCommas(b, r) { el throws(GrammarError) in
                if let a = try? SIPNameAddress(b, el) { out.append(.address(a)) }
            }
        }
        return out
    }

    /// The Request-URI parsed; nil for responses.
    public var parsedRequestURI: SIPURI? { requestURI.flatMap { try? SIPURI($0) } }
}

extension SIPMessage {
    /// Replaces the top Via value, leaving any other values on that line in place.
    public mutating func replaceTopVia(with via: SIPVia) {
        guard let first = values(.via).first else { prepend(.via, via.description); return }
        var rest: [String] = []
        var s = first
        s.withUTF8 { b in
            var n = 0
            try? splitTopLevelCommas(b, 0..<b.count) { el throws(GrammarError) in
                if n > 0 { rest.append(String(decoding: UnsafeBufferPointer(rebasing: b[el]), as: UTF8.self)) }
                n += 1
            }
        }
        let value = ([via.description] + rest).joined(separator: ", ")
        if let i = fields.firstIndex(where: { $0.kind == .via }) { fields[i].value = .owned(value) }
    }
}
