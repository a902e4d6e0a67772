import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Provisioning
import Store

/// Every 4xx (and 5xx) the API sends: `{"error": {"field": …, "message": …}}`,
/// where `field` names the JSON field, query parameter, path parameter or
/// header that is wrong, and `message` says what is wrong and what is expected.
public struct APIError: Error, Sendable, Equatable, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var field: String
    public var message: String
    var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, field: String, _ message: String) {
        self.status = status; self.field = field; self.message = message
    }

    public var description: String { "\(status.code) \(field): \(message)" }

    public static func == (a: APIError, b: APIError) -> Bool {
        a.status == b.status && a.field == b.field && a.message == b.message
    }

    /// 400: the body is not JSON, or not the JSON value expected.
    static func malformed(_ message: String) -> APIError { APIError(.badRequest, field: "body", message) }
    /// 422: a field fails validation.
    static func invalid(_ field: String, _ message: String) -> APIError { APIError(.unprocessableContent, field: field, message) }
    /// 404: no such object.
    static func notFound(_ field: String, _ message: String) -> APIError { APIError(.notFound, field: field, message) }
    /// 403: the key may not see or change this object.
    static func forbidden(_ field: String, _ message: String) -> APIError { APIError(.forbidden, field: field, message) }
    /// 401, with `WWW-Authenticate: Bearer` (RFC 6750 §3: no error code when
    /// the request had no credentials at all).
    static func unauthorized(_ message: String, error: String? = "invalid_token") -> APIError {
        var e = APIError(.unauthorized, field: "Authorization", message)
        e.headers[.wwwAuthenticate] = "Bearer realm=\"switchboard\"" + (error.map { ", error=\"\($0)\"" } ?? "")
        return e
    }

    init(_ e: ProvisioningError, status: HTTPResponse.Status = .unprocessableContent) {
        self.init(status, field: e.key, e.problem)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: JSONOut.errorBody(field: field, message: message))))
    }
}

enum JSONOut {
    static func errorBody(field: String, message: String) -> [UInt8] {
        struct Body: Encodable {
            struct Detail: Encodable { var field: String; var message: String }
            var error: Detail
        }
        return (try? encode(Body(error: .init(field: field, message: message))))
            ?? Array(#"{"error":{"field":"","message":"internal error"}}"#.utf8)
    }

    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(bytes: try encode(value))))
    }
}

/// A JSON request body as the field checks of `Provisioning.FieldParser`
/// take it: String, Int, Double, Bool, [Any], [String: Any]; null is NSNull.
/// Parsed strictly (RFC 8259) by JSONDecoder.
enum JSONIn {
    indirect enum Value: Decodable {
        case null, bool(Bool), int(Int), double(Double), string(String), array([Value]), object([String: Value])

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null; return }
            if let b = try? c.decode(Bool.self) { self = .bool(b); return }
            if let i = try? c.decode(Int.self) { self = .int(i); return }
            if let d = try? c.decode(Double.self) { self = .double(d); return }
            if let s = try? c.decode(String.self) { self = .string(s); return }
            if let a = try? c.decode([Value].self) { self = .array(a); return }
            self = .object(try c.decode([String: Value].self))
        }

        var any: Any {
            switch self {
            case .null: return NSNull()
            case .bool(let b): return b
            case .int(let i): return i
            case .double(let d): return d
            case .string(let s): return s
            case .array(let a): return a.map(\.any)
            case .object(let o): return o.mapValues(\.any)
            }
        }
    }

    /// The body as a JSON object; 400 if it is not one.
    static func object(_ bytes: ByteBuffer) throws(APIError) -> [String: Any] {
        guard bytes.readableBytes > 0 else { throw .malformed("the request needs a JSON object body") }
        let value: Value
        do { value = try JSONDecoder().decode(Value.self, from: Data(bytes.readableBytesView)) } catch {
            throw .malformed("the body is not valid JSON (\(describe(error)))")
        }
        guard case .object(let o) = value else { throw .malformed("the body must be a JSON object") }
        return o.mapValues(\.any)
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let c) = error {
            let underlying = (c.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return String((underlying ?? c.debugDescription).prefix(160))
        }
        return "unreadable"
    }
}
