#!/usr/bin/env bash
# Parser benchmark, release mode: ns and mallocs per message.
# Anchors measured elsewhere: sipgo (Go) ~2.7 µs per INVITE, SIPhon (Rust) ~1.3 µs.
set -euo pipefail
cd "$(dirname "$0")/../Benchmarks"
swift package --allow-writing-to-package-directory benchmark --format markdown "$@"
