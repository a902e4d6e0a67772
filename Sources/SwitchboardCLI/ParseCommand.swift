import ArgumentParser
import Foundation
import SIPMessage

/// `switchboard sip parse FILE…` — the operator's look at a captured message,
/// and the RFC 4475 conformance harness.
struct ParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse",
        abstract: "Parse SIP messages from files; print one verdict line per file.",
        discussion: "Exits 0 only if every file parses. A message that parses but that an element must still refuse (RFC 4475 §3.3) is reported as ok, with the response the element would give."
    )

    @Argument(help: "Files each holding one SIP message, byte-exact.")
    var files: [String]

    @Flag(help: "Print each parsed message as JSON instead of a verdict line.")
    var json = false

    func run() throws {
        var allOK = true
        var documents: [[String: Any]] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                print("\(file): invalid: cannot read file")
                allOK = false
                continue
            }
            do {
                let message = try SIPMessage(parsing: [UInt8](data))
                if json {
                    documents.append(Self.json(message, file: file))
                } else {
                    print(Self.summary(message, file: file))
                }
            } catch {
                allOK = false
                if json {
                    documents.append(["file": file, "error": error.description, "status": error.statusCode])
                } else {
                    print("\(file): invalid: \(error)")
                }
            }
        }
        if json {
            let out = try JSONSerialization.data(withJSONObject: documents.count == 1 ? documents[0] : documents,
                                                 options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: out, as: UTF8.self))
        }
        if !allOK { throw ExitCode(1) }
    }

    /// "FILE: ok INVITE" plus what a UAS would answer. Kept out of line:
    /// Swift 6.3.1's optimizer crashes ("Found outside of lifetime use") when
    /// this is inlined into `run()` in release builds.
    @inline(never)
    static func summary(_ message: SIPMessage, file: String) -> String {
        var line = "\(file): ok \(message.method?.rawValue ?? message.statusCode.map(String.init) ?? "")"
        if message.isRequest, let r = RequestScreening(role: .userAgentServer).check(message) {
            line += " (a UAS answers \(r))"
        }
        return line
    }

    @inline(never)
    static func json(_ m: SIPMessage, file: String) -> [String: Any] {
        var d: [String: Any] = ["file": file]
        if let method = m.method {
            d["type"] = "request"; d["method"] = method.rawValue; d["requestURI"] = m.requestURI ?? ""
            if let u = m.parsedRequestURI { d["parsedRequestURI"] = uriJSON(u) }
        } else {
            d["type"] = "response"; d["statusCode"] = m.statusCode ?? 0; d["reasonPhrase"] = m.reasonPhrase ?? ""
        }
        d["headers"] = m.headerFields.map { ["name": $0.name, "value": $0.value] }
        d["vias"] = m.vias.map { v -> [String: Any] in
            var o: [String: Any] = ["transport": v.transport, "host": v.host, "parameters": params(v.parameters)]
            if let p = v.port { o["port"] = Int(p) }
            return o
        }
        if let f = m.from { d["from"] = addressJSON(f) }
        if let t = m.to { d["to"] = addressJSON(t) }
        d["contacts"] = m.contacts.map { c -> Any in c.address.map(addressJSON) ?? "*" }
        if let c = m.callID { d["callID"] = c }
        if let c = m.cseq { d["cseq"] = ["number": Int(c.number), "method": c.method.rawValue] }
        if let mf = m.maxForwards { d["maxForwards"] = mf }
        if let ct = m.contentType { d["contentType"] = ct }
        d["bodyLength"] = m.bodyCount
        let body = m.body
        if let text = String(validating: body, as: UTF8.self) { d["body"] = text } else { d["bodyBase64"] = Data(body).base64EncodedString() }
        return d
    }

    static func params(_ p: [SIPParameter]) -> [[String: Any]] {
        p.map { x in var o: [String: Any] = ["name": x.name]; if let v = x.value { o["value"] = v }; return o }
    }

    static func uriJSON(_ u: SIPURI) -> [String: Any] {
        var o: [String: Any] = ["scheme": u.scheme, "text": u.description]
        if u.isSIP {
            o["host"] = u.host
            if let user = u.user { o["user"] = user }
            if let p = u.port { o["port"] = Int(p) }
            o["parameters"] = params(u.parameters)
            if !u.headers.isEmpty { o["headers"] = params(u.headers) }
        }
        return o
    }

    static func addressJSON(_ a: SIPNameAddress) -> [String: Any] {
        var o: [String: Any] = ["uri": uriJSON(a.uri), "parameters": params(a.parameters)]
        if let d = a.displayName { o["displayName"] = d }
        return o
    }
}
