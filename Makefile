# Routeplane's tasks. `make check` is the test command the README and CI use.

CARGO ?= cargo

.PHONY: check test lint doc bench build

## check: format, lints, tests and docs, as CI runs them
check: lint test doc

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

test:
	$(CARGO) test

doc:
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --no-deps --document-private-items

build:
	$(CARGO) build --release
