import Foundation
import Hummingbird
import HummingbirdTesting
import MobileCoreSimulator
import NIOCore
import Testing
import TestSupport

/// The HTTP control API: routes, JSON shapes and error answers.
@Suite("simulator control API")
struct ControlAPITests {
    func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, MobileCoreSimulator) async throws -> Void) async throws {
        let sim = try await startSimulator(handsets: [handsetA], switchPort: freePort(), answer: .manual)
        let app = Application(router: SimulatorControlAPI.makeRouter(sim))
        try await app.test(.router) { client in try await body(client, sim) }
        await sim.shutdown()
    }

    func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    @Test func errors() async throws {
        try await withAPI { client, _ in
            try await client.execute(uri: "/handsets/\(strangerICCID)/calls", method: .post,
                                     body: ByteBuffer(string: #"{"to": "+447700900123"}"#)) { r in
                #expect(r.status == .notFound)
                let value = try json(r.body)["field"] as? String
                #expect(value == "iccid")
            }
            try await client.execute(uri: "/handsets/\(handsetA)/calls", method: .post, body: ByteBuffer(string: "{nope")) { r in
                #expect(r.status == .badRequest)
                let value = try json(r.body)["field"] as? String
                #expect(value == "body")
            }
            try await client.execute(uri: "/handsets/\(handsetA)/calls", method: .post, body: ByteBuffer(string: #"{"to": "call me"}"#)) { r in
                #expect(r.status == .unprocessableContent)
                let body = try json(r.body)
                #expect(body["field"] as? String == "to")
                #expect((body["error"] as? String)?.contains("digits") == true)
            }
            try await client.execute(uri: "/handsets/\(handsetA)/calls", method: .post,
                                     body: ByteBuffer(string: #"{"to": "+447700900123", "withheld": "yes"}"#)) { r in
                #expect(r.status == .unprocessableContent)
                let value = try json(r.body)["field"] as? String
                #expect(value == "withheld")
            }
            try await client.execute(uri: "/calls/c999/hangup", method: .post) { r in
                #expect(r.status == .notFound)
                let value = try json(r.body)["field"] as? String
                #expect(value == "id")
            }
            try await client.execute(uri: "/handsets/\(handsetA)/texts", method: .post, body: ByteBuffer(string: #"{"to": "+44"}"#)) { r in
                #expect(r.status == .unprocessableContent)
                let value = try json(r.body)["field"] as? String
                #expect(value == "text")
            }
            try await client.execute(uri: "/handsets/123", method: .put, body: ByteBuffer(string: #"{"answer": "manual"}"#)) { r in
                #expect(r.status == .unprocessableContent)
                let value = try json(r.body)["field"] as? String
                #expect(value == "iccid")
            }
        }
    }

    @Test func handsetsAndCalls() async throws {
        try await withAPI { client, sim in
            try await client.execute(uri: "/handsets/\(handsetB)", method: .put,
                                     body: ByteBuffer(string: #"{"answer": "auto", "answer_after": 0.5}"#)) { r in
                #expect(r.status == .ok)
                let value = try json(r.body)["answer_after"] as? Double
                #expect(value == 0.5)
            }
            try await client.execute(uri: "/handsets", method: .get) { r in
                let list = try #require(try JSONSerialization.jsonObject(with: Data(r.body.readableBytesView)) as? [[String: Any]])
                #expect(list.compactMap { $0["iccid"] as? String } == [handsetA, handsetB])
            }
            // Nothing listens on the switch port: the call stays "calling" until hung up (CANCEL waits for a provisional).
            var id = ""
            try await client.execute(uri: "/handsets/\(handsetA)/calls", method: .post,
                                     body: ByteBuffer(string: #"{"to": "+447700900123", "withheld": true}"#)) { r in
                #expect(r.status == .created)
                let body = try json(r.body)
                id = try #require(body["id"] as? String)
                #expect(body["state"] as? String == "calling")
                #expect(body["withheld"] as? Bool == true)
                #expect(body["direction"] as? String == "mobile_originated")
                #expect(body["rtp_sent"] as? Int == 0)
            }
            try await client.execute(uri: "/calls/\(id)/answer", method: .post) { r in
                #expect(r.status == .conflict)
            }
            try await client.execute(uri: "/handsets/\(handsetA)/calls", method: .get) { r in
                let list = try #require(try JSONSerialization.jsonObject(with: Data(r.body.readableBytesView)) as? [[String: Any]])
                #expect(list.count == 1)
            }
            _ = sim
        }
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The control API over a real socket, as `switchboard simulator` serves it.
@Suite("simulator control API over HTTP")
struct LiveControlAPITests {
    @Test(.timeLimit(.minutes(1))) func servesUntilShutdown() async throws {
        let sim = try await startSimulator(handsets: [handsetA], switchPort: freePort(), http: true)
        let port = try #require(await sim.httpPort)
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/handsets/\(handsetA)/texts")))
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"to": "+447700900123"}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 422)
        let body = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(body["field"] as? String == "text")
        let (list, _) = try await URLSession.shared.data(from: try #require(URL(string: "http://127.0.0.1:\(port)/calls")))
        #expect(String(decoding: list, as: UTF8.self) == "[]")
        await sim.shutdown()
        #expect(await sim.httpPort == nil)
    }
}
