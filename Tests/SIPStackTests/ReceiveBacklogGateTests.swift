import SIPTransport
import Testing

/// The decision behind overload refusals, sample by sample (no sockets).
@Suite struct ReceiveBacklogGateTests {
    @Test func fallsBehindAtTheThresholdAndCatchesUpOnlyOnceTheQueueHasDrained() {
        var gate = ReceiveBacklogGate(behindFrom: 0.25, caughtUpAt: 0.05)
        let buffer = 8 << 20
        #expect(gate.sampled(queued: 0, capacity: buffer) == .none && !gate.behind)
        #expect(gate.sampled(queued: buffer / 5, capacity: buffer) == .none && !gate.behind)  // 20 %: a burst, not behind
        #expect(gate.sampled(queued: buffer / 4, capacity: buffer) == .fellBehind && gate.behind)
        #expect(gate.sampled(queued: buffer / 2, capacity: buffer) == .none && gate.behind)
        // Draining, but above the lower mark: still behind (no flapping at 25 %).
        #expect(gate.sampled(queued: buffer / 5, capacity: buffer) == .none && gate.behind)
        #expect(gate.sampled(queued: buffer / 10, capacity: buffer) == .none && gate.behind)
        #expect(gate.sampled(queued: buffer / 20, capacity: buffer) == .caughtUp && !gate.behind)
        #expect(gate.sampled(queued: buffer / 5, capacity: buffer) == .none && !gate.behind)
    }

    @Test func aSocketWithNoBufferSizeIsNeverBehind() {
        var gate = ReceiveBacklogGate()
        #expect(gate.sampled(queued: 1_000_000, capacity: 0) == .none && !gate.behind)
    }

    @Test func theLowerMarkIsNeverAboveTheUpperOne() {
        var gate = ReceiveBacklogGate(behindFrom: 0.2, caughtUpAt: 0.5)
        #expect(gate.sampled(queued: 30, capacity: 100) == .fellBehind)
        #expect(gate.sampled(queued: 30, capacity: 100) == .none && gate.behind)
        #expect(gate.sampled(queued: 20, capacity: 100) == .caughtUp)
    }
}
