# Routeplane's tasks. `make check` is the test command the README and CI use.

CARGO ?= cargo

.PHONY: check test lint doc deny size bench bench-peers build sdk gemini-cli obs-tools static pi pgo fuzz soak ship-tools static-debug deb

## check: format, lints, tests, docs and the dependency audit, as CI runs them, and the
## release binary's size when one was built from this source
check: lint test doc deny size

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## test: the suite; the soft open-files limit is raised to the hard one first, as
## limits::three_hundred_slow_streams_are_all_served_with_the_defaults holds 600 sockets
## in the test process and many systems start programs with a soft limit of 1024;
## then the vendored tiny_http's own unit tests (a path dependency is not run by `cargo test`)
test: sdk gemini-cli obs-tools ship-tools static-debug
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; $(CARGO) test
	$(CARGO) test -p tiny_http --lib

## sdk: the official Python SDKs the client tests use (skipped with a message when pip cannot install them)
SDK_VENV := target/sdk-venv
sdk:
	@if [ ! -x $(SDK_VENV)/bin/python ] || ! $(SDK_VENV)/bin/python -c 'import openai, anthropic, google.genai' 2>/dev/null; then \
		python3 -m venv $(SDK_VENV) && $(SDK_VENV)/bin/pip install -q openai anthropic google-genai \
		|| echo "note: could not install the Python SDKs; their tests will be skipped"; \
	fi

## obs-tools: headless Chromium (the status page test) and promtool (the /metrics test).
## Chromium is Debian's `chromium` (apt-get, as root; about 50 s here); promtool is taken
## out of Debian's `prometheus` package into target/tools without installing it (no
## daemon; about 4 s). Either missing: its test prints why and passes.
PROMTOOL := target/tools/promtool
obs-tools:
	@command -v chromium >/dev/null || { \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
			|| echo "note: could not install chromium; the status page test will be skipped"; \
		else echo "note: chromium is not installed (needs apt-get as root); the status page test will be skipped"; fi; }
	@[ -x $(PROMTOOL) ] || command -v promtool >/dev/null || { \
		rm -rf target/tools/deb && mkdir -p target/tools/deb && cd target/tools/deb && \
		{ apt-get download prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb x && cp x/usr/bin/promtool ../promtool \
		|| echo "note: could not fetch promtool; /metrics is checked by the unit test's parser only"; }; \
		cd ../../.. && rm -rf target/tools/deb; }
## gemini-cli: Gemini CLI from npm, pinned, under target/ for its client test (about 25 s;
## skipped with a message when npm cannot reach the registry; needs node >= 20)
GEMINI_CLI_VERSION := 0.61.0
GEMINI_CLI_DIR := target/gemini-cli
gemini-cli:
	@if ! grep -qs '"version": "$(GEMINI_CLI_VERSION)"' $(GEMINI_CLI_DIR)/node_modules/@google/gemini-cli/package.json; then \
		command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm) >/dev/null 2>&1; \
		npm install --prefix $(GEMINI_CLI_DIR) --no-audit --no-fund --loglevel=error @google/gemini-cli@$(GEMINI_CLI_VERSION) \
		|| echo "note: could not install Gemini CLI from npm; its test will be skipped"; \
	fi

## ship-tools: what tests/ship/ needs: systemd-analyze (Debian `systemd`) and dpkg-deb;
## skipped with a message when apt cannot. Not lintian: ~150 packages, 6 minutes here; the
## package test runs it when present, and `make deb` and the release workflow install it.
SHIP_TOOLS := systemd-analyze:systemd dpkg-deb:dpkg
ship-tools:
	@missing=""; for t in $(SHIP_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
		|| echo "note: could not install$$missing; the tests that need them will say they skipped"; \
	fi

## static-debug: the static (crt-static glibc) debug build the empty-root test runs; no new
## rustup target needed. Debug, not release: ~1.5 min of CPU here instead of several (LTO).
static-debug:
	@if [ "$$(uname -m)" = x86_64 ]; then \
		RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --quiet --bin routeplane \
		--target x86_64-unknown-linux-gnu --target-dir target/static; fi

## deb: Debian packages from the musl binaries of `make static` (and `make pi` when built), checked by lintian
deb: static
	@command -v lintian >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian >/dev/null)
	dist/deb/build.sh amd64 $${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/routeplane
	@if [ -f $${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-musl/release/routeplane ]; then \
		dist/deb/build.sh arm64 $${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-musl/release/routeplane; fi
	lintian --fail-on error,warning --pedantic target/deb/*.deb

doc:
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --no-deps --document-private-items

## build: the release binary, held to its size ceiling (make size)
build: size

# The stripped glibc release binary's ceiling: 4 485 160 bytes on 2026-12-07 (session 43:
# its fixes - refreshes shared across processes, allowed_hosts wildcards, service
# install -c, redirects and gzip named - took it from 4 457 320) plus about 1%, so that a
# feature's growth is seen when it lands, not two days later (bench/results.md, "Binary
# size, session 39", "session 41" and "session 43"). Issue 11's target is 4 MiB.
# 2026-12-07 (session 46): 4 528 808 bytes (from 4 502 600: refreshes in a thread of their
# own and one login look-up a request, a page sent as an event stream named, near names for
# pinned typos, a provider at Routeplane's own address refused, a 401 said as Routeplane's
# key's); the ceiling is that plus about 1% again (bench/results.md, "Binary size, session 46").
BIN_MAX_BYTES := 4575000

## size: builds the release binary (nothing to do when it is up to date) and holds it,
## stripped, to BIN_MAX_BYTES: CI runs it through `make check`, so growth fails the build
size:
	$(CARGO) build --release
	@f=$${CARGO_TARGET_DIR:-target}/release/routeplane; \
	if file "$$f" | grep -q 'not stripped'; then echo "note: binary size not checked: $$f is not stripped (CARGO_PROFILE_RELEASE_STRIP?)"; exit 0; fi; \
	s=$$(stat -c %s "$$f"); [ "$$s" -le $(BIN_MAX_BYTES) ] || { \
		echo "$$f is $$s bytes, over BIN_MAX_BYTES ($(BIN_MAX_BYTES)): find what grew (nm --size-sort -C, bench/results.md \"Binary size, session 39\") and cut it, or raise the ceiling saying why"; exit 1; }; \
	echo "$$f: $$s bytes, within BIN_MAX_BYTES ($(BIN_MAX_BYTES))"

## fuzz: random inputs into the config loader, body splitter, SSE parser and translators (FUZZ_SECS, default 60)
FUZZ_SECS ?= 60
fuzz:
	$(CARGO) run --release --example fuzz -- $(FUZZ_SECS)

## soak: minutes of mixed load while the upstreams misbehave; checks nothing crashed or leaked
soak:
	scripts/soak.sh

## deny: licences, duplicate crates and sources with cargo-deny (installed into bench/tools
## from crates.io on first use, about 2.5 minutes); advisories when the database can be fetched
DENY := bench/tools/bin/cargo-deny
deny:
	@[ -x $(DENY) ] || $(CARGO) install --quiet --locked --root bench/tools cargo-deny
	$(DENY) check licenses bans sources
	@if $(DENY) fetch >/dev/null 2>&1; then $(DENY) check advisories; \
	else echo "note: advisories not checked: the advisory database cannot be fetched from here"; fi

## bench: routeplane (default configuration) against the floor and the mock, medians of 5 rounds
## (1 and 32 clients first; then 256 clients, streams and 32 clients again), then 256 and 1000
## streams held open and their peak RSS; about 3 minutes (plus oha's install
## on first use); appends to bench/results.md (PEERS=1: also LiteLLM and the Portkey gateway)
bench:
	scripts/bench.sh $(if $(filter 1,$(PEERS)),--peers)

## bench-peers: bench, plus LiteLLM proxy and the Portkey gateway installed into bench/peers
bench-peers:
	scripts/bench.sh --peers

# The release binaries' ceiling, both targets: under the image's 5 MB (release.yml) with
# room for its config. 2026-12-06 (session 39): x86_64 musl 4 841 544 bytes profile-guided,
# about 440 KB of it the profile's, which buys five times fewer instruction-cache misses a
# request (bench/results.md, "Issue 16, session 39"), so it stays. Growth is caught first by
# BIN_MAX_BYTES, which `make check` (CI) holds the glibc binary to. Was 4.5 MiB until then.
# 2026-12-07 (session 45): 4 993 096 bytes, over it, then 4 862 024 (4 866 120 at
# 88262e0) with LLVM's pre-instrumentation inliner off in scripts/pgo.sh (the profile's
# share 385 KB to about 260; bench/results.md, "Binary size, session 45").
# 2026-12-07 (session 46): 4 743 320 bytes with the relocations packed and inline hints
# ignored (4 755 608 at c0a984b; bench/results.md, "Binary size, session 46"); the ceiling
# is the first plus about 1%, so that growth is seen when it lands, not when the image
# passes its 5 MB. At the session's end (2a5b556: refreshes in their own thread, the 401
# and 404 messages, the own-address check) 4 784 280; the ceiling is that plus about 1%.
MAX_BYTES := 4830000

## static: a fully static x86_64 binary (musl), profile-guided; checks it is static and at most MAX_BYTES
static:
	rustup target add x86_64-unknown-linux-musl
	# ring compiles C; the host gcc builds it for x86_64 musl (traps.md 18).
	CC_x86_64_unknown_linux_musl=gcc scripts/pgo.sh x86_64-unknown-linux-musl
	@f=$${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/routeplane; \
	file $$f | grep -Eq 'statically linked|static-pie linked' || { echo "$$f is not static"; exit 1; }; \
	s=$$(stat -c %s $$f); [ $$s -le $(MAX_BYTES) ] || { echo "$$f is $$s bytes, over $(MAX_BYTES)"; exit 1; }; \
	echo "$$f: static, $$s bytes"

## pi: a fully static aarch64 binary for a Raspberry Pi 3/4/5, profile-guided under qemu (ring needs the cross C compiler)
pi:
	rustup target add aarch64-unknown-linux-musl
	command -v aarch64-linux-gnu-gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq gcc-aarch64-linux-gnu)
	CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
	scripts/pgo.sh aarch64-unknown-linux-musl
	@f=$${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-musl/release/routeplane; \
	file $$f | grep -Eq 'statically linked|static-pie linked' || { echo "$$f is not static"; exit 1; }; \
	s=$$(stat -c %s $$f); [ $$s -le $(MAX_BYTES) ] || { echo "$$f is $$s bytes, over $(MAX_BYTES)"; exit 1; }; \
	echo "$$f: static, $$s bytes"

## pgo: a profile-guided build for this machine, profiled on the mock (target/pgo/routeplane; like
## static's and pi's binaries, under $CARGO_TARGET_DIR instead of target/ when that is set)
pgo:
	scripts/pgo.sh
