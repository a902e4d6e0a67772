import OutboundRegistration
import SIMs

/// Which node registers a SIM, and where it is moving during a drain (S9).
public struct SIMPlacement: Sendable, Equatable {
    /// The node that registers the SIM; nil: not placed, registered by every
    /// node that takes unplaced SIMs (a single node does).
    public var home: String?
    /// Set while a drain moves the SIM to another node.
    public var movingTo: String?

    public init(home: String? = nil, movingTo: String? = nil) { self.home = home; self.movingTo = movingTo }
}

/// One node's view of which SIMs to keep registered (S9: make before break).
///
/// During a move the new node registers its own Contact first; the old node
/// keeps its binding until the store shows the new node registered, then
/// de-registers its Contact alone and hands the SIM over.
public struct PlacementPolicy: Sendable, Equatable {
    public var node: String
    public var registersUnplaced: Bool

    public init(node: String, registersUnplaced: Bool = true) { self.node = node; self.registersUnplaced = registersUnplaced }

    public enum Decision: Sendable, Equatable {
        /// Keep (or start) this node's registration.
        case register
        /// Not this node's SIM.
        case ignore
        /// The new node has registered: remove ours, then hand the SIM over.
        case release(to: String)
    }

    /// `registeredNodes`: nodes whose registration of the SIM the store shows as registered.
    public func decide(_ p: SIMPlacement, registeredNodes: Set<String>) -> Decision {
        if p.movingTo == node { return .register }
        let mine = p.home.map { $0 == node } ?? registersUnplaced
        guard mine else { return .ignore }
        if let to = p.movingTo, to != node {
            return registeredNodes.contains(to) ? .release(to: to) : .register
        }
        return .register
    }
}

/// What the registration service reads and writes; the store implements it.
public protocol SIMRegistrationSource: Sendable {
    /// Every SIM with its settings, placement and the nodes registered for it.
    func registrationRecords() async throws -> [SIMRegistrationRecord]
    func recordStatuses(_ statuses: [(ICCID, RegistrationStatus)], node: String) async throws
    /// The old node's binding is gone: the SIM now lives on `node`.
    func completeMove(_ iccid: ICCID, to node: String) async throws
}

public struct SIMRegistrationRecord: Sendable, Equatable {
    public var target: SIMRegistrationTarget
    public var placement: SIMPlacement
    public var registeredNodes: Set<String>

    public init(target: SIMRegistrationTarget, placement: SIMPlacement = SIMPlacement(), registeredNodes: Set<String> = []) {
        self.target = target; self.placement = placement; self.registeredNodes = registeredNodes
    }
}
