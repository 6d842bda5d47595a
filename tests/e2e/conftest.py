"""End-to-end fixtures: a real kube-apiserver + kube-controller-manager + etcd on loopback.

These tests build (or reuse from the cache) the control-plane binaries and start real processes, so they
only run with KUBEMETRICS_E2E=1 (`make e2e`); everywhere else they are skipped with the reason shown.

The start/stop code lives in scripts/control-plane/control_plane.py so it is usable by hand as well."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent
CONTROL_PLANE_SCRIPTS = E2E_DIR.parent.parent / "scripts" / "control-plane"
sys.path.insert(0, str(CONTROL_PLANE_SCRIPTS))

from control_plane import ControlPlane, build_binaries, start_control_plane  # noqa: E402

E2E_ENABLED = os.environ.get("KUBEMETRICS_E2E") == "1"
SKIP_REASON = (
    "end-to-end test: set KUBEMETRICS_E2E=1 (or run `make e2e`) to build and start a real "
    "etcd + kube-apiserver + kube-controller-manager"
)
# A cold build takes tens of minutes on two cores; a warm one seconds.
BUILD_TIMEOUT_SECONDS = 3 * 3600


RESTARTS_APISERVER = "restarts_apiserver"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{RESTARTS_APISERVER}: stops and restarts the session's kube-apiserver; such tests run after all others",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort: everything keeps its order, except that tests taking the shared apiserver down go last.
    items.sort(key=lambda item: item.get_closest_marker(RESTARTS_APISERVER) is not None)
    for item in items:
        if E2E_DIR not in item.path.parents:
            continue
        if not E2E_ENABLED:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
        else:
            # The per-test timeout then covers the test body only, not a (possibly cold) build and the
            # control-plane start inside the session fixture, which have their own timeouts.
            item.add_marker(pytest.mark.timeout(func_only=True))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the whole session: `admin_kubeconfig`, `apiserver_url`, `pki` (cluster CA,
    front-proxy CA, front-proxy client cert/key, ...), `kubectl(...)`. Stopped, etcd data wiped, at the end."""
    binaries = build_binaries(timeout=BUILD_TIMEOUT_SECONDS)
    started = time.monotonic()
    cluster = start_control_plane(binaries, tmp_path_factory.mktemp("control-plane"))
    print(f"control plane up in {time.monotonic() - started:.1f}s at {cluster.apiserver_url}", file=sys.stderr)
    try:
        yield cluster
    finally:
        cluster.stop()
