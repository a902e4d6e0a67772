/// Why the platform refuses or clears a call, with the exact `X-Reason`
/// texts of SPEC.md T6, the SIP status used, and the RFC 3326 Reason value.
public enum CallRejection: Sendable, Equatable, CustomStringConvertible {
    case invalidTrunk
    case invalidCLI
    case blacklistedDestination
    /// `User account rate limit of X [type] calls per Y`
    case accountRateLimit(calls: Int, seconds: Int, callType: String?)
    /// `User trunk rate limit of X [type] calls per Y`
    case trunkRateLimit(calls: Int, seconds: Int, callType: String?)
    /// `Channel Limit Exceeded [(type)]`
    case channelLimit(callType: String?)
    case maximumCostReached
    case maximumDurationReached
    case balanceBelowLimit
    case balanceExhausted
    case creditLimitExceeded
    case balanceRelatedChannelLimit
    /// `Balance-Related account rate limit of X calls per Y`
    case balanceRelatedRateLimit(calls: Int, seconds: Int)
    /// T3: the destination's rate is above the caller's maxcpc/maxcpm.
    case rateAboveCaller(String)
    /// T11: the account's rate deck has no rate for the destination.
    case unratedDestination
    /// Not a T6 reason: the switch is taking datagrams more slowly than they
    /// come (`ReceiveBacklogGate`) and refuses new calls until it catches up.
    case overloaded
    /// Not a T6 reason: the node is stopping (SIGTERM): new calls are refused
    /// while the live ones drain, and those still up after the drain period are cleared.
    case nodeStopping

    /// The human-readable `X-Reason` text (T6).
    public var reasonText: String {
        switch self {
        case .invalidTrunk: return "Invalid Trunk"
        case .invalidCLI: return "Invalid CLI"
        case .blacklistedDestination: return "Blacklisted Destination"
        case .accountRateLimit(let x, let y, let t): return "User account rate limit of \(x)\(t.map { " \($0)" } ?? "") calls per \(Self.period(y))"
        case .trunkRateLimit(let x, let y, let t): return "User trunk rate limit of \(x)\(t.map { " \($0)" } ?? "") calls per \(Self.period(y))"
        case .channelLimit(let t): return "Channel Limit Exceeded" + (t.map { " (\($0))" } ?? "")
        case .maximumCostReached: return "Maximum Cost Reached"
        case .maximumDurationReached: return "Maximum Duration Reached"
        case .balanceBelowLimit: return "Balance now below limit"
        case .balanceExhausted: return "Balance exhausted"
        case .creditLimitExceeded: return "Credit limit exceeded"
        case .balanceRelatedChannelLimit: return "Balance-Related Channel Limit Exceeded"
        case .balanceRelatedRateLimit(let x, let y): return "Balance-Related account rate limit of \(x) calls per \(Self.period(y))"
        case .rateAboveCaller(let why): return "Rate Above Maximum (\(why))"
        case .unratedDestination: return "No Rate For Destination"
        case .overloaded: return "Temporarily Overloaded"
        case .nodeStopping: return "Node Shutting Down"
        }
    }

    /// The final response for a refused INVITE (documented in the README).
    /// Clearings of answered calls use BYE and carry the same texts.
    public var statusCode: Int {
        switch self {
        case .invalidTrunk, .invalidCLI, .blacklistedDestination, .rateAboveCaller: return 403
        case .accountRateLimit, .trunkRateLimit, .channelLimit, .balanceRelatedChannelLimit, .balanceRelatedRateLimit, .overloaded, .nodeStopping: return 503
        case .balanceBelowLimit, .balanceExhausted, .creditLimitExceeded, .maximumCostReached: return 402
        case .maximumDurationReached: return 408
        case .unratedDestination: return 404
        }
    }

    /// Limits that clear with time: a Retry-After helps the caller (RFC 3261 §21.5.4).
    public var retryAfterSeconds: Int? {
        switch self {
        case .accountRateLimit(_, let y, _), .trunkRateLimit(_, let y, _), .balanceRelatedRateLimit(_, let y): return y
        case .channelLimit, .balanceRelatedChannelLimit: return 5
        // Long enough for a backed-up socket to drain (tens of milliseconds), short for a caller's retry.
        case .overloaded: return 1
        // A restart takes seconds; a caller with another node (RFC 3263) tries it at once.
        case .nodeStopping: return 30
        default: return nil
        }
    }

    /// `Reason: SIP ;cause=403 ;text="Invalid Trunk"` (RFC 3326).
    public var reasonHeader: String {
        "SIP ;cause=\(statusCode) ;text=\"\(reasonText.replacingQuotes)\""
    }

    public var description: String { "\(statusCode) \(reasonText)" }

    static func period(_ seconds: Int) -> String {
        switch seconds {
        case 1: return "second"
        case 60: return "minute"
        case 3600: return "hour"
        case 86_400: return "day"
        default: return "\(seconds) seconds"
        }
    }
}

extension String {
    var replacingQuotes: String { String(map { $0 == "\"" ? "'" : $0 }) }
}
