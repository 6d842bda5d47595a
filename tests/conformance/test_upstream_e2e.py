"""metrics-server's own end-to-end cases (its test/e2e_test.go, as the project reference §8 describes them),
run against both collectors of the bed: if metrics-server passes a case and kubemetrics does not, the
case names the gap; metrics-server passing each one shows the port asks what upstream asks.

Setup as upstream's: a node labelled `metrics-server-skip=true` that both collectors exclude with
`--node-selector=metrics-server-skip!=true`, and the consumer pods in `default` (a CPU consumer at 50m, a
memory consumer at 50 MiB, a pod with an init container, one with a sidecar, one with a native sidecar).
The hollow kubelets report the usage those workloads would generate, so the cases can be checked more
tightly than upstream's ± tolerances, and are.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conformance_cluster import METRICS_API, Collector, ConformanceBed
from conformance_compare import byte_count, family_names, nanocores, series_label_names
from conformance_layout import (
    BAD_START_NODE,
    CPU_CONSUMER,
    DOWN_NODE,
    INIT_CONTAINER_CONSUMER,
    INIT_SIDECAR_CONSUMER,
    MEMORY_CONSUMER,
    NODE_SELECTOR,
    SIDECAR_CONSUMER,
    SKIP_LABEL,
)

COLLECTORS = ["metrics-server", "kubemetrics"]
READYZ = """[+]ping ok
[+]log ok
[+]poststarthook/max-in-flight-filter ok
[+]poststarthook/storage-object-count-tracker-hook ok
[+]metric-storage-ready ok
[+]metric-informer-sync ok
[+]metadata-informer-sync ok
[+]shutdown ok
readyz check passed
"""
LIVEZ = """[+]ping ok
[+]log ok
[+]poststarthook/max-in-flight-filter ok
[+]poststarthook/storage-object-count-tracker-hook ok
[+]metric-collection-timely ok
[+]metadata-informer-sync ok
livez check passed
"""
SELF_METRICS = [
    "metrics_server_api_metric_freshness_seconds",
    "metrics_server_kubelet_last_request_time_seconds",
    "metrics_server_kubelet_request_duration_seconds",
    "metrics_server_kubelet_request_total",
    "metrics_server_manager_tick_duration_seconds",
    "metrics_server_storage_points",
]


def _collector(bed: ConformanceBed, name: str) -> Collector:
    return bed.metrics_server if name == bed.metrics_server.name else bed.kubemetrics


def _pod(collector: Collector, name: str) -> dict[str, object]:
    document: dict[str, object] = collector.get_json(f"{METRICS_API}/namespaces/default/pods/{name}")
    return document


def _containers(document: dict[str, object]) -> list[dict[str, Any]]:
    containers = document["containers"]
    assert isinstance(containers, list)
    return containers


def _node_names(bed: ConformanceBed, selector: str) -> list[str]:
    nodes = json.loads(bed.control_plane.kubectl("get", "nodes", "-l", selector, "-o", "json").stdout)["items"]
    return [node["metadata"]["name"] for node in nodes]


@pytest.mark.parametrize("name", COLLECTORS)
def test_exposes_metrics_from_at_least_one_pod_in_cluster(bed: ConformanceBed, name: str) -> None:
    pods = _collector(bed, name).get_json(f"{METRICS_API}/pods")

    assert pods["items"] != []


@pytest.mark.parametrize("name", COLLECTORS)
def test_exposes_metrics_about_all_nodes_in_cluster(bed: ConformanceBed, name: str) -> None:
    """Every node the selector keeps — here except the one whose kubelet is down, and, for metrics-server
    only, the one whose kubelet writes a negative start time (the whole scrape fails upstream)."""
    collector = _collector(bed, name)
    unreachable = {DOWN_NODE} | ({BAD_START_NODE} if collector is bed.metrics_server else set())
    nodes = _node_names(bed, NODE_SELECTOR)

    missing = [n for n in nodes if n not in unreachable and collector.get(f"{METRICS_API}/nodes/{n}").status != 200]

    assert len(nodes) >= 100
    assert missing == []


@pytest.mark.parametrize("name", COLLECTORS)
def test_returns_accurate_cpu_metric(bed: ConformanceBed, name: str) -> None:
    (container,) = _containers(_pod(_collector(bed, name), CPU_CONSUMER))

    # Upstream: MilliValue ≈ 50 ± 10 from a real consumer. The hollow kubelet reports exactly 50m, and the
    # rate between two samples is exact up to the float rounding of Δcpu/Δt (e.g. "49999999n").
    assert abs(nanocores(container["usage"]["cpu"]) - 50_000_000) <= 50_000


@pytest.mark.parametrize("name", COLLECTORS)
def test_returns_accurate_memory_metric(bed: ConformanceBed, name: str) -> None:
    (container,) = _containers(_pod(_collector(bed, name), MEMORY_CONSUMER))

    # Upstream: Value/1024/1024 ≈ 50 ± 5.
    assert byte_count(container["usage"]["memory"]) // 1024 // 1024 == 50
    assert container["usage"]["memory"] == "50Mi"


@pytest.mark.parametrize("name", COLLECTORS)
def test_returns_metric_for_pod_with_init_container(bed: ConformanceBed, name: str) -> None:
    """The finished init container is not reported; the one container is named after the pod. (Upstream's
    `MilliValue() != 0` compares an int64 with an int and can never fail; here the values are checked.)"""
    (container,) = _containers(_pod(_collector(bed, name), INIT_CONTAINER_CONSUMER))

    assert container["name"] == INIT_CONTAINER_CONSUMER
    assert nanocores(container["usage"]["cpu"]) == 20_000_000
    assert byte_count(container["usage"]["memory"]) == 12 * 1024 * 1024


@pytest.mark.parametrize("name", COLLECTORS)
def test_returns_metric_for_pod_with_sidecar_container(bed: ConformanceBed, name: str) -> None:
    containers = _containers(_pod(_collector(bed, name), SIDECAR_CONSUMER))

    assert len(containers) == 2
    assert {c["name"]: c["usage"] for c in containers} == {
        SIDECAR_CONSUMER: {"cpu": "30m", "memory": "16Mi"},
        "sidecar-container": {"cpu": "5m", "memory": "10Mi"},
    }


@pytest.mark.parametrize("name", COLLECTORS)
def test_returns_metric_for_pod_with_init_sidecar_container(bed: ConformanceBed, name: str) -> None:
    """A native sidecar (init container with restartPolicy Always) keeps running and is reported."""
    containers = _containers(_pod(_collector(bed, name), INIT_SIDECAR_CONSUMER))

    assert len(containers) == 2
    assert {c["name"]: c["usage"] for c in containers} == {
        "init-sidecar-container": {"cpu": "5m", "memory": "10Mi"},
        INIT_SIDECAR_CONSUMER: {"cpu": "30m", "memory": "16Mi"},
    }


@pytest.mark.parametrize("name", COLLECTORS)
def test_passes_readyz_probe(bed: ConformanceBed, name: str) -> None:
    answer = _collector(bed, name).get("/readyz?verbose")

    assert (answer.status, answer.body) == (200, READYZ)


@pytest.mark.parametrize("name", COLLECTORS)
def test_passes_livez_probe(bed: ConformanceBed, name: str) -> None:
    answer = _collector(bed, name).get("/livez?verbose")

    assert (answer.status, answer.body) == (200, LIVEZ)


@pytest.mark.parametrize("name", COLLECTORS)
def test_exposes_prometheus_metrics(bed: ConformanceBed, name: str) -> None:
    answer = _collector(bed, name).get("/metrics")

    assert answer.status == 200
    assert sorted(family_names(series_label_names(answer.body))) == SELF_METRICS


@pytest.mark.parametrize("name", COLLECTORS)
def test_skips_nodes_the_node_selector_filters_out(bed: ConformanceBed, name: str) -> None:
    collector = _collector(bed, name)
    skipped = _node_names(bed, f"{SKIP_LABEL}=true")

    answers = {n: collector.get(f"{METRICS_API}/nodes/{n}") for n in skipped}

    assert skipped != []
    assert {n: a.status for n, a in answers.items()} == dict.fromkeys(skipped, 404)
