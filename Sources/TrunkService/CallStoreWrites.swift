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

    /// Several admissions at once (an event loop's pass), each result as `admit` gives it.
    func admit(_ calls: [(LiveCall, [StoredLimit])]) async -> [(callID: String, result: AdmissionResult)] {
        let results = await store.admitCalls(calls.map { (call: $0.0, limits: $0.1) }, node: node)
        return zip(calls, results).map { call, result in
            switch result {
            case .success(let refusedAt): return (call.0.callID, .recorded(refusedAt: refusedAt))
            case .failure(let error):
                logger.error("could not record the call start", metadata: ["call-id": "\(call.0.callID)", "error": "\(error)"])
                return (call.0.callID, .failed)
            }
        }
    }

    /// Several CDRs at once, failures logged as `record` logs them.
    func record(_ cdrs: [(CDR, refused: Bool)]) async {
        let results = await store.recordCalls(cdrs.map(\.0))
        for ((cdr, refused), result) in zip(cdrs, results) {
            if case .failure(let error) = result {
                logger.error(refused ? "could not write the CDR of a refused call" : "could not write a CDR",
                             metadata: ["call-id": "\(cdr.callID)", "error": "\(error)"])
            }
        }
    }

    /// Several answers at once, failures logged as `recordAnswer` logs them.
    func recordAnswers(_ answers: [(callID: String, at: Double, rate: Rate)]) async {
        let results = await store.callsAnswered(answers)
        for (answer, result) in zip(answers, results) {
            if case .failure(let error) = result {
                logger.error("could not record a call's answer in the store", metadata: ["call-id": "\(answer.callID)", "error": "\(error)"])
            }
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
