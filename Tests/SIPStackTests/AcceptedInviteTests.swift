@testable import SIPStack
import Testing

@Suite struct AcceptedInviteTests {
    @Test func retransmitsDoublingToT2UntilGivingUpAt64T1() {
        var a = AcceptedInvite(reliableTransport: false)
        #expect(a.start() == .scheduleRetransmit(after: .milliseconds(500)))
        var intervals: [Duration] = []
        var retransmits = 0
        while a.state == .waitingForACK {
            for action in a.retransmitTimerFired() {
                switch action {
                case .retransmit: retransmits += 1
                case .scheduleRetransmit(let d): intervals.append(d)
                default: break
                }
            }
        }
        #expect(intervals.prefix(5) == [.seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)])
        #expect(a.state == .timedOut)
        // 0.5+1+2+4·7 = 31.5 s of waiting covers 64·T1 = 32 s with the last interval.
        #expect(retransmits == intervals.count)
    }

    @Test func ackStopsRetransmissionAndIsDeliveredOnce() {
        var a = AcceptedInvite(reliableTransport: false)
        _ = a.start()
        _ = a.retransmitTimerFired()
        #expect(a.receivedInviteRetransmission() == .retransmit)
        #expect(a.receivedACK() == .deliverACK)
        #expect(a.receivedACK() == .none)
        #expect(a.retransmitTimerFired() == [])
        #expect(a.receivedInviteRetransmission() == .none)
    }

    @Test func reliableTransportOnlyWaitsForTheACK() {
        var a = AcceptedInvite(reliableTransport: true)
        #expect(a.start() == .scheduleRetransmit(after: .seconds(32)))
        #expect(a.retransmitTimerFired() == [.giveUp])
        #expect(a.state == .timedOut)
    }
}
