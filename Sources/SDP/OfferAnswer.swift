// Attribute lookups and the offer/answer edits (RFC 3264) a B2BUA makes when it
// anchors media: point c= and m= at its relay, narrow the codecs, answer directions.

/// RFC 4566 §6 / RFC 3264 §5.1 media direction. Absent everywhere means `sendrecv`.
public enum SDPDirection: String, Sendable, Equatable, CaseIterable {
    case sendrecv, sendonly, recvonly, inactive

    /// The same stream seen from the other end: what an answer says to this offer
    /// (RFC 3264 §6.1: sendonly is answered recvonly and vice versa).
    public var flipped: SDPDirection {
        switch self {
        case .sendonly: return .recvonly
        case .recvonly: return .sendonly
        case .sendrecv, .inactive: return self
        }
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]` (RFC 4566 §6).
public struct RTPMap: Sendable, Equatable {
    public var payloadType: Int
    /// As written; compare case-insensitively (RFC 4855 §3).
    public var encoding: String
    public var clockRate: Int
    public var channels: Int?

    public init(payloadType: Int, encoding: String, clockRate: Int, channels: Int? = nil) {
        self.payloadType = payloadType; self.encoding = encoding; self.clockRate = clockRate; self.channels = channels
    }

    /// Parses an rtpmap value; nil when it lacks the clock rate or a number is bad.
    public init?(_ value: String) {
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, let pt = rtpPayloadType(parts[0]) else { return nil }
        let enc = parts[1].split(separator: "/", omittingEmptySubsequences: false)
        guard (2...3).contains(enc.count), !enc[0].isEmpty, let rate = sdpNumber(enc[1]), rate > 0, rate <= Int32.max
        else { return nil }
        var channels: Int?
        if enc.count == 3 {
            guard let c = sdpNumber(enc[2]), c > 0, c <= 255 else { return nil }
            channels = Int(c)
        }
        self.init(payloadType: pt, encoding: String(enc[0]), clockRate: Int(rate), channels: channels)
    }

    /// The attribute value, e.g. `8 PCMA/8000`.
    public var value: String {
        "\(payloadType) \(encoding)/\(clockRate)" + (channels.map { "/\($0)" } ?? "")
    }

    /// RFC 3551 §6 static payload types, which need no rtpmap line.
    public static func staticPayloadType(_ pt: Int) -> RTPMap? {
        guard let (name, rate) = staticTable[pt] else { return nil }
        return RTPMap(payloadType: pt, encoding: name, clockRate: rate, channels: pt == 10 ? 2 : nil)
    }

    private static let staticTable: [Int: (String, Int)] = [
        0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 5: ("DVI4", 8000), 6: ("DVI4", 16000),
        7: ("LPC", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000), 10: ("L16", 44100), 11: ("L16", 44100),
        12: ("QCELP", 8000), 13: ("CN", 8000), 14: ("MPA", 90000), 15: ("G728", 8000), 16: ("DVI4", 11025),
        17: ("DVI4", 22050), 18: ("G729", 8000), 25: ("CelB", 90000), 26: ("JPEG", 90000), 28: ("nv", 90000),
        31: ("H261", 90000), 32: ("MPV", 90000), 33: ("MP2T", 90000), 34: ("H263", 90000),
    ]
}

/// A payload type number 0…127 (RFC 3551 §3); nil for anything else.
func rtpPayloadType(_ s: Substring) -> Int? {
    guard let v = sdpNumber(s), v <= 127 else { return nil }
    return Int(v)
}

extension Array where Element == SDPAttribute {
    /// Replaces the first attribute that matches with `new` (in place, keeping its position)
    /// and removes the others; appends `new` when none matched.
    mutating func replace(where matches: (SDPAttribute) -> Bool, with new: SDPAttribute?) {
        let at = firstIndex(where: matches)
        removeAll(where: matches)
        if let new { insert(new, at: at ?? endIndex) }
    }

    var direction: SDPDirection? {
        get { lazy.compactMap { $0.value == nil ? SDPDirection(rawValue: $0.name) : nil }.first }
        set { replace(where: { $0.value == nil && SDPDirection(rawValue: $0.name) != nil }, with: newValue.map { SDPAttribute($0.rawValue) }) }
    }
}

extension MediaDescription {
    public func attribute(named name: String) -> SDPAttribute? { attributes.first { $0.name == name } }

    /// This media's own direction attribute; nil when it has none (the session's applies).
    public var direction: SDPDirection? {
        get { attributes.direction }
        set { attributes.direction = newValue }
    }

    /// `a=ptime` in milliseconds (RFC 4566 §6).
    public var ptime: Int? {
        get { attribute(named: "ptime")?.value.flatMap { sdpNumber($0[...]) }.flatMap { Int(exactly: $0) } }
        set { attributes.replace(where: { $0.name == "ptime" }, with: newValue.map { SDPAttribute("ptime", String($0)) }) }
    }

    /// The formats that are RTP payload type numbers, in order.
    public var payloadTypes: [Int] { formats.compactMap { rtpPayloadType($0[...]) } }

    /// Every well-formed `a=rtpmap`, in order.
    public var rtpMaps: [RTPMap] { attributes.compactMap { $0.name == "rtpmap" ? $0.value.flatMap(RTPMap.init) : nil } }

    /// The mapping for a payload type: its rtpmap, else the RFC 3551 static assignment.
    /// nil when the rtpmap is malformed (e.g. `a=rtpmap:31 LPC`): better no codec than a guessed one.
    public func rtpMap(payloadType pt: Int) -> RTPMap? {
        if let a = attributes.first(where: { $0.name == "rtpmap" && $0.value.map { Self.leadingPayloadType($0) == pt } == true }) {
            return a.value.flatMap(RTPMap.init)
        }
        return RTPMap.staticPayloadType(pt)
    }

    /// The `a=fmtp` parameters for a payload type, e.g. `0-16` for telephone-event.
    public func fmtp(payloadType pt: Int) -> String? {
        for a in attributes where a.name == "fmtp" {
            guard let v = a.value, Self.leadingPayloadType(v) == pt, let sp = v.firstIndex(of: " ") else { continue }
            return String(v[v.index(after: sp)...])
        }
        return nil
    }

    /// Keeps only these payload types (order as offered) with their rtpmap, fmtp and rtcp-fb
    /// lines. Returns false and changes nothing when none of them is offered: the caller then
    /// rejects the stream (`reject()`) or the call (488).
    @discardableResult
    public mutating func keepPayloadTypes(_ keep: Set<Int>) -> Bool {
        keepFormats { keep.contains($0) }
    }

    /// Keeps the payload types whose mapping (rtpmap or static, see `rtpMap(payloadType:)`)
    /// passes the test, e.g. PCMA and telephone-event/8000. Same result as `keepPayloadTypes(_:)`.
    @discardableResult
    public mutating func keepPayloadTypes(where isKept: (RTPMap) -> Bool) -> Bool {
        let media = self
        return keepFormats { media.rtpMap(payloadType: $0).map(isKept) ?? false }
    }

    private mutating func keepFormats(_ isKept: (Int) -> Bool) -> Bool {
        let kept = formats.filter { rtpPayloadType($0[...]).map(isKept) ?? false }
        guard !kept.isEmpty else { return false }
        formats = kept
        // These attributes describe one format each (RFC 4566 §6, RFC 4585 §4.2); for a format
        // no longer on the m= line they would dangle. `a=rtcp-fb:*` is for all and stays.
        attributes.removeAll { a in
            guard ["rtpmap", "fmtp", "rtcp-fb"].contains(a.name), let v = a.value, let pt = Self.leadingPayloadType(v) else { return false }
            return !isKept(pt)
        }
        return true
    }

    /// Points the stream at another port (the relay's). `a=rtcp` (RFC 3605) goes: it names the
    /// old RTCP port, and without it RTCP is on port + 1 (RFC 3550 §11), as the relay expects.
    public mutating func setPort(_ port: Int) {
        self.port = port
        attributes.removeAll { $0.name == "rtcp" }
    }

    /// Declines the stream: port 0, formats kept (RFC 3264 §6: the m= line stays, one per offered stream).
    public mutating func reject() { port = 0 }

    static func leadingPayloadType(_ value: String) -> Int? {
        rtpPayloadType(value.prefix { $0 != " " }[...])
    }
}

extension SessionDescription {
    public func attribute(named name: String) -> SDPAttribute? { attributes.first { $0.name == name } }

    /// The session-level direction attribute; nil when absent.
    public var direction: SDPDirection? {
        get { attributes.direction }
        set { attributes.direction = newValue }
    }

    /// The direction in force for a media: its own attribute, else the session's, else
    /// sendrecv (RFC 3264 §5.1).
    public func direction(of media: MediaDescription) -> SDPDirection {
        media.direction ?? direction ?? .sendrecv
    }

    /// Answer side: turns every explicit sendonly into recvonly and vice versa, session and media.
    public mutating func flipDirections() {
        direction = direction?.flipped
        for i in media.indices { media[i].direction = media[i].direction?.flipped }
    }

    /// Media anchoring: the session c= and every media c= name `address` (IP4 or IP6 from its
    /// form). The o= line is left alone: it identifies the session, not where media goes (§5.2).
    public mutating func setConnectionAddress(_ address: String) {
        let c = SDPConnection(address: address)
        connection = c
        for i in media.indices where media[i].connection != nil { media[i].connection = c }
    }

    /// RFC 3264 §8: a changed offer or answer carries the previous session version plus one.
    public mutating func bumpVersion() { origin.sessionVersion &+= 1 }
}
