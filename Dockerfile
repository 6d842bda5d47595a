# syntax=docker/dockerfile:1
# kubemetrics image: `docker build -t kubemetrics:0.1.0 .` (the tag manifests/ deploy).
#
# Both stages start from the same python:3.11-slim-bookworm image, so the virtualenv built in the first
# stage runs unchanged in the second (same interpreter path, same CPython ABI, same glibc the wheel was
# linked against). The Rust toolchain is copied from the official rust image of the same Debian release
# instead of being installed with rustup or apt (Debian's cargo is far older than the 1.95 we build with).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUST_IMAGE} AS rust

FROM ${PYTHON_IMAGE} AS build
# Build tools, pinned as in requirements-dev.txt (tests/unit/test_manifests_static.py checks they agree).
ARG MATURIN_VERSION=1.16.0
ARG GRPCIO_TOOLS_VERSION=1.85.1
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
# rustc needs a C linker and the libc development files to link the extension module.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "maturin==${MATURIN_VERSION}" "grpcio-tools==${GRPCIO_TOOLS_VERSION}"

WORKDIR /src
COPY pyproject.toml requirements-dev.txt ./
COPY proto proto
COPY rust rust
COPY python python
# The gRPC stubs are generated, not committed (the Makefile's `proto` target, minus the mypy stubs);
# maturin packs everything under python/kubemetrics, so they must exist before the wheel is built.
RUN python -m grpc_tools.protoc -I proto --python_out=python --grpc_python_out=python proto/kubemetrics/v1/*.proto \
 && touch python/kubemetrics/v1/__init__.py
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/rust/target \
    maturin build --release --locked --out /wheels
# Runtime dependencies at the versions the test suite runs with (requirements-dev.txt as constraints).
# pip byte-compiles on install, which matters because the container's root filesystem is read-only.
RUN python -m venv /opt/kubemetrics \
 && /opt/kubemetrics/bin/pip install --no-cache-dir -c requirements-dev.txt /wheels/*.whl \
 && /opt/kubemetrics/bin/pip uninstall -y pip

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/kubemetrics /opt/kubemetrics
ENV PATH=/opt/kubemetrics/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Matches runAsUser in manifests/base/deployment.yaml; no passwd entry is needed.
USER 1000
ENTRYPOINT ["kubemetrics"]
CMD ["serve", "--help"]
