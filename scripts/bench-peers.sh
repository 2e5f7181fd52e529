# shellcheck shell=bash
# The peers of `scripts/bench.sh --peers`: LiteLLM proxy and the Portkey gateway, installed
# into bench/peers (gitignored) from PyPI and npm at pinned versions, started on 127.0.0.1
# against the benchmark's mock, checked, and measured in the same rounds as routeplane.
# Sourced by scripts/bench.sh, which provides TMP, MOCK, BODY, SBODY, ADDR, HEADERS,
# TARGETS, PEER_PGIDS and log; not meant to be run on its own.
#
# LiteLLM: `litellm --config` with one model, m, routed to the mock as an OpenAI-compatible
# endpoint; uvicorn with as many workers as cores, its documented setting off Kubernetes
# ("--num_workers $(nproc)"); no database, no telemetry, no cost-map download, uvicorn's
# info and access logs off. Portkey: `node build/start-server.js --headless` with
# NODE_ENV=production (no UI, no log stream); each request names the mock in Portkey's
# headers. Neither is given a key, a database or a cache, and neither may reach the
# internet: after the load each one's sockets are checked for any outside 127.0.0.1.

PEERS_DIR=bench/peers
# Not 1.82.7 or 1.82.8: those LiteLLM releases were compromised.
LITELLM_VERSION=1.82.6
PORTKEY_VERSION=1.15.2
# The gateway's own lockfile holds @hono/node-server 1.13; from 1.14.2 on, node-server
# hands a streamed response the upstream's immutable headers and every stream fails with
# "TypeError: immutable" (Portkey-AI/gateway issue 1389). 1.14.1 is the last that works;
# @hono/node-ws 1.3 would pull a newer node-server back in, so it stays at 1.2.0.
PORTKEY_PINS=("@portkey-ai/gateway@$PORTKEY_VERSION" "@hono/node-server@1.14.1" "@hono/node-ws@1.2.0")
LITELLM_VENV=$PEERS_DIR/litellm-venv
PORTKEY_MAIN=$PEERS_DIR/node_modules/@portkey-ai/gateway/build/start-server.js
LITELLM_WORKERS=$(nproc)

declare -A PEER_STARTUP=() PEER_ALL_MS=() PEER_IDLE_KB=() PEER_LOAD_KB=() PEER_PROCS=() PEER_HELD_KB=() PEER_HELD_JSON=()
PEER_NAMES=()

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A process and all its descendants, one pid a line.
tree_pids() {
  local c
  echo "$1"
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree_pids "$c"; done
}

# The sum of the peak RSS (VmHWM, kB) of a process tree's live processes.
tree_hwm() {
  local p kb sum=0
  for p in $(tree_pids "$1"); do
    kb=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    sum=$((sum + ${kb:-0}))
  done
  echo "$sum"
}

# Each step below that can fail says why in WHY and returns 1.
WHY=""

# Installs LiteLLM into its venv unless the pinned version is there.
install_litellm() {
  local have
  have=$("$LITELLM_VENV/bin/python" -c 'import importlib.metadata as m, uvicorn; print(m.version("litellm"))' 2>/dev/null || true)
  [ "$have" = "$LITELLM_VERSION" ] && [ -x "$LITELLM_VENV/bin/litellm" ] && return 0
  log "installing litellm[proxy]==$LITELLM_VERSION from PyPI into $LITELLM_VENV (once; a few minutes)"
  mkdir -p "$PEERS_DIR"
  if ! { python3 -m venv "$LITELLM_VENV" \
    && "$LITELLM_VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"; } >"$PEERS_DIR/litellm-install.log" 2>&1; then
    WHY="pip failed; see $PEERS_DIR/litellm-install.log"; return 1
  fi
}

# Installs the Portkey gateway into bench/peers/node_modules unless the pinned versions are there.
# Install scripts are skipped: the gateway's only one is patch-package, whose patches the
# published package does not ship.
install_portkey() {
  local have
  have=$(cd "$PEERS_DIR/node_modules" 2>/dev/null \
    && node -p 'const v = p => JSON.parse(require("fs").readFileSync(p + "/package.json")).version;
      v("@portkey-ai/gateway") + " " + v("@hono/node-server")' 2>/dev/null) || true
  # (and no newer node-server of its own under the gateway)
  if [ "$have" = "$PORTKEY_VERSION 1.14.1" ] && [ ! -e "$PEERS_DIR/node_modules/@portkey-ai/gateway/node_modules/@hono/node-server" ]; then
    return 0
  fi
  command -v npm >/dev/null || { WHY="npm is not installed"; return 1; }
  log "installing @portkey-ai/gateway@$PORTKEY_VERSION from npm into $PEERS_DIR/node_modules (once)"
  mkdir -p "$PEERS_DIR"
  npm install --prefix "$PEERS_DIR" --no-audit --no-fund --ignore-scripts --save-exact "${PORTKEY_PINS[@]}" \
    >"$PEERS_DIR/portkey-install.log" 2>&1 \
    || { WHY="npm failed; see $PEERS_DIR/portkey-install.log"; return 1; }
}

# Starts peer $1 against the upstream at $2, logging to $TMP/$3.log. Sets STARTED_PID,
# STARTED_ADDR and STARTED_MS (exec to the first answered liveness request); for LiteLLM
# it then waits until every worker has started, and sets STARTED_ALL_MS.
start_peer() {
  local name=$1 up=$2 tag=$3 port health t0 t1 ready
  port=$(free_port)
  STARTED_ADDR=127.0.0.1:$port
  t0=$(date +%s%N)
  case $name in
    litellm)
      cat >"$TMP/$tag.yaml" <<EOF
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: http://$up/v1
      api_key: dummy
EOF
      # uvicorn's own config less its access log: a line per request is not free.
      cat >"$TMP/litellm-log.json" <<'EOF'
{"version": 1, "disable_existing_loggers": false,
 "formatters": {"default": {"format": "%(levelname)s: %(message)s"}},
 "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
 "loggers": {"uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": false},
             "uvicorn.error": {"level": "INFO"},
             "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": false}}}
EOF
      health=/health/liveliness
      env -u DATABASE_URL LITELLM_MODE=PRODUCTION LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
        setsid "$LITELLM_VENV/bin/litellm" --config "$TMP/$tag.yaml" --host 127.0.0.1 --port "$port" \
        --num_workers "$LITELLM_WORKERS" --telemetry False --log_config "$TMP/litellm-log.json" \
        >"$TMP/$tag.log" 2>&1 &
      ;;
    portkey)
      health=/
      NODE_ENV=production setsid node "$PORTKEY_MAIN" --port="$port" --headless >"$TMP/$tag.log" 2>&1 &
      ;;
  esac
  STARTED_PID=$!
  PEER_PGIDS+=("$STARTED_PID")
  STARTED_MS="" STARTED_ALL_MS=""
  for _ in $(seq 1 3000); do
    if ! kill -0 "$STARTED_PID" 2>/dev/null; then
      WHY="it exited: $(tail -c 300 "$TMP/$tag.log" | tr '\n' ' ')"; return 1
    fi
    if curl -sf -o /dev/null --max-time 2 "http://$STARTED_ADDR$health"; then
      t1=$(date +%s%N); STARTED_MS=$(( (t1 - t0) / 1000000 )); break
    fi
    sleep 0.02
  done
  [ -n "$STARTED_MS" ] || { WHY="it did not answer $health within a minute"; return 1; }
  if [ "$name" = litellm ]; then
    # uvicorn's supervisor restarts a worker that is slow to start; wait for all of them.
    for _ in $(seq 1 1800); do
      ready=$(grep -c 'Application startup complete' "$TMP/$tag.log" || true)
      if [ "$ready" -ge "$LITELLM_WORKERS" ]; then
        t1=$(date +%s%N); STARTED_ALL_MS=$(( (t1 - t0) / 1000000 )); return 0
      fi
      sleep 0.1
    done
    WHY="only ${ready:-0} of $LITELLM_WORKERS workers started within three minutes"; return 1
  fi
}

stop_peer() { kill -- "-$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Checks that peer $1 answers the mock's completion, whole and streamed.
verify_peer() {
  local name=$1 code extra=()
  mapfile -d '' -t extra < <(header_args "$name")
  code=$(curl -s -o "$TMP/$name.whole" -w '%{http_code}' --max-time 30 -H 'content-type: application/json' \
    "${extra[@]}" -d "$BODY" "http://${ADDR[$name]}/v1/chat/completions" || true)
  if [ "$code" != 200 ] || ! grep -q 'Hello there' "$TMP/$name.whole"; then
    WHY="a completion got $code: $(head -c 300 "$TMP/$name.whole" 2>/dev/null)"; return 1
  fi
  code=$(curl -sN -o "$TMP/$name.stream" -w '%{http_code}' --max-time 30 -H 'content-type: application/json' \
    "${extra[@]}" -d "$SBODY" "http://${ADDR[$name]}/v1/chat/completions" || true)
  if [ "$code" != 200 ] || ! grep -q '"t0"' "$TMP/$name.stream" || ! grep -q '"t19"' "$TMP/$name.stream" \
    || ! grep -q '\[DONE\]' "$TMP/$name.stream"; then
    WHY="a stream got $code: $(head -c 300 "$TMP/$name.stream" 2>/dev/null)"; return 1
  fi
  grep -q '"t": *[0-9]' "$TMP/$name.stream" \
    || log "$name: its stream drops the mock's \"t\" field; its event delays cannot be measured (n/a)"
}

# Sockets of peer $1's process tree whose other end is outside 127.0.0.1.
outside_sockets() {
  local pids
  pids=$(tree_pids "$1" | paste -sd'|')
  ss -Htunap 2>/dev/null | grep -E "pid=($pids)," | awk '{print $6}' \
    | grep -Ev '^(127\.|\[::1\]|\[::ffff:127\.|0\.0\.0\.0:|\*:|\[::\]:)' || true
}

# Installs, starts and checks each peer; the ones that answer join TARGETS.
peers_start() {
  local name
  command -v ss >/dev/null || log "ss is not installed: the peers' sockets will not be checked"
  for name in litellm portkey; do
    if ! "install_$name"; then
      log "$name left out: it could not be installed: $WHY"; continue
    fi
    STARTED_PID=""
    if ! start_peer "$name" "$MOCK" "$name"; then
      log "$name left out: it did not start: $WHY"; [ -z "$STARTED_PID" ] || stop_peer "$STARTED_PID"; continue
    fi
    ADDR["$name"]=$STARTED_ADDR
    if [ "$name" = portkey ]; then
      HEADERS["$name"]=$'x-portkey-provider: openai\nx-portkey-custom-host: http://'"$MOCK"$'/v1\nauthorization: Bearer dummy'
    fi
    PEER_IDLE_KB["$name"]=$(tree_hwm "$STARTED_PID")
    if ! verify_peer "$name"; then
      log "$name left out: it does not answer the mock's completion: $WHY"; stop_peer "$STARTED_PID"; continue
    fi
    PEER_PID["$name"]=$STARTED_PID
    PEER_STARTUP["$name"]=$STARTED_MS
    PEER_ALL_MS["$name"]=$STARTED_ALL_MS
    PEER_NAMES+=("$name")
    TARGETS+=("$name")
    log "$name answers on $STARTED_ADDR (started in $STARTED_MS ms)"
  done
  PEERS_TITLE=""
  for name in "${PEER_NAMES[@]}"; do
    case $name in
      litellm) PEERS_TITLE+=" · LiteLLM $LITELLM_VERSION" ;;
      portkey) PEERS_TITLE+=" · Portkey gateway $PORTKEY_VERSION" ;;
    esac
  done
}

# After the rounds: each peer's peak RSS and processes, its sockets checked; then it stops.
peers_after_load() {
  local name out
  for name in "${PEER_NAMES[@]}"; do
    PEER_LOAD_KB["$name"]=$(tree_hwm "${PEER_PID[$name]}")
    PEER_PROCS["$name"]=$(tree_pids "${PEER_PID[$name]}" | wc -l)
    out=$(outside_sockets "${PEER_PID[$name]}")
    [ -z "$out" ] || log "WARNING: $name has sockets to outside 127.0.0.1: $(echo "$out" | paste -sd' ')"
    stop_peer "${PEER_PID[$name]}"
  done
}

# 256 streams held open at once through a fresh instance of each peer against the slow mock
# at $1; writes the peers' footprint lines to $TMP/peers.txt.
peers_held() {
  local slow=$1 name extra=() size label startup
  for name in "${PEER_NAMES[@]}"; do
    PEER_HELD_KB["$name"]="-"; PEER_HELD_JSON["$name"]="-"
    STARTED_PID=""
    if start_peer "$name" "$slow" "$name-held"; then
      ADDR["$name"]=$STARTED_ADDR
      if [ "$name" = portkey ]; then
        # shellcheck disable=SC2034  # read by header_args in scripts/bench.sh
        HEADERS["$name"]=$'x-portkey-provider: openai\nx-portkey-custom-host: http://'"$slow"$'/v1\nauthorization: Bearer dummy'
      fi
      mapfile -d '' -t extra < <(header_args "$name")
      target/release/examples/stream_client "$STARTED_ADDR" 256 1 "${extra[@]}" >"$TMP/$name-held.json"
      PEER_HELD_KB["$name"]=$(tree_hwm "$STARTED_PID")
      PEER_HELD_JSON["$name"]=$TMP/$name-held.json
    else
      log "$name: the 256-stream run was skipped: it did not start again: $WHY"
    fi
    [ -z "$STARTED_PID" ] || stop_peer "$STARTED_PID"
  done
  : >"$TMP/peers.txt"
  for name in "${PEER_NAMES[@]}"; do
    startup="${PEER_STARTUP[$name]} ms"
    case $name in
      litellm)
        label="LiteLLM $LITELLM_VERSION (uvicorn, $LITELLM_WORKERS workers)"
        startup+=" (all workers started: ${PEER_ALL_MS[$name]} ms)"
        size="$(du -sm "$LITELLM_VENV" | cut -f1) MiB venv" ;;
      portkey)
        label="Portkey gateway $PORTKEY_VERSION (node $(node --version))"
        size="$(du -sm "$PEERS_DIR/node_modules" | cut -f1) MiB node_modules" ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$startup" "${PEER_PROCS[$name]}" "${PEER_IDLE_KB[$name]}" \
      "${PEER_LOAD_KB[$name]}" "${PEER_HELD_KB[$name]}" "${PEER_HELD_JSON[$name]}" "$size" >>"$TMP/peers.txt"
  done
}
