#!/usr/bin/env bash
# What TLS costs: one run on one machine. Starts `ledger-node dev` (mutual TLS), measures
# transfers at one client in flight, at 128, and batched (16 clients x 64 per call), then the
# same against `ledger-node dev --insecure-plaintext`. Needs the release binaries:
#   cargo build --release -p ledger-node -p ledger-client
# Each cluster lives in a temporary folder that is removed afterwards; only 127.0.0.1.
set -euo pipefail
bin=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
duration=${DURATION:-10}

run_mode() {
  local mode=$1 bench_flags=$2; shift 2
  local dir
  dir=$(mktemp -d)
  (
    cd "$dir"
    "$bin/ledger-node" dev "$@" >node.out 2>&1 &
    local pid=$!
    trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 1 60); do grep -q "Press Ctrl-C" node.out && break; sleep 1; done
    grep -q "Press Ctrl-C" node.out || { echo "the $mode cluster did not start:"; cat node.out; exit 1; }
    for load in "--concurrency 1" "--concurrency 128" "--concurrency 16 --batch 64"; do
      echo "== $mode $load"
      # shellcheck disable=SC2086
      "$bin/ledger-bench" $bench_flags $load --duration "$duration" 2>&1 | grep -E "^transfers|^latency"
    done
  )
}

run_mode tls ""
run_mode plaintext "--insecure-plaintext" --insecure-plaintext
