#!/usr/bin/env bash
# Registration benchmark (issue 4 §9): N SIMs (default 10,000) provisioned in a
# switchboard node register with Kamailio as the customer's registrar (digest
# auth, auth_db over db_text, ../shared/bench/kamailio). Prints the time until
# every SIM is registered, the switch's CPU and memory per registration at
# steady refresh, and — in the same run — Kamailio's own registrar capacity
# with SIPp's reg_auth.xml (highest rate sustained for DURATION s, < 0.1 % failed).
#
#   bash bench/registration.sh [SIMS=10000] [PER_SECOND=2000] [EXPIRES=120] [DURATION=25] [RELOAD=10]
#
# PER_SECOND is the node's pacing (sims.registration.per_second); EXPIRES the
# expiry asked for (refresh at about half). Everything listens on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
SIMS=${1:-10000}
PER_SECOND=${2:-2000}
EXPIRES=${3:-120}
DURATION=${4:-25}
RELOAD=${5:-10}
KAM_DIR=$(cd "${KAMAILIO_BENCH_DIR:-../shared/bench/kamailio}" && pwd)
WORK=$(mktemp -d /tmp/switchboard-regbench.XXXXXX)
KAM_PORT=45070 SW_PORT=45061 UAC_PORT=45062
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; pkill -9 -f -- "-f $WORK/" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)"; exit 1; }
KAM=$(command -v kamailio || echo /usr/sbin/kamailio)
[ -x "$KAM" ] || { echo "kamailio is not installed (apt-get install kamailio)"; exit 1; }
echo "== building switchboard (release)"
swift build -c release --product switchboard >/dev/null
BIN=$(swift build -c release --show-bin-path)/switchboard

echo "== $SIMS digest users for Kamailio's registrar"
python3 "$KAM_DIR/gen_users.py" "$SIMS" "$WORK" >/dev/null
sed "s|__DBTEXT_DIR__|$WORK/dbtext|" "$KAM_DIR/kamailio-registrar.cfg" > "$WORK/registrar.cfg"
start_kamailio() {
    "$KAM" -f "${1:-$WORK/registrar.cfg}" -DD -E -m 4096 -M 64 -n 2 -x tlsf -X tlsf -l "udp:127.0.0.1:$KAM_PORT" \
        -Y "$WORK" -w "$WORK" >> "$WORK/kamailio.log" 2>&1 &
    KAMPID=$!; pids+=("$KAMPID")
    sleep 2
}
# Kamailio's worker processes outlive a killed main process and keep the port: stop them all.
stop_kamailio() {
    pkill -9 -f -- "-f $WORK/" 2>/dev/null || true
    wait "$KAMPID" 2>/dev/null || true
    sleep 0.5
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

# SIMs: ICCIDs with a valid Luhn check digit, one Kamailio user each.
python3 - "$SIMS" "$KAM_PORT" > "$WORK/provision.yaml" <<'EOF'
import sys
n, port = int(sys.argv[1]), sys.argv[2]
def luhn(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9: d -= 9
        total += d
    return str((10 - total % 10) % 10)
print("accounts:\n  - { id: \"920700\", name: Bench, currency: GBP, balance: \"100\" }\nsims:")
for i in range(n):
    body = "894410%012d" % i
    print(f"  - {{ iccid: \"{body + luhn(body)}\", account: \"920700\", sip_hostname: \"127.0.0.1:{port}\", "
          f"username: u{100000 + i}, password: pw{100000 + i} }}")
EOF
cat > "$WORK/switch.yaml" <<EOF
node: { name: bench }
sip:
  listen: [udp:127.0.0.1:$SW_PORT]
http:
  listen: 127.0.0.1:45080
database:
  url: "sqlite:$WORK/bench.sqlite"
sims:
  registration: { expires: $EXPIRES, per_second: $PER_SECOND, reload_seconds: $RELOAD }
EOF
SWITCHBOARD_DATABASE="sqlite:$WORK/bench.sqlite" "$BIN" provision "$WORK/provision.yaml" >/dev/null
registered() {
    python3 -c "import sqlite3; print(sqlite3.connect('$WORK/bench.sqlite', timeout=10).execute(\"select count(*) from sim_registrations where node='bench' and state='registered'\").fetchone()[0])"
}

echo "== switchboard: $SIMS SIMs → Kamailio registrar (paced at $PER_SECOND/s, expires $EXPIRES s)"
start_kamailio
start=$(date +%s.%N)
"$BIN" serve --config "$WORK/switch.yaml" --log-level info > "$WORK/switch.log" 2>&1 &
SW=$!; pids+=("$SW")
all=""
for _ in $(seq 1 600); do
    sleep 0.5
    n=$(registered 2>/dev/null || echo 0)
    if [ "$n" -ge "$SIMS" ]; then all=$(date +%s.%N); break; fi
done
if [ -z "$all" ]; then echo "   not all registered after 300 s: $(registered) of $SIMS"; tail -5 "$WORK/switch.log"; exit 1; fi
python3 -c "print('   all %d registered after %.1f s (from the start of serve, as the store shows it)' % ($SIMS, $all - $start))"
grep "SIM registrations" "$WORK/switch.log" | grep -m1 "registered=$SIMS " | sed 's/^/   the agent reported: /' || true

# Steady refresh: CPU and REGISTERs over 2 × EXPIRES/2 seconds.
WINDOW=$EXPIRES
ok0=$(grep -o 'registrations_ok=[0-9]*' "$WORK/switch.log" | tail -1 | cut -d= -f2)
t0=$(cpu_ticks $SW); rss=$(rss_kib $SW)
sleep "$WINDOW"
t1=$(cpu_ticks $SW); rss1=$(rss_kib $SW)
ok1=$(grep -o 'registrations_ok=[0-9]*' "$WORK/switch.log" | tail -1 | cut -d= -f2)
still=$(registered)
kill -9 $SW 2>/dev/null || true; wait $SW 2>/dev/null || true
stop_kamailio

# Kamailio's capacity is measured as in ../shared/bench/kamailio: 1,000 users. (db_text
# lookups slow down with 10,000 users: SIPp at 2,000/s against them fails ~half its calls.)
CAP_USERS=${CAP_USERS:-1000}
mkdir -p "$WORK/cap"
python3 "$KAM_DIR/gen_users.py" "$CAP_USERS" "$WORK/cap" >/dev/null
sed "s|__DBTEXT_DIR__|$WORK/cap/dbtext|" "$KAM_DIR/kamailio-registrar.cfg" > "$WORK/cap/registrar.cfg"
echo "== Kamailio registrar capacity ($CAP_USERS users): SIPp reg_auth.xml (REGISTER → 401 → REGISTER with digest → 200)"
trial() {
    local rate=$1 calls=$(( $1 * DURATION ))
    (cd "$WORK" && timeout $(( DURATION + 40 )) sipp "127.0.0.1:$KAM_PORT" -sf "$KAM_DIR/reg_auth.xml" -inf "$WORK/cap/users.csv" \
        -i 127.0.0.1 -p $UAC_PORT -r "$rate" -m "$calls" -l $(( rate * 2 )) -nostdin -buff_size 4194304 \
        -timeout $(( DURATION + 30 ))s > "$WORK/reg.out" 2>&1) || true
    local ok failed
    ok=$( (grep "Successful call" "$WORK/reg.out" || true) | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
    failed=$( (grep "Failed call" "$WORK/reg.out" || true) | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
    echo "${ok:-0} ${failed:-0}"
}
KAM_BEST=0
for rate in ${KAMAILIO_RATES:-2000 4000 6000 8000 10000 12000}; do
    start_kamailio "$WORK/cap/registrar.cfg"
    read -r ok failed < <(trial $rate)
    stop_kamailio
    total=$(( ok + failed ))
    if (( total >= rate * DURATION )) && (( failed * 1000 < total )); then
        printf "   %6d registrations/s for %ds: %d ok, %d failed  ✓\n" "$rate" "$DURATION" "$ok" "$failed"; KAM_BEST=$rate
    else
        printf "   %6d registrations/s for %ds: %d ok, %d failed  ✗\n" "$rate" "$DURATION" "$ok" "$failed"; break
    fi
done

echo
echo "== results"
python3 -c "
sims, window, hz = $SIMS, $WINDOW, $HZ
regs = max(1, ${ok1:-0} - ${ok0:-0})
print('   switchboard: %d SIMs registered in %.1f s (paced at $PER_SECOND/s); %d still registered after %d s of refreshes' % (sims, $all - $start, $still, window))
print('   steady refresh: %d REGISTERs answered 200 in %d s (%.0f/s); CPU %.0f µs per registration (digest round included)' % (regs, window, regs / window, ($t1 - $t0) / hz / regs * 1e6))
print('   memory: RSS %d KiB with %d SIMs → %.1f KiB per registration' % ($rss1, sims, $rss1 / sims))
print('   kamailio registrar sustained: %d authenticated registrations/s' % $KAM_BEST)
"
