#!/usr/bin/env bash
# The standard loads in one go (issue 16's table): starts a fresh `ledger-node dev` cluster
# (3 nodes, mutual TLS) in a temporary folder, runs `ledger-bench --sweep` against it (each
# load DURATION seconds, default 20) and prints the table; the folder is removed afterwards.
# NODE_ARGS go to `ledger-node dev` (Raft timings to compare, say). The Raft term of each
# node before and after tells how many elections the load caused (none, on a steady cluster).
# Only 127.0.0.1. Needs the release binaries:
#   cargo build --release -p ledger-node -p ledger-client
set -euo pipefail
bin=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
duration=${DURATION:-20}
dir=$(mktemp -d)
cd "$dir"
# shellcheck disable=SC2086 # NODE_ARGS is split into flags on purpose
"$bin/ledger-node" dev ${NODE_ARGS:-} >node.out 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 60); do grep -q "Press Ctrl-C" node.out && break; sleep 1; done
grep -q "Press Ctrl-C" node.out || { echo "the dev cluster did not start:"; cat node.out; exit 1; }
# The dev cluster's admin ports are 7301.. (BASE+200+id).
terms() {
  for id in 1 2 3; do
    curl -sf "http://127.0.0.1:$((7300 + id))/metrics" | awk '$1 == "ledger_raft_term" {printf "%s ", $2}'
  done
}
before=$(terms)
"$bin/ledger-bench" --sweep --duration "$duration"
echo "Raft term of nodes 1 2 3: before the loads ${before}after $(terms)"
echo "disk use of the cluster's folder: $(du -sh data/dev | cut -f1)"
