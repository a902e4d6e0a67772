import Foundation
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
    /// What the account's other live calls on this node hold of its balance
    /// + credit (`BalanceHolds`; filled in by the service as it admits): not
    /// available to this call.
    public var committed: Money

    public init(account: Account, accountLimits: CallLimits, trunk: Trunk, controls: CallControlHeaders, cli: String,
                destination: String, callType: String?, rate: Rate?, committed: Money = 0) {
        self.account = account; self.accountLimits = accountLimits; self.trunk = trunk; self.controls = controls
        self.cli = cli; self.destination = destination; self.callType = callType; self.rate = rate; self.committed = committed
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
    /// T10: the call's first billing increment (connection charge included),
    /// held against the account while the call is live (`BalanceHolds`).
    public var held: Money = 0
}

public enum AdmissionDecision: Sendable, Equatable {
    case admit(Admission)
    case reject(CallRejection)
}

/// One limit an admitted call must fit (T9, T10).
public struct LimitCheck: Sendable, Equatable {
    public var key: LimitKey
    public var kind: LimitKind
    /// What the caller is told when the limit is reached.
    public var rejection: CallRejection
}

/// A call that passed every check but the counting of its limits.
public struct AdmissionPlan: Sendable, Equatable {
    /// What to enforce once it runs (`channels` filled in by the counting).
    public var admission: Admission
    /// The balance (T10) first, then channel limits, then rate limits, in the order they are reported.
    public var checks: [LimitCheck]
}

public enum AdmissionPlanDecision: Sendable, Equatable {
    case admit(AdmissionPlan)
    case reject(CallRejection)
}

/// Whose limit a counter is.
public struct LimitKey: Sendable, Hashable {
    public enum Scope: Sendable, Hashable { case account, trunk, lowBalanceAccount, balance }
    public var scope: Scope
    public var id: String
    public var callType: String?

    public init(scope: Scope, id: String, callType: String? = nil) {
        self.scope = scope; self.id = id; self.callType = callType
    }

    /// The key as the store counts it ("account:920700", "trunk:920700-L001:international").
    public var storeKey: String {
        let s: String
        switch scope {
        case .account: s = "account"
        case .trunk: s = "trunk"
        case .lowBalanceAccount: s = "low-balance"
        case .balance: s = "balance"
        }
        return callType.map { "\(s):\(id):\($0)" } ?? "\(s):\(id)"
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
        switch Self.plan(a, blacklists: blacklists) {
        case .reject(let why): return .reject(why)
        case .admit(let plan): return count(plan, now: now)
        }
    }

    /// Everything but the counting: which limits the call must fit, and what
    /// to enforce once it runs. Pure, so the counting can be done here (one
    /// node) or in a store shared by a cluster (T9, "correct across a cluster").
    public static func plan(_ a: CallAttempt, blacklists: Blacklists) -> AdmissionPlanDecision {
        var warning: String?
        if !CLIValidation.isValid(a.cli) {
            if a.account.cliPolicy == .reject { return .reject(.invalidCLI) }
            warning = CallRejection.invalidCLI.reasonText
        }
        if blacklists.match(a.destination, account: a.account.id, trunk: a.trunk.id) != nil { return .reject(.blacklistedDestination) }
        guard let rate = a.rate else { return .reject(.unratedDestination) }
        if let why = a.controls.rateViolation(rate) { return .reject(.rateAboveCaller(why)) }

        // T10: the call must be able to afford its first billing increment,
        // out of what the account's other live calls do not already hold.
        let available = a.account.balance + a.account.creditLimit - a.committed
        let firstIncrement = rate.cost(forDuration: 1)
        let outOfMoney: CallRejection = a.account.creditLimit > 0 ? .creditLimitExceeded : .balanceExhausted
        if available <= 0 || firstIncrement > available { return .reject(outOfMoney) }
        // The same, against every node's calls, where a cluster's store counts (this node's are in `committed`).
        let balanceCheck = LimitCheck(key: LimitKey(scope: .balance, id: a.account.id), kind: .balance(hold: firstIncrement), rejection: outOfMoney)

        // Channel limits first, then rate limits: a refused call uses up neither.
        var channelChecks: [LimitCheck] = []
        var windowChecks: [LimitCheck] = []
        if let low = a.accountLimits.lowBalance, let threshold = low.threshold, available < threshold {
            let key = LimitKey(scope: .lowBalanceAccount, id: a.account.id)
            if let n = low.channels { channelChecks.append(LimitCheck(key: key, kind: .channels(n), rejection: .balanceRelatedChannelLimit)) }
            if let r = low.rate {
                windowChecks.append(LimitCheck(key: key, kind: .rate(r), rejection: .balanceRelatedRateLimit(calls: r.calls, seconds: r.seconds)))
            }
        }
        for (scope, id, limits) in [(LimitKey.Scope.account, a.account.id, a.accountLimits), (.trunk, a.trunk.id, a.trunk.limits)] {
            let key = LimitKey(scope: scope, id: id)
            if let n = limits.channels { channelChecks.append(LimitCheck(key: key, kind: .channels(n), rejection: .channelLimit(callType: nil))) }
            if let r = limits.rate {
                windowChecks.append(LimitCheck(key: key, kind: .rate(r), rejection: scope == .account
                    ? .accountRateLimit(calls: r.calls, seconds: r.seconds, callType: nil)
                    : .trunkRateLimit(calls: r.calls, seconds: r.seconds, callType: nil)))
            }
            if let type = a.callType, let t = limits.callTypes?[type] {
                let typed = LimitKey(scope: scope, id: id, callType: type)
                if let n = t.channels { channelChecks.append(LimitCheck(key: typed, kind: .channels(n), rejection: .channelLimit(callType: type))) }
                if let r = t.rate {
                    windowChecks.append(LimitCheck(key: typed, kind: .rate(r), rejection: scope == .account
                        ? .accountRateLimit(calls: r.calls, seconds: r.seconds, callType: type)
                        : .trunkRateLimit(calls: r.calls, seconds: r.seconds, callType: type)))
                }
            }
        }
        return .admit(AdmissionPlan(
            admission: Admission(
                warning: warning, maxDuration: a.controls.maxDuration,
                maxCostSeconds: a.controls.maxCost.flatMap { rate.secondsUntilCost(reaches: $0) },
                balanceSeconds: rate.secondsUntilCost(reaches: available),
                channels: [], held: firstIncrement),
            checks: [balanceCheck] + channelChecks + windowChecks))
    }

    /// Counts an admitted plan against this node's windows and channels:
    /// every limit is checked before any is counted.
    public mutating func count(_ plan: AdmissionPlan, now: Double) -> AdmissionDecision {
        for check in plan.checks {
            switch check.kind {
            case .channels(let limit): if channels.count(check.key) >= limit { return .reject(check.rejection) }
            case .rate(let setting): if !window(check.key, setting).wouldAdmit(now: now) { return .reject(check.rejection) }
            case .balance: continue  // checked by `plan` against this node's holds (`committed`)
            }
        }
        var admission = plan.admission
        for check in plan.checks {
            switch check.kind {
            case .channels(let limit):
                if channels.acquire(check.key, limit: limit) { admission.channels.append(check.key) }
            case .rate(let setting):
                // In place: a window copied out and written back copied its
                // whole array on every call (copy-on-write of a shared buffer).
                if windows[check.key].map({ $0.calls != setting.calls || $0.seconds != setting.seconds }) ?? true {
                    windows[check.key] = SlidingWindowLimit(calls: setting.calls, seconds: setting.seconds)
                }
                _ = windows[check.key]?.admit(now: now)
            case .balance:
                continue
            }
        }
        return .admit(admission)
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

/// T10 at set-up across an account's calls: each call admitted against the
/// balance holds its first billing increment until it ends, and a call is
/// admitted only if it can pay its own out of what the others do not hold.
/// Without this, a burst of calls set up together was each admitted against
/// the whole balance and each charged at least its first increment — many
/// times what the account had — before the running-cost sweep (below) could
/// clear them. These are one node's holds; where a cluster's store counts
/// limits, the holds are also kept there and counted across the nodes at
/// admission (`LimitKind.balance`).
public struct BalanceHolds: Sendable {
    var byAccount: [String: Money] = [:]

    public init() {}

    public func held(_ account: String) -> Money { byAccount[account] ?? 0 }

    public mutating func hold(_ amount: Money, account: String) {
        guard amount != 0 else { return }
        byAccount[account, default: 0] += amount
    }

    public mutating func release(_ amount: Money, account: String) {
        guard amount != 0, let held = byAccount[account] else { return }
        let left = held - amount
        byAccount[account] = left > 0 ? left : nil
    }
}

/// T10 across an account's calls at once. Each call is held to its own cap,
/// what the account had (balance + credit) at set-up, so calls running in
/// parallel could together spend several times that, and a call outlives
/// money that ended calls have since used. An account whose answered calls
/// have together run up at least what it has now is out of money, and those
/// calls are cleared (as Kamailio's cnxcc does). Costs here step up on the
/// same whole seconds as a call's own cap timer, so a lone call with nothing
/// changed is cleared by that timer at its exact moment.
public enum AccountSpend {
    /// The calls to clear now, by account (call IDs sorted): accounts whose
    /// answered calls' costs so far (each for its whole seconds since the
    /// answer, at least one) add up to at least `available`.
    public static func exhausted(_ calls: [AnsweredCall], available: (String) -> Money?, now: Double) -> [String: [String]] {
        var byAccount: [String: [AnsweredCall]] = [:]
        for c in calls { byAccount[c.accountID, default: []].append(c) }
        var out: [String: [String]] = [:]
        for (account, running) in byAccount {
            guard let limit = available(account) else { continue }
            if spent(running, now: now) >= limit { out[account] = running.map(\.callID).sorted() }
        }
        return out
    }

    /// The calls' costs so far (summed in millionths where exact, else as Decimal).
    static func spent(_ running: [AnsweredCall], now: Double) -> Money {
        var micros: Int64 = 0
        var rest: Money = 0
        for c in running {
            let cost = c.rate.cost(forDuration: max(1, Int((now - c.answeredAt).rounded(.down))))
            if let m = exactMillionths(cost), case (let sum, false) = micros.addingReportingOverflow(m) { micros = sum } else { rest += cost }
        }
        return rest + Decimal(micros) / 1_000_000
    }
}
