import NIOCore
import Testing
@testable import MobileCoreSimulator

@Suite("G.711 A-law and RTP framing")
struct G711Tests {
    @Test func knownCodes() {
        #expect(G711ALaw.encode(0) == 0xD5)
        #expect(G711ALaw.encode(-1) == 0x55)
        #expect(G711ALaw.encode(Int16.max) == 0xAA)
        #expect(G711ALaw.encode(Int16.min) == 0x2A)
        #expect(G711ALaw.decode(0xD5) == 8)
        #expect(G711ALaw.decode(0x55) == -8)
        #expect(G711ALaw.decode(0xAA) == 32_256)
        #expect(G711ALaw.decode(0x2A) == -32_256)
    }

    /// Every code decodes to a value that encodes back to the same code.
    @Test func everyCodeIsStable() {
        for code in 0...255 {
            #expect(G711ALaw.encode(G711ALaw.decode(UInt8(code))) == UInt8(code), "code \(code)")
        }
    }

    /// Round trip within the quantisation step: 16 below 512, then 1/16 of the magnitude (a 4-bit mantissa).
    @Test func roundTripWithinQuantisationError() {
        for x in stride(from: Int(Int16.min), through: Int(Int16.max), by: 7) {
            let y = Int(G711ALaw.decode(G711ALaw.encode(Int16(x))))
            #expect(abs(y - x) <= max(16, abs(x) / 16), "\(x) → \(y)")
        }
    }

    @Test func toneFramesAreTwentyMilliseconds() {
        var tone = ToneGenerator(frequency: 1_000)
        let frame = tone.nextFrame()
        #expect(frame.count == 160)
        // 1 kHz at 8 kHz: the waveform repeats every 8 samples.
        #expect(Array(frame[0..<8]) == Array(frame[8..<16]))
        #expect(frame[0] == 0xD5)
    }

    @Test func rtpHeaderRoundTrip() throws {
        let header = RTPHeader(marker: true, payloadType: 8, sequenceNumber: 65_535, timestamp: 0xDEAD_BEEF, ssrc: 42)
        var buffer = ByteBuffer()
        header.write(to: &buffer)
        buffer.writeBytes([1, 2, 3])
        let (parsed, payload) = try #require(RTPHeader.parse(buffer))
        #expect(parsed == header)
        #expect(payload == 12..<15)
        #expect(RTPHeader.parse(ByteBuffer(bytes: [0x40, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])) == nil)  // version 1
    }
}

@Suite("CallLeg state machine")
struct CallLegTests {
    @Test func mobileOriginatedAnsweredThenHungUp() throws {
        var leg = CallLeg(direction: .mobileOriginated)
        #expect(try leg.handle(.provisional(code: 100)) == [])
        #expect(leg.phase == .calling)
        #expect(try leg.handle(.provisional(code: 180)) == [])
        #expect(leg.phase == .ringing)
        #expect(try leg.handle(.finalResponse(code: 200)) == [.sendACK, .startMedia])
        #expect(try leg.handle(.hangUp) == [.stopMedia, .sendBye])
        #expect(leg.phase == .ended)
        #expect(leg.endedBy == "local")
        #expect(throws: CallLeg.Refusal.self) { try leg.handle(.hangUp) }
    }

    @Test func mobileOriginatedCancelled() throws {
        var leg = CallLeg(direction: .mobileOriginated)
        #expect(try leg.handle(.hangUp) == [.sendCancel])
        #expect(try leg.handle(.hangUp) == [])
        #expect(try leg.handle(.finalResponse(code: 487)) == [])
        #expect(leg.phase == .ended)
        #expect(leg.finalCode == 487)
        // A 2xx that crossed the CANCEL is ACKed and ended with BYE.
        var crossed = CallLeg(direction: .mobileOriginated)
        _ = try crossed.handle(.hangUp)
        #expect(try crossed.handle(.finalResponse(code: 200)) == [.sendACK, .sendBye])
    }

    @Test func mobileTerminated() throws {
        let (ringing, start) = CallLeg.incoming()
        #expect(start == [.sendRinging])
        var leg = ringing
        #expect(throws: CallLeg.Refusal.self) { try leg.handle(.reject(code: 200)) }
        #expect(try leg.handle(.answer) == [.sendAnswer, .startMedia])
        #expect(try leg.handle(.remoteBye) == [.stopMedia])
        #expect(leg.endedBy == "remote")
        var rejected = ringing
        #expect(try rejected.handle(.reject(code: 486)) == [.sendFinal(code: 486)])
        #expect(rejected.finalCode == 486)
        var cancelled = ringing
        #expect(try cancelled.handle(.remoteCancel) == [])
        #expect(cancelled.finalCode == 487)
        #expect(throws: CallLeg.Refusal.self) { try cancelled.handle(.answer) }
    }
}
