/// How many new calls a trunk-call event loop takes while its socket is
/// behind (`ReceiveBacklogGate`): a rate, cut by a fraction while the
/// socket stays behind and grown by a share of itself once it is not, as a
/// TCP sender feels out a path's capacity; calls above it are refused, also
/// in the seconds after the socket caught up, until the rate is lifted.
///
/// Why a rate rather than refusing every new call while behind (the eighth
/// round): the harm is done while such a gate is open — calls taken then at
/// the full offered rate bring ten more datagrams each over the next seconds,
/// which cannot be refused — so the socket swung between refusing everything
/// and overflowing. A rate bounds what the calls taken will bring later.
///
/// Pure logic, driven by the monotonic clock of each new call; the actor
/// service's calls are never behind, so for them it always admits.
public struct OverloadAdmission: Sendable {
    /// New calls a second, while limited; nil when not (never behind, or not for `releaseAfter`).
    public private(set) var limit: Double?
    var tokens = 0.0
    var lastRefill: UInt64 = 0
    var lastCut: UInt64 = 0
    var lastBehind: UInt64 = 0
    /// Calls admitted a second, smoothed over 100 ms windows: where the limit starts.
    var recentRate = 0.0
    var windowStart: UInt64 = 0
    var windowAdmitted = 0
    /// Calls refused since the last time this was unlimited (for one log line when it is again).
    public private(set) var refused = 0

    /// The limit starts at this share of the rate admitted just before…
    public static let startShare = 0.8
    /// …is multiplied by this each `cutEvery` the socket is still behind…
    public static let cut = 0.85
    public static let cutEvery: UInt64 = 250_000_000
    /// …and grows by this share of itself a second while it is not.
    public static let growth = 0.3
    public static let minimum = 50.0
    /// Unlimited again once the socket has not been behind for this long.
    public static let releaseAfter: UInt64 = 5_000_000_000
    static let window: UInt64 = 100_000_000

    public init() {}

    /// Once the rate is lifted: how many calls it refused, counted from
    /// zero again; nil while it still limits or refused none.
    public mutating func refusalsOnceLifted() -> Int? {
        guard limit == nil, refused > 0 else { return nil }
        defer { refused = 0 }
        return refused
    }

    /// Whether to take a new call read when the socket was (or was not) `behind`, at `now` (monotonic ns).
    public mutating func admits(behind: Bool, now: UInt64) -> Bool {
        if now &- windowStart >= Self.window {
            let elapsed = Double(now &- windowStart) / 1e9
            recentRate = windowStart == 0 ? Double(windowAdmitted) / 0.1 : 0.5 * recentRate + 0.5 * Double(windowAdmitted) / elapsed
            windowStart = now; windowAdmitted = 0
        }
        if behind {
            lastBehind = now
            if let l = limit {
                if now &- lastCut >= Self.cutEvery { limit = max(Self.minimum, l * Self.cut); lastCut = now }
            } else {
                limit = max(Self.minimum, recentRate * Self.startShare)
                lastCut = now; lastRefill = now; tokens = 0
            }
        } else if let l = limit {
            if now &- lastBehind >= Self.releaseAfter {
                limit = nil
            } else {
                limit = l + l * Self.growth * Double(now &- lastRefill) / 1e9
            }
        }
        guard let l = limit else { windowAdmitted += 1; return true }
        // Tokens at the limit's rate, at most 20 ms of them (no burst after a lull).
        tokens = min(l * 0.02 + 1, tokens + l * Double(now &- lastRefill) / 1e9)
        lastRefill = now
        guard tokens >= 1 else { refused += 1; return false }
        tokens -= 1
        windowAdmitted += 1
        return true
    }
}
