// A small SDP codec (RFC 4566) with the offer/answer helpers (RFC 3264) a
// B2BUA needs when it anchors media. No Foundation, no I/O: fuzzable alone.

public enum SDPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(size: Int, limit: Int)
    case tooManyLines(limit: Int)
    case malformedLine(line: Int, reason: String)
    case missingVersion
    case unsupportedVersion(String)
    case invalidUTF8

    public var description: String {
        switch self {
        case .tooLarge(let s, let l): return "SDP of \(s) bytes exceeds the limit of \(l)"
        case .tooManyLines(let l): return "SDP has more than \(l) lines"
        case .malformedLine(let n, let why): return "line \(n): \(why)"
        case .missingVersion: return "line 1: SDP must start with v=0"
        case .unsupportedVersion(let v): return "line 1: unsupported SDP version \(v)"
        case .invalidUTF8: return "SDP is not valid UTF-8"
        }
    }
}

public struct SDPOrigin: Sendable, Equatable {
    public var username: String
    public var sessionID: String
    public var sessionVersion: UInt64
    public var netType: String
    public var addrType: String
    public var address: String
    public var line: String { "\(username) \(sessionID) \(sessionVersion) \(netType) \(addrType) \(address)" }
}

public struct SDPConnection: Sendable, Equatable {
    public var netType: String
    public var addrType: String
    public var address: String
    public init(netType: String = "IN", addrType: String, address: String) {
        self.netType = netType; self.addrType = addrType; self.address = address
    }
    /// IP4 or IP6 chosen from the address.
    public init(address: String) {
        self.init(addrType: address.contains(":") ? "IP6" : "IP4", address: address)
    }
    public var line: String { "\(netType) \(addrType) \(address)" }
}

public struct SDPAttribute: Sendable, Equatable {
    public var name: String
    public var value: String?
    public init(_ name: String, _ value: String? = nil) { self.name = name; self.value = value }
    public var line: String { value.map { "\(name):\($0)" } ?? name }
}

public enum SDPDirection: String, Sendable, Equatable, CaseIterable {
    case sendrecv, sendonly, recvonly, inactive

    /// The direction an answer gives for this offered direction (RFC 3264 §6.1).
    public var answering: SDPDirection {
        switch self {
        case .sendonly: return .recvonly
        case .recvonly: return .sendonly
        default: return self
        }
    }
}

public struct RTPMap: Sendable, Equatable {
    public var payloadType: Int
    public var encoding: String
    public var clockRate: Int
    public var channels: Int?
    public init(payloadType: Int, encoding: String, clockRate: Int, channels: Int? = nil) {
        self.payloadType = payloadType; self.encoding = encoding; self.clockRate = clockRate; self.channels = channels
    }
}

/// A line kept as written (i=, u=, e=, p=, b=, z=, k=, r= and unknown ones).
public struct SDPLine: Sendable, Equatable {
    public var type: Character
    public var value: String
}

public struct MediaDescription: Sendable, Equatable {
    public var media: String
    public var port: Int
    public var portCount: Int?
    public var proto: String
    public var formats: [String]
    public var connection: SDPConnection?
    public var attributes: [SDPAttribute]
    /// i=, b=, k= lines of this media, in order.
    public var otherLines: [SDPLine]

    public var rtpMaps: [RTPMap] { attributes.compactMap { $0.name == "rtpmap" ? $0.value.flatMap(Self.rtpMap) : nil } }

    public func fmtp(_ payloadType: Int) -> String? {
        for a in attributes where a.name == "fmtp" {
            if let v = a.value, let sp = v.firstIndex(of: " "), Int(v[..<sp]) == payloadType { return String(v[v.index(after: sp)...]) }
        }
        return nil
    }

    public var ptime: Int? { attributes.first { $0.name == "ptime" }?.value.flatMap { Int($0) } }

    /// Direction attribute of this media, if it has one.
    public var direction: SDPDirection? {
        get { attributes.lazy.compactMap { SDPDirection(rawValue: $0.name) }.first }
        set {
            attributes.removeAll { SDPDirection(rawValue: $0.name) != nil }
            if let newValue { attributes.append(SDPAttribute(newValue.rawValue)) }
        }
    }

    /// Keeps only the listed payload types, with their rtpmap/fmtp lines (RFC 3264 §6.1).
    public mutating func keepPayloadTypes(_ keep: Set<Int>) {
        formats = formats.filter { Int($0).map(keep.contains) ?? false }
        attributes.removeAll { a in
            guard a.name == "rtpmap" || a.name == "fmtp", let v = a.value else { return false }
            let pt = Int(v.prefix { $0 != " " })
            return pt.map { !keep.contains($0) } ?? false
        }
    }

    static func rtpMap(_ v: String) -> RTPMap? {
        let parts = v.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, let pt = Int(parts[0]) else { return nil }
        let enc = parts[1].split(separator: "/")
        guard enc.count >= 2, let rate = Int(enc[1]) else { return nil }
        return RTPMap(payloadType: pt, encoding: String(enc[0]), clockRate: rate, channels: enc.count > 2 ? Int(enc[2]) : nil)
    }
}

public struct SessionDescription: Sendable, Equatable {
    public var version: Int = 0
    public var origin: SDPOrigin
    public var sessionName: String
    public var connection: SDPConnection?
    public var timing: (start: UInt64, stop: UInt64) {
        get { (timingStart, timingStop) }
        set { timingStart = newValue.start; timingStop = newValue.stop }
    }
    var timingStart: UInt64 = 0
    var timingStop: UInt64 = 0
    public var attributes: [SDPAttribute]
    /// Session-level lines other than v, o, s, c, t, a — kept in order.
    public var otherLines: [SDPLine]
    public var media: [MediaDescription]

    public static let maxSize = 65_536
    public static let maxLines = 1_000

    public init(parsing text: String) throws(SDPParseError) {
        try self.init(parsing: Array(text.utf8))
    }

    public init(parsing bytes: [UInt8]) throws(SDPParseError) {
        guard bytes.count <= Self.maxSize else { throw .tooLarge(size: bytes.count, limit: Self.maxSize) }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8 }
        // "\r\n" is a single Character in Swift: split on it and on a bare "\n".
        var lines = text.split(omittingEmptySubsequences: false) { $0 == "\r\n" || $0 == "\n" }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard lines.count <= Self.maxLines else { throw .tooManyLines(limit: Self.maxLines) }
        guard let first = lines.first, first.hasPrefix("v=") else { throw .missingVersion }
        guard first == "v=0" else { throw .unsupportedVersion(String(first.dropFirst(2))) }

        var origin: SDPOrigin?
        var name: String?
        var connection: SDPConnection?
        var start: UInt64 = 0, stop: UInt64 = 0
        var attributes: [SDPAttribute] = []
        var other: [SDPLine] = []
        var media: [MediaDescription] = []

        for (index, raw) in lines.enumerated().dropFirst() {
            let n = index + 1
            // type "=" value, type a single letter (RFC 4566 §5); no space before "=" (RFC 4475 dblreq's "m =video" is bad SDP).
            let chars = Array(raw)
            guard chars.count >= 2, chars[1] == "=", let t = chars.first, t.isASCII, t.isLetter, t.isLowercase else {
                throw .malformedLine(line: n, reason: "'\(raw.prefix(40))' is not of the form x=value")
            }
            let value = String(raw.dropFirst(2))
            func fields(_ need: Int, _ what: String) throws(SDPParseError) -> [Substring] {
                let f = value.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= need else { throw .malformedLine(line: n, reason: "\(t)= line needs at least \(need) fields (\(what))") }
                return f
            }
            switch t {
            case "o":
                let f = try fields(6, "username sess-id sess-version nettype addrtype address")
                guard let v = UInt64(f[2]) else { throw .malformedLine(line: n, reason: "o= session version '\(f[2])' is not a number") }
                origin = SDPOrigin(username: String(f[0]), sessionID: String(f[1]), sessionVersion: v,
                                   netType: String(f[3]), addrType: String(f[4]), address: String(f[5]))
            case "s":
                name = value
            case "c":
                let f = try fields(3, "nettype addrtype address")
                let c = SDPConnection(netType: String(f[0]), addrType: String(f[1]), address: String(f[2]))
                if media.isEmpty { connection = c } else { media[media.count - 1].connection = c }
            case "t":
                let f = try fields(2, "start stop")
                guard let a = UInt64(f[0]), let b = UInt64(f[1]) else { throw .malformedLine(line: n, reason: "t= times must be numbers") }
                start = a; stop = b
            case "m":
                let f = try fields(4, "media port proto fmt")
                let portParts = f[1].split(separator: "/")
                guard let port = Int(portParts[0]), (0...65535).contains(port) else {
                    throw .malformedLine(line: n, reason: "m= port '\(f[1])' is not a port number")
                }
                guard media.count < 64 else { throw .malformedLine(line: n, reason: "more than 64 media descriptions") }
                media.append(MediaDescription(media: String(f[0]), port: port, portCount: portParts.count > 1 ? Int(portParts[1]) : nil,
                                              proto: String(f[2]), formats: f.dropFirst(3).map(String.init),
                                              connection: nil, attributes: [], otherLines: []))
            case "a":
                let attribute: SDPAttribute
                if let colon = value.firstIndex(of: ":") {
                    attribute = SDPAttribute(String(value[..<colon]), String(value[value.index(after: colon)...]))
                } else {
                    attribute = SDPAttribute(value)
                }
                if media.isEmpty { attributes.append(attribute) } else { media[media.count - 1].attributes.append(attribute) }
            default:
                let line = SDPLine(type: t, value: value)
                if media.isEmpty { other.append(line) } else { media[media.count - 1].otherLines.append(line) }
            }
        }
        guard let origin else { throw .malformedLine(line: lines.count, reason: "no o= line") }
        self.origin = origin
        self.sessionName = name ?? "-"
        self.connection = connection
        self.timingStart = start; self.timingStop = stop
        self.attributes = attributes
        self.otherLines = other
        self.media = media
    }

    public static func == (a: SessionDescription, b: SessionDescription) -> Bool {
        a.version == b.version && a.origin == b.origin && a.sessionName == b.sessionName && a.connection == b.connection
            && a.timingStart == b.timingStart && a.timingStop == b.timingStop && a.attributes == b.attributes
            && a.otherLines == b.otherLines && a.media == b.media
    }

    /// The description as text with CRLF line ends, in RFC 4566 §5 order.
    public func serialized() -> String {
        var out = "v=\(version)\r\no=\(origin.line)\r\ns=\(sessionName)\r\n"
        let order: [Character] = ["i", "u", "e", "p"]
        for t in order { for l in otherLines where l.type == t { out += "\(t)=\(l.value)\r\n" } }
        if let connection { out += "c=\(connection.line)\r\n" }
        for l in otherLines where l.type == "b" { out += "b=\(l.value)\r\n" }
        out += "t=\(timingStart) \(timingStop)\r\n"
        for l in otherLines where !order.contains(l.type) && l.type != "b" { out += "\(l.type)=\(l.value)\r\n" }
        for a in attributes { out += "a=\(a.line)\r\n" }
        for m in media {
            out += "m=\(m.media) \(m.port)\(m.portCount.map { "/\($0)" } ?? "") \(m.proto)"
            for f in m.formats { out += " " + f }
            out += "\r\n"
            for l in m.otherLines where l.type == "i" { out += "i=\(l.value)\r\n" }
            if let c = m.connection { out += "c=\(c.line)\r\n" }
            for l in m.otherLines where l.type != "i" { out += "\(l.type)=\(l.value)\r\n" }
            for a in m.attributes { out += "a=\(a.line)\r\n" }
        }
        return out
    }

    // MARK: Helpers for media anchoring

    /// Session-level direction (default sendrecv, RFC 4566 §6).
    public var direction: SDPDirection { attributes.lazy.compactMap { SDPDirection(rawValue: $0.name) }.first ?? .sendrecv }

    /// The direction in force for a media: its own attribute, else the session's.
    public func direction(ofMedia index: Int) -> SDPDirection { media[index].direction ?? direction }

    /// Points every connection line at `address` (the relay), session and media level.
    public mutating func setConnectionAddress(_ address: String) {
        let c = SDPConnection(address: address)
        connection = c
        for i in media.indices where media[i].connection != nil { media[i].connection = c }
        origin.addrType = c.addrType
        origin.address = address
    }

    /// RFC 3264 §8: every changed offer or answer carries a higher version.
    public mutating func bumpVersion() { origin.sessionVersion &+= 1 }
}
