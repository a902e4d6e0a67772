#!/usr/bin/env bash
# Runs every test. Installs what the tests need on a fresh Debian machine:
# SIPp (sip-tester) and Kamailio for interop tests, dnsmasq for RFC 3263
# resolver tests. The tests start and stop their own SIPp, Kamailio and
# dnsmasq on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
[ -x /usr/sbin/dnsmasq ] || command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
[ -x /usr/sbin/kamailio ] || command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
if ((${#need[@]})); then
    echo "== installing ${need[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== building"
mkdir -p .build
if ! swift build --build-tests > .build/build-log.txt 2>&1; then
    grep -E "error:" .build/build-log.txt | head -50 || tail -50 .build/build-log.txt
    echo "build failed"
    exit 1
fi
grep -E "warning:" .build/build-log.txt | grep -v "/.build/checkouts/" | sort -u | head -20 || true
echo "== testing"
set +e
swift test --skip-build > .build/test-output.txt 2>&1
status=$?
set -e
# Failures and the summary lines; the whole log is in .build/test-output.txt.
grep -vE '^(◇|↳|✔ Test [a-zA-Z0-9_]+\(.*passed after|Test Case .* (started|passed)|Test Suite .* (started|passed)|\s*Executed 0 tests)' .build/test-output.txt | grep -v '^\s*$' | tail -200
exit "$status"
