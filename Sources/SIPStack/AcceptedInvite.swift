import SIPMessage

/// The UAS core's duty after it sends a 2xx to an INVITE (RFC 3261 §13.3.1.4,
/// RFC 6026 §7.1): the transaction is gone, so the core itself retransmits the
/// 2xx — at T1, doubling up to T2 — until the ACK arrives, and gives up after
/// 64·T1, when the dialog should be ended with a BYE. Retransmitted INVITEs in
/// that window are answered with the same 2xx rather than treated as new calls.
public struct AcceptedInvite: Sendable {
    public enum State: Sendable, Equatable { case waitingForACK, confirmed, timedOut }
    public enum Action: Sendable, Equatable {
        case retransmit
        case scheduleRetransmit(after: Duration)
        case deliverACK
        case giveUp
        case none
    }

    public private(set) var state: State = .waitingForACK
    let t1: Duration
    let t2: Duration
    var interval: Duration
    var elapsed: Duration = .zero
    let reliable: Bool

    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4), reliableTransport: Bool) {
        self.t1 = t1; self.t2 = t2; self.interval = t1; self.reliable = reliableTransport
    }

    /// Called once the 2xx has been sent. Over a reliable transport the 2xx
    /// is not retransmitted, but the 64·T1 wait for the ACK still applies.
    public mutating func start() -> Action {
        .scheduleRetransmit(after: reliable ? t1 * 64 : interval)
    }

    public mutating func retransmitTimerFired() -> [Action] {
        guard state == .waitingForACK else { return [] }
        if reliable { state = .timedOut; return [.giveUp] }
        elapsed += interval
        if elapsed >= t1 * 64 { state = .timedOut; return [.giveUp] }
        interval = min(interval * 2, t2)
        return [.retransmit, .scheduleRetransmit(after: interval)]
    }

    /// The ACK for the 2xx: stop retransmitting and pass it to the dialog.
    /// Later ACK retransmissions are absorbed.
    public mutating func receivedACK() -> Action {
        guard state == .waitingForACK else { return .none }
        state = .confirmed
        return .deliverACK
    }

    /// A retransmitted INVITE: answer with the same 2xx (RFC 6026 §7.1).
    public func receivedInviteRetransmission() -> Action {
        state == .waitingForACK ? .retransmit : .none
    }
}
