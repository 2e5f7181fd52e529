#!/usr/bin/env bash
# Soak and fault test: SOAK_SECS (default 120) of mixed streaming and non-streaming load
# through a virtual model whose two endpoints misbehave on purpose (refused, stalled,
# 500, 429, streams broken half-way). Afterwards: the process is alive, /health answers,
# RSS is back near where it started, every request got an answer (success or a proper
# error), and the per-request log lines add up. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-120}
cargo build --quiet --release --bin routeplane --examples

TMP=$(mktemp -d)
# The usage ledger goes to $XDG_STATE_HOME: into this run's directory, not the user's.
export XDG_STATE_HOME="$TMP/state"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"' EXIT
start() {
  local name=$1; shift
  "$@" > "$TMP/$name.out" 2>"$TMP/$name.err" & PIDS+=($!)
  for _ in $(seq 200); do [ -s "$TMP/$name.out" ] && break; sleep 0.01; done
  head -1 "$TMP/$name.out"
}
A=$(CHAOS=1 start a target/release/examples/mock_upstream 0 5)
B=$(CHAOS=1 start b target/release/examples/mock_upstream 0 5)
cat > "$TMP/c.yaml" <<YAML
workers: 128
timeouts:
  first_byte_secs: 1
  idle_secs: 1
failover:
  cooldown_secs: 1
providers:
  a: {api_base: "http://$A/v1", models: [m]}
  b: {api_base: "http://$B/v1", models: [m]}
models:
  smart:
    endpoints: [a:m, b:m]
YAML
target/release/routeplane -c "$TMP/c.yaml" --listen 127.0.0.1:0 2> "$TMP/rp.log" & RP_PID=$!
PIDS+=($RP_PID)
for _ in $(seq 200); do grep -q 'listening on' "$TMP/rp.log" && break; sleep 0.02; done
RP=$(grep -o 'listening on http://[0-9.:]*' "$TMP/rp.log" | sed 's|listening on http://||')
rss() { awk '/VmRSS/ {print $2}' "/proc/$RP_PID/status"; }
sleep 0.5
RSS_START=$(rss)
echo "soak: ${SOAK_SECS}s against http://$RP (start RSS ${RSS_START} KiB)"

BODY='{"model":"smart","messages":[{"role":"user","content":"hi"}]}'
STREAM='{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}'
DEADLINE=$((SECONDS + SOAK_SECS))
worker() {
  local kind=$1 n=0
  while [ $SECONDS -lt $DEADLINE ]; do
    local body=$BODY; [ "$kind" = stream ] && body=$STREAM
    code=$(curl -s -o "$TMP/$kind.$BASHPID.body" -w '%{http_code}' --max-time 10 \
      -H 'content-type: application/json' -d "$body" "http://$RP/v1/chat/completions" || echo 000)
    echo "$kind $code" >> "$TMP/codes.$BASHPID"
    n=$((n + 1))
  done
}
for _ in 1 2 3 4; do worker plain & done
for _ in 1 2 3 4; do worker stream & done
wait_workers() { for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j" || true;; esac; done; }
wait_workers
sleep 2

kill -0 "$RP_PID" || { echo "soak: FAIL: routeplane died"; tail -20 "$TMP/rp.log"; exit 1; }
curl -sf "http://$RP/health" > /dev/null || { echo "soak: FAIL: /health does not answer"; exit 1; }
RSS_END=$(rss)
cat "$TMP"/codes.* > "$TMP/codes"
TOTAL=$(wc -l < "$TMP/codes")
OK=$(grep -c ' 200$' "$TMP/codes" || true)
NOANSWER=$(grep -c ' 000$' "$TMP/codes" || true)
BAD=$(grep -vcE ' (200|429|502|503)$' "$TMP/codes" || true)
LOGGED=$(grep -c 'served_by=\|status=' "$TMP/rp.log" || true)
echo "soak: $TOTAL requests: $OK answered 200, $((TOTAL - OK)) errors ($(grep -v ' 200$' "$TMP/codes" | awk '{print $2}' | sort | uniq -c | tr '\n' ' '))"
echo "soak: log lines $LOGGED; RSS ${RSS_START} -> ${RSS_END} KiB"
[ "$NOANSWER" -eq 0 ] || { echo "soak: FAIL: $NOANSWER requests got no answer"; exit 1; }
[ "$BAD" -eq 0 ] || { echo "soak: FAIL: unexpected status codes"; exit 1; }
[ "$LOGGED" -ge "$TOTAL" ] || { echo "soak: FAIL: fewer log lines ($LOGGED) than requests ($TOTAL)"; exit 1; }
# RSS may grow by what the allocator keeps for the worker threads; not without bound.
[ "$RSS_END" -le $((RSS_START + 65536)) ] || { echo "soak: FAIL: RSS grew from $RSS_START to $RSS_END KiB"; exit 1; }
echo "soak: PASS"
