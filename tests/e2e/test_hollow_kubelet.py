"""Hollow mode against a real control plane: the simulated nodes register as Ready Nodes, pods a
Deployment creates are bound to them and become Running/Ready, and the nodes' kubelet endpoints report
those pods with the CPU usage their annotation asks for, until they are deleted."""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from control_plane import ControlPlane
from harness import ChildProcess, free_loopback_block, kubemetrics_argv

T = TypeVar("T")
NODES = 3


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Hollow:
    child: ChildProcess
    ready: dict[str, Any]
    ca_file: Path
    out_dir: Path

    def kubelet_url(self, node_address: str, path: str) -> str:
        return f"https://{node_address}:{self.ready['port']}{path}"

    def get(self, node_address: str, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.kubelet_url(node_address, path), context=context, timeout=10) as response:
            body: bytes = response.read()
            return body


@pytest.fixture(scope="module")
def hollow(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hollow]:
    base, port = free_loopback_block((100, 190))
    work = tmp_path_factory.mktemp("hollow")
    out_dir = work / "out"
    child = ChildProcess(
        "hollow-simulate",
        kubemetrics_argv(
            "simulate",
            f"--kubeconfig={control_plane.admin_kubeconfig}",
            f"--nodes={NODES}",
            f"--out-dir={out_dir}",
            f"--address-base={base}",
            f"--port={port}",
            # Every object sampled every second: rates over two scrapes a few seconds apart are exact.
            "--housekeeping-interval=1s",
            "--inventory-min-interval=0.5s",
            "-v=1",
        ),
        work,
    )
    try:
        ready_file = out_dir / "ready"
        wait_for("the simulator's ready file", lambda: True if ready_file.exists() or not child.alive() else None)
        assert child.alive(), child.log_text()
        yield Hollow(child, json.loads(ready_file.read_text()), out_dir / "ca.crt", out_dir)
    finally:
        code = child.stop()
        assert code == 0, child.log_text()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"hollow-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def kubectl_json(cluster: ControlPlane, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def create_deployment(cluster: ControlPlane, namespace: str, name: str, replicas: int, usage_cpu: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"kubemetrics.io/usage-cpu": usage_cpu}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "registry.example/web:1.0", "resources": {"requests": {"cpu": "200m"}}}
                    ]
                },
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))


def running_pods(cluster: ControlPlane, namespace: str, app: str, count: int) -> list[dict[str, Any]] | None:
    pods = kubectl_json(cluster, "-n", namespace, "get", "pods", "-l", f"app={app}")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if len(live) != count or any(p["status"].get("phase") != "Running" for p in live):
        return None
    return live


def condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in pod["status"]["conditions"] if c["type"] == kind)


_SAMPLE = re.compile(
    r'^container_cpu_usage_seconds_total\{container="app",namespace="([^"]+)",pod="([^"]+)"\} (\S+) (\d+)$'
)


def cpu_samples(hollow: Hollow, node_address: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(namespace, pod) → (cumulative core-seconds, sample time in seconds) from /metrics/resource."""
    samples = {}
    for line in hollow.get(node_address, "/metrics/resource").decode().splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[(match[1], match[2])] = (float(match[3]), int(match[4]) / 1000)
    return samples


def cpu_rate(hollow: Hollow, node_address: str, namespace: str, pod: str, seconds: float = 3.0) -> float:
    """Cores, from two scrapes `seconds` apart."""
    first = cpu_samples(hollow, node_address)[(namespace, pod)]
    time.sleep(seconds)
    second = cpu_samples(hollow, node_address)[(namespace, pod)]
    assert second[1] > first[1], (first, second)
    return (second[0] - first[0]) / (second[1] - first[1])


def test_simulated_nodes_are_registered_ready_with_their_kubelet_address_and_port(
    control_plane: ControlPlane, hollow: Hollow
) -> None:
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(control_plane, "get", "nodes")["items"]}
    first = ipaddress.IPv4Address(hollow.ready["firstAddress"])

    for index in range(NODES):
        node = nodes[f"sim-node-{index}"]
        status = node["status"]
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == f"sim-node-{index}"
        assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
        assert status["addresses"] == [
            {"type": "InternalIP", "address": str(first + index)},
            {"type": "Hostname", "address": f"sim-node-{index}"},
        ]
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == hollow.ready["port"]
        assert int(status["capacity"]["cpu"]) >= 4
        assert status["allocatable"]["pods"] == "110"
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert status["nodeInfo"]["kubeletVersion"] == control_plane.get_json("/version")["gitVersion"]
    # The kubelet the Node points at answers.
    assert hollow.get(str(first), "/healthz") == b"ok"


def test_deployment_pods_are_bound_and_run_ready_with_their_usage_reported_by_the_kubelet(
    control_plane: ControlPlane, hollow: Hollow, namespace: str
) -> None:
    create_deployment(control_plane, namespace, "web", replicas=2, usage_cpu="400m")

    pods = wait_for("2 Running pods", lambda: running_pods(control_plane, namespace, "web", 2), timeout=20)

    node_names = {pod["spec"]["nodeName"] for pod in pods}
    # Least loaded first: two pods on a fresh 3-node fleet land on two different nodes.
    assert len(node_names) == 2 and node_names <= {f"sim-node-{i}" for i in range(NODES)}
    for pod in pods:
        status = pod["status"]
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            assert condition(pod, kind)["status"] == "True"
            assert condition(pod, kind)["lastTransitionTime"]
        assert status["startTime"]
        assert ipaddress.IPv4Address(status["podIP"]).is_loopback
        (container,) = status["containerStatuses"]
        assert container["name"] == "app" and container["ready"] and container["started"]
        assert container["restartCount"] == 0
        assert container["state"]["running"]["startedAt"] == status["startTime"]
        assert container["containerID"].startswith("containerd://")
        assert container["image"] == "registry.example/web:1.0"

    pod = pods[0]
    name, host = pod["metadata"]["name"], pod["status"]["hostIP"]

    # The kubelet's Summary reports the API's pod under its UID, from its start time.
    # A pod the simulator has just marked Running enters its kubelet's payload from the next whole second.
    def reported_pod() -> dict[str, Any] | None:
        summary = json.loads(hollow.get(host, "/stats/summary?only_cpu_and_memory=true"))
        found = [p for p in summary["pods"] if p["podRef"]["name"] == name]
        return found[0] if len(found) == 1 else None

    reported = wait_for(f"pod {name} in the kubelet summary", reported_pod, timeout=10.0)
    assert reported["podRef"] == {"name": name, "namespace": namespace, "uid": pod["metadata"]["uid"]}
    assert reported["startTime"] == pod["status"]["startTime"]
    assert reported["containers"][0]["startTime"] == pod["status"]["startTime"]
    assert reported["containers"][0]["memory"]["workingSetBytes"] == 32 * 1024 * 1024

    assert cpu_rate(hollow, host, namespace, name) == pytest.approx(0.4, rel=0.02)

    control_plane.kubectl("-n", namespace, "annotate", "pod", name, "kubemetrics.io/usage-cpu=100m", "--overwrite")
    time.sleep(2)  # the new value takes effect from the second after the simulator sees it
    assert cpu_rate(hollow, host, namespace, name) == pytest.approx(0.1, rel=0.02)
    # Same pod, same counter: it kept its UID and start, and the counter kept growing.
    after = kubectl_json(control_plane, "-n", namespace, "get", "pod", name)
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert after["status"]["startTime"] == pod["status"]["startTime"]

    inventory = json.loads((hollow.out_dir / "inventory.json").read_text())
    listed = {(p["namespace"], p["name"]): p["nodeName"] for p in inventory["pods"]}
    assert listed[(namespace, name)] == pod["spec"]["nodeName"]


def test_scaled_down_pods_are_deleted_and_vanish_from_the_kubelet(
    control_plane: ControlPlane, hollow: Hollow, namespace: str
) -> None:
    create_deployment(control_plane, namespace, "shrink", replicas=3, usage_cpu="250m")
    pods = wait_for("3 Running pods", lambda: running_pods(control_plane, namespace, "shrink", 3), timeout=20)
    hosts = {pod["status"]["hostIP"] for pod in pods}
    wait_for(
        "the kubelets to report all three pods",
        lambda: True if sum(len(reported_pods(hollow, h, namespace)) for h in hosts) == 3 else None,
    )

    control_plane.kubectl("-n", namespace, "scale", "deployment", "shrink", "--replicas=1")

    remaining = wait_for(
        "the API to hold one pod",
        lambda: items if len(items := pods_of(control_plane, namespace, "shrink")) == 1 else None,
        timeout=20,
    )
    (survivor,) = remaining
    wait_for(
        "the kubelets to stop reporting the deleted pods",
        lambda: (
            True
            if {name for h in hosts for name in reported_pods(hollow, h, namespace)} == {survivor["metadata"]["name"]}
            else None
        ),
    )


def pods_of(cluster: ControlPlane, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json(cluster, "-n", namespace, "get", "pods", "-l", f"app={app}")["items"]
    return items


def reported_pods(hollow: Hollow, host: str, namespace: str) -> set[str]:
    summary = json.loads(hollow.get(host, "/stats/summary?only_cpu_and_memory=true"))
    return {p["podRef"]["name"] for p in summary["pods"] if p["podRef"]["namespace"] == namespace}
