// SDP session descriptions (RFC 4566): the model, the parser and the serializer.
// Pure Swift stdlib — no Foundation, no I/O — so the codec fuzzes fast on its own.
// The offer/answer helpers (RFC 3264) are in OfferAnswer.swift.

/// Why an SDP body was refused. Every message names the line (1-based) where it can.
public enum SDPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooLarge(size: Int, limit: Int)
    case tooManyLines(limit: Int)
    case tooManyMedia(line: Int, limit: Int)
    /// The first line is not `v=`.
    case versionNotFirst
    case unsupportedVersion(String)
    /// Not `<type>=<value>` with a single-letter type (RFC 4566 §5).
    case notAField(line: Int, text: String)
    case invalidUTF8(line: Int)
    /// NUL or a CR inside a line (RFC 4566 §5 forbids both in values).
    case controlCharacter(line: Int)
    case tooFewFields(line: Int, type: Character, needed: Int, found: Int)
    case tooManyFields(line: Int, type: Character, allowed: Int, found: Int)
    case invalidValue(line: Int, type: Character, field: String, value: String)
    case duplicate(line: Int, type: Character)
    /// `v=` after line 1, or a session-only line (`o= s= t=`) after the first `m=`.
    case misplaced(line: Int, type: Character)
    /// A required line (`o= s= t=`) is absent.
    case missing(type: Character)
    /// A media description has no `c=` and the session has none either (RFC 4566 §5.7).
    case noConnection(line: Int)

    public var description: String {
        switch self {
        case .tooLarge(let size, let limit): return "SDP of \(size) bytes exceeds the limit of \(limit) bytes"
        case .tooManyLines(let limit): return "SDP has more than \(limit) lines"
        case .tooManyMedia(let n, let limit): return "line \(n): more than \(limit) m= lines"
        case .versionNotFirst: return "line 1: SDP must begin with v=0"
        case .unsupportedVersion(let v): return "line 1: unsupported SDP version '\(v)' (only v=0 exists)"
        case .notAField(let n, let text): return "line \(n): '\(text)' is not of the form x=value with a one-letter type"
        case .invalidUTF8(let n): return "line \(n): not valid UTF-8"
        case .controlCharacter(let n): return "line \(n): contains a NUL or a bare CR"
        case .tooFewFields(let n, let t, let needed, let found):
            return "line \(n): \(t)= line needs at least \(needed) fields, found \(found)"
        case .tooManyFields(let n, let t, let allowed, let found):
            return "line \(n): \(t)= line has \(found) fields, at most \(allowed) allowed"
        case .invalidValue(let n, let t, let field, let value): return "line \(n): \(t)= \(field) '\(value)' is not valid"
        case .duplicate(let n, let t): return "line \(n): second \(t)= line where only one is allowed"
        case .misplaced(let n, let t):
            return t == "v" ? "line \(n): v= may only be the first line" : "line \(n): \(t)= line must come before the first m= line"
        case .missing(let t): return "SDP has no \(t)= line (v=, o=, s= and t= are required)"
        case .noConnection(let n): return "line \(n): media has no c= line and the session has none"
        }
    }
}

/// `o=` (RFC 4566 §5.2).
public struct SDPOrigin: Sendable, Equatable {
    public var username: String
    public var sessionID: String
    public var sessionVersion: UInt64
    public var netType: String
    public var addrType: String
    public var address: String

    public init(username: String = "-", sessionID: String, sessionVersion: UInt64,
                netType: String = "IN", addrType: String, address: String) {
        self.username = username; self.sessionID = sessionID; self.sessionVersion = sessionVersion
        self.netType = netType; self.addrType = addrType; self.address = address
    }
}

/// `c=` (RFC 4566 §5.7).
public struct SDPConnection: Sendable, Equatable {
    public var netType: String
    public var addrType: String
    public var address: String

    public init(netType: String = "IN", addrType: String, address: String) {
        self.netType = netType; self.addrType = addrType; self.address = address
    }

    /// `IN IP6` when the address has a colon, else `IN IP4`.
    public init(address: String) {
        self.init(addrType: address.contains(":") ? "IP6" : "IP4", address: address)
    }
}

/// The first `t=` line (RFC 4566 §5.9); `0 0` means unbounded, which is what SIP uses.
public struct SDPTiming: Sendable, Equatable {
    public var start: UInt64
    public var stop: UInt64
    public init(start: UInt64 = 0, stop: UInt64 = 0) { self.start = start; self.stop = stop }
}

/// `b=<bwtype>:<bandwidth>` (RFC 4566 §5.8).
public struct SDPBandwidth: Sendable, Equatable {
    public var type: String
    public var value: UInt64
    public init(type: String, value: UInt64) { self.type = type; self.value = value }
}

/// `a=<name>` or `a=<name>:<value>` (RFC 4566 §5.13).
public struct SDPAttribute: Sendable, Equatable {
    public var name: String
    public var value: String?
    public init(_ name: String, _ value: String? = nil) { self.name = name; self.value = value }
}

/// A line the model has no field for (`i= u= e= p= z= k= r=`, further `t=`, unknown types),
/// kept verbatim so that a relayed description loses nothing.
public struct SDPLine: Sendable, Equatable {
    public var type: Character
    public var value: String
    public init(type: Character, value: String) { self.type = type; self.value = value }
}

/// One `m=` section (RFC 4566 §5.14) and the lines under it.
public struct MediaDescription: Sendable, Equatable {
    public var media: String
    public var port: Int
    /// The `/<number of ports>` suffix of the port, if present.
    public var portCount: Int?
    public var proto: String
    /// RTP payload type numbers for `RTP/AVP`, in preference order (RFC 3264 §5.1).
    public var formats: [String]
    public var connection: SDPConnection?
    public var bandwidths: [SDPBandwidth]
    public var attributes: [SDPAttribute]
    /// `i=` first, then `k=` and unknown types, each group in original order.
    public var otherLines: [SDPLine]

    public init(media: String = "audio", port: Int, portCount: Int? = nil, proto: String = "RTP/AVP",
                formats: [String], connection: SDPConnection? = nil, bandwidths: [SDPBandwidth] = [],
                attributes: [SDPAttribute] = [], otherLines: [SDPLine] = []) {
        self.media = media; self.port = port; self.portCount = portCount; self.proto = proto; self.formats = formats
        self.connection = connection; self.bandwidths = bandwidths; self.attributes = attributes; self.otherLines = otherLines
    }
}

public struct SessionDescription: Sendable, Equatable {
    /// Always 0: the only SDP version (RFC 4566 §5.1).
    public var version: Int { 0 }
    public var origin: SDPOrigin
    public var sessionName: String
    public var connection: SDPConnection?
    public var bandwidths: [SDPBandwidth]
    public var timing: SDPTiming
    public var attributes: [SDPAttribute]
    /// `i= u= e= p=` first, then `r= z= k=`, further `t=` and unknown types, each group in
    /// original order — where RFC 4566 §5 places them around `c= b= t=`.
    public var otherLines: [SDPLine]
    public var media: [MediaDescription]

    /// Limits on untrusted input: far above any real offer, low enough to bound the work.
    public static let maxBytes = 65_536
    public static let maxLines = 1_024
    public static let maxMedia = 64

    public init(origin: SDPOrigin, sessionName: String = "-", connection: SDPConnection? = nil,
                bandwidths: [SDPBandwidth] = [], timing: SDPTiming = SDPTiming(), attributes: [SDPAttribute] = [],
                otherLines: [SDPLine] = [], media: [MediaDescription] = []) {
        self.origin = origin; self.sessionName = sessionName; self.connection = connection; self.bandwidths = bandwidths
        self.timing = timing; self.attributes = attributes; self.otherLines = otherLines; self.media = media
    }

    public init(parsing text: String) throws(SDPParseError) {
        try self.init(parsing: Array(text.utf8))
    }

    public init(parsing bytes: [UInt8]) throws(SDPParseError) {
        guard bytes.count <= Self.maxBytes else { throw .tooLarge(size: bytes.count, limit: Self.maxBytes) }
        // RFC 4566 §5: lines end in CRLF, but a parser should also accept a bare LF.
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        for i in lines.indices where lines[i].last == 0x0D { lines[i].removeLast() }
        // The final line end leaves an empty last line; some senders pad with more.
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard !lines.isEmpty else { throw .versionNotFirst }
        guard lines.count <= Self.maxLines else { throw .tooManyLines(limit: Self.maxLines) }
        var parser = Parser()
        for (index, line) in lines.enumerated() { try parser.take(line, number: index + 1) }
        self = try parser.finish()
    }

    /// The description with CRLF line ends, lines in RFC 4566 §5 order.
    public func serialized() -> String {
        var out = ""
        out.reserveCapacity(256 + 128 * media.count)
        func put(_ type: String, _ value: String) { out += type; out += value; out += "\r\n" }
        func put(_ c: SDPConnection) { put("c=", c.netType + " " + c.addrType + " " + c.address) }
        func put(_ lines: [SDPLine]) { for l in lines { put(String(l.type) + "=", l.value) } }
        func put(_ b: [SDPBandwidth]) { for x in b { put("b=", x.type + ":" + String(x.value)) } }
        func put(_ a: [SDPAttribute]) { for x in a { put("a=", x.value.map { x.name + ":" + $0 } ?? x.name) } }

        let o = origin
        put("v=", "0")
        put("o=", [o.username, o.sessionID, String(o.sessionVersion), o.netType, o.addrType, o.address].joined(separator: " "))
        put("s=", sessionName)
        put(otherLines.filter { Self.beforeConnection.contains($0.type) })
        if let connection { put(connection) }
        put(bandwidths)
        put("t=", String(timing.start) + " " + String(timing.stop))
        put(otherLines.filter { !Self.beforeConnection.contains($0.type) })
        put(attributes)
        for m in media {
            let port = m.portCount.map { String(m.port) + "/" + String($0) } ?? String(m.port)
            put("m=", ([m.media, port, m.proto] + m.formats).joined(separator: " "))
            put(m.otherLines.filter { $0.type == "i" })
            if let c = m.connection { put(c) }
            put(m.bandwidths)
            put(m.otherLines.filter { $0.type != "i" })
            put(m.attributes)
        }
        return out
    }

    /// Session-level types that RFC 4566 §5 places between `s=` and `c=`.
    static let beforeConnection: Set<Character> = ["i", "u", "e", "p"]
}

/// Digits only: `Int("+5")` and friends accept signs that SDP's grammar does not.
func sdpNumber(_ s: Substring) -> UInt64? {
    guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return UInt64(s)
}

/// Builds a `SessionDescription` line by line, checking RFC 4566 §5's grammar as it goes.
private struct Parser {
    var origin: SDPOrigin?
    var sessionName: String?
    var connection: SDPConnection?
    var bandwidths: [SDPBandwidth] = []
    var timing: SDPTiming?
    var attributes: [SDPAttribute] = []
    var otherLines: [SDPLine] = []
    var media: [MediaDescription] = []
    var mediaLineNumbers: [Int] = []

    mutating func take(_ line: ArraySlice<UInt8>, number n: Int) throws(SDPParseError) {
        if n == 1 {
            guard line.starts(with: [UInt8(ascii: "v"), UInt8(ascii: "=")]) else { throw .versionNotFirst }
        }
        guard !line.contains(0), !line.contains(0x0D) else { throw .controlCharacter(line: n) }
        // Exactly one letter, then "=" (RFC 4566 §5): "m =video" in RFC 4475 §3.1.1.8's trailing octets is not SDP.
        guard line.count >= 2, let t = line.first, (t | 0x20) >= 0x61, (t | 0x20) <= 0x7A,
              line[line.startIndex + 1] == UInt8(ascii: "=") else {
            throw .notAField(line: n, text: String(decoding: line.prefix(40), as: UTF8.self))
        }
        guard let value = String(validating: line.dropFirst(2), as: UTF8.self) else { throw .invalidUTF8(line: n) }
        let type = Character(Unicode.Scalar(t))
        let inMedia = !media.isEmpty

        func fields(_ min: Int, max: Int = .max) throws(SDPParseError) -> [Substring] {
            let f = value.split(separator: " ")
            if f.count < min { throw .tooFewFields(line: n, type: type, needed: min, found: f.count) }
            if f.count > max { throw .tooManyFields(line: n, type: type, allowed: max, found: f.count) }
            return f
        }
        func number(_ s: Substring, _ field: String) throws(SDPParseError) -> UInt64 {
            guard let v = sdpNumber(s) else { throw .invalidValue(line: n, type: type, field: field, value: String(s)) }
            return v
        }
        func sessionOnly(_ seen: Bool) throws(SDPParseError) {
            if inMedia { throw .misplaced(line: n, type: type) }
            if seen { throw .duplicate(line: n, type: type) }
        }

        switch type {
        case "v":
            if n > 1 { throw .misplaced(line: n, type: type) }
            guard value == "0" else { throw .unsupportedVersion(value) }
        case "o":
            try sessionOnly(origin != nil)
            let f = try fields(6, max: 6)
            origin = SDPOrigin(username: String(f[0]), sessionID: String(f[1]),
                               sessionVersion: try number(f[2], "session version"),
                               netType: String(f[3]), addrType: String(f[4]), address: String(f[5]))
        case "s":
            try sessionOnly(sessionName != nil)
            sessionName = value
        case "t":
            if inMedia { throw .misplaced(line: n, type: type) }
            let f = try fields(2, max: 2)
            let parsed = SDPTiming(start: try number(f[0], "start time"), stop: try number(f[1], "stop time"))
            // Further t= lines (RFC 4566 §5.9 allows several) are kept verbatim after the first.
            if timing == nil { timing = parsed } else { otherLines.append(SDPLine(type: type, value: value)) }
        case "c":
            // One c= per level: several per media only serve layered multicast (§5.7), which a
            // B2BUA that anchors media must not pass through half-rewritten.
            if inMedia ? media[media.count - 1].connection != nil : connection != nil { throw .duplicate(line: n, type: type) }
            let f = try fields(3, max: 3)
            let c = SDPConnection(netType: String(f[0]), addrType: String(f[1]), address: String(f[2]))
            if inMedia { media[media.count - 1].connection = c } else { connection = c }
        case "b":
            let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw .invalidValue(line: n, type: type, field: "bandwidth", value: value)
            }
            let b = SDPBandwidth(type: String(parts[0]), value: try number(parts[1], "bandwidth"))
            if inMedia { media[media.count - 1].bandwidths.append(b) } else { bandwidths.append(b) }
        case "m":
            guard media.count < SessionDescription.maxMedia else {
                throw .tooManyMedia(line: n, limit: SessionDescription.maxMedia)
            }
            let f = try fields(4)
            let portParts = f[1].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let port = try number(portParts[0], "port")
            guard port <= 65_535 else { throw .invalidValue(line: n, type: type, field: "port", value: String(f[1])) }
            var count: Int?
            if portParts.count == 2 {
                let c = try number(portParts[1], "port count")
                guard c >= 1, c <= 65_536 else { throw .invalidValue(line: n, type: type, field: "port count", value: String(f[1])) }
                count = Int(c)
            }
            media.append(MediaDescription(media: String(f[0]), port: Int(port), portCount: count,
                                          proto: String(f[2]), formats: f.dropFirst(3).map(String.init)))
            mediaLineNumbers.append(n)
        case "a":
            let a: SDPAttribute
            if let colon = value.firstIndex(of: ":") {
                a = SDPAttribute(String(value[..<colon]), String(value[value.index(after: colon)...]))
            } else {
                a = SDPAttribute(value)
            }
            guard !a.name.isEmpty else { throw .invalidValue(line: n, type: type, field: "attribute name", value: value) }
            if inMedia { media[media.count - 1].attributes.append(a) } else { attributes.append(a) }
        default:
            let l = SDPLine(type: type, value: value)
            if inMedia { media[media.count - 1].otherLines.append(l) } else { otherLines.append(l) }
        }
    }

    func finish() throws(SDPParseError) -> SessionDescription {
        guard let origin else { throw .missing(type: "o") }
        guard let sessionName else { throw .missing(type: "s") }
        guard let timing else { throw .missing(type: "t") }
        if connection == nil, let i = media.firstIndex(where: { $0.connection == nil }) {
            throw .noConnection(line: mediaLineNumbers[i])
        }
        // Group the kept lines the way serialized() places them, so a parse of the
        // serialization equals the parse of the original even when the original was out of order.
        var media = media
        for i in media.indices {
            let l = media[i].otherLines
            media[i].otherLines = l.filter { $0.type == "i" } + l.filter { $0.type != "i" }
        }
        let before = SessionDescription.beforeConnection
        return SessionDescription(
            origin: origin, sessionName: sessionName, connection: connection, bandwidths: bandwidths, timing: timing,
            attributes: attributes,
            otherLines: otherLines.filter { before.contains($0.type) } + otherLines.filter { !before.contains($0.type) },
            media: media)
    }
}
