import Crypto
import Foundation
@testable import Messaging
import Testing

@Suite("Text segments (TS 23.038/23.040)")
struct TextSegmentsTests {
    @Test func gsm7FitsOneSegmentUpTo160AndThen153Each() {
        #expect(TextSegments("").segments == 0)
        #expect(TextSegments("Hello").encoding == .gsm7 && TextSegments("Hello").segments == 1)
        #expect(TextSegments(String(repeating: "a", count: 160)).segments == 1)
        #expect(TextSegments(String(repeating: "a", count: 161)).segments == 2)
        #expect(TextSegments(String(repeating: "a", count: 306)).segments == 2)
        #expect(TextSegments(String(repeating: "a", count: 307)).segments == 3)
    }

    @Test func extensionCharactersTakeTwoSeptetsAndAreNotSplit() {
        #expect(TextSegments("€").units == 2 && TextSegments("€").encoding == .gsm7)
        #expect(TextSegments(String(repeating: "€", count: 80)).segments == 1)
        #expect(TextSegments(String(repeating: "€", count: 81)).segments == 2)
        // 152 septets then an escape pair: the pair moves to the second part.
        #expect(TextSegments(String(repeating: "a", count: 152) + "€" + String(repeating: "a", count: 10)).segments == 2)
        #expect(TextSegments(String(repeating: "a", count: 152) + "€" + String(repeating: "a", count: 152)).segments == 3)
    }

    @Test func anythingElseIsUCS2At70Then67() {
        #expect(TextSegments("Grüße ✓").encoding == .ucs2)
        #expect(TextSegments(String(repeating: "ж", count: 70)).segments == 1)
        #expect(TextSegments(String(repeating: "ж", count: 71)).segments == 2)
        #expect(TextSegments(String(repeating: "ж", count: 134)).segments == 2)
        // 134 units would be two parts, but the emoji (a surrogate pair) after 66 units moves whole to the second, which overflows.
        #expect(TextSegments(String(repeating: "ж", count: 66) + "😀" + String(repeating: "ж", count: 66)).segments == 3)
        #expect(TextSegments(String(repeating: "ж", count: 65) + "😀" + String(repeating: "ж", count: 66)).segments == 2)
        #expect(TextSegments("😀").units == 2)  // a surrogate pair
    }
}

@Suite("Webhook signature and retries")
struct WebhookTests {
    let secret = Array("whsec-test-secret".utf8)
    let body = Array(#"{"id":"t1","from":"8944101234567890128","to":"447700900123","text":"hi"}"#.utf8)

    @Test func signatureIsHMACSHA256OverTimestampDotBody() {
        let header = WebhookSignature.sign(secret: secret, timestamp: 1_800_000_000, body: body)
        let mac = HMAC<SHA256>.authenticationCode(for: Array("1800000000.".utf8) + body, using: SymmetricKey(data: secret))
        #expect(header == "t=1800000000,v1=" + mac.map { String(format: "%02x", $0) }.joined())
        #expect(WebhookSignature.verify(header: header, secret: secret, body: body, now: 1_800_000_100))
    }

    @Test func tamperedOldOrWronglyKeyedSignaturesFail() {
        let header = WebhookSignature.sign(secret: secret, timestamp: 1_800_000_000, body: body)
        #expect(!WebhookSignature.verify(header: header, secret: secret, body: body + [0x20], now: 1_800_000_000))
        #expect(!WebhookSignature.verify(header: header, secret: Array("other".utf8), body: body, now: 1_800_000_000))
        #expect(!WebhookSignature.verify(header: header, secret: secret, body: body, now: 1_800_000_301))
        #expect(!WebhookSignature.verify(header: "v1=abc", secret: secret, body: body, now: 1_800_000_000))
    }

    @Test func retriesBackOffExponentiallyWithJitterThenGiveUp() {
        let p = WebhookRetryPolicy(base: 2, cap: 300, giveUpAfter: 3600)
        #expect(p.delay(afterFailures: 1, unit: 0) == 1 && p.delay(afterFailures: 1, unit: 1) == 2)
        #expect(p.delay(afterFailures: 4, unit: 1) == 16)
        #expect(p.delay(afterFailures: 20, unit: 1) == 300 && p.delay(afterFailures: 20, unit: 0) == 150)
        #expect(p.nextAttempt(afterFailures: 3, receivedAt: 0, now: 100, unit: 1) == 108)
        #expect(p.nextAttempt(afterFailures: 30, receivedAt: 0, now: 3500, unit: 1) == nil)
    }
}

@Suite("Text gateway rules (S10)")
struct TextGatewayRuleTests {
    @Test func destinationMustBeAnICCID() throws {
        #expect(try TextGateway.destination("8944101234567890128").digits == "8944101234567890128")
        #expect(throws: TextGatewayError.self) { try TextGateway.destination(nil) }
        #expect((try? TextGateway.destination("8944101234567890127")) == nil)  // Luhn check digit wrong
        do { _ = try TextGateway.destination("447700900123") } catch { #expect(error.field == "to" && error.message.contains("not an ICCID")) }
    }

    @Test func textsMustBeNonEmptyAndWithinTheSegmentLimit() throws {
        #expect(try TextGateway.segments(of: "hi", maxSegments: 1).segments == 1)
        #expect(try TextGateway.segments(of: String(repeating: "a", count: 306), maxSegments: 2).segments == 2)
        do {
            _ = try TextGateway.segments(of: String(repeating: "a", count: 307), maxSegments: 2)
            Issue.record("a three-segment text passed a two-segment limit")
        } catch {
            #expect(error == TextGatewayError("text", "needs 3 segments (307 septets, GSM-7); at most 2 are sent (153 GSM-7 characters each)"))
        }
        #expect(throws: TextGatewayError("text", "is empty; a text needs at least one character")) { try TextGateway.segments(of: "", maxSegments: 6) }
        #expect(throws: TextGatewayError("text", "required: the text to send")) { try TextGateway.segments(of: nil, maxSegments: 6) }
        // Within six UCS-2 segments (402 units) but 1,206 bytes: more than one MESSAGE carries.
        let cjk = String(repeating: "漢", count: 402)
        do { _ = try TextGateway.segments(of: cjk, maxSegments: 6); Issue.record("1,206 bytes passed") } catch {
            #expect(error.field == "text" && error.message.contains("1206 bytes"))
        }
    }

    @Test func senderIsANumberANameOrTheLinkedNumber() throws {
        #expect(try TextGateway.sender("+441632960000", linkedNumber: nil) == "441632960000")
        #expect(try TextGateway.sender("Acme Shop", linkedNumber: "447700900123") == "Acme Shop")
        #expect(try TextGateway.sender(nil, linkedNumber: "447700900123") == "447700900123")
        #expect(try TextGateway.sender("", linkedNumber: "447700900123") == "447700900123")
        #expect(throws: TextGatewayError.self) { try TextGateway.sender(nil, linkedNumber: nil) }
        #expect(throws: TextGatewayError.self) { try TextGateway.sender("TwelveLetter", linkedNumber: nil) }  // 12 characters
        #expect(throws: TextGatewayError.self) { try TextGateway.sender("a<b", linkedNumber: nil) }
        #expect(throws: TextGatewayError.self) { try TextGateway.sender("----", linkedNumber: nil) }  // no letter
    }

    @Test func theMobileCoresAnswerDecidesDeliveredRetryOrFailed() {
        #expect(TextGateway.outcome(ofFinalCode: 200) == .delivered && TextGateway.outcome(ofFinalCode: 202) == .delivered)
        for code in [408, 480, 500, 503, 504] { #expect(TextGateway.outcome(ofFinalCode: code) == .retry, "\(code)") }
        for code in [403, 404, 415, 488, 501, 603] { #expect(TextGateway.outcome(ofFinalCode: code) == .failed, "\(code)") }
    }
}

@Suite("Webhook body time")
struct WebhookTimeTests {
    /// The hand-made RFC 3339 time agrees with Foundation's formatter.
    @Test func webhookTimesAreRFC3339UTCWithMilliseconds() {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for t in [0.0, 1_795_932_486.733, 1_795_932_486.005, 1_709_294_400.0, 951_782_400.999, 4_102_444_799.5] {
            #expect(TextService.rfc3339(t) == f.string(from: Date(timeIntervalSince1970: t)), "\(t)")
        }
        #expect(TextService.rfc3339(1_795_932_486.733) == "2026-11-29T06:08:06.733Z")
    }
}
