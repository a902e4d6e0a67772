import Foundation
import SIPResolver
import Testing
import TestSupport

/// RFC 3263 look-ups against a real DNS server: dnsmasq on a loopback port.
@Suite("RFC 3263 resolution against dnsmasq", .serialized)
final class ResolverDNSTests {
    let dns: ExternalProcess
    let port: Int
    let locator: SIPServerLocator

    init() async throws {
        // A free port can be taken by another parallel test between the check
        // and dnsmasq's bind (it binds UDP and TCP): then it exits with
        // "Address already in use", and it is started again on another port.
        var failures: [String] = []
        for _ in 0..<5 {
            let port = freeTCPPort()
            let dns = try Self.startDNSMasq(port: port)
            let locator = SIPServerLocator(configuration: DNSResolverConfiguration(nameserver: ("127.0.0.1", port), timeoutSeconds: 1, attempts: 1))
            // Wait until dnsmasq answers (up to ~15 s: a parallel test run on two cores can be slow to start it).
            for _ in 0..<150 where dns.isRunning {
                if (try? locator.dns.addresses("sip1.example.test")) != nil {
                    self.dns = dns; self.port = port; self.locator = locator
                    return
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            dns.kill()
            let (_, output, _) = await dns.wait(timeout: .seconds(1))
            failures.append("port \(port): \(output.isEmpty ? "no answer in 15 s" : output)")
        }
        Issue.record("dnsmasq did not start answering: \(failures.joined(separator: "; "))")
        throw DNSMasqDidNotStart()
    }

    struct DNSMasqDidNotStart: Error {}

    static func startDNSMasq(port: Int) throws -> ExternalProcess {
        try ExternalProcess("dnsmasq", [
            "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
            "--port=\(port)", "--user=root", "--pid-file=", "--local=/example.test/",
            "--srv-host=_sip._udp.example.test,sip1.example.test,5070,10,60",
            "--srv-host=_sip._udp.example.test,sip2.example.test,5080,10,40",
            "--srv-host=_sip._udp.example.test,sip3.example.test,5090,20,0",
            "--srv-host=_sip._tcp.tcponly.example.test,sip1.example.test,5071,10,10",
            "--host-record=sip1.example.test,127.0.0.1",
            "--host-record=sip2.example.test,127.0.0.2",
            "--host-record=sip3.example.test,127.0.0.3,::1",
            "--host-record=aonly.example.test,127.0.0.9",
            "--host-record=v6.example.test,::1",
            "--srv-host=_sip._udp.nosip.example.test", "--host-record=nosip.example.test,127.0.0.8",
        ])
    }

    deinit { dns.kill() }

    @Test func srvTargetsInPriorityOrderWithTheirAddresses() throws {
        let targets = try locator.locateBlocking(host: "example.test", port: nil, transport: nil)
        #expect(targets.count == 4)  // sip1, sip2 (priority 10) then sip3's A and AAAA (priority 20)
        #expect(Set(targets.prefix(2).map(\.name)) == ["sip1.example.test", "sip2.example.test"])
        #expect(targets.suffix(2).map(\.name) == ["sip3.example.test", "sip3.example.test"])
        #expect(targets.suffix(2).map(\.host) == ["127.0.0.3", "::1"])
        let sip1 = try #require(targets.first { $0.name == "sip1.example.test" })
        #expect(sip1 == SIPTarget(host: "127.0.0.1", port: 5070, transport: .udp, name: "sip1.example.test"))
    }

    @Test func tcpSRVWhenNoUDPRecordExists() throws {
        let targets = try locator.locateBlocking(host: "tcponly.example.test", port: nil, transport: nil)
        #expect(targets == [SIPTarget(host: "127.0.0.1", port: 5071, transport: .tcp, name: "sip1.example.test")])
    }

    @Test func explicitPortSkipsSRV() throws {
        let targets = try locator.locateBlocking(host: "sip2.example.test", port: 5999, transport: .tcp)
        #expect(targets == [SIPTarget(host: "127.0.0.2", port: 5999, transport: .tcp, name: "sip2.example.test")])
    }

    @Test func withoutSRVTheHostsAddressOnPort5060() throws {
        #expect(try locator.locateBlocking(host: "aonly.example.test", port: nil, transport: nil)
                == [SIPTarget(host: "127.0.0.9", port: 5060, transport: .udp, name: "aonly.example.test")])
        #expect(try locator.locateBlocking(host: "v6.example.test", port: nil, transport: nil).map(\.host) == ["::1"])
    }

    @Test func ipLiteralsNeedNoDNS() throws {
        #expect(try locator.locateBlocking(host: "192.0.2.7", port: nil, transport: nil)
                == [SIPTarget(host: "192.0.2.7", port: 5060, transport: .udp, name: "192.0.2.7")])
        #expect(try locator.locateBlocking(host: "[2001:db8::1]", port: 5070, transport: .tcp).first?.host == "2001:db8::1")
    }

    @Test func srvTargetDotMeansNoSIPService() {
        #expect(throws: DNSError.serviceNotOffered("_sip._udp.nosip.example.test")) {
            try locator.locateBlocking(host: "nosip.example.test", port: nil, transport: .udp)
        }
    }

    @Test func unknownNameIsNXDOMAIN() {
        #expect(throws: DNSError.noSuchDomain("nothing.example.test")) {
            try locator.locateBlocking(host: "nothing.example.test", port: nil, transport: nil)
        }
    }

    @Test func asyncLocateMatchesBlocking() async throws {
        let targets = try await locator.locate(host: "tcponly.example.test", port: nil, transport: nil)
        #expect(targets.first?.port == 5071)
    }
}
