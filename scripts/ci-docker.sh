#!/usr/bin/env bash
# The container image and the compose cluster (deploy/docker/), checked end to end: builds
# the image from the release binaries, starts 3 nodes with mutual TLS and the gateway with
# docker-compose, writes through ledgerctl as an operator, reads the account back over HTTPS
# as an auditor with an API key, kills the leader's container (SIGKILL), writes and reads
# again, restarts it and waits for the three to agree, and takes a backup inside the
# network; and the Kubernetes manifests against the API's schemas (kubernetes-validate from
# PyPI). Installs what it needs from Debian (docker.io, docker-compose, debootstrap) and
# starts the Docker engine when none runs (and stops it again). Removes its containers,
# volumes and image at exit; keeps the debootstrap base image for the next run.
#
#   scripts/ci-docker.sh        (after `cargo build --release --workspace --bins`)
set -euo pipefail
cd "$(dirname "$0")/.."
project=ledgerci$$
image=payment-ledger:ci-$$
port=${LEDGER_GATEWAY_PORT:-7480}
work=$(mktemp -d)
dockerd_pid=

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$work/apt.log" 2>&1 \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$work/apt.log" 2>&1; } \
    || { tail -20 "$work/apt.log"; exit 1; }
fi

# The Kubernetes manifests against the API's schemas (no cluster runs them here).
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q kubernetes-validate==1.37.0
"$work/venv/bin/kubernetes-validate" --strict --quiet deploy/k8s/*.yaml
echo "deploy/k8s: valid against Kubernetes 1.37 (strict)"

compose() { LEDGER_IMAGE=$image LEDGER_GATEWAY_PORT=$port docker-compose -p "$project" -f deploy/docker/compose.yaml "$@"; }
cleanup() {
  set +e
  if [ -n "$image_built" ]; then
    compose down -v --remove-orphans >/dev/null 2>&1
    docker image rm -f "$image" >/dev/null 2>&1
  fi
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid"; wait "$dockerd_pid" 2>/dev/null
    ip link delete docker0 2>/dev/null
    if [ -n "${bridge_nf:-}" ]; then sysctl -qw "net.bridge.bridge-nf-call-iptables=$bridge_nf"; fi
  fi
  rm -rf "$work"
}
image_built=
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  echo "starting the Docker engine"
  # Without its firewall rules: they would set the host's FORWARD policy to drop and make
  # bridged traffic pass through it (br_netfilter), which cuts the chaos harness's
  # namespaces off from each other once the engine has gone. The compose network needs
  # neither (containers on one bridge; the published port goes through docker-proxy).
  bridge_nf=$(sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null || true)
  dockerd --iptables=false --ip-masq=false >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$dockerd_pid" 2>/dev/null; then
      echo "dockerd did not start:"; tail -20 "$work/dockerd.log"; exit 1
    fi
    sleep 0.5
  done
fi

image_built=yes
scripts/docker-image.sh "$image"
compose up -d 2>&1 | grep -v "^Creating\|^Pulling" || true

fail() {
  echo "FAILED: $*"
  compose ps
  compose logs --tail 30
  exit 1
}
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 1
  done
}
healthy() {
  local id
  for service in "$@"; do
    id=$(compose ps -q "$service")
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ] || return 1
  done
}
# ledgerctl as the compose operator, from inside the gateway's container.
ctl() {
  compose exec -T gateway ledgerctl --endpoints node1:7201,node2:7201,node3:7201 \
    --certs /etc/ledger/tls --identity operator-admin "$@"
}

wait_for 180 healthy node1 node2 node3 gateway || fail "the cluster did not become ready"
echo "3 nodes and the gateway ready"

account=$(ctl --json open-account --name "Compose Holder" --card 6222020200112233446 \
  --password 135790 --phone 13800138000 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["account"])') \
  || fail "open an account"
ctl deposit "$account" 123.45 >/dev/null || fail "deposit"

compose exec -T gateway cat /etc/ledger/tls/ca.crt >"$work/ca.crt"
key=$(compose exec -T gateway cat /etc/ledger/tls/auditor.apikey | tr -d '\r\n')
balance() {
  curl -fsS --cacert "$work/ca.crt" -H "Authorization: Bearer $key" \
    "https://localhost:$port/v1/accounts/$account" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["balance_fen"])'
}
[ "$(balance)" = 12345 ] || fail "the gateway shows balance $(balance || true), not 12345"
echo "account $account: 12345 fen, through ledgerctl (mTLS) and the gateway (HTTPS, API key)"

leader=$(ctl --json status | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n.get("role") == "Leader":
        print(n["id"])' | head -1)
[ -n "$leader" ] || fail "no leader in ledgerctl status"
docker kill "$(compose ps -q "node$leader")" >/dev/null
echo "node $leader (the leader) killed"
ctl deposit "$account" 1 >/dev/null || fail "deposit after the leader was killed"
[ "$(balance)" = 12445 ] || fail "balance after the failover: $(balance || true)"
compose start "node$leader" >/dev/null 2>&1
wait_for 120 healthy "node$leader" || fail "node $leader did not come back"
converged() {
  ctl --json status | python3 -c '
import json, sys
nodes = json.load(sys.stdin)
applied = {n.get("applied") for n in nodes}
sys.exit(0 if len(nodes) == 3 and len(applied) == 1 and None not in applied else 1)'
}
wait_for 60 converged || fail "the nodes did not converge after the restart"
echo "node $leader back; the three nodes agree"

compose exec -T gateway ledger-node backup --endpoint node1:7201 --to /tmp/compose.backup \
  --certs /etc/ledger/tls --identity operator-admin >"$work/backup.txt" \
  || fail "backup: $(cat "$work/backup.txt")"
grep -q "state hash" "$work/backup.txt" || fail "backup said: $(cat "$work/backup.txt")"
echo "backup taken: $(head -1 "$work/backup.txt")"
echo "docker: all checks passed"
