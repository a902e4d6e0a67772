import Foundation
import Hummingbird
import Logging
import NIOCore
import SIMs

/// The simulator's HTTP control API (JSON, snake_case):
///
///     GET  /handsets                         PUT /handsets/{iccid} {"answer": "auto"|"manual", "answer_after": 0.2, "reachable": true}
///     POST /handsets/{iccid}/calls {"to": "+447700900123", "withheld": false}
///     GET  /handsets/{iccid}/calls           GET /calls            GET /calls/{id}
///     POST /calls/{id}/hangup                POST /calls/{id}/answer
///     POST /calls/{id}/reject {"code": 486}
///     POST /handsets/{iccid}/texts {"to": "...", "text": "..."}     GET /handsets/{iccid}/texts
///
/// Errors are `{"error": "...", "field": "..."}`: 400 bad JSON, 404 unknown
/// handset or call, 409 not possible in the call's state, 422 a bad field.
public enum SimulatorControlAPI {
    public static func makeRouter(_ sim: MobileCoreSimulator) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/handsets") { _, _ in try json(await sim.handsetList()) }
        router.put("/handsets/:iccid") { request, context in
            try await handle {
                let iccid = try iccidParameter(context)
                let body = try await object(request, context, allowEmpty: true)
                var reachable: Bool?
                switch body["reachable"] {
                case nil: break
                case .bool(let on)?: reachable = on
                default: throw SimulatorError.invalidField(field: "reachable", message: "true or false")
                }
                let existing = await sim.handsetList().first { $0.iccid == iccid.digits }
                var record = existing
                if existing == nil || body["answer"] != nil || body["answer_after"] != nil {
                    let mode: AnswerMode
                    switch body["answer"] {
                    case nil, .string("auto")?:
                        let after = try number(body, "answer_after") ?? 0.2
                        guard after >= 0, after <= 3_600 else { throw SimulatorError.invalidField(field: "answer_after", message: "seconds from 0 to 3600") }
                        mode = .auto(after: .milliseconds(Int64((after * 1_000).rounded())))
                    case .string("manual")?: mode = .manual
                    default: throw SimulatorError.invalidField(field: "answer", message: "\"auto\" or \"manual\"")
                    }
                    record = await sim.setHandset(iccid, answer: mode)
                }
                if let reachable { record = try await sim.setReachable(iccid, reachable) }
                return try json(record)
            }
        }
        router.post("/handsets/:iccid/calls") { request, context in
            try await handle {
                let iccid = try parameter(context, "iccid")
                let body = try await object(request, context)
                let to = try string(body, "to")
                let withheld: Bool
                switch body["withheld"] {
                case nil, .null?: withheld = false
                case .bool(let b)?: withheld = b
                default: throw SimulatorError.invalidField(field: "withheld", message: "true or false")
                }
                return try json(await sim.placeCall(from: iccid, to: to, withheld: withheld), status: .created)
            }
        }
        router.get("/handsets/:iccid/calls") { _, context in
            try await handle { try json(await sim.callList(handset: try parameter(context, "iccid"))) }
        }
        router.post("/handsets/:iccid/texts") { request, context in
            try await handle {
                let iccid = try parameter(context, "iccid")
                let body = try await object(request, context)
                let text = try await sim.sendText(from: iccid, to: try string(body, "to"), text: try string(body, "text"))
                return try json(text, status: .created)
            }
        }
        router.get("/handsets/:iccid/texts") { _, context in
            try await handle { try json(await sim.textList(handset: try parameter(context, "iccid"))) }
        }
        router.get("/calls") { _, _ in try await handle { try json(await sim.callList()) } }
        router.get("/calls/:id") { _, context in try await handle { try json(await sim.call(try parameter(context, "id"))) } }
        router.post("/calls/:id/hangup") { _, context in
            try await handle { try json(await sim.hangUp(callID: try parameter(context, "id"))) }
        }
        router.post("/calls/:id/answer") { _, context in
            try await handle { try json(await sim.answer(callID: try parameter(context, "id"))) }
        }
        router.post("/calls/:id/reject") { request, context in
            try await handle {
                let id = try parameter(context, "id")
                let body = try await object(request, context, allowEmpty: true)
                let code = try number(body, "code") ?? 486
                guard code == code.rounded() else { throw SimulatorError.invalidField(field: "code", message: "a whole SIP status code, e.g. 486") }
                return try json(await sim.reject(callID: id, code: Int(code)))
            }
        }
        return router
    }

    // MARK: - Helpers

    static func handle(_ body: () async throws -> Response) async throws -> Response {
        do { return try await body() } catch let e as SimulatorError {
            return try errorResponse(e)
        }
    }

    static func errorResponse(_ e: SimulatorError) throws -> Response {
        let status: HTTPResponse.Status
        switch e {
        case .unknownHandset, .unknownCall: status = .notFound
        case .invalidField: status = .unprocessableContent
        case .malformedBody: status = .badRequest
        case .callState: status = .conflict
        case .noFreeRTPPort, .startFailed: status = .serviceUnavailable
        }
        struct Body: Encodable { var error: String; var field: String? }
        return try json(Body(error: e.description, field: e.field), status: status)
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func parameter(_ context: BasicRequestContext, _ name: String) throws -> String {
        guard let raw = context.parameters.get(name), let value = raw.removingPercentEncoding, !value.isEmpty else {
            throw SimulatorError.invalidField(field: name, message: "missing in the path")
        }
        return value
    }

    static func iccidParameter(_ context: BasicRequestContext) throws -> ICCID {
        let raw = try parameter(context, "iccid")
        do { return try ICCID(raw) } catch { throw SimulatorError.invalidField(field: "iccid", message: error.description) }
    }

    /// A JSON value of a request body field.
    enum JSONValue: Decodable, Sendable {
        case string(String), number(Double), bool(Bool), null, other

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else { self = .other }
        }
    }

    static func object(_ request: Request, _ context: BasicRequestContext, allowEmpty: Bool = false) async throws -> [String: JSONValue] {
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        if buffer.readableBytes == 0, allowEmpty { return [:] }
        do {
            return try JSONDecoder().decode([String: JSONValue].self, from: Data(buffer.readableBytesView))
        } catch {
            throw SimulatorError.malformedBody("not a JSON object (expected e.g. {\"to\": \"+447700900123\"})")
        }
    }

    static func string(_ body: [String: JSONValue], _ field: String) throws -> String {
        switch body[field] {
        case nil, .null?: throw SimulatorError.invalidField(field: field, message: "required")
        case .string(let s)?: return s
        default: throw SimulatorError.invalidField(field: field, message: "must be a string")
        }
    }

    static func number(_ body: [String: JSONValue], _ field: String) throws -> Double? {
        switch body[field] {
        case nil, .null?: return nil
        case .number(let d)?: return d
        default: throw SimulatorError.invalidField(field: field, message: "must be a number")
        }
    }
}

extension MobileCoreSimulator {
    /// Serves the control API until shutdown; returns once it is listening.
    func startHTTP(host: String, port: Int) async throws(SimulatorError) {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: SimulatorControlAPI.makeRouter(self),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "switchboard-simulator"),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger)
        let logger = self.logger
        httpTask = Task {
            do { try await app.run() } catch {
                logger.error("control API stopped", metadata: ["error": "\(error)"])
            }
            continuation.finish()
        }
        var bound: Int?
        for await p in ports { bound = p; break }
        guard let bound else { throw .startFailed("cannot serve the control API on \(host):\(port)") }
        httpPort = bound
    }
}
