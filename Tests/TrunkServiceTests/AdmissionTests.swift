import CallControl
import Foundation
import Rating
import Store
import Testing
import TrunkService

func m(_ s: String) -> Money { parseMoney(s) ?? Decimal(string: s) ?? -999 }

/// A 1p/minute, per-second rate with no connection charge unless given.
func rate(_ prefix: String = "44", connection: String = "0", perMinute: String = "0.60", increments: String = "1/1") throws -> Rate {
    try Rate(prefix: prefix, connectionCharge: m(connection), perMinute: m(perMinute), increments: BillingIncrements(increments))
}

func attempt(balance: String = "10", credit: String = "0", cliPolicy: CLIPolicy = .reject, accountLimits: CallLimits = CallLimits(),
             trunkLimits: CallLimits = CallLimits(), controls: CallControlHeaders = CallControlHeaders(), cli: String = "441632960000",
             destination: String = "447700900123", callType: String? = nil, rate r: Rate?, committed: String = "0") -> CallAttempt {
    CallAttempt(account: Account(id: "920700", name: "Acme", currency: "GBP", balance: m(balance), creditLimit: m(credit), cliPolicy: cliPolicy),
                accountLimits: accountLimits, trunk: Trunk(accountID: "920700", name: "L001", limits: trunkLimits),
                controls: controls, cli: cli, destination: destination, callType: callType, rate: r, committed: m(committed))
}

func rejection(_ d: AdmissionDecision) -> CallRejection? {
    if case .reject(let r) = d { return r }
    return nil
}

func admission(_ d: AdmissionDecision) -> Admission? {
    if case .admit(let a) = d { return a }
    return nil
}

@Suite struct AdmissionTests {
    @Test func cliPolicyRejectsOrWarns() throws {
        var book = LimitBook()
        #expect(rejection(book.admit(attempt(cli: "anonymous", rate: try rate()), blacklists: Blacklists(), now: 0)) == .invalidCLI)
        let warned = admission(book.admit(attempt(cliPolicy: .warn, cli: "12", rate: try rate()), blacklists: Blacklists(), now: 0))
        #expect(warned?.warning == "Invalid CLI")
        #expect(admission(book.admit(attempt(cli: "+441632960000", rate: try rate()), blacklists: Blacklists(), now: 0))?.warning == nil)
    }

    @Test func blacklistsOfEveryScopeApply() throws {
        var book = LimitBook()
        for scope in [BlacklistScope.platform, .account("920700"), .trunk("920700-L001")] {
            let lists = Blacklists([scope: ["4477009"]])
            #expect(rejection(book.admit(attempt(rate: try rate()), blacklists: lists, now: 0)) == .blacklistedDestination)
        }
        // Another account's or trunk's list does not.
        let others = Blacklists([.account("111"): ["44"], .trunk("920700-L002"): ["44"]])
        #expect(admission(book.admit(attempt(rate: try rate()), blacklists: others, now: 0)) != nil)
    }

    @Test func unratedDestinationsAndPriceCaps() throws {
        var book = LimitBook()
        #expect(rejection(book.admit(attempt(rate: nil), blacklists: Blacklists(), now: 0)) == .unratedDestination)
        let capped = CallControlHeaders(maxConnectionCharge: m("0.05"), maxPerMinute: m("0.10"))
        let pricey = try rate(connection: "0.06", perMinute: "0.05")
        #expect(rejection(book.admit(attempt(controls: capped, rate: pricey), blacklists: Blacklists(), now: 0))
                == .rateAboveCaller("connection charge 0.06 exceeds maxcpc 0.05"))
        #expect(admission(book.admit(attempt(controls: capped, rate: try rate(perMinute: "0.10")), blacklists: Blacklists(), now: 0)) != nil)
    }

    @Test func balanceAndCreditDecideAndTimeTheCall() throws {
        var book = LimitBook()
        #expect(rejection(book.admit(attempt(balance: "0", rate: try rate()), blacklists: Blacklists(), now: 0)) == .balanceExhausted)
        #expect(rejection(book.admit(attempt(balance: "-5", credit: "5", rate: try rate()), blacklists: Blacklists(), now: 0)) == .creditLimitExceeded)
        // 0.01 a second: 0.05 of balance + credit lasts 5 seconds; maxcost 0.03 lasts 3.
        let a = admission(book.admit(attempt(balance: "0.02", credit: "0.03", controls: CallControlHeaders(maxCost: m("0.03"), maxDuration: 30),
                                             rate: try rate()), blacklists: Blacklists(), now: 0))
        #expect(a?.balanceSeconds == 5 && a?.maxCostSeconds == 3 && a?.maxDuration == 30)
        // A connection charge above what is left refuses the call.
        #expect(rejection(book.admit(attempt(balance: "0.02", rate: try rate(connection: "0.05")), blacklists: Blacklists(), now: 0)) == .balanceExhausted)
    }

    /// A burst set up together: each admitted call holds its first increment
    /// (0.01 connection + 1 s at 0.01), so 0.05 of balance admits two calls,
    /// not five; an ended call's hold comes back.
    @Test func liveCallsHoldTheirFirstIncrementAgainstTheBalance() throws {
        var book = LimitBook()
        var holds = BalanceHolds()
        let r = try rate(connection: "0.01")
        var admitted: [Admission] = []
        var refused: [CallRejection] = []
        for _ in 0..<5 {
            switch book.admit(attempt(balance: "0.05", rate: r, committed: "\(holds.held("920700"))"), blacklists: Blacklists(), now: 0) {
            case .admit(let a):
                #expect(a.held == m("0.02"))
                holds.hold(a.held, account: "920700")
                admitted.append(a)
            case .reject(let why): refused.append(why)
            }
        }
        #expect(admitted.count == 2 && refused == [.balanceExhausted, .balanceExhausted, .balanceExhausted])
        #expect(holds.held("920700") == m("0.04") && holds.held("555000") == 0)
        // The second call's own cap counts what the first holds: 0.03 left is 2 s after the connection charge.
        #expect(admitted.map(\.balanceSeconds) == [4, 2])
        holds.release(admitted[0].held, account: "920700")
        #expect(holds.held("920700") == m("0.02"))
        #expect(admission(book.admit(attempt(balance: "0.05", rate: r, committed: "\(holds.held("920700"))"), blacklists: Blacklists(), now: 0)) != nil)
        // Credit counts as balance does; the refusal names it.
        #expect(rejection(book.admit(attempt(balance: "0", credit: "0.03", rate: r, committed: "0.02"), blacklists: Blacklists(), now: 0))
                == .creditLimitExceeded)
        holds.release(admitted[1].held, account: "920700")
        holds.release(m("0.02"), account: "920700")
        #expect(holds.held("920700") == 0)
    }

    @Test func channelLimitsCountLiveCallsAndRefusedCallsTakeNothing() throws {
        var book = LimitBook()
        let limits = CallLimits(channels: 2, callTypes: ["international": CallTypeLimits(channels: 1)])
        let a1 = try #require(admission(book.admit(attempt(accountLimits: limits, callType: "international", rate: try rate()), blacklists: Blacklists(), now: 0)))
        #expect(rejection(book.admit(attempt(accountLimits: limits, callType: "international", rate: try rate()), blacklists: Blacklists(), now: 0))
                == .channelLimit(callType: "international"))
        let a2 = try #require(admission(book.admit(attempt(accountLimits: limits, rate: try rate()), blacklists: Blacklists(), now: 0)))
        #expect(rejection(book.admit(attempt(accountLimits: limits, rate: try rate()), blacklists: Blacklists(), now: 0)) == .channelLimit(callType: nil))
        #expect(book.liveChannels(LimitKey(scope: .account, id: "920700")) == 2)
        book.release(a1.channels)
        book.release(a2.channels)
        #expect(book.liveChannels(LimitKey(scope: .account, id: "920700")) == 0)
        // A trunk channel limit refuses before the account's rate window counts the call.
        let trunkFull = CallLimits(channels: 0)
        let windowed = CallLimits(rate: RateLimitSetting(calls: 1, seconds: 60))
        #expect(rejection(book.admit(attempt(accountLimits: windowed, trunkLimits: trunkFull, rate: try rate()), blacklists: Blacklists(), now: 0))
                == .channelLimit(callType: nil))
        #expect(admission(book.admit(attempt(accountLimits: windowed, rate: try rate()), blacklists: Blacklists(), now: 1)) != nil)
    }

    @Test func rateLimitsPerAccountTrunkAndType() throws {
        var book = LimitBook()
        let account = CallLimits(rate: RateLimitSetting(calls: 3, seconds: 60), callTypes: ["mobile": CallTypeLimits(rate: RateLimitSetting(calls: 1, seconds: 60))])
        let trunk = CallLimits(rate: RateLimitSetting(calls: 2, seconds: 1))
        func go(_ t: Double, type: String? = nil) throws -> AdmissionDecision {
            book.admit(attempt(accountLimits: account, trunkLimits: trunk, callType: type, rate: try rate()), blacklists: Blacklists(), now: t)
        }
        #expect(admission(try go(0, type: "mobile")) != nil)
        #expect(rejection(try go(0.1, type: "mobile")) == .accountRateLimit(calls: 1, seconds: 60, callType: "mobile"))
        #expect(admission(try go(0.2)) != nil)
        #expect(rejection(try go(0.3)) == .trunkRateLimit(calls: 2, seconds: 1, callType: nil))
        #expect(admission(try go(1.1)) != nil)  // the trunk window moved on; the account has now had 3
        #expect(rejection(try go(2.5)) == .accountRateLimit(calls: 3, seconds: 60, callType: nil))
        #expect(CallRejection.accountRateLimit(calls: 3, seconds: 60, callType: nil).reasonText == "User account rate limit of 3 calls per minute")
    }

    @Test func lowBalanceLimitsApplyOnlyBelowTheThreshold() throws {
        var book = LimitBook()
        let limits = CallLimits(lowBalance: LowBalanceLimits(below: "5.00", channels: 1, rate: RateLimitSetting(calls: 2, seconds: 3600)))
        #expect(admission(book.admit(attempt(balance: "4", accountLimits: limits, rate: try rate()), blacklists: Blacklists(), now: 0)) != nil)
        #expect(rejection(book.admit(attempt(balance: "4", accountLimits: limits, rate: try rate()), blacklists: Blacklists(), now: 1))
                == .balanceRelatedChannelLimit)
        // With plenty of balance the low-balance channel is not counted against the call.
        #expect(admission(book.admit(attempt(balance: "50", accountLimits: limits, rate: try rate()), blacklists: Blacklists(), now: 2)) != nil)
        var fresh = LimitBook()
        let rateOnly = CallLimits(lowBalance: LowBalanceLimits(below: "5.00", rate: RateLimitSetting(calls: 1, seconds: 3600)))
        #expect(admission(fresh.admit(attempt(balance: "1", accountLimits: rateOnly, rate: try rate()), blacklists: Blacklists(), now: 0)) != nil)
        #expect(rejection(fresh.admit(attempt(balance: "1", accountLimits: rateOnly, rate: try rate()), blacklists: Blacklists(), now: 1))
                == .balanceRelatedRateLimit(calls: 1, seconds: 3600))
    }

    /// The plan a cluster's store counts: every limit that applies, channel
    /// limits before rate limits (the order refusals are reported in), under
    /// keys every node spells the same way.
    @Test func planListsTheLimitsToCountInOrder() throws {
        let account = CallLimits(channels: 10, rate: RateLimitSetting(calls: 3, seconds: 60),
                                 callTypes: ["mobile": CallTypeLimits(channels: 2)])
        let trunk = CallLimits(channels: 4)
        guard case .admit(let plan) = LimitBook.plan(attempt(accountLimits: account, trunkLimits: trunk, callType: "mobile", rate: try rate()),
                                                     blacklists: Blacklists()) else {
            Issue.record("expected the call to pass the policy"); return
        }
        #expect(plan.checks.map(\.key.storeKey) == ["balance:920700", "account:920700", "account:920700:mobile", "trunk:920700-L001", "account:920700"])
        // The balance check holds the first increment: 1 s at 0.60 a minute.
        #expect(plan.checks.map(\.kind) == [.balance(hold: m("0.01")), .channels(10), .channels(2), .channels(4),
                                             .rate(RateLimitSetting(calls: 3, seconds: 60))])
        #expect(plan.checks.map(\.rejection) == [.balanceExhausted, .channelLimit(callType: nil), .channelLimit(callType: "mobile"),
                                                 .channelLimit(callType: nil), .accountRateLimit(calls: 3, seconds: 60, callType: nil)])
        #expect(plan.admission.channels.isEmpty)
        #expect(LimitBook.plan(attempt(balance: "0", rate: try rate()), blacklists: Blacklists()) == .reject(.balanceExhausted))
    }

    @Test func trunkACLPicksTheMostSpecificBlock() throws {
        var d = TrunkDirectory()
        d.add(Trunk(accountID: "1", name: "A", sourceAddresses: ["10.0.0.0/8"]))
        d.add(Trunk(accountID: "2", name: "B", sourceAddresses: ["10.1.2.3"], username: "b-user"))
        #expect(d.trunk(forSource: "10.1.2.3")?.id == "2-B")
        #expect(d.trunk(forSource: "10.9.9.9")?.id == "1-A")
        #expect(d.trunk(forSource: "192.0.2.1") == nil)
        #expect(d.trunk(forUsername: "b-user")?.id == "2-B")
    }
}
