/// Which way a simulated call goes, seen from the handset.
public enum CallDirection: String, Sendable, Codable {
    /// The handset dialled out: the simulator sent the INVITE to the switch.
    case mobileOriginated = "mobile_originated"
    /// The switch called the handset: the simulator received the INVITE.
    case mobileTerminated = "mobile_terminated"
}

public enum CallPhase: String, Sendable, Codable {
    case calling, ringing, answered, ended
}

/// One handset's side of a call as a state machine: events in (SIP responses
/// and requests, API commands, timers), actions out, which the simulator
/// performs. No I/O here.
public struct CallLeg: Sendable, Equatable {
    public enum Event: Sendable, Equatable {
        /// MO: a provisional response to our INVITE.
        case provisional(code: Int)
        /// MO: the final response to our INVITE.
        case finalResponse(code: Int)
        /// MT: the answer timer fired or `POST /calls/{id}/answer`.
        case answer
        /// MT: `POST /calls/{id}/reject` with a final status code (≥ 300).
        case reject(code: Int)
        /// `POST /calls/{id}/hangup`.
        case hangUp
        /// The far end sent BYE.
        case remoteBye
        /// MT: the caller sent CANCEL (the SIP stack has already answered 487).
        case remoteCancel
        /// MT: our 2xx was never ACKed (RFC 3261 §13.3.1.4).
        case ackTimedOut
    }

    public enum Action: Sendable, Equatable {
        case sendACK
        case sendCancel
        case sendBye
        case sendRinging
        case sendAnswer
        case sendFinal(code: Int)
        case startMedia
        case stopMedia
    }

    public enum Refusal: Error, Sendable, Equatable {
        case notAllowed(event: String, phase: CallPhase)
    }

    public let direction: CallDirection
    public private(set) var phase: CallPhase
    /// The final response to the INVITE (sent or received), once there is one.
    public private(set) var finalCode: Int?
    /// Who ended the call: "local" (the handset / API) or "remote".
    public private(set) var endedBy: String?
    /// MO: CANCEL sent, waiting for the INVITE's final response.
    public private(set) var cancelling = false

    /// MO: the INVITE is about to be sent. MT: the INVITE has arrived; the
    /// returned actions ring the handset.
    public init(direction: CallDirection) {
        self.direction = direction
        phase = direction == .mobileOriginated ? .calling : .ringing
    }

    public static func incoming() -> (CallLeg, [Action]) { (CallLeg(direction: .mobileTerminated), [.sendRinging]) }

    public mutating func handle(_ event: Event) throws(Refusal) -> [Action] {
        switch (direction, phase, event) {
        case (.mobileOriginated, .calling, .provisional(let code)) where code > 100:
            phase = .ringing
            return []
        case (.mobileOriginated, _, .provisional):
            return []
        case (.mobileOriginated, .calling, .finalResponse(let code)), (.mobileOriginated, .ringing, .finalResponse(let code)):
            finalCode = code
            if (200..<300).contains(code) {
                if cancelling {
                    // CANCEL crossed the 2xx: confirm the dialog, then end it (RFC 3261 §9.1).
                    end(by: "local")
                    return [.sendACK, .sendBye]
                }
                phase = .answered
                return [.sendACK, .startMedia]
            }
            end(by: cancelling ? "local" : "remote")
            return []
        case (.mobileOriginated, .calling, .hangUp), (.mobileOriginated, .ringing, .hangUp):
            guard !cancelling else { return [] }
            cancelling = true
            return [.sendCancel]
        case (.mobileTerminated, .ringing, .answer):
            phase = .answered
            finalCode = 200
            return [.sendAnswer, .startMedia]
        case (.mobileTerminated, .ringing, .reject(let code)) where code >= 300 && code <= 699:
            finalCode = code
            end(by: "local")
            return [.sendFinal(code: code)]
        case (.mobileTerminated, .ringing, .hangUp):
            finalCode = 603
            end(by: "local")
            return [.sendFinal(code: 603)]
        case (.mobileTerminated, .ringing, .remoteCancel):
            finalCode = 487
            end(by: "remote")
            return []
        case (_, .answered, .hangUp):
            end(by: "local")
            return [.stopMedia, .sendBye]
        case (_, .answered, .remoteBye):
            end(by: "remote")
            return [.stopMedia]
        case (.mobileTerminated, .answered, .ackTimedOut):
            end(by: "local")
            return [.stopMedia, .sendBye]
        case (_, .ended, .remoteBye), (_, .ended, .remoteCancel), (_, .ended, .ackTimedOut), (.mobileOriginated, .ended, .finalResponse):
            return []
        default:
            throw .notAllowed(event: Self.name(event), phase: phase)
        }
    }

    mutating func end(by who: String) {
        phase = .ended
        if endedBy == nil { endedBy = who }
    }

    static func name(_ event: Event) -> String {
        switch event {
        case .provisional: "provisional response"
        case .finalResponse: "final response"
        case .answer: "answer"
        case .reject(let code): code < 300 || code > 699 ? "reject with \(code) (a rejection is 300–699)" : "reject"
        case .hangUp: "hang up"
        case .remoteBye: "BYE"
        case .remoteCancel: "CANCEL"
        case .ackTimedOut: "ACK timeout"
        }
    }
}
