import Foundation

/// SIPp's final statistics: "Successful call" and "Failed call" counters.
struct SIPpResult {
    let status: Int32
    let output: String
    var successful: Int? { counter("Successful call") }
    var failed: Int? { counter("Failed call") }

    func counter(_ name: String) -> Int? {
        // Lines look like: "Successful call           |        0                  |       20"
        var value: Int?
        for line in output.split(separator: "\n") where line.contains(name) {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if let last = cells.last, let n = Int(last) { value = n }
        }
        return value
    }
}
