#!/usr/bin/env bash
# Text throughput benchmark (issue 5 §7), end to end on this machine:
#   from handsets: the mobile-core simulator sends TEXTS MESSAGEs (spread over SIMS
#     handsets, CONCURRENCY at a time) → switchboard (stored, 202, CDR) → signed
#     webhook POSTs → a receiver that verifies every signature;
#   to handsets: TEXTS POST /api/v1/texts (CONCURRENCY at a time) → switchboard
#     (stored, 202) → MESSAGE to the simulator → delivered, CDR.
# Prints, for each direction, texts/s accepted (all 202s) and texts/s delivered end
# to end (first request to last delivery), and the switch's CPU per text.
#
#   bash bench/texts.sh [TEXTS=5000] [SIMS=200] [CONCURRENCY=32] [DATABASE=sqlite|postgres://…]
#
# Everything listens on loopback; the run is bounded (TEXTS each way, 300 s per phase).
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTS=${1:-5000}
SIMS=${2:-200}
CONCURRENCY=${3:-32}
DB=${4:-sqlite}
WORK=$(mktemp -d /tmp/switchboard-textbench.XXXXXX)
SW_PORT=46061 SIM_PORT=46062 SIM_HTTP=46070 API_PORT=46080 HOOK_PORT=46090
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
[ "$DB" = sqlite ] && DB="sqlite:$WORK/bench.sqlite"

echo "== building switchboard (release)"
swift build -c release --product switchboard >/dev/null
BIN=$(swift build -c release --show-bin-path)/switchboard
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# SIMs with valid ICCIDs (Luhn), each with the receiver as its webhook and a text rate.
python3 - "$SIMS" "$HOOK_PORT" "$WORK" <<'EOF'
import sys
n, port, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def luhn(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9: d -= 9
        total += d
    return str((10 - total % 10) % 10)
iccids = [("894410%012d" % i) + luhn("894410%012d" % i) for i in range(n)]
open(f"{work}/handsets.txt", "w").write("\n".join(iccids) + "\n")
with open(f"{work}/provision.yaml", "w") as f:
    f.write('accounts:\n  - { id: "920700", name: Bench, currency: GBP, balance: "1000000" }\nsims:\n')
    for i, iccid in enumerate(iccids):
        f.write(f'  - {{ iccid: "{iccid}", account: "920700", sip_hostname: "127.0.0.1:9", username: u{i}, password: pw{i}, '
                f'webhook_url: "http://127.0.0.1:{port}/texts", linked_number: "4477009{i:05d}", text_rate: "0.01" }}\n')
EOF
cat > "$WORK/switch.yaml" <<EOF
node: { name: bench }
sip:
  listen: [udp:127.0.0.1:$SW_PORT]
http:
  listen: 127.0.0.1:$API_PORT
database:
  url: "$DB"
mobile_core: { address: "127.0.0.1:$SIM_PORT", sources: [127.0.0.1] }
texts: { max_segments: 6 }
sims:
  password_key: "$(head -c 32 /dev/urandom | base64)"
  # The SIMs are here for their texts only: none registers anywhere.
  registration: { takes_unplaced: false }
EOF
"$BIN" provision "$WORK/provision.yaml" --config "$WORK/switch.yaml" >/dev/null
SECRET=$("$BIN" webhook-secret 920700 --config "$WORK/switch.yaml" | tail -1)
KEY=$("$BIN" api-key create --account 920700 --label bench --config "$WORK/switch.yaml" | grep '^sbk_')

python3 Tests/Fixtures/webhook_receiver.py --port $HOOK_PORT --secret "$SECRET" --out "$WORK/hooks.jsonl" &
pids+=($!)
"$BIN" simulator --sip "udp:127.0.0.1:$SIM_PORT" --http "127.0.0.1:$SIM_HTTP" --switch "127.0.0.1:$SW_PORT" \
    --handsets-from "$WORK/handsets.txt" --log-level warning > "$WORK/simulator.log" 2>&1 &
pids+=($!)
"$BIN" serve --config "$WORK/switch.yaml" --log-level warning > "$WORK/switch.log" 2>&1 &
SW=$!; pids+=("$SW")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$API_PORT/api/v1/openapi.yaml" >/dev/null && break; sleep 0.2; done
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$SIM_HTTP/handsets" >/dev/null && break; sleep 0.2; done

# The load: CONCURRENCY threads, each with a kept-alive HTTP connection, TEXTS requests
# in all; then waits until `delivered` (a shell command printing a count) reaches TEXTS.
cat > "$WORK/load.py" <<'EOF'
import http.client, json, subprocess, sys, threading, time
mode, texts, conc, work, port, key = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
db = sys.argv[7]
def delivered():
    if mode == "from":  # lines the webhook receiver wrote
        try: return sum(1 for _ in open(f"{work}/hooks.jsonl"))
        except FileNotFoundError: return 0
    q = "select count(*) from texts where direction='to_handset' and state='delivered'"
    if db.startswith("sqlite:"):
        import sqlite3
        return sqlite3.connect(db[len("sqlite:"):], timeout=10).execute(q).fetchone()[0]
    return int(subprocess.run(["psql", db, "-Atc", q], capture_output=True, text=True).stdout.strip() or 0)
iccids = open(f"{work}/handsets.txt").read().split()
statuses, lock, next_i = {}, threading.Lock(), [0]
def worker():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        with lock:
            i = next_i[0]; next_i[0] += 1
        if i >= texts: return
        iccid = iccids[i % len(iccids)]
        text = f"bench text {i}: the quick brown fox"
        if mode == "from":   # the simulator's handset sends it to the switch
            path, body, headers = f"/handsets/{iccid}/texts", {"to": "+447700900123", "text": text}, {}
        else:                # the customer's system sends it to the handset
            path, body, headers = "/api/v1/texts", {"to": iccid, "text": text}, {"Authorization": f"Bearer {key}"}
        headers["Content-Type"] = "application/json"
        try:
            conn.request("POST", path, json.dumps(body), headers)
            r = conn.getresponse(); data = r.read()
            code = json.loads(data).get("status_code") if mode == "from" else r.status
        except Exception as e:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60); code = str(e)[:40]
        with lock:
            statuses[code] = statuses.get(code, 0) + 1
start = time.time()
threads = [threading.Thread(target=worker) for _ in range(conc)]
for t in threads: t.start()
for t in threads: t.join()
accepted = time.time()
done = None
while time.time() - start < 300:
    n = delivered()
    if n >= texts: done = time.time(); break
    time.sleep(0.1)
ok = statuses.get(202, 0)
print(json.dumps({"accepted": ok, "answers": {str(k): v for k, v in statuses.items()},
                  "accept_seconds": accepted - start, "deliver_seconds": (done - start) if done else None, "delivered": n}))
EOF

count_sql() {
    if [[ "$DB" == sqlite:* ]]; then
        python3 -c "import sqlite3,sys; print(sqlite3.connect('${DB#sqlite:}', timeout=10).execute(sys.argv[1]).fetchone()[0])" "$1"
    else
        psql "$DB" -Atc "$1"
    fi
}

phase() {  # mode (from/to handsets), the port the load goes to
    local t0 t1 out
    t0=$(cpu_ticks $SW)
    out=$(python3 "$WORK/load.py" "$1" "$TEXTS" "$CONCURRENCY" "$WORK" "$2" "$KEY" "$DB")
    t1=$(cpu_ticks $SW)
    python3 -c "
import json; r = json.loads('''$out'''); n = $TEXTS
acc, dl = r['accept_seconds'], r['deliver_seconds']
print('   accepted: %d of %d answered 202 in %.2f s = %.0f texts/s (answers: %s)' % (r['accepted'], n, acc, r['accepted'] / acc, r['answers']))
print('   delivered end to end: %s' % ('%d in %.2f s = %.0f texts/s' % (n, dl, n / dl) if dl else 'only %d within 300 s' % r['delivered']))
print('   switch CPU: %.0f µs per text (all threads, store writes included)' % (($t1 - $t0) / $HZ / n * 1e6))
"
}

echo "== from handsets: simulator → switch → webhook ($TEXTS texts over $SIMS SIMs, $CONCURRENCY at a time, store ${DB%%:*})"
phase from $SIM_HTTP
bad=$(grep -c '"ok": false' "$WORK/hooks.jsonl" || true)
echo "   webhook signatures that failed verification: $bad"
echo "== to handsets: POST /api/v1/texts → switch → simulator ($TEXTS texts, $CONCURRENCY at a time)"
phase to $API_PORT
echo "   CDRs written for texts: $(count_sql "select count(*) from cdrs where call_type='text'") (expected $(( 2 * TEXTS )))"
