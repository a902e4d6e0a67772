import Crypto
import Foundation
import Messaging
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
