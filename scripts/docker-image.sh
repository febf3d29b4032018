#!/usr/bin/env bash
# Builds the image `payment-ledger:dev` (deploy/docker/Dockerfile) from this checkout's
# release binaries, on a Debian 12 base made from Debian's archive with debootstrap
# (`payment-ledger/bookworm-base:1`, built once and kept). Needs a running Docker engine,
# debootstrap, and `cargo build --release --workspace --bins` done.
#
#   scripts/docker-image.sh [TAG]        # default payment-ledger:dev
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-payment-ledger:dev}
base=payment-ledger/bookworm-base:1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "building $base from deb.debian.org (debootstrap, about a minute)"
  debootstrap --variant=minbase --include=ca-certificates,curl bookworm "$work/rootfs" \
    http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*
  tar -C "$work/rootfs" -c . | docker import - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

mkdir -p "$work/context/bin"
for bin in ledger-node ledger-gateway ledgerctl; do
  [ -x "target/release/$bin" ] || { echo "target/release/$bin missing: cargo build --release --workspace --bins"; exit 1; }
  cp "target/release/$bin" "$work/context/bin/"
  # The release profile keeps line tables for backtraces on the host; the image need not.
  if command -v strip >/dev/null; then strip --strip-debug "$work/context/bin/$bin"; fi
done
cp deploy/docker/Dockerfile deploy/docker/make-certs.sh "$work/context/"
docker build -q --build-arg "BASE=$base" -t "$tag" "$work/context" >/dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
