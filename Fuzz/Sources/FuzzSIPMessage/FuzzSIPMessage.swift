import SDP
import SIPMessage

/// One fuzz input: parse it as a datagram and as a stream, and when it parses,
/// read every typed header, serialize, and parse the result again — a
/// serialized message must always parse.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = bytes.withUnsafeBufferPointer { try? SIPMessageParser.frame($0) }
    do {
        let m = try SIPMessage(parsing: bytes)
        _ = m.vias; _ = m.topVia; _ = m.from; _ = m.to; _ = m.contacts; _ = m.routes; _ = m.recordRoutes
        _ = m.cseq; _ = m.callID; _ = m.maxForwards; _ = m.expires; _ = m.contentType; _ = m.parsedRequestURI
        _ = m.headerFields; _ = m.splitValues(.accept)
        _ = RequestScreening(role: .userAgentServer).check(m)
        _ = RequestScreening(role: .proxy).check(m)
        if m.isRequest { _ = m.makeResponse(200, toTag: "x").serialized() }
        let out = m.serialized()
        do {
            _ = try SIPMessage(parsing: out)
        } catch {
            fatalError("re-parse of serialized message failed: \(error)")
        }
        if m.contentType == "application/sdp" { _ = try? SessionDescription(parsing: m.body) }
    } catch {
        _ = SIPMessageParser.errorResponse(for: bytes, error: error)?.serialized()
    }
    _ = try? SessionDescription(parsing: bytes)
    return 0
}
