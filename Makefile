# Routeplane's tasks. `make check` is the test command the README and CI use.

CARGO ?= cargo

.PHONY: check test lint doc deny bench bench-peers build sdk static pi pi-smoke fuzz soak

## check: format, lints, tests, docs and the dependency audit, as CI runs them
check: lint test doc deny

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

test: sdk
	$(CARGO) test

## sdk: the official Python SDKs the client tests use (skipped with a message when pip cannot install them)
SDK_VENV := target/sdk-venv
sdk:
	@if [ ! -x $(SDK_VENV)/bin/python ] || ! $(SDK_VENV)/bin/python -c 'import openai, anthropic' 2>/dev/null; then \
		python3 -m venv $(SDK_VENV) && $(SDK_VENV)/bin/pip install -q openai anthropic \
		|| echo "note: could not install the Python SDKs; their tests will be skipped"; \
	fi

doc:
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --no-deps --document-private-items

build:
	$(CARGO) build --release

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

## bench: routeplane (default configuration) against the floor and the mock, medians of 5 rounds,
## then 256 and 1000 streams held open and their peak RSS; about 2 minutes (plus oha's install
## on first use); appends to bench/results.md (PEERS=1: also LiteLLM and the Portkey gateway)
bench:
	scripts/bench.sh $(if $(filter 1,$(PEERS)),--peers)

## bench-peers: bench, plus LiteLLM proxy and the Portkey gateway installed into bench/peers
bench-peers:
	scripts/bench.sh --peers

MAX_BYTES := 4194304

## static: a fully static x86_64 binary (musl); checks it is static and at most 4 MiB
static:
	rustup target add x86_64-unknown-linux-musl
	# ring compiles C; the host gcc builds it for x86_64 musl (traps.md 18).
	CC_x86_64_unknown_linux_musl=gcc $(CARGO) build --release --target x86_64-unknown-linux-musl
	@f=target/x86_64-unknown-linux-musl/release/routeplane; \
	file $$f | grep -Eq 'statically linked|static-pie linked' || { echo "$$f is not static"; exit 1; }; \
	s=$$(stat -c %s $$f); [ $$s -le $(MAX_BYTES) ] || { echo "$$f is $$s bytes, over $(MAX_BYTES)"; exit 1; }; \
	echo "$$f: static, $$s bytes"

## pi: a fully static aarch64 binary for a Raspberry Pi 3/4/5 (ring needs the cross C compiler)
pi:
	rustup target add aarch64-unknown-linux-musl
	command -v aarch64-linux-gnu-gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq gcc-aarch64-linux-gnu)
	CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
	$(CARGO) build --release --target aarch64-unknown-linux-musl
	@f=target/aarch64-unknown-linux-musl/release/routeplane; \
	file $$f | grep -Eq 'statically linked|static-pie linked' || { echo "$$f is not static"; exit 1; }; \
	s=$$(stat -c %s $$f); [ $$s -le $(MAX_BYTES) ] || { echo "$$f is $$s bytes, over $(MAX_BYTES)"; exit 1; }; \
	echo "$$f: static, $$s bytes"

## pi-smoke: run the aarch64 binary under qemu against the mock: health, a completion, a stream
pi-smoke: pi
	scripts/pi-smoke.sh
