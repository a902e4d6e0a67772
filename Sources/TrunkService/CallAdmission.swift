import CallControl
import Rating
import Store

/// What the policy knows about one call attempt on a trunk, already looked up.
public struct CallAttempt: Sendable {
    public var account: Account
    public var accountLimits: CallLimits
    /// The trunk the call is placed on (matched, or named by X-simwood-trunk).
    public var trunk: Trunk
    public var controls: CallControlHeaders
    /// The caller's number (P-Asserted-Identity, else From user).
    public var cli: String
    /// The dialled number (Request-URI user).
    public var destination: String
    public var callType: String?
    /// The account's rate for the destination; nil when unrated.
    public var rate: Rate?

    public init(account: Account, accountLimits: CallLimits, trunk: Trunk, controls: CallControlHeaders, cli: String,
                destination: String, callType: String?, rate: Rate?) {
        self.account = account; self.accountLimits = accountLimits; self.trunk = trunk; self.controls = controls
        self.cli = cli; self.destination = destination; self.callType = callType; self.rate = rate
    }
}

/// The blacklists that apply to calls (T8), kept in memory.
public struct Blacklists: Sendable {
    var byScope: [BlacklistScope: Blacklist]
    public init(_ lists: [BlacklistScope: [String]] = [:]) { byScope = lists.mapValues(Blacklist.init) }

    /// The platform's, the account's and the trunk's lists, longest prefix first within each.
    public func match(_ number: String, account: String, trunk: String) -> String? {
        for scope in [BlacklistScope.platform, .account(account), .trunk(trunk)] {
            if let p = byScope[scope]?.match(number) { return p }
        }
        return nil
    }
}

/// An admitted call: what to enforce while it runs, and the channels it holds.
public struct Admission: Sendable, Equatable {
    /// T7 warn policy: `X-Warning: Invalid CLI` on the responses.
    public var warning: String?
    /// T5.
    public var maxDuration: Int?
    /// T4: seconds from answer until the running cost reaches maxcost.
    public var maxCostSeconds: Int?
    /// T10: seconds from answer until the running cost reaches balance + credit.
    public var balanceSeconds: Int?
    /// Channels taken; give them back with `LimitBook.release`.
    public var channels: [LimitKey]
}

public enum AdmissionDecision: Sendable, Equatable {
    case admit(Admission)
    case reject(CallRejection)
}

/// Whose limit a counter is.
public struct LimitKey: Sendable, Hashable {
    public enum Scope: Sendable, Hashable { case account, trunk, lowBalanceAccount }
    public var scope: Scope
    public var id: String
    public var callType: String?

    public init(scope: Scope, id: String, callType: String? = nil) {
        self.scope = scope; self.id = id; self.callType = callType
    }
}

/// The live state of rate and channel limits on this node (T9, T10), as a
/// value driven with explicit times. `admit` checks every limit first and
/// only then counts the call, so a refused call uses up nothing.
public struct LimitBook: Sendable {
    var windows: [LimitKey: SlidingWindowLimit] = [:]
    var channels = ChannelCounter<LimitKey>()

    public init() {}

    public func liveChannels(_ key: LimitKey) -> Int { channels.count(key) }

    /// The policy, in the order of the README's table: trunk, CLI, blacklist,
    /// rate, caller's price caps, balance, balance-related limits, channel
    /// limits, rate limits.
    public mutating func admit(_ a: CallAttempt, blacklists: Blacklists, now: Double) -> AdmissionDecision {
        var warning: String?
        if !CLIValidation.isValid(a.cli) {
            if a.account.cliPolicy == .reject { return .reject(.invalidCLI) }
            warning = CallRejection.invalidCLI.reasonText
        }
        if blacklists.match(a.destination, account: a.account.id, trunk: a.trunk.id) != nil { return .reject(.blacklistedDestination) }
        guard let rate = a.rate else { return .reject(.unratedDestination) }
        if let why = a.controls.rateViolation(rate) { return .reject(.rateAboveCaller(why)) }

        // T10: the call must be able to afford its first billing increment.
        let available = a.account.balance + a.account.creditLimit
        if available <= 0 || rate.cost(forDuration: 1) > available {
            return .reject(a.account.creditLimit > 0 ? .creditLimitExceeded : .balanceExhausted)
        }

        // Channel and rate limits: collect, check, then count.
        var channelChecks: [(LimitKey, Int, CallRejection)] = []
        var windowChecks: [(LimitKey, RateLimitSetting, CallRejection)] = []
        if let low = a.accountLimits.lowBalance, let threshold = low.threshold, available < threshold {
            let key = LimitKey(scope: .lowBalanceAccount, id: a.account.id)
            if let n = low.channels { channelChecks.append((key, n, .balanceRelatedChannelLimit)) }
            if let r = low.rate { windowChecks.append((key, r, .balanceRelatedRateLimit(calls: r.calls, seconds: r.seconds))) }
        }
        for (scope, id, limits) in [(LimitKey.Scope.account, a.account.id, a.accountLimits), (.trunk, a.trunk.id, a.trunk.limits)] {
            let key = LimitKey(scope: scope, id: id)
            if let n = limits.channels { channelChecks.append((key, n, .channelLimit(callType: nil))) }
            if let r = limits.rate {
                windowChecks.append((key, r, scope == .account ? .accountRateLimit(calls: r.calls, seconds: r.seconds, callType: nil)
                                                                : .trunkRateLimit(calls: r.calls, seconds: r.seconds, callType: nil)))
            }
            if let type = a.callType, let t = limits.callTypes?[type] {
                let typed = LimitKey(scope: scope, id: id, callType: type)
                if let n = t.channels { channelChecks.append((typed, n, .channelLimit(callType: type))) }
                if let r = t.rate {
                    windowChecks.append((typed, r, scope == .account ? .accountRateLimit(calls: r.calls, seconds: r.seconds, callType: type)
                                                                     : .trunkRateLimit(calls: r.calls, seconds: r.seconds, callType: type)))
                }
            }
        }
        for (key, limit, rejection) in channelChecks where channels.count(key) >= limit { return .reject(rejection) }
        for (key, setting, rejection) in windowChecks where !window(key, setting).wouldAdmit(now: now) { return .reject(rejection) }

        for (key, setting, _) in windowChecks {
            var w = window(key, setting)
            _ = w.admit(now: now)
            windows[key] = w
        }
        var held: [LimitKey] = []
        for (key, limit, _) in channelChecks where channels.acquire(key, limit: limit) { held.append(key) }

        return .admit(Admission(
            warning: warning, maxDuration: a.controls.maxDuration,
            maxCostSeconds: a.controls.maxCost.flatMap { rate.secondsUntilCost(reaches: $0) },
            balanceSeconds: rate.secondsUntilCost(reaches: available),
            channels: held))
    }

    public mutating func release(_ keys: [LimitKey]) {
        for k in keys { channels.release(k) }
    }

    /// The window for a key; a changed setting starts a new window.
    func window(_ key: LimitKey, _ s: RateLimitSetting) -> SlidingWindowLimit {
        if let w = windows[key], w.calls == s.calls, w.seconds == s.seconds { return w }
        return SlidingWindowLimit(calls: s.calls, seconds: s.seconds)
    }
}
