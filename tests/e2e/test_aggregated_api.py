"""kubemetrics as the aggregated API v1beta1.metrics.k8s.io behind a real kube-apiserver.

The simulator joins the control plane in hollow mode (NODES Ready nodes whose kubelets report each pod's
CPU from its `kubemetrics.io/usage-cpu` annotation); `kubemetrics serve` discovers those nodes through the
API, scrapes them, and authenticates/authorizes through the apiserver (delegated, with the request-header
CA kube-apiserver publishes). An ExternalName Service kube-system/kubemetrics → 127.0.0.1 plus the
APIService route the aggregator to the front, so `kubectl top` and the HPA in kube-controller-manager use
it exactly as they use metrics-server.

Tests run in file order and share one Deployment: top first, then the HPA scaling it up and down.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from control_plane import ControlPlane
from harness import ChildProcess, free_port, kubemetrics_argv

T = TypeVar("T")
NODES = 50
APP = "burner"
REQUEST_CPU_MILLI = 100
BUSY_CPU_MILLI = 400
IDLE_CPU_MILLI = 10
USAGE_ANNOTATION = "kubemetrics.io/usage-cpu"
APISERVICE = "v1beta1.metrics.k8s.io"
METRICS_API = "/apis/metrics.k8s.io/v1beta1"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_loopback_block() -> tuple[ipaddress.IPv4Address, int]:
    """A random /24 in 127.191-230.x.0 (the hollow-kubelet test draws from 127.100-190) and a port free on
    its first address; the NODES nodes take .1 upwards of it."""
    for _ in range(50):
        base = ipaddress.IPv4Address(f"127.{random.randint(191, 230)}.{random.randint(0, 254)}.0")
        port = random.randint(20000, 60000)
        with socket.socket() as sock:
            try:
                sock.bind((str(base + 1), port))
            except OSError:
                continue
        return base, port
    raise RuntimeError("no free loopback address/port found")


def kubectl_json(cluster: ControlPlane, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


@dataclass
class Hollow:
    child: ChildProcess
    ready: dict[str, Any]
    ca_file: Path
    started_in: float


@dataclass
class Front:
    child: ChildProcess
    port: int


@pytest.fixture(scope="module")
def hollow(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hollow]:
    base, port = free_loopback_block()
    work = tmp_path_factory.mktemp("aggregated-hollow")
    out_dir = work / "out"
    started = time.monotonic()
    child = ChildProcess(
        "hollow-simulate",
        kubemetrics_argv(
            "simulate",
            f"--kubeconfig={control_plane.admin_kubeconfig}",
            f"--nodes={NODES}",
            f"--out-dir={out_dir}",
            f"--address-base={base}",
            f"--port={port}",
            "--housekeeping-interval=1s",
            "--deregister-on-exit",
            "-v=1",
        ),
        work,
    )
    try:
        ready_file = out_dir / "ready"
        wait_for(
            "the simulator's ready file",
            lambda: True if ready_file.exists() or not child.alive() else None,
            timeout=120,
        )
        assert child.alive(), child.log_text()
        started_in = time.monotonic() - started
        print(f"hollow simulator with {NODES} nodes ready in {started_in:.1f}s", file=sys.stderr)
        yield Hollow(child, json.loads(ready_file.read_text()), out_dir / "ca.crt", started_in)
    finally:
        code = child.stop()
        assert code == 0, child.log_text()


@pytest.fixture(scope="module")
def front(control_plane: ControlPlane, hollow: Hollow, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    work = tmp_path_factory.mktemp("aggregated-front")
    port = free_port()
    admin = control_plane.admin_kubeconfig
    child = ChildProcess(
        "kubemetrics-serve",
        kubemetrics_argv(
            "serve",
            f"--kubeconfig={admin}",
            f"--authentication-kubeconfig={admin}",
            f"--authorization-kubeconfig={admin}",
            f"--kubelet-certificate-authority={hollow.ca_file}",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            "--metric-resolution=10s",
            "--kubelet-request-timeout=5s",
            "--workers=2",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={work / 'certs'}",
            # Debug logging: one line per request with the representation it was answered in.
            "-v=1",
        ),
        work,
    )
    try:
        wait_for(
            "the front to listen",
            lambda: True if _listening(port) or not child.alive() else None,
            timeout=60,
        )
        assert child.alive(), child.log_text()
        yield Front(child, port)
    finally:
        print(f"--- negotiated representations (front log {child.log_path}):", file=sys.stderr)
        for line in representation_lines(child.log_text()):
            print(line, file=sys.stderr)
        code = child.stop()
        assert code == 0, child.log_text()[-4000:]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


_REQUEST_LINE = re.compile(r"(GET \S+ -> \d+ in [\d.]+ ms \[[^\]]*\] \(Accept: .*)$")


def representation_lines(log: str) -> list[str]:
    """Request log lines for the metrics API, de-duplicated by (path without query, representation, client)."""
    seen: dict[tuple[str, str, str], str] = {}
    for line in log.splitlines():
        match = _REQUEST_LINE.search(line)
        if not match or METRICS_API not in line:
            continue
        text = match[1]
        path = text.split()[1].split("?")[0]
        representation = text[text.index("[") : text.index("]") + 1]
        client = text.rsplit(",", 1)[-1].strip(" )").split("/")[0]
        seen.setdefault((path, representation, client), text)
    return list(seen.values())


@pytest.fixture(scope="module")
def registered(control_plane: ControlPlane, front: Front) -> Iterator[float]:
    """The Service and APIService; yields the seconds it took for the APIService to become Available."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubemetrics", "namespace": "kube-system"},
        "spec": {
            "type": "ExternalName",
            "externalName": "127.0.0.1",
            "ports": [{"name": "https", "port": front.port, "protocol": "TCP"}],
        },
    }
    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": APISERVICE},
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "insecureSkipTLSVerify": True,
            "service": {"namespace": "kube-system", "name": "kubemetrics", "port": front.port},
        },
    }
    started = time.monotonic()
    control_plane.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, apiservice]})
    )
    try:
        wait_for("the APIService to be Available", lambda: True if _available(control_plane) else None, timeout=60)
        yield time.monotonic() - started
    finally:
        control_plane.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found")
        control_plane.kubectl("-n", "kube-system", "delete", "service", "kubemetrics", "--ignore-not-found")


def _available(cluster: ControlPlane) -> bool:
    return _available_condition(cluster).get("status") == "True"


def _available_condition(cluster: ControlPlane) -> dict[str, Any]:
    status = kubectl_json(cluster, "get", "apiservice", APISERVICE).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "Available"), {})


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"aggregated-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="module")
def deployment(control_plane: ControlPlane, hollow: Hollow, registered: float, namespace: str) -> str:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}, "annotations": {USAGE_ANNOTATION: f"{BUSY_CPU_MILLI}m"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/burner:1.0",
                            "resources": {"requests": {"cpu": f"{REQUEST_CPU_MILLI}m"}},
                        }
                    ]
                },
            },
        },
    }
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    wait_for("1 Running pod", lambda: running_pods(control_plane, namespace, 1), timeout=30)
    return APP


def running_pods(cluster: ControlPlane, namespace: str, count: int) -> list[dict[str, Any]] | None:
    pods = kubectl_json(cluster, "-n", namespace, "get", "pods", "-l", f"app={APP}")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if len(live) != count or any(p["status"].get("phase") != "Running" for p in live):
        return None
    return live


def parse_millicores(quantity: str) -> float:
    if quantity.endswith("n"):
        return int(quantity[:-1]) / 1e6
    if quantity.endswith("u"):
        return int(quantity[:-1]) / 1e3
    if quantity.endswith("m"):
        return float(quantity[:-1])
    return float(quantity) * 1000


def top_table(output: str) -> dict[str, list[str]]:
    """`kubectl top` output → first column → the other columns."""
    rows = [line.split() for line in output.strip().splitlines()]
    return {row[0]: row[1:] for row in rows[1:]}


def test_apiservice_is_available_and_metrics_group_is_discovered(
    control_plane: ControlPlane, registered: float
) -> None:
    print(f"APIService Available {registered:.1f}s after it was created", file=sys.stderr)

    condition = _available_condition(control_plane)
    versions = control_plane.kubectl("api-versions").stdout.split()
    resources = control_plane.get_json(METRICS_API)

    assert condition["status"] == "True", condition
    assert condition["reason"] == "Passed"
    assert "metrics.k8s.io/v1beta1" in versions
    assert resources["groupVersion"] == "metrics.k8s.io/v1beta1"
    assert {r["name"] for r in resources["resources"]} == {"nodes", "pods"}


def test_kubectl_top_nodes_lists_every_hollow_node(
    control_plane: ControlPlane, hollow: Hollow, registered: float
) -> None:
    expected = {f"sim-node-{i}" for i in range(NODES)}

    def all_nodes() -> dict[str, list[str]] | None:
        result = control_plane.kubectl("top", "nodes", check=False)
        if result.returncode != 0:
            return None
        table = top_table(result.stdout)
        # kubectl lists every Node and prints <unknown> for one the metrics API has no sample of yet.
        return table if all(table.get(n, ["<unknown>"])[0] != "<unknown>" for n in expected) else None

    started = time.monotonic()
    table = wait_for(f"kubectl top nodes to list the {NODES} hollow nodes", all_nodes, timeout=60, interval=2)
    print(f"kubectl top nodes complete after {time.monotonic() - started:.1f}s", file=sys.stderr)

    for name in expected:
        cpu, cpu_percent, memory, memory_percent = table[name]
        assert cpu.endswith("m") and int(cpu[:-1]) >= 0
        assert cpu_percent.endswith("%")
        assert memory.endswith("Mi") and int(memory[:-2]) > 0
        assert memory_percent.endswith("%")
    raw = control_plane.get_json(f"{METRICS_API}/nodes")
    assert raw["kind"] == "NodeMetricsList"
    assert expected <= {item["metadata"]["name"] for item in raw["items"]}


def test_kubectl_top_pods_and_the_raw_list_report_the_annotated_usage(
    control_plane: ControlPlane, deployment: str, namespace: str
) -> None:
    (pod,) = running_pods(control_plane, namespace, 1) or []
    name = pod["metadata"]["name"]

    def top_pods() -> dict[str, list[str]] | None:
        result = control_plane.kubectl("-n", namespace, "top", "pods", check=False)
        table = top_table(result.stdout) if result.returncode == 0 else {}
        return table if name in table else None

    started = time.monotonic()
    table = wait_for(f"kubectl top pods to show {name}", top_pods, timeout=60, interval=2)
    print(f"pod {name} in kubectl top pods {time.monotonic() - started:.1f}s after Running", file=sys.stderr)
    raw = control_plane.get_json(f"{METRICS_API}/namespaces/{namespace}/pods?labelSelector=app%3D{APP}")

    top_cpu = table[name][0]
    assert top_cpu.endswith("m")
    # kubectl rounds up to whole millicores.
    assert int(top_cpu[:-1]) == pytest.approx(BUSY_CPU_MILLI, rel=0.02)
    assert raw["kind"] == "PodMetricsList"
    (item,) = raw["items"]
    assert item["metadata"]["name"] == name and item["metadata"]["namespace"] == namespace
    (container,) = item["containers"]
    assert container["name"] == "app"
    assert parse_millicores(container["usage"]["cpu"]) == pytest.approx(BUSY_CPU_MILLI, rel=0.02)
    assert container["usage"]["memory"] == "32Mi"
    # The two scrapes behind a rate are one --metric-resolution apart; the kubelet stamps whole seconds.
    assert 9.0 <= float(item["window"].removesuffix("s")) <= 11.0, item["window"]


def hpa_status(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl_json(cluster, "-n", namespace, "get", "hpa", APP).get("status", {})
    return status


def rescale_events(cluster: ControlPlane, namespace: str) -> list[str]:
    events = kubectl_json(
        cluster,
        "-n",
        namespace,
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={APP},reason=SuccessfulRescale",
    )["items"]
    return [event["message"] for event in sorted(events, key=lambda e: e["metadata"]["creationTimestamp"])]


def test_the_controller_manager_hpa_scales_the_deployment_up_and_back_down(
    control_plane: ControlPlane, deployment: str, namespace: str
) -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": APP, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    }
    started = time.monotonic()
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(hpa))

    # 400m of 100m requested is 400 % against a 50 % target: desired 8, capped at 4.
    scaled_up = wait_for(
        "the HPA to scale the Deployment to 4",
        lambda: status if (status := hpa_status(control_plane, namespace)).get("desiredReplicas") == 4 else None,
        timeout=90,
        interval=1,
    )
    up_after = time.monotonic() - started
    pods = wait_for("4 Running pods", lambda: running_pods(control_plane, namespace, 4), timeout=30)
    (current,) = scaled_up["currentMetrics"]
    first_utilization = current["resource"]["current"]["averageUtilization"]
    print(f"HPA scaled up to 4 after {up_after:.1f}s at {first_utilization}% utilisation", file=sys.stderr)
    assert first_utilization == pytest.approx(BUSY_CPU_MILLI * 100 / REQUEST_CPU_MILLI, rel=0.03)
    assert len(pods) == 4
    assert any(
        "New size: 4; reason: cpu resource utilization (percentage of request) above target" in m
        for m in rescale_events(control_plane, namespace)
    ), rescale_events(control_plane, namespace)

    # Lower the usage: running pods by their own annotation, then the template for the pods to come (which
    # rolls the Deployment out; annotating after that would race with the old pods' deletion).
    started = time.monotonic()
    control_plane.kubectl(
        "-n", namespace, "annotate", "pods", "-l", f"app={APP}", f"{USAGE_ANNOTATION}={IDLE_CPU_MILLI}m", "--overwrite"
    )
    idle_template = {"spec": {"template": {"metadata": {"annotations": {USAGE_ANNOTATION: f"{IDLE_CPU_MILLI}m"}}}}}
    control_plane.kubectl("-n", namespace, "patch", "deployment", APP, "--type=merge", "-p", json.dumps(idle_template))

    # 4 × 10m of 4 × 100m is 10 %: desired ceil(4 × 10/50) = 1.
    scaled_down = wait_for(
        "the HPA to scale the Deployment back to 1",
        lambda: (
            status
            if (status := hpa_status(control_plane, namespace)).get("desiredReplicas") == 1
            and status.get("currentReplicas") == 1
            else None
        ),
        timeout=120,
        interval=1,
    )
    down_after = time.monotonic() - started
    (current,) = scaled_down["currentMetrics"]
    print(
        f"HPA scaled down to 1 {down_after:.1f}s after the usage dropped, at "
        f"{current['resource']['current']['averageUtilization']}% utilisation",
        file=sys.stderr,
    )
    messages = rescale_events(control_plane, namespace)
    print("SuccessfulRescale events: " + " | ".join(messages), file=sys.stderr)
    assert any("below target" in m for m in messages), messages
    replicas = kubectl_json(control_plane, "-n", namespace, "get", "deployment", APP)["spec"]["replicas"]
    assert replicas == 1
    assert current["resource"]["current"]["averageUtilization"] <= 2 * IDLE_CPU_MILLI * 100 / REQUEST_CPU_MILLI
    conditions = {c["type"]: c for c in scaled_down["conditions"]}
    assert conditions["ScalingActive"]["status"] == "True", conditions["ScalingActive"]


def test_each_client_got_the_representation_it_asked_for_and_the_hpa_was_authorized_as_itself(
    front: Front, registered: float
) -> None:
    """Runs last: the log then holds the requests of every earlier test."""
    log = front.child.log_text()
    lines = representation_lines(log)
    print("\n".join(lines), file=sys.stderr)
    answered = {(path_kind(line), user_agent_product(line), representation(line)) for line in lines}

    # kubectl and the HPA send `Accept: application/vnd.kubernetes.protobuf, */*`; clients without an
    # Accept header (the aggregator's availability probe, urllib) get JSON.
    assert ("nodes", "kubectl", "protobuf") in answered
    assert ("pods", "kubectl", "protobuf") in answered
    assert ("pods", "kube-controller-manager", "protobuf") in answered
    assert ("group-version", "Go-http-client", "json") in answered
    assert ("pods", "Python-urllib", "json") in answered
    assert {r for _, _, r in answered} == {"protobuf", "json"}
    assert (
        'SubjectAccessReview: user "system:serviceaccount:kube-system:horizontal-pod-autoscaler" '
        "(groups system:serviceaccounts,system:serviceaccounts:kube-system,system:authenticated) "
        "list pods.metrics.k8s.io"
    ) in log
    assert 'ClusterRole "system:controller:horizontal-pod-autoscaler"' in log


def path_kind(line: str) -> str:
    path = line.split()[1].split("?")[0]
    if path == METRICS_API:
        return "group-version"
    return path.rsplit("/", 1)[-1]


def user_agent_product(line: str) -> str:
    return line.rsplit(", ", 1)[-1].split("/")[0]


def representation(line: str) -> str:
    return line[line.index("[") + 1 : line.index("]")]
