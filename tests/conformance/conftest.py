"""Differential conformance: the real metrics-server and kubemetrics side by side on one hollow fleet.

Tests that use the `bed` fixture build (or take from the cache) a control plane and the upstream
metrics-server, start real processes and run for a few minutes, so they only run with
KUBEMETRICS_CONFORMANCE=1 (`make conformance`); everywhere else they are skipped with that reason.
The pure tests in this directory (the comparison itself, the simulator's edge-case hooks) always run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CONFORMANCE_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(CONFORMANCE_DIR.parent.parent / "scripts" / "control-plane"))

from conformance_cluster import (  # noqa: E402
    DEFAULT_METRICS_SERVER_VERSION,
    KUBEMETRICS_USER_AGENT,
    METRICS_API,
    METRICS_SERVER_USER_AGENT,
    Collector,
    ConformanceBed,
    Hollow,
    build_metrics_server,
    collector_flags,
    print_stderr,
    wait_for,
)
from conformance_layout import (  # noqa: E402
    BAD_START_NODE,
    DOWN_NODE,
    NAMESPACES,
    NODE_SELECTOR,
    NODES,
    RESTARTS,
    SEED,
    SKIP_LABEL,
    SKIPPED_NODE,
    PodPlan,
    all_pods,
    node_name,
)
from control_plane import ControlPlane, build_binaries, start_control_plane  # noqa: E402
from harness import ChildProcess, free_loopback_block, free_port, kubemetrics_argv  # noqa: E402

# Disjoint from the e2e suites, which draw from 127.100-230.
CONFORMANCE_OCTETS = (231, 250)

ENABLED = os.environ.get("KUBEMETRICS_CONFORMANCE") == "1"
SKIP_REASON = (
    "differential conformance test: set KUBEMETRICS_CONFORMANCE=1 (or run `make conformance`) to build the "
    "upstream metrics-server and a control plane and compare them with kubemetrics on a hollow fleet"
)
METRICS_SERVER_VERSION = os.environ.get("KUBEMETRICS_METRICS_SERVER_VERSION", DEFAULT_METRICS_SERVER_VERSION)
# Cold builds take minutes (metrics-server) to a quarter of an hour (control plane) on two cores.
BUILD_TIMEOUT_SECONDS = 3 * 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CONFORMANCE_DIR not in item.path.parents or "bed" not in getattr(item, "fixturenames", ()):
            continue
        if not ENABLED:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
        else:
            # The per-test timeout covers test bodies only; the builds and the start-up have their own.
            item.add_marker(pytest.mark.timeout(func_only=True))


def _start_hollow(control_plane: ControlPlane, work: Path) -> Hollow:
    base, port = free_loopback_block(CONFORMANCE_OCTETS)
    out_dir = work / "out"
    child = ChildProcess(
        "hollow-simulate",
        kubemetrics_argv(
            "simulate",
            f"--kubeconfig={control_plane.admin_kubeconfig}",
            f"--nodes={NODES}",
            f"--seed={SEED}",
            # One pod per node that the API does not know (a kubelet may report pods the API no longer
            # lists as Running): both collectors must hide it; its CPU still counts in the node's.
            "--pods-per-node=1",
            "--restart-interval=0",
            "--churn-interval=0",
            f"--out-dir={out_dir}",
            f"--address-base={base}",
            f"--port={port}",
            # Every object is sampled at the second it is scraped, so a served timestamp names the scrape.
            "--housekeeping-interval=1s",
            "--steady-memory",
            f"--fault={DOWN_NODE}=down",
            "--deregister-on-exit",
            "-v=1",
        ),
        work,
    )
    ready_file = out_dir / "ready"
    try:
        wait_for("the simulator's ready file", lambda: True if ready_file.exists() or not child.alive() else None, 120)
        assert child.alive(), child.log_text()[-4000:]
    except BaseException:
        child.stop()
        raise
    return Hollow(child, json.loads(ready_file.read_text()))


def _create_pods(control_plane: ControlPlane, pods: list[PodPlan]) -> None:
    control_plane.kubectl("label", "node", SKIPPED_NODE, f"{SKIP_LABEL}=true", "--overwrite")
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES[:-1]]
    control_plane.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": namespaces})
    )
    manifests = [p.manifest() for p in pods]
    control_plane.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}), timeout=180
    )
    expected = {p.key for p in pods if p.node is not None}

    def all_running() -> bool | None:
        listed = json.loads(control_plane.kubectl("get", "pods", "-A", "-o", "json", timeout=60).stdout)["items"]
        running = {
            f"{p['metadata']['namespace']}/{p['metadata']['name']}"
            for p in listed
            if (p.get("status") or {}).get("phase") == "Running"
        }
        return True if expected <= running else None

    wait_for(f"{len(expected)} pods to run", all_running, timeout=180, interval=2)


def _restart_before_collectors(control_plane: ControlPlane) -> None:
    control_plane.kubectl(
        "-n", "conformance-edge", "annotate", "pod", "restarted-before", f"{RESTARTS}.main=1", "--overwrite"
    )
    # The restart takes effect from the next whole second; the collectors' first scrape comes after it.
    time.sleep(2.0)


def _start_collector(name: str, argv: list[str], work: Path, user_agent: str, cluster: ControlPlane) -> Collector:
    port = free_port()
    cert_dir = work / f"{name}-certs"
    flags = collector_flags(cluster, port, cert_dir, NODE_SELECTOR)
    child = ChildProcess(name, [*argv, *flags], work)
    return Collector(name, child, port, user_agent, cluster.pki.front_proxy_client)


def _expected_nodes(collector: Collector) -> set[str]:
    nodes = {node_name(i) for i in range(NODES)} - {SKIPPED_NODE, DOWN_NODE}
    if collector.user_agent == METRICS_SERVER_USER_AGENT:
        nodes.discard(BAD_START_NODE)
    return nodes


def _wait_serving(collector: Collector) -> None:
    expected = _expected_nodes(collector)

    def serving() -> bool | None:
        if not collector.child.alive():
            raise AssertionError(f"{collector.name} exited:\n{collector.child.log_text()[-4000:]}")
        try:
            if collector.get("/readyz").status != 200:
                return None
            listed: Any = collector.get_json(f"{METRICS_API}/nodes")
        except (OSError, AssertionError):
            return None
        return True if {i["metadata"]["name"] for i in listed["items"]} >= expected else None

    wait_for(f"{collector.name} to serve all {len(expected)} nodes", serving, timeout=120, interval=1)


@pytest.fixture(scope="session")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConformanceBed]:
    metrics_server_binary = build_metrics_server(METRICS_SERVER_VERSION, BUILD_TIMEOUT_SECONDS)
    binaries = build_binaries(timeout=BUILD_TIMEOUT_SECONDS)
    started = time.monotonic()
    work = tmp_path_factory.mktemp("conformance")
    cluster = start_control_plane(binaries, work / "control-plane")
    hollow: Hollow | None = None
    collectors: list[Collector] = []
    try:
        hollow = _start_hollow(cluster, work)
        pods = all_pods()
        _create_pods(cluster, pods)
        _restart_before_collectors(cluster)
        collectors.append(
            _start_collector(
                "metrics-server", [str(metrics_server_binary), "-v=1"], work, METRICS_SERVER_USER_AGENT, cluster
            )
        )
        # --tolerated-scrape-failures=0 switches kubemetrics' one deliberate storage difference back to
        # metrics-server's behaviour (a node is hidden at its first failed scrape).
        kubemetrics = kubemetrics_argv("serve", "--workers=2", "--tolerated-scrape-failures=0")
        collectors.append(_start_collector("kubemetrics", kubemetrics, work, KUBEMETRICS_USER_AGENT, cluster))
        for collector in collectors:
            _wait_serving(collector)
        setup = time.monotonic() - started
        print_stderr(
            f"conformance bed up in {setup:.1f}s: {NODES} hollow nodes, {len(pods)} pods, "
            f"metrics-server {METRICS_SERVER_VERSION} on :{collectors[0].port}, kubemetrics on :{collectors[1].port}"
        )
        yield ConformanceBed(cluster, hollow, pods, collectors[0], collectors[1], METRICS_SERVER_VERSION, setup)
    finally:
        codes = {c.name: c.stop() for c in collectors}
        if hollow is not None:
            codes["simulator"] = hollow.child.stop()
        cluster.stop()
        print_stderr(f"conformance bed stopped; exit codes {codes}; logs in {work}")
