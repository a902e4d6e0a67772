import Foundation
import SIMs
import SIPTransport

/// How a handset answers calls to it.
public enum AnswerMode: Sendable, Equatable {
    /// Ring, then answer after the delay.
    case auto(after: Duration)
    /// Ring until `answer`, `reject` or `hangUp` is asked for (or the caller cancels).
    case manual
}

public struct SimulatorConfiguration: Sendable {
    /// The simulator's SIP listener (UDP or TCP); port 0 picks a free one.
    public var sip: SIPListenAddress
    /// The control API's address; nil runs no HTTP server (tests may use the type directly).
    public var http: (host: String, port: Int)?
    /// Where calls and texts from handsets go: the switch's SIP address (an IP address or host name).
    public var switchHost: String
    public var switchPort: Int
    public var handsets: [ICCID]
    /// UDP ports for RTP (one per call); nil binds any free port.
    public var rtpPorts: ClosedRange<Int>?
    /// When set, each call's received A-law payload is written to `<dir>/<call id>.alaw`.
    public var recordDirectory: String?
    /// Answer mode of every handset at start (changeable per handset).
    public var answerMode: AnswerMode
    /// Frequency of the tone the handsets send, in Hz.
    public var toneHz: Double
    /// The address put in Via, Contact, From/PAI hosts and SDP; the SIP listener's when nil
    /// (needed when listening on 0.0.0.0).
    public var advertisedHost: String?

    public init(sip: SIPListenAddress, http: (host: String, port: Int)? = nil, switchHost: String, switchPort: Int,
                handsets: [ICCID], rtpPorts: ClosedRange<Int>? = nil, recordDirectory: String? = nil,
                answerMode: AnswerMode = .auto(after: .milliseconds(200)), toneHz: Double = 1_000, advertisedHost: String? = nil) {
        self.sip = sip; self.http = http; self.switchHost = switchHost; self.switchPort = switchPort
        self.handsets = handsets; self.rtpPorts = rtpPorts; self.recordDirectory = recordDirectory
        self.answerMode = answerMode; self.toneHz = toneHz; self.advertisedHost = advertisedHost
    }
}

/// What went wrong with a request to the simulator, as a person can act on it.
public enum SimulatorError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownHandset(String)
    case unknownCall(String)
    /// A request field is missing or has the wrong value (HTTP 422).
    case invalidField(field: String, message: String)
    /// The request body is not a JSON object (HTTP 400).
    case malformedBody(String)
    /// The call cannot do that in its current state (HTTP 409).
    case callState(call: String, message: String)
    case noFreeRTPPort(String)
    case startFailed(String)

    public var description: String {
        switch self {
        case .unknownHandset(let iccid): "no handset with ICCID \(iccid) in this simulator; start it with --handset \(iccid) or PUT /handsets/\(iccid)"
        case .unknownCall(let id): "no call with id \(id); GET /calls lists them"
        case .invalidField(let field, let message): "\(field): \(message)"
        case .malformedBody(let why): "the request body must be a JSON object: \(why)"
        case .callState(let call, let message): "call \(call): \(message)"
        case .noFreeRTPPort(let range): "no free RTP port in \(range); widen --rtp-ports or end some calls"
        case .startFailed(let why): "the simulator could not start: \(why)"
        }
    }

    /// The request field (or path parameter) the error is about.
    public var field: String? {
        switch self {
        case .unknownHandset: "iccid"
        case .unknownCall: "id"
        case .invalidField(let field, _): field
        case .malformedBody: "body"
        default: nil
        }
    }
}

/// A call as the API shows it.
public struct CallRecord: Sendable, Codable, Equatable {
    public var id: String
    public var iccid: String
    public var direction: CallDirection
    public var state: CallPhase
    /// MO: the number dialled. MT: the caller's From user.
    public var peer: String
    public var withheld: Bool
    /// MT: the caller's From display name and user, P-Asserted-Identity user and Privacy header.
    public var fromDisplay: String?
    public var fromUser: String?
    public var paiUser: String?
    public var privacy: String?
    /// The INVITE's final response (sent for MT, received for MO), its reason phrase and any Reason header.
    public var finalCode: Int?
    public var reasonPhrase: String?
    public var reason: String?
    public var endedBy: String?
    public var rtpSent: Int
    public var rtpReceived: Int
    public var rtpBytesReceived: Int
    public var recording: String?
    public var sipCallId: String
    public var startedAt: Date
    public var answeredAt: Date?
    public var endedAt: Date?
}

/// A text sent or received by a handset.
public struct TextRecord: Sendable, Codable, Equatable {
    public enum Direction: String, Sendable, Codable { case sent, received }
    public var id: String
    public var iccid: String
    public var direction: Direction
    /// The other party: the destination of a sent text, the From user of a received one.
    public var peer: String
    public var text: String
    /// Sent texts: the switch's final response (nil if none came).
    public var statusCode: Int?
    public var reasonPhrase: String?
    public var error: String?
    public var at: Date
}

public struct HandsetRecord: Sendable, Codable, Equatable {
    public var iccid: String
    /// "auto" or "manual".
    public var answer: String
    /// Seconds before an auto answer.
    public var answerAfter: Double?
    /// False while the handset is switched off (calls and texts to it get 480).
    public var reachable: Bool
}
