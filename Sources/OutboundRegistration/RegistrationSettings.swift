import SIPMessage

/// What a user agent needs to register one address of record with a
/// registrar (RFC 3261 §10.2): for SIP2SIM, a SIM's account on the
/// customer's own SIP server.
public struct RegistrationSettings: Sendable, Equatable {
    /// The registrar's domain as the customer gave it ("pbx.example.com" or
    /// "pbx.example.com:5070"): the Request-URI and the host of the AOR.
    /// Resolving it (RFC 3263) is the sender's job.
    public var domain: String
    /// User part of the address of record (To and From).
    public var aorUser: String
    /// Digest user name.
    public var username: String
    public var password: String
    /// Our Contact, unique to this node (e.g. `sip:ICCID@10.0.0.2:5060`), so
    /// two nodes can hold bindings for one SIM side by side (S9).
    public var contact: SIPURI
    /// Expiry we ask for, in seconds.
    public var expires: UInt32

    public init(domain: String, aorUser: String, username: String, password: String, contact: SIPURI, expires: UInt32 = 3600) {
        self.domain = domain; self.aorUser = aorUser; self.username = username; self.password = password
        self.contact = contact; self.expires = expires
    }

    /// Same binding on the same registrar: a change of anything else (the
    /// password, the expiry) is a refresh, not a move.
    func sameBinding(as other: RegistrationSettings) -> Bool {
        domain.lowercased() == other.domain.lowercased() && aorUser == other.aorUser && username == other.username
            && contact == other.contact
    }
}

/// Timing rules. Defaults: refresh at 45–55 % of the granted expiry; after a
/// failure wait 10 s, doubling to at most 10 min, each wait jittered to
/// 50–100 % so a registrar that comes back is not met by every SIM at once.
public struct RegistrationPolicy: Sendable, Equatable {
    public var refreshFraction: ClosedRange<Double>
    public var retryBase: Double
    public var retryCap: Double
    /// De-registration attempts before leaving the binding to expire on its own.
    public var deregistrationAttempts: Int
    /// Highest expiry a 423's Min-Expires may push us to.
    public var maximumExpires: UInt32

    public init(refreshFraction: ClosedRange<Double> = 0.45...0.55, retryBase: Double = 10, retryCap: Double = 600,
                deregistrationAttempts: Int = 3, maximumExpires: UInt32 = 86_400) {
        self.refreshFraction = refreshFraction; self.retryBase = retryBase; self.retryCap = retryCap
        self.deregistrationAttempts = deregistrationAttempts; self.maximumExpires = maximumExpires
    }
}

/// A SIM's registration as shown to operators.
public enum RegistrationState: String, Sendable, Equatable, Codable {
    /// Not yet answered.
    case pending
    case registered
    /// The last attempt failed; another is scheduled.
    case failing
    /// De-registered (stopped, or moved to another server).
    case unregistered
}

public struct RegistrationStatus: Sendable, Equatable {
    public var state: RegistrationState
    /// Final SIP status of the last attempt; nil when it got no answer.
    public var lastCode: Int?
    public var lastReason: String?
    /// Wall-clock seconds (since 1970) the registrar's binding lasts until.
    public var registeredUntil: Double?
    /// Wall-clock seconds of the next REGISTER.
    public var nextAttempt: Double?

    public init(state: RegistrationState, lastCode: Int? = nil, lastReason: String? = nil, registeredUntil: Double? = nil,
                nextAttempt: Double? = nil) {
        self.state = state; self.lastCode = lastCode; self.lastReason = lastReason
        self.registeredUntil = registeredUntil; self.nextAttempt = nextAttempt
    }
}

/// What the machine asks its owner to do.
public enum RegistrationAction: Sendable {
    /// Send this REGISTER in a new client transaction to the registrar for
    /// `domain` (RFC 3263), then feed back `.response` or `.transactionFailed`.
    case send(SIPMessage, domain: String)
    /// Call `.timerFired` at this wall-clock time (replaces any earlier timer).
    case setTimer(at: Double)
    case cancelTimer
    case reportStatus(RegistrationStatus)
    /// Stopped and every binding removed (or given up on): forget the machine.
    case finished
    /// The registrar broke S9 (removed every binding when asked to remove
    /// ours alone): log this message as an error.
    case registrarDroppedOtherContacts(String)
}

/// A small, seedable generator (SplitMix64) so jitter and identifiers are
/// reproducible in tests; seeded from the system generator in production.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public init() { var g = SystemRandomNumberGenerator(); state = g.next() }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
