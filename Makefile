# kubemetrics — every target installs what it needs into .venv (Python) and rust/target (Rust).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
CARGO_MANIFEST := rust/Cargo.toml
# Shared fixtures and references: ../shared beside the checkout, else beside the repository this
# one was cloned from (a clone in /tmp/x of /work/main finds /work/shared).
KUBEMETRICS_SHARED_DIR ?= $(shell d="$(abspath ..)/shared"; if [ -d "$$d" ]; then echo "$$d"; \
	else o=$$(git config --get remote.origin.url 2>/dev/null); \
	if [ -n "$$o" ] && [ -d "$$o/../shared" ]; then cd "$$o/../shared" && pwd; else echo "$$d"; fi; fi)
export KUBEMETRICS_SHARED_DIR
PROTO_OUT := python/kubemetrics/v1
NATIVE_SO_STAMP := $(VENV)/.native-stamp
RUST_SOURCES := $(shell find rust -name '*.rs' -not -path '*/target/*') rust/Cargo.toml rust/Cargo.lock rust/kubemetrics-core/Cargo.toml rust/kubemetrics-python/Cargo.toml

.PHONY: all build test test-python test-rust lint demo clean proto control-plane-build e2e bench-decoders bench-store bench

all: build

$(VENV)/.deps-stamp: requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(PROTO_OUT)/.stamp: $(VENV)/.deps-stamp $(wildcard proto/kubemetrics/v1/*.proto)
	mkdir -p $(PROTO_OUT)
	$(PY) -m grpc_tools.protoc -I proto --python_out=python --grpc_python_out=python \
		--mypy_out=python --mypy_grpc_out=python proto/kubemetrics/v1/*.proto
	touch $(PROTO_OUT)/__init__.py $@

proto: $(PROTO_OUT)/.stamp

$(NATIVE_SO_STAMP): $(VENV)/.deps-stamp $(RUST_SOURCES) pyproject.toml
	$(VENV)/bin/maturin develop --release --locked -q
	touch $@

build: $(PROTO_OUT)/.stamp $(NATIVE_SO_STAMP)

test-rust:
	cargo test --manifest-path $(CARGO_MANIFEST) --release -q

test-python: build
	$(PY) -m pytest -q $(PYTEST_ARGS)

test: build test-rust test-python

lint: build
	$(VENV)/bin/ruff check python tests benchmarks scripts
	$(VENV)/bin/ruff format --check python tests benchmarks scripts
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest kubemetrics._native
	cargo fmt --manifest-path $(CARGO_MANIFEST) --all --check
	cargo clippy --manifest-path $(CARGO_MANIFEST) --all-targets -q -- -D warnings

control-plane-build:
	scripts/control-plane/build.sh

e2e: build control-plane-build
	KUBEMETRICS_E2E=1 $(PY) -m pytest tests/e2e -v $(PYTEST_ARGS)

# Differential conformance (docs/conformance.md): the upstream metrics-server, built from the Go module
# proxy into ~/.cache/kubemetrics, and kubemetrics on the same hollow fleet and control plane.
.PHONY: metrics-server-build conformance
METRICS_SERVER_VERSION ?= v0.8.0

metrics-server-build:
	scripts/metrics-server/build.sh $(METRICS_SERVER_VERSION)

conformance: build control-plane-build metrics-server-build
	KUBEMETRICS_CONFORMANCE=1 KUBEMETRICS_METRICS_SERVER_VERSION=$(METRICS_SERVER_VERSION) \
		$(PY) -m pytest tests/conformance -v -s $(PYTEST_ARGS)

bench-decoders: build
	$(PY) -m benchmarks.decoders

# Scenario benchmarks beside metrics-server (benchmarks/README.md): every scenario, or SCENARIO=100x70
# (several: SCENARIO="100x70 1000x30"); BENCH_ARGS passes more flags, e.g. BENCH_ARGS="--baseline none".
bench: build
	$(PY) -m benchmarks.runner $(foreach s,$(SCENARIO),--scenario $(s)) $(BENCH_ARGS)

bench-store: build
	$(PY) -m benchmarks.store

demo: build
	$(PY) -m kubemetrics demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) rust/target $(PROTO_OUT) python/kubemetrics/*.so
