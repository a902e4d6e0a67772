#!/usr/bin/env bash
# The five-minute SIP2SIM demo, all on loopback:
#   Kamailio    127.0.0.1:25060  the customer's SIP server (registrar, and proxy to the PBX)
#   SIPp        127.0.0.1:25070  the customer's PBX (answers calls from the handset)
#   switchboard 127.0.0.2:25080  serve, REST API on 127.0.0.1:18080, SQLite in a temp dir
#   simulator   127.0.0.4:25090  the mobile core with one handset, control API on 127.0.0.1:18070
# The SIM registers with Kamailio; then the customer's PBX calls the handset, and the
# handset calls +447700900123. Needs kamailio, sipp, curl and python3 (scripts/test.sh
# installs them). Everything it starts is stopped at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.build/debug/switchboard"
[ -x "$bin" ] || (cd "$root" && swift build --product switchboard)
for tool in kamailio sipp curl python3; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is not installed (bash scripts/test.sh installs it)"; exit 1; }
done

work=$(mktemp -d /tmp/switchboard-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
iccid=8944101234567890128
step() { printf '\n== %s\n' "$*"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

step "Kamailio as the customer's SIP server, with user 7001 (the SIM's credentials)"
mkdir -p "$work/dbtext"
printf 'id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n' > "$work/dbtext/version"
ha1=$(printf '7001:127.0.0.1:sim-pw' | md5sum | cut -d' ' -f1)
printf 'id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string) \n1:7001:127.0.0.1:sim-pw:%s:%s\n' "$ha1" "$ha1" \
    > "$work/dbtext/subscriber"
sed -e "s|__DBTEXT_DIR__|$work/dbtext|" -e "s|__PBX_PORT__|25070|" "$root/Tests/Fixtures/kamailio/customer-server.cfg" > "$work/kamailio.cfg"
kamailio -f "$work/kamailio.cfg" -DD -E -l udp:127.0.0.1:25060 -Y "$work" -w "$work" -m 32 -M 8 -n 1 > "$work/kamailio.log" 2>&1 &
pids+=($!)

step "the mobile-core simulator with handset $iccid"
"$bin" simulator --sip udp:127.0.0.4:25090 --http 127.0.0.1:18070 --switch 127.0.0.2:25080 --handset "$iccid" > "$work/simulator.log" 2>&1 &
pids+=($!)

step "switchboard serve, and the SIM provisioned"
cat > "$work/switchboard.yaml" <<EOF
node: { name: demo }
sip: { listen: [udp:127.0.0.2:25080] }
http: { listen: 127.0.0.1:18080 }
database: { url: "sqlite:$work/switchboard.sqlite" }
mobile_core: { address: "127.0.0.4:25090" }
sims:
  password_key: "$(head -c 32 /dev/urandom | base64)"
  registration: { expires: 300, reload_seconds: 2 }
EOF
cat > "$work/sims.yaml" <<EOF
accounts:
  - { id: "920700", name: Acme, currency: GBP, balance: "10" }
sims:
  - { iccid: "$iccid", account: "920700", sip_hostname: "127.0.0.1:25060", username: "7001", password: "sim-pw", call_rate: "0.06", text_rate: "0.04" }
EOF
"$bin" provision "$work/sims.yaml" --config "$work/switchboard.yaml"
key=$("$bin" api-key create --config "$work/switchboard.yaml" --label demo)
"$bin" serve --config "$work/switchboard.yaml" > "$work/switchboard.log" 2>&1 &
pids+=($!)

step "waiting for the SIM to register with Kamailio"
state=""
for _ in $(seq 1 40); do
    sleep 0.5
    state=$(curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:18080/api/v1/sims/$iccid/registration" \
            | json "[r['state'] for r in d.get('registrations', [])]" 2>/dev/null || true)
    [[ "$state" == *registered* ]] && break
done
curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:18080/api/v1/sims/$iccid/registration" \
    || { echo "demo: switchboard's API does not answer; its log ends:"; tail -30 "$work/switchboard.log"; exit 1; }
echo

step "call 1: the customer's PBX calls the SIM's user 7001 at Kamailio; the handset answers, hears the call for 1.5 s"
sipp -sf "$root/Tests/Fixtures/sipp/customer_calls_sim.xml" -s 7001 127.0.0.1:25060 -i 127.0.0.1 -p 25100 -m 1 -nostdin \
    -timeout 20s -timeout_error > "$work/sipp-caller.log" 2>&1 && echo "SIPp (customer's PBX): call completed" \
    || { echo "SIPp (customer's PBX): call failed"; tail -30 "$work/sipp-caller.log"; }
curl -s "http://127.0.0.1:18070/handsets/$iccid/calls" \
    | json "[(c['direction'], c['from_user'], c['state'], c['final_code']) for c in d]"

step "call 2: the handset dials +447700900123; the PBX behind Kamailio answers; the handset hangs up after 2 s"
sipp -sn uas -i 127.0.0.1 -p 25070 -m 1 -nostdin -timeout 20s > "$work/sipp-pbx.log" 2>&1 &
pbx=$!
sleep 0.5
call=$(curl -s -X POST -H 'Content-Type: application/json' -d '{"to": "+447700900123"}' \
       "http://127.0.0.1:18070/handsets/$iccid/calls" | json "d['id']")
sleep 2
curl -s -X POST "http://127.0.0.1:18070/calls/$call/hangup" | json "(d['direction'], d['peer'], d['state'], d['final_code'])"
wait "$pbx" && echo "SIPp (PBX): call completed" || { echo "SIPp (PBX): call failed"; tail -30 "$work/sipp-pbx.log"; }

step "call 3: the handset dials *#06# (a GSM code: never sent to the customer)"
call=$(curl -s -X POST -H 'Content-Type: application/json' -d '{"to": "*#06#"}' \
       "http://127.0.0.1:18070/handsets/$iccid/calls" | json "d['id']")
sleep 1
curl -s "http://127.0.0.1:18070/calls/$call" | json "(d['peer'], d['final_code'], d['reason_phrase'])"

step "a text to the handset through the text gateway (POST /api/v1/texts, form-encoded as a script sends it)"
text=$(curl -s -H "Authorization: Bearer $key" http://127.0.0.1:18080/api/v1/texts \
       -d "to=$iccid" --data-urlencode "text=Hello from the demo" -d from=Acme | json "d['id']")
sleep 1
curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:18080/api/v1/texts/$text" | json "(d['direction'], d['state'], d['sip_code'], d['segments'])"
curl -s "http://127.0.0.1:18070/handsets/$iccid/texts" | json "[(t['direction'], t['peer'], t['text']) for t in d]"

step "the CDRs"
sleep 1
curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:18080/api/v1/cdrs?account=920700" \
    | json "'\n'.join(f\"{c['from']} -> {c['to']}: {c['final_status']} {c.get('reason') or ''} {c['duration_seconds']} s, cost {c['cost']}\" for c in d['cdrs'])"
