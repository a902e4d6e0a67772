#!/usr/bin/env bash
# Runs every test. Installs what the tests need on a fresh Debian machine:
# SIPp (sip-tester) and Kamailio for interop tests, dnsmasq for RFC 3263
# resolver tests, PostgreSQL for the store tests, Chromium for the control pages. The tests start and stop
# their own SIPp, Kamailio and dnsmasq on loopback ports; this script starts a
# throw-away PostgreSQL on a loopback port and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
[ -x /usr/sbin/dnsmasq ] || command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
[ -x /usr/sbin/kamailio ] || command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
    echo "== installing ${need[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The REST API test validates openapi.yaml with openapi-spec-validator (PyPI); the
# control pages test drives Chromium over the DevTools protocol with websocket-client.
if ! python3 -c "import openapi_spec_validator, yaml, websocket" >/dev/null 2>&1; then
    echo "== installing openapi-spec-validator, websocket-client"
    python3 -m pip install -q openapi-spec-validator pyyaml websocket-client 2>/dev/null \
        || python3 -m pip install -q --break-system-packages openapi-spec-validator pyyaml websocket-client
fi

echo "== starting a throw-away PostgreSQL"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir=$(mktemp -d /tmp/switchboard-pg.XXXXXX)
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
as_pg "$pgbin/initdb" -D "$pgdir/data" -A trust -U switchboard >/dev/null
# Tests run in parallel, each store with its own connection pool: more than the default 100 clients.
as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
    -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null
stop_pg() { as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap stop_pg EXIT
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U switchboard switchboard_test
export SWITCHBOARD_TEST_POSTGRES_URL="postgres://switchboard@127.0.0.1:$pgport/switchboard_test?sslmode=disable"

echo "== building"
mkdir -p .build
if ! swift build --build-tests > .build/build-log.txt 2>&1; then
    grep -E "error:" .build/build-log.txt | head -50 || tail -50 .build/build-log.txt
    echo "build failed"
    exit 1
fi
grep -E "warning:" .build/build-log.txt | grep -v "/.build/checkouts/" | sort -u | head -20 || true
# Every test runs: first all but the browser test, in parallel; then the browser test
# alone (headless Chromium starting takes both cores for a moment, which made the
# timing-sensitive SIP tests around it flaky).
browser='InABrowser'
echo "== testing"
set +e
swift test --skip-build --skip "$browser" > .build/test-output.txt 2>&1
status=$?
echo "== testing the control pages in headless Chromium"
swift test --skip-build --filter "$browser" >> .build/test-output.txt 2>&1
browser_status=$?
set -e
# Failures and the summary lines; the whole log is in .build/test-output.txt.
grep -vE '^(◇|↳|✔ Test [a-zA-Z0-9_]+\(.*passed after|Test Case .* (started|passed)|Test Suite .* (started|passed)|\s*Executed 0 tests)' .build/test-output.txt | grep -v '^\s*$' | tail -200
[ "$status" -eq 0 ] && [ "$browser_status" -eq 0 ]
