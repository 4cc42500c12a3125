.DEFAULT_GOAL := all

# The interpreter whose environment holds the package and its tools (a venv's, when active).
PY ?= python3
# Each long step says when it starts, so a CI log shows where the time went.
STAMP = @echo "== make $@ at $$(date +%T)"

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
	$(STAMP)
	cargo fmt --all --check
	cargo clippy --all-targets --no-default-features -- -D warnings
	cargo clippy --all-targets -- -D warnings

.PHONY: lint-python ## ruff, mypy and stubtest
lint-python:
	$(STAMP)
	$(PY) -m ruff check python tests benches
	$(PY) -m ruff format --check python tests benches
	$(PY) -m mypy
	$(PY) -m mypy.stubtest sagestream._core --allowlist .ci/stubtest-allowlist.txt

.PHONY: lint ## All linters
lint: lint-rust lint-python

.PHONY: test-rust ## Rust tests of the pure-Rust core (no libpython needed)
test-rust:
	$(STAMP)
	cargo test --no-default-features

.PHONY: test ## Python test suite, the fast hypothesis profile, one worker per core (local runs)
test:
	$(PY) -m pytest -n auto --dist loadfile

.PHONY: test-ci ## Python test suite, the full hypothesis profile (what CI runs)
test-ci:
	$(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile --hypothesis-profile=ci

# --- the other botocore releases users have: environments of their own --------------------
# The suite above runs on what `pip install '.[test,lint]'` brings: the newest of everything.
# Two more environments, each a fresh venv with this checkout's wheel installed: aiobotocore's
# (it pins an older botocore), and the oldest botocore pyproject.toml declares.

ENVS ?= build/envs
DIST ?= build/dist
# The floor, read from the one place it is written.
BOTO_FLOOR := $(shell sed -n 's/^ *"botocore>=\([0-9.]*\)",*$$/\1/p' pyproject.toml)
WHEEL = $(firstword $(wildcard $(DIST)/sagestream-*.whl))
# What depends on botocore's release: the request path and what proves it, the retry loop on
# botocore's decisions, the model-driven rules, botocore's own path (the fallback), the
# emulator's async jobs. The transport below them is the same on every botocore.
OLDEST_TESTS = tests/test_fast_path.py tests/test_request_differential.py tests/test_rules.py \
	tests/test_retries.py tests/test_client_emulator.py tests/test_stream_raw.py \
	tests/test_emulator_async.py tests/test_jobs.py

.PHONY: wheel ## The wheel of this checkout (release build), in build/dist
wheel:
	$(STAMP)
	rm -rf $(DIST)
	$(PY) -m pip wheel -q --no-deps -w $(DIST) .

.PHONY: check-newest ## Fail when the installed boto3/botocore are not the newest PyPI serves
check-newest:
	$(PY) .ci/check-newest boto3 botocore

.PHONY: env-aio ## aiobotocore's venv (it pins botocore), with this checkout's wheel: for test-aio and the benchmarks
env-aio: wheel
	$(STAMP)
	rm -rf $(ENVS)/aio && $(PY) -m venv $(ENVS)/aio
	$(ENVS)/aio/bin/pip install -q "$(WHEEL)[test-aio]"
	$(ENVS)/aio/bin/python -c "import botocore, aiobotocore; print('botocore', botocore.__version__, 'aiobotocore', aiobotocore.__version__)"

.PHONY: test-aio ## The drop-in against aiobotocore, in its own venv (aiobotocore pins botocore)
test-aio: env-aio
	$(STAMP)
	$(ENVS)/aio/bin/python -m pytest -q -p no:cacheprovider -n auto --dist loadfile \
		tests/test_patch.py tests/test_patch_differential.py tests/test_otel_aio.py

.PHONY: test-oldest ## The request path on the oldest botocore declared, in its own venv
test-oldest: wheel
	$(STAMP)
	rm -rf $(ENVS)/oldest && $(PY) -m venv $(ENVS)/oldest
	$(ENVS)/oldest/bin/pip install -q "boto3==$(BOTO_FLOOR)" "botocore==$(BOTO_FLOOR)" "$(WHEEL)[test-core]"
	$(ENVS)/oldest/bin/python -c "import botocore; assert botocore.__version__ == '$(BOTO_FLOOR)', botocore.__version__; print('botocore', botocore.__version__)"
	$(ENVS)/oldest/bin/python -m pytest -q -p no:cacheprovider -n auto --dist loadfile $(OLDEST_TESTS)

.PHONY: test-envs ## Both environments above
test-envs: test-aio test-oldest

.PHONY: rust-sdk ## Build examples/rust-sdk, the AWS SDK for Rust clients (minutes, cold)
rust-sdk:
	cd examples/rust-sdk && CARGO_TARGET_DIR=$(CURDIR)/target/rust-sdk cargo build --release

.PHONY: test-rust-sdk ## The AWS SDK for Rust clients against the emulator (not in CI: their build)
test-rust-sdk: rust-sdk
	$(PY) -m pytest tests/test_duplex_rust_sdk.py tests/test_rust_sdk_runtime.py -q

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
bench: build-prod env-aio bench-rust bench-duplex
	$(PY) benches/bench_decode.py
	$(PY) benches/bench_reassembly.py
	$(PY) benches/bench_e2e.py
	$(PY) benches/bench_aio.py
	$(PY) benches/bench_requests.py
	$(PY) benches/bench_frameworks.py
	$(PY) benches/bench_frameworks.py --delay 0 --rounds 5
	$(PY) benches/bench_otel.py

.PHONY: ci ## Lint and test everything with the full hypothesis profile, in every environment (what .ci/run runs)
ci: lint test-rust test-ci test-envs

.PHONY: all ## Lint and test everything (the fast hypothesis profile)
all: lint test-rust test

.PHONY: help ## Show this help
help:
	@grep -E '^.PHONY: .*?## .*$$' $(MAKEFILE_LIST) | sed 's/^.PHONY: \(.*\) ## \(.*\)/\1\t\2/' | expand -t 14
