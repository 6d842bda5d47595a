"""kubemetrics through a kube-apiserver restart.

While the apiserver is down the front keeps answering requests sent straight to it (with the front-proxy
client certificate and X-Remote-User/Group headers, as the aggregator sends them) from the nodes it already
knows, and keeps scraping them. When the apiserver is back, the same process resumes its watches: a Node
registered after the restart appears in `kubectl top nodes` within a few resolutions.

The simulator runs NODES kubelets but only the first NODES - 1 have a Node when kubemetrics starts; the
last one's Node is registered after the restart. The restart is of the session's shared control plane, so
this module is marked to run after every other one (conftest.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aggregated import (
    MASTERS,
    METRICS_API,
    Front,
    Hollow,
    hollow_simulator,
    kubectl_json,
    kubemetrics_front,
    parse_millicores,
    registered_apiservice,
    top_table,
    wait_for,
)
from control_plane import ControlPlane

pytestmark = pytest.mark.restarts_apiserver

NODES = 4
FIRST_NODES = [f"sim-node-{i}" for i in range(NODES - 1)]
LATE_NODE = f"sim-node-{NODES - 1}"
RESOLUTION_SECONDS = 10.0


@pytest.fixture(scope="module")
def hollow(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hollow]:
    # No heartbeats during the test: they would patch the late node's status while it has no Node.
    work = tmp_path_factory.mktemp("restart-hollow")
    with hollow_simulator(control_plane, work, NODES, "--node-heartbeat-interval=1h") as simulated:
        yield simulated


@pytest.fixture(scope="module")
def late_node(control_plane: ControlPlane, hollow: Hollow) -> dict[str, Any]:
    """The last simulated node's Node as the simulator registered it, removed again until the test adds it
    back; its kubelet keeps listening. The simulator deletes it at exit (--deregister-on-exit)."""
    node: dict[str, Any] = kubectl_json(control_plane, "get", "node", LATE_NODE)
    control_plane.kubectl("delete", "node", LATE_NODE)
    return node


@pytest.fixture(scope="module")
def front(
    control_plane: ControlPlane, hollow: Hollow, late_node: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Front]:
    with kubemetrics_front(control_plane, hollow, tmp_path_factory.mktemp("restart-front")) as running:
        yield running


@pytest.fixture(scope="module")
def registered(control_plane: ControlPlane, front: Front) -> Iterator[float]:
    with registered_apiservice(control_plane, front) as seconds:
        yield seconds


def top_nodes(cluster: ControlPlane, names: list[str]) -> dict[str, list[str]] | None:
    """`kubectl top nodes` once every one of `names` has a sample (kubectl prints <unknown> until then)."""
    result = cluster.kubectl("top", "nodes", check=False)
    table = top_table(result.stdout) if result.returncode == 0 else {}
    return table if all(table.get(name, ["<unknown>"])[0] != "<unknown>" for name in names) else None


def node_metrics_from_the_front(front: Front, cluster: ControlPlane) -> dict[str, dict[str, Any]]:
    """NodeMetrics by name, asked of the front directly as the aggregator would ask on behalf of an admin."""
    status, body = front.get(f"{METRICS_API}/nodes", cert=cluster.pki.front_proxy_client, headers=MASTERS)
    assert status == 200, body
    assert body["kind"] == "NodeMetricsList"
    return {item["metadata"]["name"]: item for item in body["items"]}


def register(cluster: ControlPlane, node: dict[str, Any]) -> None:
    """Creates the Node with the metadata and status the simulator gave it."""
    metadata = {key: node["metadata"][key] for key in ("name", "labels", "annotations")}
    cluster.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": metadata}))
    status = {"status": node["status"]}
    cluster.kubectl("patch", "node", metadata["name"], "--subresource=status", "--type=merge", "-p", json.dumps(status))


def test_front_serves_while_the_apiserver_is_down_and_follows_nodes_added_after_it_restarts(
    control_plane: ControlPlane, front: Front, registered: float, late_node: dict[str, Any]
) -> None:
    wait_for("kubectl top nodes to show the first nodes", lambda: top_nodes(control_plane, FIRST_NODES), 60, 2)
    before = node_metrics_from_the_front(front, control_plane)
    seen_down: dict[str, Any] = {}

    def while_the_apiserver_is_down() -> None:
        seen_down["kubectl"] = control_plane.kubectl("top", "nodes", check=False, timeout=30)
        first = seen_down["first answer"] = node_metrics_from_the_front(front, control_plane)

        def newer_scrape_of_every_node() -> dict[str, dict[str, Any]] | None:
            current = node_metrics_from_the_front(front, control_plane)
            fresh = all(current[name]["timestamp"] > first[name]["timestamp"] for name in FIRST_NODES)
            return current if fresh else None

        seen_down["scraped"] = wait_for(
            "a scrape while the apiserver is down", newer_scrape_of_every_node, 2 * RESOLUTION_SECONDS, 1
        )

    stopped = time.monotonic()
    # SIGKILL 2 s after SIGTERM: the apiserver is down (its watches cut) from then until it is started again.
    control_plane.restart_apiserver(while_the_apiserver_is_down, stop_grace=2.0)
    print(f"kube-apiserver down and back in {time.monotonic() - stopped:.1f}s", file=sys.stderr)
    register(control_plane, late_node)
    registered_at = time.monotonic()
    table = wait_for(
        f"kubectl top nodes to show {LATE_NODE}",
        lambda: top_nodes(control_plane, [*FIRST_NODES, LATE_NODE]),
        timeout=6 * RESOLUTION_SECONDS,
        interval=1,
    )
    shown_after = time.monotonic() - registered_at
    print(f"{LATE_NODE} in kubectl top nodes {shown_after:.1f}s after it was registered", file=sys.stderr)
    after = node_metrics_from_the_front(front, control_plane)
    log = front.child.log_text()

    # Down: kubectl cannot reach the apiserver, the front answers from memory and goes on scraping.
    assert seen_down["kubectl"].returncode == 1
    assert "refused" in seen_down["kubectl"].stderr, seen_down["kubectl"].stderr
    assert set(seen_down["first answer"]) == set(FIRST_NODES)
    for name in FIRST_NODES:
        served, scraped = seen_down["first answer"][name], seen_down["scraped"][name]
        assert served["timestamp"] >= before[name]["timestamp"]
        assert parse_millicores(served["usage"]["cpu"]) == pytest.approx(
            parse_millicores(before[name]["usage"]["cpu"]), rel=0.02
        )
        assert scraped["timestamp"] > served["timestamp"]
        assert parse_millicores(scraped["usage"]["cpu"]) == pytest.approx(
            parse_millicores(before[name]["usage"]["cpu"]), rel=0.02
        )
    # Back: the process that started (its PID is in every log line) lost its watches and resumed them,
    # and the new node is scraped and served.
    pid, server = front.child.pid, control_plane.apiserver_url
    assert front.child.alive()
    assert log.count("kubemetrics serving metrics.k8s.io on") == 1
    for watched in ("nodes", "running pods"):
        lost = [line for line in log.splitlines() if f"] {watched} from {server}: " in line and "back-off" in line]
        resumed = [line for line in log.splitlines() if f"] {watched} from {server}: working again" in line]
        assert lost and resumed, log[-4000:]
        assert all(f" {pid} kubemetrics.inventory.kubernetes]" in line for line in lost + resumed), lost + resumed
    assert set(after) == {*FIRST_NODES, LATE_NODE}
    assert table[LATE_NODE][0].endswith("m") and table[LATE_NODE][2].endswith("Mi")
    assert shown_after <= 3 * RESOLUTION_SECONDS
