"""kubemetrics as the aggregated API v1beta1.metrics.k8s.io behind a real kube-apiserver.

The simulator joins the control plane in hollow mode (NODES Ready nodes whose kubelets report each pod's
usage from its `kubemetrics.io/usage-*` annotations); `kubemetrics serve` discovers those nodes through the
API, scrapes them with two workers, and authenticates/authorizes through the apiserver (delegated, with
the request-header CA kube-apiserver publishes). An ExternalName Service kube-system/kubemetrics →
127.0.0.1 plus the APIService route the aggregator to the front, so `kubectl top` and the HPA in
kube-controller-manager use it exactly as they use metrics-server. The values `kubectl top` shows are
compared with the simulator's own account of what each kubelet reports (its /truth endpoint).

Tests run in file order and share one namespace: a Deployment and a few bare pods with known usage; top
first, then RBAC refusals, then the HPA scaling the Deployment up and down.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aggregated import (
    MEBIBYTE,
    MEMORY_ANNOTATION,
    METRICS_API,
    USAGE_ANNOTATION,
    Front,
    Hollow,
    Usage,
    available_condition,
    hollow_simulator,
    kubectl_json,
    kubemetrics_front,
    parse_bytes,
    parse_millicores,
    parse_time,
    registered_apiservice,
    top_rows,
    top_table,
    wait_for,
)
from control_plane import ControlPlane

NODES = 50
APP = "burner"
REQUEST_CPU_MILLI = 100
BUSY_CPU_MILLI = 400
IDLE_CPU_MILLI = 10


@pytest.fixture(scope="module")
def hollow(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hollow]:
    with hollow_simulator(control_plane, tmp_path_factory.mktemp("aggregated-hollow"), NODES) as simulated:
        yield simulated


@pytest.fixture(scope="module")
def front(control_plane: ControlPlane, hollow: Hollow, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    with kubemetrics_front(control_plane, hollow, tmp_path_factory.mktemp("aggregated-front")) as running:
        try:
            yield running
        finally:
            print(f"--- negotiated representations (front log {running.child.log_path}):", file=sys.stderr)
            for line in representation_lines(running.child.log_text()):
                print(line, file=sys.stderr)


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
    with registered_apiservice(control_plane, front) as seconds:
        yield seconds


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


def test_apiservice_is_available_and_metrics_group_is_discovered(
    control_plane: ControlPlane, registered: float
) -> None:
    print(f"APIService Available {registered:.1f}s after it was created", file=sys.stderr)

    condition = available_condition(control_plane)
    versions = control_plane.kubectl("api-versions").stdout.split()
    resources = control_plane.get_json(METRICS_API)

    assert condition["status"] == "True", condition
    assert condition["reason"] == "Passed"
    assert "metrics.k8s.io/v1beta1" in versions
    assert resources["groupVersion"] == "metrics.k8s.io/v1beta1"
    assert {r["name"] for r in resources["resources"]} == {"nodes", "pods"}


def expected_usage(truth: Mapping[Any, Usage], memory_rel: float = 0.0) -> dict[Any, tuple[object, object]]:
    """(millicores, bytes) to compare with: CPU within 2 % (plus 1m, as kubectl rounds up to whole
    millicores), memory within `memory_rel`."""
    return {
        key: (pytest.approx(u.millicores, rel=0.02, abs=1), pytest.approx(u.memory_bytes, rel=memory_rel, abs=0))
        for key, u in truth.items()
    }


def test_kubectl_top_nodes_lists_every_hollow_node_with_its_kubelets_usage(
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

    raw = control_plane.get_json(f"{METRICS_API}/nodes")
    # The kubelets' account at the sample times the metrics API reports (a node's memory drifts slowly).
    sampled_at = {item["metadata"]["name"]: parse_time(item["timestamp"]) for item in raw["items"]}
    truth = hollow.truth(expected, at=sampled_at)

    for name in expected:
        cpu, cpu_percent, memory, memory_percent = table[name]
        assert cpu.endswith("m") and int(cpu[:-1]) >= 0
        assert cpu_percent.endswith("%")
        assert memory.endswith("Mi") and int(memory[:-2]) > 0
        assert memory_percent.endswith("%")
    # kubectl prints whole millicores rounded up and whole MiB rounded down, hence the absolute slack.
    observed = {name: (parse_millicores(table[name][0]), parse_bytes(table[name][2])) for name in expected}
    # Within 2 %, not exact: a scrape may have landed between `kubectl top` and the raw list.
    assert observed == expected_usage(truth.nodes, memory_rel=0.02)
    assert raw["kind"] == "NodeMetricsList"
    assert expected <= set(sampled_at)
    # The raw list holds exactly the working set of its sample.
    raw_usage = {
        item["metadata"]["name"]: (parse_millicores(item["usage"]["cpu"]), parse_bytes(item["usage"]["memory"]))
        for item in raw["items"]
        if item["metadata"]["name"] in expected
    }
    assert raw_usage == expected_usage(truth.nodes)


@dataclass(frozen=True)
class KnownPod:
    """A bare pod with two containers whose usage its annotations set: `app` by the per-container
    annotations, `sidecar` by the pod-wide CPU one and the kubelet's default memory."""

    name: str
    tier: str
    app_millicores: int
    sidecar_millicores: int
    app_mebibytes: int

    def manifest(self, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "labels": {"tier": self.tier, "usage": "known"},
                "annotations": {
                    f"{USAGE_ANNOTATION}.app": f"{self.app_millicores}m",
                    f"{MEMORY_ANNOTATION}.app": f"{self.app_mebibytes}Mi",
                    USAGE_ANNOTATION: f"{self.sidecar_millicores}m",
                },
            },
            "spec": {
                "containers": [
                    {"name": "app", "image": "registry.example/web:2.1"},
                    {"name": "sidecar", "image": "registry.example/proxy:1.4"},
                ]
            },
        }

    def usage(self) -> dict[str, Usage]:
        return {
            "app": Usage(self.app_millicores, self.app_mebibytes * MEBIBYTE),
            "sidecar": Usage(self.sidecar_millicores, DEFAULT_MEMORY_MEBIBYTES * MEBIBYTE),
        }


DEFAULT_MEMORY_MEBIBYTES = 32  # what a hollow kubelet reports for a container without a memory annotation
KNOWN_PODS = tuple(
    KnownPod(f"known-{i}", "frontend" if i % 2 == 0 else "backend", 120 + 45 * i, 60 + 5 * i, 48 + 16 * i)
    for i in range(6)
)


@pytest.fixture(scope="module")
def known_pods(control_plane: ControlPlane, hollow: Hollow, registered: float, namespace: str) -> tuple[KnownPod, ...]:
    pods = [pod.manifest(namespace) for pod in KNOWN_PODS]
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))

    def all_running() -> bool | None:
        items = kubectl_json(control_plane, "-n", namespace, "get", "pods", "-l", "usage=known")["items"]
        phases = [item["status"].get("phase") for item in items]
        return True if phases == ["Running"] * len(KNOWN_PODS) else None

    wait_for(f"the {len(KNOWN_PODS)} known-usage pods to run", all_running, timeout=30)
    return KNOWN_PODS


def test_kubectl_top_pods_everywhere_per_container_and_by_label_match_the_kubelets(
    control_plane: ControlPlane,
    hollow: Hollow,
    front: Front,
    deployment: str,
    known_pods: tuple[KnownPod, ...],
    namespace: str,
) -> None:
    """Every pod the 50 kubelets run, each of its containers, and a label-selected subset, as kubectl
    shows them through the aggregator, equal what those kubelets report (the simulator's account)."""
    (burner,) = [pod["metadata"]["name"] for pod in running_pods(control_plane, namespace, 1) or []]
    created = {(namespace, burner), *((namespace, pod.name) for pod in known_pods)}

    def every_pod() -> dict[tuple[str, ...], list[str]] | None:
        result = control_plane.kubectl("top", "pods", "--all-namespaces", check=False)
        table = top_rows(result.stdout, 2) if result.returncode == 0 else {}
        return table if created <= set(table) else None

    started = time.monotonic()
    everywhere = wait_for(f"kubectl top pods -A to show the {len(created)} pods", every_pod, timeout=60, interval=2)
    print(f"all {len(created)} pods in kubectl top pods -A after {time.monotonic() - started:.1f}s", file=sys.stderr)
    truth = hollow.truth(f"sim-node-{i}" for i in range(NODES))
    pods = {key: truth.pod(*key) for key in truth.containers}
    per_container = top_rows(control_plane.kubectl("-n", namespace, "top", "pods", "--containers").stdout, 2)
    frontend = control_plane.get_json(f"{METRICS_API}/namespaces/{namespace}/pods?labelSelector=tier%3Dfrontend")
    log = front.child.log_text()

    # The kubelets run exactly these pods and report what their annotations ask for.
    assert set(pods) == created
    assert {pod.name: truth.containers[(namespace, pod.name)] for pod in known_pods} == {
        pod.name: pod.usage() for pod in known_pods
    }
    assert truth.containers[(namespace, burner)] == {"app": Usage(BUSY_CPU_MILLI, DEFAULT_MEMORY_MEBIBYTES * MEBIBYTE)}
    # Scraped by two workers, sharing the nodes.
    assert re.search(rf"attached: \d+ of {NODES} nodes, 2 workers live", log), log[-3000:]

    observed = {key: (parse_millicores(row[0]), parse_bytes(row[1])) for key, row in everywhere.items()}
    assert observed == expected_usage(pods)

    in_namespace = {
        (pod, container): usage
        for (ns, pod), containers in truth.containers.items()
        if ns == namespace
        for container, usage in containers.items()
    }
    observed = {key: (parse_millicores(row[0]), parse_bytes(row[1])) for key, row in per_container.items()}
    assert observed == expected_usage(in_namespace)

    assert frontend["kind"] == "PodMetricsList"
    selected = {
        (item["metadata"]["name"], container["name"]): (
            parse_millicores(container["usage"]["cpu"]),
            parse_bytes(container["usage"]["memory"]),
        )
        for item in frontend["items"]
        for container in item["containers"]
    }
    frontend_pods = {pod.name for pod in known_pods if pod.tier == "frontend"}
    assert {item["metadata"]["name"] for item in frontend["items"]} == frontend_pods
    assert selected == expected_usage({key: usage for key, usage in in_namespace.items() if key[0] in frontend_pods})


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


def test_users_without_rbac_are_forbidden_through_the_apiserver(
    control_plane: ControlPlane, front: Front, registered: float, namespace: str
) -> None:
    impersonated = control_plane.kubectl("--as=metrics-nobody", "top", "nodes", check=False)
    stranger = control_plane.pki.issue_client_cert("metrics-stranger", common_name="metrics-stranger")
    request = urllib.request.Request(f"{control_plane.apiserver_url}{METRICS_API}/namespaces/{namespace}/pods")
    context = control_plane.pki.client_ssl_context(stranger)
    with pytest.raises(urllib.error.HTTPError) as refused, urllib.request.urlopen(request, context=context, timeout=10):
        pass
    with refused.value as error:
        body = json.loads(error.read())

    assert impersonated.returncode == 1
    assert impersonated.stdout == ""
    assert impersonated.stderr.strip() == (
        'Error from server (Forbidden): nodes.metrics.k8s.io is forbidden: User "metrics-nobody" cannot list '
        'resource "nodes" in API group "metrics.k8s.io" at the cluster scope'
    )
    assert refused.value.code == 403
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            'pods.metrics.k8s.io is forbidden: User "metrics-stranger" cannot list resource "pods" '
            f'in API group "metrics.k8s.io" in the namespace "{namespace}"'
        ),
        "reason": "Forbidden",
        "details": {"group": "metrics.k8s.io", "kind": "pods"},
        "code": 403,
    }
    # kube-apiserver refuses them itself: neither request was proxied to kubemetrics.
    log = front.child.log_text()
    assert "metrics-nobody" not in log and "metrics-stranger" not in log


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
