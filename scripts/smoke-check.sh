#!/usr/bin/env bash
# Checks that a routeplane at ADDR, in front of examples/mock_upstream declared as model
# `m`, does its job: /health, a chat completion and a 21-event stream. Used by
# scripts/pgo.sh on the binaries it builds (`make pgo`, `make static`, `make pi`).
#
#   scripts/smoke-check.sh 127.0.0.1:PORT
set -euo pipefail
RP=${1:?usage: scripts/smoke-check.sh ADDR}
curl -sf "http://$RP/health" | grep -q ok
curl -sf "http://$RP/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' | grep -q 'Hello there'
EVENTS=$(curl -sfN "http://$RP/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"m","stream":true,"messages":[]}' | grep -c '^data: ')
[ "$EVENTS" -eq 21 ] || { echo "expected 21 events, got $EVENTS" >&2; exit 1; }
