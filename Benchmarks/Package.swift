// swift-tools-version:6.1
// Parser benchmarks (ordo-one/benchmark): wall time and mallocs per message.
// Sources/SIPMessage is a symlink to the real module, so this package builds
// without the server's dependencies. Run: scripts/bench-parser.sh
import PackageDescription

let package = Package(
    name: "SwitchboardBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(name: "SIPMessage", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "SIPParser",
            dependencies: ["SIPMessage", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/SIPParser",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
