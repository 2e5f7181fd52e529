#!/usr/bin/env bash
# Runs the aarch64 (Raspberry Pi) build under qemu-aarch64 against the mock upstream:
# it must start, answer /health, serve one chat completion and stream one answer.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/aarch64-unknown-linux-musl/release/routeplane
[ -x "$BIN" ] || { echo "build it first: make pi"; exit 1; }
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null \
  || (apt-get update -qq && apt-get install -y -qq qemu-user)
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
cargo build --quiet --release --example mock_upstream

TMP=$(mktemp -d)
# The usage ledger goes to $XDG_STATE_HOME: into this run's directory, not the user's.
export XDG_STATE_HOME="$TMP/state"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
target/release/examples/mock_upstream 0 5 > "$TMP/mock" & PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/mock" ] && break; sleep 0.05; done
MOCK=$(head -1 "$TMP/mock")
printf 'providers:\n  mock:\n    api_base: http://%s/v1\n    models: [m]\n' "$MOCK" > "$TMP/c.yaml"
"$QEMU" "$BIN" -c "$TMP/c.yaml" --listen 127.0.0.1:0 2> "$TMP/rp" & PIDS+=($!)
for _ in $(seq 200); do grep -q 'listening on' "$TMP/rp" 2>/dev/null && break; sleep 0.05; done
RP=$(grep -o 'listening on http://[0-9.:]*' "$TMP/rp" | sed 's|listening on http://||')
scripts/smoke-check.sh "$RP"
echo "pi-smoke: aarch64 routeplane under qemu served /health, a completion and a 21-event stream"
