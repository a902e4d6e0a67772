import Foundation
import MobileCoreSimulator
import SIPTransport
import Testing
import TestSupport

/// Two simulators, each the other's "switch": a call from A's handset to B's
/// handset carries the tone both ways and both sides record it.
@Suite("two simulators", .serialized)
struct TwoSimulatorsTests {
    @Test func rtpFlowsBothWaysAndIsRecorded() async throws {
        let dir = NSTemporaryDirectory() + "switchboard-sim-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let b = try await startSimulator(handsets: [handsetB], switchPort: freePort(), recordDirectory: dir + "/b")
        let a = try await startSimulator(handsets: [handsetA], switchPort: b.sipPort, recordDirectory: dir + "/a")
        let placed = try await a.placeCall(from: handsetA, to: handsetB)
        #expect(try await eventually { try await a.call(placed.id).state == .answered })
        // Wait for audio both ways (not a fixed time: a loaded machine may start it late).
        let flowing = try await eventually {
            let mo = try await a.call(placed.id)
            let mt = try await b.callList(handset: handsetB).first
            return mo.rtpReceived >= 25 && (mt?.rtpReceived ?? 0) >= 25
        }
        #expect(flowing, "RTP did not flow both ways")
        _ = try await a.hangUp(callID: placed.id)
        // Ended, and the recordings written (they follow the end by a moment).
        #expect(try await eventually {
            let ended = try await [a.call(placed.id), b.callList().first]
            return ended.allSatisfy { $0?.state == .ended && $0?.recording != nil }
        })

        let mo = try await a.call(placed.id)
        let mt = try #require(try await b.callList(handset: handsetB).first)
        #expect(mt.direction == .mobileTerminated)
        #expect(mt.paiUser == handsetA)
        #expect(mt.endedBy == "remote")
        for call in [mo, mt] {
            #expect(call.rtpSent > 0)
            #expect(call.rtpReceived > 0, "\(call.direction) received no RTP")
            // About a second of audio at 8,000 bytes a second, 160 bytes a packet.
            #expect(call.rtpBytesReceived == call.rtpReceived * 160)
            let path = try #require(call.recording)
            let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect(size == call.rtpBytesReceived)
            #expect(size >= 4_000 && size <= 80_000, "recorded \(size) bytes")
        }
        await a.shutdown()
        await b.shutdown()
    }
}
