import CallControl
import Rating
import SIPMessage
import Testing

func inviteWith(_ headers: String) throws -> SIPMessage {
    try SIPMessage(parsing: "INVITE sip:447700900123@gw.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\nFrom: <sip:441632960000@pbx.example>;tag=1\r\nTo: <sip:447700900123@gw.example>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\(headers)Content-Length: 0\r\n\r\n")
}

@Suite struct CallControlTests {
    @Test func headersAreReadCaseInsensitively() throws {
        let c = try CallControlHeaders(from: inviteWith("""
            x-SIMWOOD-tag: CUST001-AB384720\r
            X-Simwood-Trunk: 920700-L001\r
            X-simwood-maxcpc: 0.05\r
            X-simwood-maxcpm: 0.0125\r
            X-simwood-maxcost: 2.50\r
            X-simwood-maxdur: 3600\r

            """))
        #expect(c.tag == "CUST001-AB384720")
        #expect(c.trunk?.account == "920700" && c.trunk?.trunk == "L001")
        #expect(c.maxConnectionCharge == parseMoney("0.05") && c.maxPerMinute == parseMoney("0.0125"))
        #expect(c.maxCost == parseMoney("2.5") && c.maxDuration == 3600)
    }

    @Test func maxcpmAloneMeansNoConnectionCharge() throws {
        let c = try CallControlHeaders(from: inviteWith("X-simwood-maxcpm: 0.02\r\n"))
        #expect(c.maxConnectionCharge == 0)
        let withCharge = try Rate(prefix: "44", connectionCharge: parseMoney("0.01") ?? 0, perMinute: parseMoney("0.01") ?? 0, increments: .perMinute)
        #expect(c.rateViolation(withCharge) == "connection charge 0.01 exceeds maxcpc 0")
        let expensive = try Rate(prefix: "44", connectionCharge: 0, perMinute: parseMoney("0.03") ?? 0, increments: .perMinute)
        #expect(c.rateViolation(expensive) == "per-minute rate 0.03 exceeds maxcpm 0.02")
        let fine = try Rate(prefix: "44", connectionCharge: 0, perMinute: parseMoney("0.02") ?? 0, increments: .perMinute)
        #expect(c.rateViolation(fine) == nil)
        #expect(try CallControlHeaders(from: inviteWith("")) == CallControlHeaders())
    }

    @Test func badValuesNameTheHeader() throws {
        #expect(throws: CallControlError.invalidValue(header: "X-simwood-maxcost", value: "-1", expected: "a decimal amount such as 0.05")) {
            try CallControlHeaders(from: inviteWith("X-simwood-maxcost: -1\r\n"))
        }
        #expect(throws: CallControlError.invalidValue(header: "X-simwood-maxdur", value: "1.5", expected: "a whole number of seconds (1 to 604800)")) {
            try CallControlHeaders(from: inviteWith("X-simwood-maxdur: 1.5\r\n"))
        }
        #expect(throws: CallControlError.invalidValue(header: "X-simwood-trunk", value: "L001", expected: "ACCOUNT-TRUNK such as 920700-L001")) {
            try CallControlHeaders(from: inviteWith("X-simwood-trunk: L001\r\n"))
        }
    }

    @Test func tagSearchTermsSplitOnSingleDashes() {
        #expect(CallControlHeaders.searchTerms(ofTag: "CUST001-AB384720") == ["CUST001", "AB384720"])
        #expect(!CallControlHeaders.searchTerms(ofTag: "CUST001-AB384720").contains("CUST001-AB384720"))
        #expect(CallControlHeaders.searchTerms(ofTag: "a-b-c") == ["a", "b", "c"])
        #expect(CallControlHeaders.searchTerms(ofTag: "a--b-c") == ["a--b", "c"])
        #expect(CallControlHeaders.searchTerms(ofTag: "-lead-") == ["lead"])
        #expect(CallControlHeaders.searchTerms(ofTag: "plain") == ["plain"])
    }

    @Test func controlHeadersAreStrippedForThirdParties() throws {
        var m = try inviteWith("X-simwood-tag: t\r\nX-SIMWOOD-maxdur: 60\r\nx-reason: Invalid CLI\r\nX-Other: keep\r\n")
        CallControlHeaders.strip(&m)
        #expect(m.headerFields.map(\.name).filter { $0.lowercased().hasPrefix("x-") } == ["X-Other"])
        #expect(m.callID == "c1")
    }
}
