#!/usr/bin/env bash
# Fuzz the SIP/SDP codec with libFuzzer for a given time.
#   scripts/fuzz.sh [SECONDS]   (default 600)
# The corpus is seeded from the RFC 4475 messages; crashers land in
# fuzz-artifacts/ — copy each into Tests/Fixtures/fuzz-crashers/ (a regression
# test parses every file there) and fix the codec.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
root=$PWD
(cd Fuzz && swift build -c debug --scratch-path "$root/.build-fuzz" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 | grep -v "Cannot export local symbol" | tail -3)
mkdir -p .build-fuzz/corpus fuzz-artifacts
cp Tests/Fixtures/rfc4475/*/*.dat .build-fuzz/corpus/
[ -d Tests/Fixtures/fuzz-crashers ] && cp Tests/Fixtures/fuzz-crashers/* .build-fuzz/corpus/ 2>/dev/null || true
exec .build-fuzz/debug/FuzzSIPMessage .build-fuzz/corpus \
    -max_total_time="$seconds" -max_len=70000 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=fuzz-artifacts/ -print_final_stats=1
