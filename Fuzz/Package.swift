// swift-tools-version:5.4
// libFuzzer harness for the SIP and SDP codecs. A separate package because
// SwiftPM cannot link a fuzzer executable inside the main package
// (shared/notes/toolchain.md). Sources/SIPMessage and Sources/SDP are symlinks
// to the real modules. Run with scripts/fuzz.sh.
import PackageDescription

let package = Package(
    name: "SwitchboardFuzz",
    targets: [
        .target(name: "SIPMessage"),
        .target(name: "SDP"),
        .executableTarget(name: "FuzzSIPMessage", dependencies: ["SIPMessage", "SDP"]),
    ]
)
