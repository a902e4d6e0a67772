// swift-tools-version:6.0
import PackageDescription

// Module layout (dependencies point one way: protocol → core → app):
//   SIPMessage      bytes ⇄ SIP messages, URIs, header values. No I/O.
//   SDP             bytes ⇄ SDP session descriptions. No I/O.
//   SIPTransaction  RFC 3261 §17 transaction state machines. No I/O, no clocks.
//   SIPAuth         RFC 7616/8760/2617 digest, server and client side.
//   CResolv         C shim over glibc libresolv (res_nquery + ns_parserr).
//   SIPResolver     RFC 3263 target selection (SRV, A/AAAA) over CResolv.
//   SIPTransport    SwiftNIO UDP/TCP listeners and connections, framing.
//   SIPStack        transport + transactions + resolver: an endpoint that
//                   sends requests and answers them (its transactions one value,
//                   TransactionLayer, tested without sockets; the actor its shell).
//   OutboundRegistration  REGISTER client per address of record as a pure state machine (refresh, digest, back-off, de-register one Contact).
//   SIP2SIM         SIP2SIM services: the registration agent keeping every SIM registered with its customer's server.
//   SIMs            SIP2SIM SIM identity and secrets: ICCID (Luhn-checked), password encryption at rest.
//   Rating          rate decks, billing increments, call cost (decimal money).
//   CallControl     the X-simwood-* per-call controls (SPEC.md T1–T5, T13).
//   CallCore        a B2BUA call (A leg, B leg, failover, clearing) as a pure state machine.
//   Store           accounts, trunks, rate decks, blacklists, CDRs, SIMs: SQLite (default) or PostgreSQL via SQLKit.
//   TrunkService    the trunk call service: trunk authentication, policy, B2BUA calls, CDRs.
//   NodeConfiguration  the node's YAML settings with environment overrides.
//   Provisioning    imports accounts, rate decks, trunks, limits, blacklists and SIMs from YAML/JSON, idempotently.
//   MobileCoreSimulator  a mobile core with handsets (ICCIDs) for tests and demos: calls, texts, G.711 RTP, HTTP control API.
//   WebAPI          the JSON REST API under /api/v1 (Hummingbird 2), bearer API keys, OpenAPI document.
//   SwitchboardCLI  the `switchboard` binary.
//   CallPathBenchmark  bench/CallPath: a call's own work without sockets or threads (bench/call-path.sh).
let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "Switchboard",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "switchboard", targets: ["SwitchboardCLI"]),
        .library(name: "SIPMessage", targets: ["SIPMessage"]),
        .library(name: "SIPStack", targets: ["SIPStack"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .target(name: "SIPMessage", swiftSettings: strictSwift),
        .target(name: "SDP", swiftSettings: strictSwift),
        .target(
            name: "SIPTransaction",
            dependencies: ["SIPMessage", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            swiftSettings: strictSwift
        ),
        .target(
            name: "SIPAuth",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSwift
        ),
        .target(name: "CResolv", linkerSettings: [.linkedLibrary("resolv")]),
        .target(name: "SIPResolver", dependencies: ["CResolv"], swiftSettings: strictSwift),
        .target(
            name: "SIPTransport",
            dependencies: [
                "SIPMessage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "SIPStack",
            dependencies: [
                "SIPMessage", "SIPTransaction", "SIPTransport", "SIPResolver", "SIPAuth",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(name: "Rating", swiftSettings: strictSwift),
        .target(name: "OutboundRegistration", dependencies: ["SIPMessage", "SIPAuth"], swiftSettings: strictSwift),
        .target(
            name: "SIP2SIM",
            dependencies: [
                "OutboundRegistration", "SIMs", "SIPMessage", "SIPResolver", "SIPStack",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(name: "SIMs", dependencies: [.product(name: "Crypto", package: "swift-crypto")], swiftSettings: strictSwift),
        .target(name: "CallControl", dependencies: ["Rating", "SIPMessage"], swiftSettings: strictSwift),
        .target(name: "CallCore", dependencies: ["CallControl", "SIPAuth", "SIPMessage"], swiftSettings: strictSwift),
        .target(name: "Provisioning", dependencies: ["Store", "Rating", "SIPAuth", "SIMs", .product(name: "Yams", package: "Yams")], swiftSettings: strictSwift),
        .target(name: "NodeConfiguration", dependencies: ["SIMs", .product(name: "Yams", package: "Yams")], swiftSettings: strictSwift),
        .target(
            name: "Store",
            dependencies: [
                "Rating", "CallControl", "SIMs",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "TrunkService",
            dependencies: [
                "CallControl", "CallCore", "NodeConfiguration", "Rating", "SIMs", "SIPAuth", "SIPMessage", "SIPResolver", "SIPStack",
                "SIPTransaction", "SIPTransport", "Store",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "Messaging",
            dependencies: [
                "SIMs", "SIPMessage", "SIPStack", "Store", "Rating",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "WebAPI",
            dependencies: [
                "Store", "Provisioning", "Rating", "CallControl", "SIPAuth", "SIMs", "Messaging",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "MobileCoreSimulator",
            dependencies: [
                "SIPStack", "SIPMessage", "SIPTransport", "SDP", "SIMs",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "SwitchboardCLI",
            dependencies: [
                "SIPMessage", "SDP", "SIPStack", "SIPResolver", "SIPTransaction", "NodeConfiguration", "Store", "Provisioning",
                "TrunkService", "WebAPI", "MobileCoreSimulator", "SIMs", "SIP2SIM", "OutboundRegistration", "Messaging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // The call's own work without sockets, threads or store (bench/call-path.sh).
        .executableTarget(
            name: "CallPathBenchmark",
            dependencies: ["SIPMessage", "SIPStack", "SIPTransaction", "CallControl", "CallCore", "Rating", "Store", "TrunkService", "SIPTransport", .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio")],
            path: "bench/CallPath",
            swiftSettings: strictSwift
        ),
        // Test helpers shared by test targets: external peers (SIPp, psql, the
        // switchboard binary) started with posix_spawn, free ports, a fresh
        // database per test on SQLite or PostgreSQL.
        .target(name: "TestSupport", dependencies: ["Store", "SIPAuth"], path: "Tests/TestSupport", swiftSettings: strictSwift),
        .testTarget(name: "SIPMessageTests", dependencies: ["SIPMessage"], swiftSettings: strictSwift),
        .testTarget(name: "SDPTests", dependencies: ["SDP"], swiftSettings: strictSwift),
        .testTarget(name: "RatingTests", dependencies: ["Rating"], swiftSettings: strictSwift),
        .testTarget(name: "OutboundRegistrationTests", dependencies: ["OutboundRegistration", "SIPMessage", "SIPAuth"], swiftSettings: strictSwift),
        .testTarget(name: "SIMsTests", dependencies: ["SIMs", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: strictSwift),
        .testTarget(name: "NodeConfigurationTests", dependencies: ["NodeConfiguration", "SIMs"], swiftSettings: strictSwift),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Rating", "Provisioning", "SIPAuth", "SIMs", "TestSupport"], swiftSettings: strictSwift),
        .testTarget(name: "TrunkServiceTests", dependencies: ["TrunkService", "Store", "CallControl", "CallCore", "Rating", "NodeConfiguration", "SIPMessage", "SIPStack", "SIPTransport", .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log")], swiftSettings: strictSwift),
        .testTarget(
            name: "WebAPITests",
            dependencies: [
                "WebAPI", "Store", "Rating", "SIMs", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "MobileCoreSimulatorTests",
            dependencies: ["MobileCoreSimulator", "SIMs", "SIPStack", "SIPTransport", "TestSupport",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "CallCoreTests", dependencies: ["CallCore", "CallControl", "SIPMessage", "SIPAuth"], swiftSettings: strictSwift),
        .testTarget(name: "MessagingTests", dependencies: ["Messaging", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: strictSwift),
        .testTarget(name: "CallControlTests", dependencies: ["CallControl", "Rating", "SIPMessage"], swiftSettings: strictSwift),
        .testTarget(name: "SIPTransactionTests", dependencies: ["SIPTransaction", "SIPMessage"], swiftSettings: strictSwift),
        .testTarget(name: "SIPAuthTests", dependencies: ["SIPAuth", "OutboundRegistration"], swiftSettings: strictSwift),
        .testTarget(name: "SIPResolverTests", dependencies: ["SIPResolver"], swiftSettings: strictSwift),
        .testTarget(
            name: "SIP2SIMTests",
            dependencies: ["SIP2SIM", "OutboundRegistration", "SIMs", "SIPStack", "SIPMessage", "SIPTransport", "SIPAuth", "TestSupport",
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SIPStackTests",
            dependencies: ["SIPStack", "SIPMessage", "SIPTransport", "SIPResolver", "SIPAuth", "SIPTransaction", "Store", "Rating", "TestSupport",
                           "OutboundRegistration",
                           "MobileCoreSimulator", "SIMs", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),
    ]
)
