#!/usr/bin/env bash
# Call-rate benchmark (issue 3 §10): SIPp uac → switchboard → SIPp uas over UDP on
# 127.0.0.1, every check on (trunk ACL, CLI, blacklists, rating, balance, limits)
# and a CDR written per call; then the same SIPp scenarios through Kamailio as a
# stateful proxy (../shared/bench/kamailio), without and with dialog tracking,
# in the same run. For each, the highest
# rate sustained for DURATION seconds with < 0.1 % failed calls is found by a
# bounded ladder of trials. Prints both, the ratio, and the switch's CPU per call
# and memory per live call; last, the switch offered 1.5 × what it sustained
# (how it degrades: completed, refused, lost).
#
#   bash bench/call-rate.sh [DURATION=25] [START_RATE=250]
#
# With BENCH_CALL_LOOPS=N, also the ladder with UDP trunk calls on N event
# loops (SWITCHBOARD_TRUNK_CALLS_ON_LOOP=N).
# With BENCH_CALL_PATH=1, also the ladder against bench/CallPath's one-thread
# run-to-completion measurement (see below).
#
# With BENCH_POSTGRES_URL set (an empty PostgreSQL database, e.g.
# postgres://switchboard@127.0.0.1:5432/bench?sslmode=disable), the switch's
# ladder is also run with that as its store (a cluster node's set-up: limits,
# balance holds and CDRs in the shared database), from START_RATE / 4.
#
# Needs sip-tester and kamailio (Debian packages). Everything listens on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-25}
START=${2:-250}
KAM_DIR=$(cd "${KAMAILIO_BENCH_DIR:-../shared/bench/kamailio}" && pwd)
WORK=$(mktemp -d /tmp/switchboard-bench.XXXXXX)
SW_PORT=45060 UAS_PORT=5070 UAC_PORT=5061
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; pkill -9 -f "kamailio -f $WORK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)"; exit 1; }
echo "== building switchboard (release)"
swift build -c release --product switchboard >/dev/null
BIN=$(swift build -c release --show-bin-path)/switchboard

# The customer: a trunk trusted by source address, a rate deck, plenty of balance.
# CLI policy "warn": SIPp's From user is "sipp", so the CLI check runs and warns.
cat > "$WORK/provision.yaml" <<EOF
rate_decks:
  - { name: default, currency: GBP, rates: [ { prefix: "44", connection: "0.01", per_minute: "0.60", increments: "1/1" } ] }
accounts:
  - { id: "920700", name: Bench, currency: GBP, balance: "100000000", cli_policy: warn,
      limits: { channels: 100000, rate: { calls: 1000000, seconds: 1 } } }
trunks:
  - { account: "920700", name: L001, source_addresses: ["127.0.0.1"], limits: { channels: 100000 } }
blacklists:
  - { scope: platform, prefixes: ["4490"] }
EOF
cat > "$WORK/switch.yaml" <<EOF
sip:
  listen: [udp:127.0.0.1:$SW_PORT]
database:
  url: "sqlite:$WORK/bench.sqlite"
gateways:
  - { name: uas, address: "127.0.0.1:$UAS_PORT" }
EOF
SWITCHBOARD_DATABASE="sqlite:$WORK/bench.sqlite" "$BIN" provision "$WORK/provision.yaml" >/dev/null

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# A fresh switch for each switchboard trial, so that the backlog of an
# overloaded trial does not count against the next one.
SW=""
SW_CONFIG="$WORK/switch.yaml"
start_switch() {
    if [ -n "$SW" ]; then kill -9 "$SW" 2>/dev/null || true; wait "$SW" 2>/dev/null || true; fi
    SWITCHBOARD_TRUNK_CALLS_ON_LOOP=${SW_LOOPS:-0} "$BIN" serve --config "$SW_CONFIG" --log-level error >> "$WORK/switch.log" 2>&1 &
    SW=$!; pids+=("$SW")
    sleep 1.5
}

# trial TARGET_PORT RATE → prints "successful failed"
trial() {
    local port=$1 rate=$2 calls=$(( $2 * DURATION ))
    sipp -i 127.0.0.1 -p $UAS_PORT -sf "$KAM_DIR/uas_rr.xml" -nostdin -buff_size 4194304 >/dev/null 2>&1 &
    local uas=$!
    sleep 0.3
    # KILL, not TERM: started from a process that blocks SIGTERM (some CI
    # runners and tool shells do), SIPp ignores TERM and a hung trial would
    # stall the ladder for good.
    (cd "$WORK" && timeout -s KILL $(( DURATION + 40 )) sipp "127.0.0.1:$port" -sf "${UAC_XML:-$KAM_DIR/uac_rr.xml}" -s 447700900123 -i 127.0.0.1 -p $UAC_PORT \
        -r "$rate" -m "$calls" -d 0 -l $(( rate * 4 )) -nostdin -buff_size 4194304 -default_behaviors "${UAC_BEHAVIOURS:-all,-abortunexp}" \
        -timeout $(( DURATION + 30 ))s -trace_stat -stf "$WORK/stat.csv" > "$WORK/uac.out" 2>&1) || true
    kill -9 $uas 2>/dev/null || true; wait $uas 2>/dev/null || true
    local ok failed
    ok=$( (grep "Successful call" "$WORK/uac.out" || true) | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
    failed=$( (grep "Failed call" "$WORK/uac.out" || true) | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
    if [ -z "$ok" ] && [ -s "$WORK/stat.csv" ]; then
        # SIPp was killed with calls still up (it prints no summary then): its
        # last statistics line (-trace_stat, every second) has the totals so far.
        read -r ok failed < <(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i }
            END { print $col["SuccessfulCall(C)"], $col["FailedCall(C)"] }' "$WORK/stat.csv")
    fi
    rm -f "$WORK/stat.csv"
    echo "${ok:-0} ${failed:-0}"
}

# ladder NAME PORT [FIRST_RATE] → sets BEST; doubles the rate until a trial fails, then tries the midpoint.
ladder() {
    local name=$1 port=$2 rate=${3:-$START} lo=0 hi=0 n=0
    BEST=0
    while (( n < 7 )); do
        n=$((n + 1))
        case "$name" in switchboard*) start_switch ;; call-path*) start_call_path ;; esac
        read -r ok failed < <(trial "$port" "$rate")
        local total=$(( ok + failed )) expected=$(( rate * DURATION ))
        # Sustained: every call placed and completed, < 0.1 % failed.
        if (( total >= expected )) && (( failed * 1000 < total )); then
            printf "   %-12s %6d calls/s for %ds: %d ok, %d failed  ✓\n" "$name" "$rate" "$DURATION" "$ok" "$failed"
            lo=$rate; BEST=$rate
            if (( hi == 0 )); then rate=$(( rate * 2 )); else rate=$(( (lo + hi) / 2 )); fi
        else
            printf "   %-12s %6d calls/s for %ds: %d ok, %d failed  ✗\n" "$name" "$rate" "$DURATION" "$ok" "$failed"
            hi=$rate
            rate=$(( (lo + hi) / 2 ))
        fi
        if (( hi > 0 )) && (( hi - lo <= hi / 8 )); then break; fi
        if (( rate < 10 )); then break; fi
    done
}

# overload NAME BEST → sets OVERLOAD: a fresh switch offered 1.5 × the rate it
# sustained. Trunk calls on event loops refuse new calls with 503 while their
# socket is behind (README, "Overload"); the shared scenario would wait for
# ever on a refused call, so this trial's caller ACKs a 503 and counts the
# call failed (bench/refusable-uac.py), without SIPp's BYE for a failed call.
# "Did not end": never placed in time, or still up when the trial ended.
python3 bench/refusable-uac.py "$KAM_DIR/uac_rr.xml" "$WORK/uac_refusable.xml"
overload() {
    start_switch
    local rate=$(( $2 * 3 / 2 )) ok failed
    read -r ok failed < <(UAC_XML="$WORK/uac_refusable.xml" UAC_BEHAVIOURS="all,-abortunexp,-bye" trial $SW_PORT $rate)
    local rest=$(( rate * DURATION - ok - failed ))
    OVERLOAD=$(printf "%d calls/s (1.5 × sustained) for %ds: %d completed, %d failed (503 refusals among them), %d did not end" \
        "$rate" "$DURATION" "$ok" "$failed" $(( rest > 0 ? rest : 0 )))
    printf "   %-12s %s\n" "$1" "$OVERLOAD"
}

echo "== switchboard: SIPp uac → switchboard (B2BUA, SQLite CDRs) → SIPp uas"
ladder switchboard $SW_PORT
SW_BEST=$BEST

# switch_cpu BEST → sets AT, TICKS and CALLS: a fresh switch at half the sustained rate for DURATION seconds.
switch_cpu() {
    start_switch
    AT=$(( $1 > 20 ? $1 / 2 : 10 ))
    local t0 ok failed
    t0=$(cpu_ticks $SW)
    read -r ok failed < <(trial $SW_PORT $AT)
    TICKS=$(( $(cpu_ticks $SW) - t0 )) CALLS=$(( ok + failed ))
}

switch_cpu $SW_BEST
HALF=$AT SW_TICKS=$TICKS SW_CALLS=$CALLS
cdrs=$(python3 -c "import sqlite3; print(sqlite3.connect('$WORK/bench.sqlite').execute('select count(*) from cdrs').fetchone()[0])")

# Memory per live call: a fresh switch holding 2,000 answered calls for 20 s.
start_switch
rss0=$(rss_kib $SW)
sipp -i 127.0.0.1 -p $UAS_PORT -sf "$KAM_DIR/uas_rr.xml" -nostdin -buff_size 4194304 >/dev/null 2>&1 &
UAS=$!; pids+=("$UAS")
(cd "$WORK" && sipp "127.0.0.1:$SW_PORT" -sf "$KAM_DIR/uac_rr.xml" -s 447700900123 -i 127.0.0.1 -p $UAC_PORT -r 500 -m 2000 -d 20000 -l 2000 \
    -nostdin -buff_size 4194304 -default_behaviors all,-abortunexp -timeout 60s >/dev/null 2>&1 &)
sleep 10
rss1=$(rss_kib $SW)
sleep 20
kill -9 $UAS 2>/dev/null || true; wait $UAS 2>/dev/null || true
kill -9 $SW 2>/dev/null || true
wait $SW 2>/dev/null || true

PG_BEST=""
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    echo "== switchboard with PostgreSQL as its store (a cluster node)"
    sed "s|url: \"sqlite:.*\"|url: \"$BENCH_POSTGRES_URL\"|" "$WORK/switch.yaml" > "$WORK/switch-pg.yaml"
    SWITCHBOARD_DATABASE="$BENCH_POSTGRES_URL" "$BIN" provision "$WORK/provision.yaml" >/dev/null
    SW_CONFIG="$WORK/switch-pg.yaml" SW=""
    ladder switchboard-pg $SW_PORT $(( START / 4 > 10 ? START / 4 : 10 ))
    PG_BEST=$BEST
    switch_cpu $PG_BEST
    PG_HALF=$AT PG_TICKS=$TICKS PG_CALLS=$CALLS
    kill -9 $SW 2>/dev/null || true; wait $SW 2>/dev/null || true
fi

# With BENCH_CALL_LOOPS=N: the same ladder and CPU measure with the switch's
# UDP trunk calls on N event loops (SWITCHBOARD_TRUNK_CALLS_ON_LOOP=N; off by
# default, docs/run-to-completion.md slices 3–4).
LOOPS_BEST=""
if [ -n "${BENCH_CALL_LOOPS:-}" ]; then
    echo "== switchboard with UDP trunk calls on ${BENCH_CALL_LOOPS} event loop(s)"
    SW_LOOPS=$BENCH_CALL_LOOPS SW_CONFIG="$WORK/switch.yaml" SW=""
    ladder switchboard-loops $SW_PORT
    LOOPS_BEST=$BEST
    switch_cpu $LOOPS_BEST
    LOOPS_HALF=$AT LOOPS_TICKS=$TICKS LOOPS_CALLS=$CALLS
    kill -9 $SW 2>/dev/null || true; wait $SW 2>/dev/null || true
    SW_LOOPS=0 SW=""
fi

# With BENCH_CALL_PATH set: the same ladder against bench/CallPath's `serve`,
# the switch's call path run to completion on one thread with its store
# written behind (docs/run-to-completion.md). A measurement of that design,
# not a switch: no timers or retransmissions (a retransmitted INVITE is not
# answered again, so overload shows as failed calls sooner than in a switch).
CP_BEST=""
CP=""
start_call_path() {
    if [ -n "$CP" ]; then kill -9 "$CP" 2>/dev/null || true; wait "$CP" 2>/dev/null || true; fi
    "$CP_BIN" serve $SW_PORT $UAS_PORT $(( DURATION + 45 )) >> "$WORK/call-path.log" 2>&1 &
    CP=$!; pids+=("$CP")
    sleep 0.5
}
if [ -n "${BENCH_CALL_PATH:-}" ]; then
    echo "== the call path run to completion on one thread, store behind (bench/CallPath serve; a measurement, not a switch)"
    swift build -c release --product CallPathBenchmark >/dev/null
    CP_BIN=$(swift build -c release --show-bin-path)/CallPathBenchmark
    ladder call-path $SW_PORT
    CP_BEST=$BEST
    kill -9 "$CP" 2>/dev/null || true; wait "$CP" 2>/dev/null || true
fi

command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || { echo "kamailio is not installed (apt-get install kamailio)"; exit 1; }
KAM=$(command -v kamailio || echo /usr/sbin/kamailio)
kamailio_ticks() { local t=0 p; for p in $(pgrep -f "kamailio -f $WORK"); do t=$(( t + $(cpu_ticks "$p") )); done; echo $t; }
# kamailio_ladder CONFIG NAME → sets BEST: the same ladder through Kamailio with that config.
kamailio_ladder() {
    cp "$KAM_DIR/$1" "$WORK/$1"
    "$KAM" -f "$WORK/$1" -DD -E -m 4096 -M 16 -n 2 -x tlsf -X tlsf -Y "$WORK" -w "$WORK" > "$WORK/kamailio.log" 2>&1 &
    local kam=$!; pids+=("$kam")
    sleep 1.5
    ladder "$2" 5060
    # Its CPU per call at the rate the switch's was measured at (all its processes).
    local k0 k1
    k0=$(kamailio_ticks); read -r KAM_CPU_OK KAM_CPU_FAILED < <(trial 5060 "$HALF"); k1=$(kamailio_ticks)
    KAM_CPU_TICKS=$(( k1 - k0 ))
    kill -9 "$kam" 2>/dev/null || true; wait "$kam" 2>/dev/null || true
    pkill -9 -f "kamailio -f $WORK" 2>/dev/null || true
    sleep 0.5
}

echo "== Kamailio stateful proxy (tm+rr, 2 UDP workers): SIPp uac → kamailio → SIPp uas"
kamailio_ladder kamailio-proxy.cfg kamailio
KAM_BEST=$BEST KAM_CPU=$(( KAM_CPU_TICKS )) KAM_CALLS=$(( KAM_CPU_OK + KAM_CPU_FAILED ))

# A B2BUA keeps every call's dialog, so the closer peer is Kamailio keeping
# dialogs too (dlg_manage, as SPEC's baseline "with dialog tracking").
echo "== Kamailio with dialog tracking (tm+rr+dialog, 2 UDP workers)"
kamailio_ladder kamailio-proxy-dialog.cfg kamailio-dlg
KAM_DLG_BEST=$BEST KAM_DLG_CPU=$(( KAM_CPU_TICKS )) KAM_DLG_CALLS=$(( KAM_CPU_OK + KAM_CPU_FAILED ))

# Overload last, so that nothing an overloaded trial leaves behind counts against another figure.
echo "== switchboard offered 1.5 × the rate it sustained"
SW_CONFIG="$WORK/switch.yaml"
overload switchboard "$SW_BEST"
SW_OVERLOAD=$OVERLOAD
if [ -n "$LOOPS_BEST" ]; then
    SW_LOOPS=$BENCH_CALL_LOOPS
    overload switchboard-loops "$LOOPS_BEST"
    LOOPS_OVERLOAD=$OVERLOAD SW_LOOPS=0
fi
kill -9 "$SW" 2>/dev/null || true; wait "$SW" 2>/dev/null || true

HZ=$(getconf CLK_TCK)
echo
echo "== results (${DURATION}-second trials, < 0.1 % failed)"
if (( DURATION < 25 )); then
    echo "   (trials under 25 s overstate every limit: SIPp lets up to 4 s of calls queue, -l RATE*4)"
fi
printf "   switchboard sustained: %d calls/s (CDRs written in all trials: %d)\n" "$SW_BEST" "$cdrs"
printf "   switchboard offered %s\n" "$SW_OVERLOAD"
printf "   kamailio sustained:    %d calls/s (tm+rr); %d calls/s with dialog tracking\n" "$KAM_BEST" "$KAM_DLG_BEST"
if (( KAM_BEST > 0 && KAM_DLG_BEST > 0 )); then
    python3 -c "print('   ratio switchboard/kamailio: %.2f (tm+rr), %.2f (with dialog tracking)' % ($SW_BEST / $KAM_BEST, $SW_BEST / $KAM_DLG_BEST))"
fi
python3 -c "
calls = max(1, $SW_CALLS)
print('   switchboard CPU per call: %.0f µs (%d calls at %d calls/s, all threads)' % ($SW_TICKS / $HZ / calls * 1e6, calls, $HALF))
print('   kamailio CPU per call at the same rate: %.0f µs (tm+rr), %.0f µs (with dialog tracking), all its processes' % (
    $KAM_CPU / $HZ / max(1, $KAM_CALLS) * 1e6, $KAM_DLG_CPU / $HZ / max(1, $KAM_DLG_CALLS) * 1e6))
print('   switchboard memory per live call: %.1f KiB (RSS %d → %d KiB with ~2,000 calls up)' % (max(0, $rss1 - $rss0) / 2000, $rss0, $rss1))
"
if [ -n "$PG_BEST" ]; then
    printf "   switchboard on PostgreSQL sustained: %d calls/s\n" "$PG_BEST"
    python3 -c "print('   switchboard on PostgreSQL, CPU per call: %.0f µs (%d calls at %d calls/s, the switch only)' % ($PG_TICKS / $HZ / max(1, $PG_CALLS) * 1e6, $PG_CALLS, $PG_HALF))"
fi
if [ -n "$LOOPS_BEST" ]; then
    printf "   switchboard, trunk calls on %d event loop(s), sustained: %d calls/s\n" "$BENCH_CALL_LOOPS" "$LOOPS_BEST"
    printf "   switchboard on loops offered %s\n" "$LOOPS_OVERLOAD"
    python3 -c "print('   switchboard, trunk calls on event loops, CPU per call: %.0f µs (%d calls at %d calls/s, all threads)' % ($LOOPS_TICKS / $HZ / max(1, $LOOPS_CALLS) * 1e6, $LOOPS_CALLS, $LOOPS_HALF))"
    if (( KAM_BEST > 0 && KAM_DLG_BEST > 0 )); then
        python3 -c "print('   ratio switchboard on loops/kamailio: %.2f (tm+rr), %.2f (with dialog tracking)' % ($LOOPS_BEST / $KAM_BEST, $LOOPS_BEST / $KAM_DLG_BEST))"
    fi
fi
if [ -n "$CP_BEST" ]; then
    printf "   call path run to completion on one thread, store behind (bench/CallPath serve): %d calls/s\n" "$CP_BEST"
    if (( KAM_BEST > 0 && KAM_DLG_BEST > 0 )); then
        python3 -c "print('   ratio call path/kamailio: %.2f (tm+rr), %.2f (with dialog tracking)' % ($CP_BEST / $KAM_BEST, $CP_BEST / $KAM_DLG_BEST))"
    fi
fi
