.DEFAULT_GOAL := all

# The interpreter whose environment holds the package and its tools (a venv's, when active).
PY ?= python3

# maturin develop installs into the environment VIRTUAL_ENV names: the one $(PY) belongs to, so
# that `make build-dev PY=.venv/bin/python` works without activating it.
ENV_OF_PY = VIRTUAL_ENV="$$($(PY) -c 'import sys; print(sys.prefix)')"

.PHONY: install ## Install the package in development mode with the test, lint and dev extras
install:
	$(PY) -m pip install -e '.[test,lint,dev]'

.PHONY: build-dev ## Build the Rust extension in place (debug)
build-dev:
	$(ENV_OF_PY) $(PY) -m maturin develop -q

.PHONY: build-prod ## Build the Rust extension in place (release, for benchmarks)
build-prod:
	$(ENV_OF_PY) $(PY) -m maturin develop -q --release

.PHONY: format ## Format Rust and Python
format:
	cargo fmt --all
	$(PY) -m ruff format python tests benches
	$(PY) -m ruff check --fix python tests benches

.PHONY: lint-rust ## cargo fmt --check and clippy, with and without the python feature
lint-rust:
	cargo fmt --all --check
	cargo clippy --all-targets --no-default-features -- -D warnings
	cargo clippy --all-targets -- -D warnings

.PHONY: lint-python ## ruff, mypy and stubtest
lint-python:
	$(PY) -m ruff check python tests benches
	$(PY) -m ruff format --check python tests benches
	$(PY) -m mypy
	$(PY) -m mypy.stubtest sagestream._core --allowlist .ci/stubtest-allowlist.txt

.PHONY: lint ## All linters
lint: lint-rust lint-python

.PHONY: test-rust ## Rust tests of the pure-Rust core (no libpython needed)
test-rust:
	cargo test --no-default-features

.PHONY: test ## Python test suite, the fast hypothesis profile, one worker per core (local runs)
test:
	$(PY) -m pytest -n auto --dist loadfile

.PHONY: test-ci ## Python test suite, the full hypothesis profile (what CI runs)
test-ci:
	$(PY) -m pytest -q -n auto --dist loadfile --hypothesis-profile=ci

.PHONY: rust-sdk ## Build examples/rust-sdk-duplex, the AWS SDK for Rust client (minutes, cold)
rust-sdk:
	cd examples/rust-sdk-duplex && CARGO_TARGET_DIR=$(CURDIR)/target/rust-sdk-duplex cargo build --release

.PHONY: test-rust-sdk ## The AWS SDK for Rust's bidirectional client against the emulator (not in CI: its build)
test-rust-sdk: rust-sdk
	$(PY) -m pytest tests/test_duplex_rust_sdk.py -q

.PHONY: bench-duplex ## Bidirectional streams: sagestream vs the AWS SDK for Rust
bench-duplex: build-prod rust-sdk
	$(PY) benches/bench_duplex.py

# The test files whose asyncio code waits on the hub; test_hub.py checks that the forced wake-up
# is the one used.
ASYNC_TESTS = tests/test_hub.py tests/test_aio_emulator.py tests/test_aio_transport.py \
	tests/test_batch.py tests/test_duplex_aio.py tests/test_faults.py tests/test_jobs.py \
	tests/test_leaks.py tests/test_reassembly_async.py tests/test_patch_differential.py \
	tests/test_request_differential.py tests/test_integration_strands.py \
	tests/test_integration_langchain.py

.PHONY: test-hub-wakeups ## The asyncio tests once per portable hub wake-up: pipe (macOS), socket and call_soon (Windows)
test-hub-wakeups:
	@for kind in pipe socket call_soon; do \
	  echo "== SAGESTREAM_HUB_WAKEUP=$$kind"; \
	  SAGESTREAM_HUB_WAKEUP=$$kind $(PY) -m pytest -q -n auto --dist loadfile $(ASYNC_TESTS) || exit 1; \
	done

.PHONY: check-targets ## clippy for Windows and macOS (cross, with zig as the C compiler; rustup targets)
check-targets:
	PY=$(PY) bash .ci/check-targets

.PHONY: wheels ## Release artifacts in dist/: manylinux2014 and musllinux_1_2 abi3 wheels (zig), the sdist; auditwheel-checked
wheels:
	PY=$(PY) bash .ci/build-wheels

.PHONY: test-wheel ## The manylinux wheel in fresh venvs: a plain install holds only the boto stack; the suite against it
test-wheel:
	PY=$(PY) bash .ci/test-wheel

.PHONY: test-abi3 ## The abi3 wheel, installed and tested on every other CPython 3.10+ found
test-abi3:
	bash .ci/test-abi3

.PHONY: bench-rust ## Criterion: sagestream's frame splitter against aws-smithy-eventstream's
bench-rust:
	cargo bench --no-default-features --bench decode

.PHONY: bench ## Every benchmark, side by side with botocore/boto3/aiobotocore/the AWS SDK for Rust (release build)
bench: build-prod bench-rust bench-duplex
	$(PY) benches/bench_decode.py
	$(PY) benches/bench_reassembly.py
	$(PY) benches/bench_e2e.py
	$(PY) benches/bench_aio.py
	$(PY) benches/bench_requests.py
	$(PY) benches/bench_frameworks.py

.PHONY: ci ## Lint and test everything with the full hypothesis profile (what .ci/run runs)
ci: lint test-rust test-ci

.PHONY: all ## Lint and test everything (the fast hypothesis profile)
all: lint test-rust test

.PHONY: help ## Show this help
help:
	@grep -E '^.PHONY: .*?## .*$$' $(MAKEFILE_LIST) | sed 's/^.PHONY: \(.*\) ## \(.*\)/\1\t\2/' | expand -t 14
