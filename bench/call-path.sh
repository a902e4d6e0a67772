#!/usr/bin/env bash
# The switch's own work per call, without sockets, threads or hand-overs
# between them: one bench call (bench/call-rate.sh's SIPp scenarios) taken
# message by message through the codec, transaction machines, policy, rating
# and B2BUA machine on one thread; then the store's part (a live-call row and
# a CDR per call, group-committed to SQLite) and what the kernel charges per
# loopback datagram. Against the call-rate bench's CPU per call, it says how
# much of that is the call's work and how much the way the process carries it.
#
#   bash bench/call-path.sh [CALLS=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product CallPathBenchmark 2>&1 | grep -E "error|warning:" | grep -v swift-distributed-tracing || true
"$(swift build -c release --show-bin-path)/CallPathBenchmark" "${1:-100000}"
