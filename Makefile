.DEFAULT_GOAL := all

.PHONY: install ## Install the package in development mode with the test and lint extras
install:
	pip install -e '.[test,lint]'

.PHONY: build-dev ## Build the Rust extension in place (debug)
build-dev:
	maturin develop -q

.PHONY: build-prod ## Build the Rust extension in place (release, for benchmarks)
build-prod:
	maturin develop -q --release

.PHONY: format ## Format Rust and Python
format:
	cargo fmt --all
	ruff format python tests benches
	ruff check --fix python tests benches

.PHONY: lint-rust ## cargo fmt --check and clippy, with and without the python feature
lint-rust:
	cargo fmt --all --check
	cargo clippy --all-targets --no-default-features -- -D warnings
	cargo clippy --all-targets -- -D warnings

.PHONY: lint-python ## ruff, mypy and stubtest
lint-python:
	ruff check python tests benches
	ruff format --check python tests benches
	mypy
	python -m mypy.stubtest sagestream._core --allowlist .ci/stubtest-allowlist.txt

.PHONY: lint ## All linters
lint: lint-rust lint-python

.PHONY: test-rust ## Rust tests of the pure-Rust core (no libpython needed)
test-rust:
	cargo test --no-default-features

.PHONY: test ## Python test suite
test:
	pytest

.PHONY: rust-sdk ## Build examples/rust-sdk-duplex, the AWS SDK for Rust client (minutes, cold)
rust-sdk:
	cd examples/rust-sdk-duplex && CARGO_TARGET_DIR=$(CURDIR)/target/rust-sdk-duplex cargo build --release

.PHONY: test-rust-sdk ## The AWS SDK for Rust's bidirectional client against the emulator (not in CI: its build)
test-rust-sdk: rust-sdk
	pytest tests/test_duplex_rust_sdk.py -q

.PHONY: bench-duplex ## Bidirectional streams: sagestream vs the AWS SDK for Rust
bench-duplex: build-prod rust-sdk
	python benches/bench_duplex.py

.PHONY: test-abi3 ## The abi3 wheel, installed and tested on every other CPython 3.10+ found
test-abi3:
	bash .ci/test-abi3

.PHONY: bench ## Benchmarks against botocore/boto3/aiobotocore, side by side
bench: build-prod
	python benches/bench_decode.py
	python benches/bench_e2e.py
	python benches/bench_aio.py

.PHONY: all ## Lint and test everything (what .ci/run does)
all: lint test-rust test

.PHONY: help ## Show this help
help:
	@grep -E '^.PHONY: .*?## .*$$' $(MAKEFILE_LIST) | sed 's/^.PHONY: \(.*\) ## \(.*\)/\1\t\2/' | expand -t 14
