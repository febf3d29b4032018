#!/usr/bin/env bash
# The HTTP/JSON gateway checked by clients no one here wrote: schemathesis (property-based,
# every operation, every check) against a fresh dev cluster's gateway, once as a merchant
# and once as the bank's channel (API keys), then the article's story in Python with
# `requests` (scripts/story.py). Needs the release binaries (`cargo build --release
# --workspace --bins`) and python3 with venv; installs schemathesis and requests from PyPI
# into a temporary venv. Everything it starts and writes goes away at exit.
#
#   scripts/ci-gateway.sh [MAX_EXAMPLES]     # CI runs 25 per operation
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-25}
work=$(mktemp -d)
dev_pid=
cleanup() {
  if [ -n "$dev_pid" ]; then kill "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q schemathesis==4.32.5 requests==2.34.2

# Ports of its own (BASE 7600: nodes 7701-7703, gateway 7900), so a dev cluster on the
# default ports does not collide with it.
base=7600
gateway=https://localhost:$((base + 300))
target/release/ledger-node dev --data-dir "$work/dev" --base-port $base \
  --password-iterations 1000 >"$work/dev.log" 2>&1 &
dev_pid=$!
certs=$work/dev/certs
deadline=$((SECONDS + 120))
until curl -sf --cacert "$certs/ca.crt" "$gateway/health" >/dev/null 2>&1 \
  && grep -q "Press Ctrl-C" "$work/dev.log"; do
  if [ $SECONDS -ge $deadline ] || ! kill -0 "$dev_pid" 2>/dev/null; then
    echo "the dev cluster's gateway did not come up:"; cat "$work/dev.log"; exit 1
  fi
  sleep 0.5
done
echo "dev cluster and gateway up at $gateway"

# The story first: it leaves records (accounts, a merchant, payments) for schemathesis to
# find besides the ones it makes up.
"$work/venv/bin/python" scripts/story.py --dev-dir "$work/dev" --gateway "$gateway" \
  --ledgerctl target/release/ledgerctl \
  --endpoints "127.0.0.1:$((base + 101)),127.0.0.1:$((base + 102)),127.0.0.1:$((base + 103))"

for who in merchant-1 channel-web; do
  echo "schemathesis as $who"
  timeout 600 "$work/venv/bin/st" --config-file schemathesis.toml run "$gateway/openapi.json" \
    --checks all --tls-verify "$certs/ca.crt" \
    -H "Authorization: Bearer $(cat "$certs/$who.apikey")" \
    --max-examples "$examples" --seed 12 --request-timeout 20 --workers 1 \
    --generation-database none --no-color
done
