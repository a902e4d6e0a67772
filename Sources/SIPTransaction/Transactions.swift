import SIPMessage

/// RFC 3261 §17.1.1.1 and Table 4 timer values. T1 is the round-trip
/// estimate, T2 the cap for non-INVITE retransmits, T4 how long the network
/// may hold a message.
public struct TransactionTimers: Sendable, Equatable {
    public var t1: Duration
    public var t2: Duration
    public var t4: Duration

    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4), t4: Duration = .seconds(5)) {
        self.t1 = t1; self.t2 = t2; self.t4 = t4
    }

    /// 64·T1: Timers B, F, H and J.
    public var transactionTimeout: Duration { t1 * 64 }
    /// Timer D: at least 32 s over unreliable transports, zero over reliable.
    public func timerD(reliable: Bool) -> Duration { reliable ? .zero : max(.seconds(32), t1 * 64) }
}

public enum TransactionTimer: Sendable, Hashable, CaseIterable {
    case A, B, D, E, F, G, H, I, J, K
}

/// What a transaction machine asks its owner to do.
public enum TransactionAction: Sendable {
    /// Send this message to the transaction's peer.
    case send(SIPMessage)
    case startTimer(TransactionTimer, Duration)
    case cancelTimer(TransactionTimer)
    /// Pass this message to the transaction user (a response for client
    /// transactions, a request for server ones).
    case deliverToTU(SIPMessage)
    /// Timer B / F / H fired without the awaited message.
    case timeout
    case transportError
    /// Remove the transaction.
    case terminated
}

// MARK: - Client INVITE (§17.1.1, Figure 5)

public struct ClientInviteTransaction: Sendable {
    public enum State: Sendable, Equatable { case calling, proceeding, completed, terminated }
    public private(set) var state: State = .calling
    public let request: SIPMessage
    let reliable: Bool
    let timers: TransactionTimers
    var timerA: Duration
    var ack: SIPMessage?

    public init(request: SIPMessage, reliableTransport: Bool, timers: TransactionTimers) {
        self.request = request; self.reliable = reliableTransport; self.timers = timers; self.timerA = timers.t1
    }

    public mutating func start() -> [TransactionAction] {
        var a: [TransactionAction] = [.send(request)]
        if !reliable { a.append(.startTimer(.A, timerA)) }
        a.append(.startTimer(.B, timers.transactionTimeout))
        return a
    }

    public mutating func receivedResponse(_ response: SIPMessage) -> [TransactionAction] {
        guard let code = response.statusCode else { return [] }
        switch (state, code) {
        case (.calling, 100..<200), (.proceeding, 100..<200):
            let wasCalling = state == .calling
            state = .proceeding
            return (wasCalling ? [.cancelTimer(.A)] : []) + [.deliverToTU(response)]
        case (.calling, 200..<300), (.proceeding, 200..<300):
            // The TU ACKs a 2xx itself (§13.2.2.4); the transaction ends.
            state = .terminated
            return [.cancelTimer(.A), .cancelTimer(.B), .deliverToTU(response), .terminated]
        case (.calling, 300...), (.proceeding, 300...):
            state = .completed
            let ack = Self.makeACK(for: request, response: response)
            self.ack = ack
            var a: [TransactionAction] = [.cancelTimer(.A), .cancelTimer(.B), .send(ack), .deliverToTU(response)]
            let d = timers.timerD(reliable: reliable)
            a.append(d == .zero ? .terminated : .startTimer(.D, d))
            if d == .zero { state = .terminated }
            return a
        case (.completed, 300...):
            // A retransmitted final response: ACK again, tell nobody (§17.1.1.2).
            return ack.map { [.send($0)] } ?? []
        default:
            return []
        }
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
        switch (state, timer) {
        case (.calling, .A):
            timerA = timerA * 2
            return [.send(request), .startTimer(.A, timerA)]
        case (.calling, .B), (.proceeding, .B):
            state = .terminated
            return [.cancelTimer(.A), .timeout, .terminated]
        case (.completed, .D):
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    public mutating func transportError() -> [TransactionAction] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.cancelTimer(.A), .cancelTimer(.B), .cancelTimer(.D), .transportError, .terminated]
    }

    /// §17.1.1.3: the ACK for a non-2xx final response belongs to the INVITE's
    /// transaction — same Request-URI, Call-ID, From, CSeq number, top Via and
    /// Route; To from the response.
    public static func makeACK(for invite: SIPMessage, response: SIPMessage) -> SIPMessage {
        var ack = SIPMessage(request: .ack, uri: invite.requestURI ?? "")
        if let via = invite.values(.via).first { ack.append(.via, via.split(separator: ",", maxSplits: 1).first.map(String.init) ?? via) }
        if let v = invite.firstValue(.maxForwards) { ack.append(.maxForwards, v) }
        if let v = invite.firstValue(.from) { ack.append(.from, v) }
        if let v = response.firstValue(.to) { ack.append(.to, v) }
        if let v = invite.firstValue(.callID) { ack.append(.callID, v) }
        if let c = invite.cseq { ack.append(.cseq, "\(c.number) ACK") }
        for r in invite.values(.route) { ack.append(.route, r) }
        return ack
    }
}

// MARK: - Client non-INVITE (§17.1.2, Figure 6)

public struct ClientNonInviteTransaction: Sendable {
    public enum State: Sendable, Equatable { case trying, proceeding, completed, terminated }
    public private(set) var state: State = .trying
    public let request: SIPMessage
    let reliable: Bool
    let timers: TransactionTimers
    var timerE: Duration

    public init(request: SIPMessage, reliableTransport: Bool, timers: TransactionTimers) {
        self.request = request; self.reliable = reliableTransport; self.timers = timers; self.timerE = timers.t1
    }

    public mutating func start() -> [TransactionAction] {
        var a: [TransactionAction] = [.send(request)]
        if !reliable { a.append(.startTimer(.E, timerE)) }
        a.append(.startTimer(.F, timers.transactionTimeout))
        return a
    }

    public mutating func receivedResponse(_ response: SIPMessage) -> [TransactionAction] {
        guard let code = response.statusCode, state == .trying || state == .proceeding else { return [] }
        if code < 200 {
            state = .proceeding
            return [.deliverToTU(response)]
        }
        state = .completed
        var a: [TransactionAction] = [.cancelTimer(.E), .cancelTimer(.F), .deliverToTU(response)]
        if reliable { state = .terminated; a.append(.terminated) } else { a.append(.startTimer(.K, timers.t4)) }
        return a
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
        switch (state, timer) {
        case (.trying, .E):
            timerE = min(timerE * 2, timers.t2)
            return [.send(request), .startTimer(.E, timerE)]
        case (.proceeding, .E):
            // In Proceeding the interval stays at T2 (§17.1.2.2).
            timerE = timers.t2
            return [.send(request), .startTimer(.E, timerE)]
        case (.trying, .F), (.proceeding, .F):
            state = .terminated
            return [.cancelTimer(.E), .timeout, .terminated]
        case (.completed, .K):
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    public mutating func transportError() -> [TransactionAction] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.cancelTimer(.E), .cancelTimer(.F), .transportError, .terminated]
    }
}

// MARK: - Server INVITE (§17.2.1, Figure 7)

public struct ServerInviteTransaction: Sendable {
    public enum State: Sendable, Equatable { case proceeding, completed, confirmed, terminated }
    public private(set) var state: State = .proceeding
    public let request: SIPMessage
    let reliable: Bool
    let timers: TransactionTimers
    var lastResponse: SIPMessage?
    var timerG: Duration

    public init(request: SIPMessage, reliableTransport: Bool, timers: TransactionTimers) {
        self.request = request; self.reliable = reliableTransport; self.timers = timers; self.timerG = timers.t1
    }

    /// Whether a final response has gone out (CANCEL is then too late, §9.2).
    public var hasSentFinalResponse: Bool { state != .proceeding }

    /// A 100 Trying at once, so the client stops retransmitting (§17.2.1),
    /// and the request to the TU.
    public mutating func start() -> [TransactionAction] {
        let trying = request.makeResponse(100)
        lastResponse = trying
        return [.send(trying), .deliverToTU(request)]
    }

    public mutating func receivedRequest(_ message: SIPMessage) -> [TransactionAction] {
        switch (state, message.method) {
        case (.proceeding, .invite?), (.completed, .invite?):
            return lastResponse.map { [.send($0)] } ?? []
        case (.completed, .ack?):
            state = .confirmed
            let i = timers.timerD(reliable: reliable) == .zero ? Duration.zero : timers.t4
            if i == .zero { state = .terminated; return [.cancelTimer(.G), .cancelTimer(.H), .terminated] }
            return [.cancelTimer(.G), .cancelTimer(.H), .startTimer(.I, i)]
        default:
            // ACKs in Confirmed are absorbed; nothing else belongs here.
            return []
        }
    }

    public mutating func tuSend(response: SIPMessage) -> [TransactionAction] {
        guard state == .proceeding, let code = response.statusCode else { return [] }
        lastResponse = response
        switch code {
        case 100..<200:
            return [.send(response)]
        case 200..<300:
            // RFC 3261: the transaction ends; the UAS core retransmits the 2xx.
            state = .terminated
            return [.send(response), .terminated]
        default:
            state = .completed
            var a: [TransactionAction] = [.send(response)]
            if !reliable { a.append(.startTimer(.G, timerG)) }
            a.append(.startTimer(.H, timers.transactionTimeout))
            return a
        }
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
        switch (state, timer) {
        case (.completed, .G):
            timerG = min(timerG * 2, timers.t2)
            return (lastResponse.map { [.send($0)] } ?? []) + [.startTimer(.G, timerG)]
        case (.completed, .H):
            state = .terminated
            return [.cancelTimer(.G), .timeout, .terminated]
        case (.confirmed, .I):
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    public mutating func transportError() -> [TransactionAction] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.cancelTimer(.G), .cancelTimer(.H), .cancelTimer(.I), .transportError, .terminated]
    }
}

// MARK: - Server non-INVITE (§17.2.2, Figure 8)

public struct ServerNonInviteTransaction: Sendable {
    public enum State: Sendable, Equatable { case trying, proceeding, completed, terminated }
    public private(set) var state: State = .trying
    public let request: SIPMessage
    let reliable: Bool
    let timers: TransactionTimers
    var lastResponse: SIPMessage?

    public init(request: SIPMessage, reliableTransport: Bool, timers: TransactionTimers) {
        self.request = request; self.reliable = reliableTransport; self.timers = timers
    }

    public mutating func start() -> [TransactionAction] { [.deliverToTU(request)] }

    public mutating func receivedRequest(_ message: SIPMessage) -> [TransactionAction] {
        // Retransmissions in Trying are absorbed; later ones get the last response.
        guard state == .proceeding || state == .completed, let last = lastResponse else { return [] }
        return [.send(last)]
    }

    public mutating func tuSend(response: SIPMessage) -> [TransactionAction] {
        guard state == .trying || state == .proceeding, let code = response.statusCode else { return [] }
        lastResponse = response
        if code < 200 { state = .proceeding; return [.send(response)] }
        if reliable { state = .terminated; return [.send(response), .terminated] }
        state = .completed
        return [.send(response), .startTimer(.J, timers.transactionTimeout)]
    }

    public mutating func timerFired(_ timer: TransactionTimer) -> [TransactionAction] {
        guard state == .completed, timer == .J else { return [] }
        state = .terminated
        return [.terminated]
    }

    public mutating func transportError() -> [TransactionAction] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.cancelTimer(.J), .transportError, .terminated]
    }
}
