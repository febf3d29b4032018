#!/usr/bin/env bash
# README's "A merchant's first payment over HTTP", run as written: the shell block is taken
# from README.md itself, against a fresh `ledger-node dev` on the default ports in
# ./data/dev, and its answers are checked (the payment settled, the day's reconciliation
# CSV lists it). Needs the release ledger-node (`cargo build --release -p ledger-node`);
# ledgerctl is the block's own `cargo run`. Refuses to touch an existing ./data/dev; removes
# what it made at exit.
#
#   scripts/ci-readme-http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -e data/dev ]; then
  echo "data/dev exists: this script runs the README on a fresh one; move it away first"; exit 1
fi
work=$(mktemp -d)
dev_pid=
cleanup() {
  if [ -n "$dev_pid" ]; then kill "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; fi
  rm -rf "$work" data/dev
  rmdir data 2>/dev/null || true
}
trap cleanup EXIT

# The first ```sh block after the section's opening sentence.
awk '/^A merchant.s first payment over HTTP/ {found = 1}
     found && /^```sh$/ {inside = 1; next}
     inside && /^```$/ {exit}
     inside {print}' README.md >"$work/block.sh"
if [ "$(wc -l <"$work/block.sh")" -lt 10 ]; then
  echo "README.md: the merchant's first payment over HTTP was not found"; exit 1
fi

target/release/ledger-node dev >"$work/dev.log" 2>&1 &
dev_pid=$!
deadline=$((SECONDS + 120))
until curl -sf --cacert data/dev/certs/ca.crt https://localhost:7400/health >/dev/null 2>&1 \
  && grep -q "Press Ctrl-C" "$work/dev.log"; do
  if [ $SECONDS -ge $deadline ] || ! kill -0 "$dev_pid" 2>/dev/null; then
    echo "the dev cluster did not come up:"; cat "$work/dev.log"; exit 1
  fi
  sleep 0.5
done

bash -euo pipefail "$work/block.sh" >"$work/out.txt" 2>&1 || {
  echo "the README block failed:"; cat "$work/out.txt"; exit 1
}
cat "$work/out.txt"
grep -q '"state":"settled"' "$work/out.txt" || { echo "README: payment 1 did not settle"; exit 1; }
grep -q ',payment,payment 1,16,128.00,' "$work/out.txt" \
  || { echo "README: the day's reconciliation does not list payment 1"; exit 1; }
echo "README's first payment over HTTP: works as written"
