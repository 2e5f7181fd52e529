# Routeplane's tasks. `make check` is the test command the README and CI use.

CARGO ?= cargo

.PHONY: check test lint doc bench build sdk

## check: format, lints, tests and docs, as CI runs them
check: lint test doc

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
