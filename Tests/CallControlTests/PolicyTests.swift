import CallControl
import Testing

@Suite struct RejectionTests {
    @Test func reasonTextsAreTheSpecs() {
        #expect(CallRejection.invalidTrunk.reasonText == "Invalid Trunk")
        #expect(CallRejection.accountRateLimit(calls: 10, seconds: 60, callType: "international").reasonText
                == "User account rate limit of 10 international calls per minute")
        #expect(CallRejection.trunkRateLimit(calls: 5, seconds: 1, callType: nil).reasonText == "User trunk rate limit of 5 calls per second")
        #expect(CallRejection.channelLimit(callType: "mobile").reasonText == "Channel Limit Exceeded (mobile)")
        #expect(CallRejection.channelLimit(callType: nil).reasonText == "Channel Limit Exceeded")
        #expect(CallRejection.balanceRelatedRateLimit(calls: 2, seconds: 3600).reasonText == "Balance-Related account rate limit of 2 calls per hour")
        #expect(CallRejection.balanceBelowLimit.reasonText == "Balance now below limit")
        #expect(CallRejection.invalidCLI.reasonHeader == "SIP ;cause=403 ;text=\"Invalid CLI\"")
        #expect(CallRejection.trunkRateLimit(calls: 5, seconds: 30, callType: nil).retryAfterSeconds == 30)
    }
}

@Suite struct LimitTests {
    @Test func slidingWindowAdmitsXPerY() {
        var w = SlidingWindowLimit(calls: 3, seconds: 10)
        var first: [Bool] = []
        for t in [0.0, 1, 2, 3] { first.append(w.admit(now: t)) }
        #expect(first == [true, true, true, false])
        #expect(!w.wouldAdmit(now: 9.9))
        #expect(w.wouldAdmit(now: 10.0))  // the call at 0 has left the window
        var later: [Bool] = []
        for t in [10.0, 10.5, 11.0, 12.0, 12.5] { later.append(w.admit(now: t)) }
        #expect(later == [true, false, true, true, false])
        var zero = SlidingWindowLimit(calls: 0, seconds: 1)
        let zeroAdmits = zero.admit(now: 0)
        #expect(!zeroAdmits)
    }

    @Test func slidingWindowStaysSmallUnderLongLoad() {
        var w = SlidingWindowLimit(calls: 100, seconds: 1)
        var admitted = 0
        for i in 0..<100_000 where w.admit(now: Double(i) / 1000) { admitted += 1 }
        #expect(admitted == 10_000)  // 100 per second for 100 s
        #expect(w.inWindow <= 100)
    }

    @Test func channelsAreCountedPerKey() {
        var c = ChannelCounter<String>()
        var results: [Bool] = []
        for key in ["920700", "920700", "920700", "920701"] { results.append(c.acquire(key, limit: 2)) }
        #expect(results == [true, true, false, true])
        c.release("920700")
        #expect(c.count("920700") == 1)
        let again = c.acquire("920700", limit: 2)
        #expect(again)
        c.release("nobody")
        #expect(c.count("nobody") == 0)
    }

    @Test func blacklistLongestPrefix() {
        let b = Blacklist(["+449", "4490", "9"])
        #expect(b.match("+449012345678") == "4490")
        #expect(b.match("449112345678") == "449")
        #expect(b.match("441632960000") == nil)
        #expect(Blacklist([]).match("44") == nil)
    }

    @Test func cliValidity() {
        #expect(CLIValidation.isValid("+441632960000"))
        #expect(CLIValidation.isValid("441632960000"))
        #expect(CLIValidation.isValid("01632960000"))
        #expect(!CLIValidation.isValid("+01632960000"))
        #expect(!CLIValidation.isValid("anonymous"))
        #expect(!CLIValidation.isValid("12345"))
        #expect(!CLIValidation.isValid("1234567890123456"))
        #expect(!CLIValidation.isValid(""))
    }
}
