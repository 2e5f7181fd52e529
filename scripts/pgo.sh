#!/usr/bin/env bash
# A profile-guided build of routeplane (`make pgo` for this machine; `make static` and
# `make pi`, the release binaries, for theirs): an instrumented build serves a few
# thousand requests from the benchmark's mock upstream (whole and streamed, in the chat,
# Anthropic and Responses protocols), and the profile it writes lays out the final
# build, which must then serve /health, a completion and a 21-event stream. The profile
# is made here, from this source and this toolchain, and never checked in.
#
# Why: the code one request runs spans about 82 KiB, more than a 32 KiB instruction
# cache; the profile packs the path requests take (bench/results.md, issue 16, session
# 8). Needs rustup's llvm-tools component (for llvm-profdata); the script adds it.
#
#   scripts/pgo.sh          writes target/pgo/routeplane, for this machine
#   scripts/pgo.sh TARGET   writes target/TARGET/release/routeplane, where `cargo build
#                           --release --target TARGET` puts it (`make static`, `make pi`:
#                           the release binaries). Another architecture's instrumented
#                           build is run under qemu-user; its C compiler and linker come
#                           from the caller's environment (CC_*, CARGO_TARGET_*_LINKER).
#
# With CARGO_TARGET_DIR set, everything goes under it instead of target/, as cargo's own
# output does.
set -euo pipefail
# A relative CARGO_TARGET_DIR names a directory from where the caller is, not from the
# repository this changes to: cargo would take it from the latter.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR=$(realpath -m "$CARGO_TARGET_DIR")
  export CARGO_TARGET_DIR
fi
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

TARGET=${1:-}
log() { echo "pgo${TARGET:+ ($TARGET)}: $*" >&2; }

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  log "adding rustup's llvm-tools component (llvm-profdata)"
  rustup component add llvm-tools
fi
[ -x "$profdata" ] || { log "no llvm-profdata at $profdata"; exit 1; }

OUT=$TARGET_DIR/pgo${TARGET:+/$TARGET}
rm -rf "$OUT/profiles"
mkdir -p "$OUT"
# Another architecture's binaries (the instrumented one and the result) run under qemu-user.
RUN=()
if [ -n "$TARGET" ] && [ "${TARGET%%-*}" != "$(uname -m)" ]; then
  command -v "qemu-${TARGET%%-*}" >/dev/null || command -v "qemu-${TARGET%%-*}-static" >/dev/null \
    || (apt-get update -qq && apt-get install -y -qq qemu-user)
  RUN=("$(command -v "qemu-${TARGET%%-*}" || command -v "qemu-${TARGET%%-*}-static")")
fi
# LLVM inlines before it instruments (and, so that the two builds' functions match, before
# it reads the profile) with a threshold of its own, 75, that ignores opt-level "s" and
# "z" (50 and 5 otherwise): every crate grew by it, rustls and the YAML reader, which the
# profile never runs, as much as the request path. Both builds go without it: the static
# binary 131 KB smaller, and a request no slower (bench/results.md, "Binary size, session
# 45"); the profile still inlines and lays out the hot path afterwards.
PGO_LLVM="-Cllvm-args=-disable-preinline"
# An `#[inline]` hint lifts a call's inlining threshold from opt-level "s"'s 50 to 325 (not
# at "z"): std's many hinted functions were copied into every caller, cold ones included.
# At 50 a hint changes nothing; the profile still inlines the hot calls (its own threshold):
# the static binary 29 KB smaller, the request about as many instructions and 17% fewer
# instruction-cache misses (bench/results.md, "Binary size, session 46").
PGO_LLVM="$PGO_LLVM -Cllvm-args=-inlinehint-threshold=50"
# A static-pie binary (x86_64 musl: loaded at a random address) carries a relocation for
# each pointer in its data, 24 bytes each: 97 KB of them. The packed form (DT_RELR; GNU ld
# 2.38+, applied by musl's start code since 1.2.4) holds the same in 1.3 KB: the same
# addresses, the same randomisation, the start-up only touched (bench/results.md, "Binary
# size, session 46"). aarch64 musl binaries are not PIE: nothing to pack.
LINK=""
case $TARGET in x86_64-*-musl) LINK="-Clink-arg=-Wl,-z,pack-relative-relocs" ;; esac
log "building an instrumented routeplane"
RUSTFLAGS="-Cprofile-generate=$OUT/profiles $PGO_LLVM" \
  cargo build --quiet --release --bin routeplane --target-dir "$OUT/gen" ${TARGET:+--target "$TARGET"}
cargo build --quiet --release --example mock_upstream

TMP=$(mktemp -d)
# The usage ledger goes to $XDG_STATE_HOME: into this run's directory, not the user's.
export XDG_STATE_HOME="$TMP/state"
# Every program started leaves its pid in $TMP/NAME.pid (`serve` runs in a subshell).
cleanup() {
  for f in "$TMP"/*.pid; do
    if [ -e "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# Starts a routeplane binary against the mock; echoes its address. Its stdout is not
# this function's: the command substitution that calls it would wait for it to close.
serve() {
  "${RUN[@]}" "$1" -c "$TMP/c.yaml" --listen 127.0.0.1:0 > /dev/null 2> "$TMP/rp.err" &
  echo $! > "$TMP/rp.pid"
  for _ in $(seq 200); do grep -q 'listening on' "$TMP/rp.err" 2>/dev/null && break; sleep 0.05; done
  grep -o 'listening on http://[0-9.:]*' "$TMP/rp.err" | sed 's|listening on http://||'
}

"$TARGET_DIR/release/examples/mock_upstream" 0 1 > "$TMP/mock" &
echo $! > "$TMP/mock.pid"
for _ in $(seq 100); do [ -s "$TMP/mock" ] && break; sleep 0.05; done
MOCK=$(head -1 "$TMP/mock")
printf 'providers:\n  mock:\n    api_base: http://%s/v1\n    models: [m]\n' "$MOCK" > "$TMP/c.yaml"

# The build scripts of the instrumented build wrote profiles of their own into
# $OUT/profiles; routeplane's go to a directory of their own.
rm -rf "$OUT/run"
export LLVM_PROFILE_FILE="$OUT/run/routeplane-%p.profraw"
RP=$(serve "$OUT/gen/${TARGET:+$TARGET/}release/routeplane")
[ -n "$RP" ] || { log "the instrumented build did not start: $(cat "$TMP/rp.err")"; exit 1; }
log "serving the profile's requests through $RP"
# Mostly what agents send: whole and streamed answers, keep-alive, a few connections.
python3 - "$RP" <<'PY'
import http.client, json, sys, threading
host, port = sys.argv[1].rsplit(":", 1)
calls = [
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, 2000),
    ("/v1/chat/completions", {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}, 200),
    ("/v1/messages", {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}, 500),
    ("/v1/messages", {"model": "m", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "hi"}]}, 100),
    ("/v1/responses", {"model": "m", "input": "hi"}, 300),
    ("/v1/responses", {"model": "m", "input": "hi", "stream": True}, 50),
]
def worker():
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    for path, body, n in calls:
        for _ in range(n // 4):
            c.request("POST", path, json.dumps(body), {"content-type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                sys.exit(f"{path}: status {r.status}")
threads = [threading.Thread(target=worker) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
PY
# A clean stop writes the profile.
pid=$(cat "$TMP/rp.pid")
kill -TERM "$pid"
# Not a child of this shell (it was started in `serve`'s subshell): poll for its end.
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
"$profdata" merge -o "$OUT/routeplane.profdata" "$OUT/run"

log "building routeplane with the profile"
if [ -n "$TARGET" ]; then
  RUSTFLAGS="-Cprofile-use=$OUT/routeplane.profdata $PGO_LLVM $LINK" \
    cargo build --quiet --release --bin routeplane --target "$TARGET"
  BIN=$TARGET_DIR/$TARGET/release/routeplane
else
  RUSTFLAGS="-Cprofile-use=$OUT/routeplane.profdata $PGO_LLVM" \
    cargo build --quiet --release --bin routeplane --target-dir "$OUT/use"
  cp "$OUT/use/release/routeplane" "$OUT/routeplane"
  BIN=$OUT/routeplane
fi

# The result must still do its job: health, a completion and a stream.
RP=$(serve "$BIN")
curl -sf "http://$RP/health" | grep -q ok
curl -sf "http://$RP/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' | grep -q 'Hello there'
EVENTS=$(curl -sfN "http://$RP/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"m","stream":true,"messages":[]}' | grep -c '^data: ')
[ "$EVENTS" -eq 21 ] || { log "expected 21 events from $BIN, got $EVENTS"; exit 1; }
log "wrote $BIN ($(stat -c %s "$BIN") bytes); it served /health, a completion and a 21-event stream"
