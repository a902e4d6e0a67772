import Logging
import Rating
import Store

/// The store's part of a call, as both shells of the core (the actor service
/// and the event loops) write it: the live-call row (with the limits the
/// store counts), the answer, the CDR. Failures are logged here, once.
struct CallStoreWrites: Sendable {
    enum AdmissionResult: Sendable {
        /// Recorded as live; `refusedAt`: the first limit the store found full (nothing recorded).
        case recorded(refusedAt: Int?)
        case failed
    }

    let store: Store
    let node: String
    let logger: Logger

    func admit(_ live: LiveCall, limits: [StoredLimit]) async -> AdmissionResult {
        do { return .recorded(refusedAt: try await store.admitCall(live, node: node, limits: limits)) } catch {
            logger.error("could not record the call start", metadata: ["call-id": "\(live.callID)", "error": "\(error)"])
            return .failed
        }
    }

    func record(_ cdr: CDR, refused: Bool) async {
        do { try await store.recordCall(cdr) } catch {
            // A bridged call's live_calls row stays, so the next start records it as interrupted.
            logger.error(refused ? "could not write the CDR of a refused call" : "could not write a CDR",
                         metadata: ["call-id": "\(cdr.callID)", "error": "\(error)"])
        }
    }

    /// Not waited for by the call: if it fails, the call is still held to its own cap.
    func recordAnswer(callID: String, at: Double, rate: Rate) async {
        do { try await store.callAnswered(callID, at: at, rate: rate) } catch {
            logger.error("could not record a call's answer in the store", metadata: ["call-id": "\(callID)", "error": "\(error)"])
        }
    }
}
