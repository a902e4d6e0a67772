#!/usr/bin/env bash
# The switch's own work per call, without sockets, threads or hand-overs
# between them: one bench call (bench/call-rate.sh's SIPp scenarios) taken
# message by message through the codec, transaction machines, policy, rating
# and B2BUA machine on one thread; then the store's part (a live-call row and
# a CDR per call, group-committed to SQLite), the transaction layer's part
# alone (TransactionLayer as the event loops drive it, with its timers), and
# what the kernel charges per
# loopback datagram. Against the call-rate bench's CPU per call, it says how
# much of that is the call's work and how much the way the process carries it.
#
# Then (with sipp installed) the same call path on a real UDP socket, one
# thread reading each datagram and handling it to completion, under SIPp's uac
# and uas at RATE calls/s for 10 s: what that design costs with the kernel's
# part in it. It has no timers, retransmissions or store: a measurement, not a
# switch.
#
#   bash bench/call-path.sh [CALLS=100000] [RATE=3000]
#
# For a profiler, one part alone: CallPathBenchmark call N (the switch's
# part), CallPathBenchmark layer N (the transaction layer's), e.g.
#   perf record -g "$(swift build -c release --show-bin-path)/CallPathBenchmark" call 100000
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-100000}
RATE=${2:-3000}
swift build -c release --product CallPathBenchmark 2>&1 | grep -E "error|warning:" | grep -v swift-distributed-tracing || true
BIN="$(swift build -c release --show-bin-path)/CallPathBenchmark"
"$BIN" "$CALLS"

command -v sipp >/dev/null || { echo "(sipp not installed: apt-get install sip-tester for the run under SIPp)"; exit 0; }
KAM_DIR=$(cd "${KAMAILIO_BENCH_DIR:-../shared/bench/kamailio}" && pwd)
WORK=$(mktemp -d /tmp/switchboard-call-path.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
SECONDS_RUN=10
"$BIN" serve 45060 5070 $((SECONDS_RUN + 12)) > "$WORK/serve.out" 2>&1 &
SERVE=$!; pids+=("$SERVE")
sipp -i 127.0.0.1 -p 5070 -sf "$KAM_DIR/uas_rr.xml" -nostdin -buff_size 4194304 > /dev/null 2>&1 &
pids+=($!)
sleep 1
(cd "$WORK" && timeout $((SECONDS_RUN + 10)) sipp 127.0.0.1:45060 -sf "$KAM_DIR/uac_rr.xml" -s 447700900123 -i 127.0.0.1 -p 5061 \
    -r "$RATE" -m $((RATE * SECONDS_RUN)) -d 0 -l $((RATE * 4)) -nostdin -buff_size 4194304 -default_behaviors all,-abortunexp \
    -timeout $((SECONDS_RUN + 8))s > "$WORK/uac.out" 2>&1) || true
wait "$SERVE" || true
echo "Run to completion on one thread under SIPp, $RATE calls/s for $SECONDS_RUN s:"
grep -E "Successful call|Failed call" "$WORK/uac.out" | tail -2 | awk -F'|' '{gsub(/ +/, " "); print " " $1 $3}'
tail -1 "$WORK/serve.out"
