import Foundation
import Store
import Testing
import TestSupport

/// What a stopping node does with its REST API: a request already in flight
/// when the stop signal comes is answered, and what it asked for is stored,
/// before the process exits; only then does the API close.
@Suite("Stopping switchboard serve", .serialized)
struct StopTests {
    /// One HTTP/1.1 exchange on a plain TCP connection (`RawSocket`), sent in
    /// two parts: `first`, then after `between()` has run, `rest`. Returns
    /// everything the server sent until it closed the connection (or 15 s passed with nothing).
    static func exchangeInTwoParts(port: Int, first: String, rest: String, between: () async throws -> Void) async throws -> String {
        let connection = RawSocket(udp: false)
        try #require(connection.connect(port: port), "could not connect to the REST API on \(port)")
        connection.write(Array(first.utf8))
        try await between()
        connection.write(Array(rest.utf8))
        var received: [UInt8] = []
        while let chunk = await connection.receive(timeout: .seconds(15)) { received += chunk }
        return String(decoding: received, as: UTF8.self)
    }

    /// SIGTERM while an operator's PUT of an account is still being read:
    /// the request is answered 201 and the account is in the store after
    /// the exit, instead of the connection being cut with nothing said.
    @Test func aRequestInFlightWhenTheNodeStopsIsAnsweredAndStored() async throws {
        let (url, location) = try await freshDatabase(.sqlite)
        let sw = try await RunningSwitch.start(database: url, gateways: [("carrier", freePort())], drainSeconds: 0)
        defer { sw.stop() }
        let key = try await sw.createAPIKey()
        try #require(key.hasPrefix("sbk_"))
        let body = #"{"name": "Late Arrival Ltd", "currency": "GBP", "balance": "12.50"}"#
        let split = body.index(body.startIndex, offsetBy: 20)
        let head = "PUT /api/v1/accounts/930100 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
        let answer = try await Self.exchangeInTwoParts(port: sw.httpPort, first: head + body[..<split], rest: String(body[split...])) {
            try await Task.sleep(for: .milliseconds(300))
            #expect(kill(sw.process.pid, SIGTERM) == 0)
            // The rest of the body goes only once the API is being stopped.
            #expect(await eventually(timeout: .seconds(15)) { sw.process.outputSoFar.contains("REST API stopping") },
                    "the stop never reached the REST API: \(sw.process.outputSoFar.suffix(2000))")
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(answer.hasPrefix("HTTP/1.1 201"), "the request in flight got: \(answer.prefix(500))")
        let (status, output, timedOut) = await sw.process.wait(timeout: .seconds(30))
        #expect(status == 0 && !timedOut, "exit \(status): \(output.suffix(3000))")
        let store = try await Store.open(location)
        let account = try await store.account(id: "930100")
        try await store.close()
        #expect(account?.name == "Late Arrival Ltd" && account?.balance == Decimal(string: "12.50"), "\(String(describing: account))")
    }
}
