"""What kubemetrics serves equals what the simulated kubelets measured (their ground truth), within 2 %,
read through the raw metrics.k8s.io API and through the installed kubectl."""

from __future__ import annotations

import math
import subprocess
from typing import Any

from kubemetrics.simulator.model import PodTruth
from pipeline_cluster import (
    Cluster,
    parse_cpu_nanocores,
    parse_memory_bytes,
    parse_timestamp,
    within,
)

MIB = 1024 * 1024


def _pod_node(cluster: Cluster, t: int) -> dict[tuple[str, str], str]:
    owners: dict[tuple[str, str], str] = {}
    for node in cluster.model.node_names():
        for pod in cluster.model.truth_for(node, t).pods:
            owners[(pod.namespace, pod.name)] = node
    return owners


def _pod_truths_in_window(cluster: Cluster, node: str, namespace: str, name: str, timestamp: int) -> list[PodTruth]:
    """The pod as its kubelet reported it for each possible scrape time. The served timestamp is the
    earliest container sample time, so the scrape happened within one housekeeping interval after it."""
    interval = cluster.model.params.housekeeping_interval
    return [cluster.model.truth_for(node, t).pod(namespace, name) for t in range(timestamp, timestamp + interval)]


def _containers_match(served: list[dict[str, Any]], truth: PodTruth) -> bool:
    expected = {c.name: c for c in truth.containers if c.cpu_nanocores > 0}
    if {c["name"] for c in served} != set(expected):
        return False
    return all(
        within(parse_cpu_nanocores(c["usage"]["cpu"]), expected[c["name"]].cpu_nanocores)
        and within(parse_memory_bytes(c["usage"]["memory"]), expected[c["name"]].memory_working_set_bytes)
        for c in served
    )


def test_node_cpu_and_memory_equal_ground_truth(cluster: Cluster) -> None:
    items = cluster.get_json("/apis/metrics.k8s.io/v1beta1/nodes")["items"]
    served = {item["metadata"]["name"]: item for item in items}
    assert set(cluster.healthy_nodes) <= set(served)
    for node in cluster.healthy_nodes:
        item = served[node]
        truth = cluster.model.truth_for(node, parse_timestamp(item["timestamp"]))
        cpu = parse_cpu_nanocores(item["usage"]["cpu"])
        memory = parse_memory_bytes(item["usage"]["memory"])
        assert within(cpu, truth.cpu_nanocores), (node, cpu, truth.cpu_nanocores)
        assert within(memory, truth.memory_working_set_bytes), (node, memory, truth.memory_working_set_bytes)
        window = float(item["window"].rstrip("s"))
        assert 5.0 <= window <= 30.0, item["window"]


def test_every_pod_and_container_equals_ground_truth(cluster: Cluster) -> None:
    items = cluster.get_json("/apis/metrics.k8s.io/v1beta1/pods")["items"]
    owners = _pod_node(cluster, parse_timestamp(items[0]["timestamp"]))
    healthy = set(cluster.healthy_nodes)
    expected_pods = {key for key, node in owners.items() if node in healthy}
    served_keys = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items}
    assert expected_pods <= served_keys, sorted(expected_pods - served_keys)
    checked = 0
    for item in items:
        key = (item["metadata"]["namespace"], item["metadata"]["name"])
        if key not in expected_pods:
            continue
        candidates = _pod_truths_in_window(cluster, owners[key], *key, parse_timestamp(item["timestamp"]))
        assert any(_containers_match(item["containers"], truth) for truth in candidates), (item, candidates[0])
        checked += 1
    assert checked == len(expected_pods) >= 30


def test_one_namespace_and_one_pod_get(cluster: Cluster) -> None:
    listed = cluster.get_json("/apis/metrics.k8s.io/v1beta1/pods")["items"]
    namespace = listed[0]["metadata"]["namespace"]
    in_namespace = cluster.get_json(f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods")["items"]
    assert in_namespace and {i["metadata"]["namespace"] for i in in_namespace} == {namespace}
    name = in_namespace[0]["metadata"]["name"]
    pod = cluster.get_json(f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}")
    assert pod["kind"] == "PodMetrics" and pod["metadata"]["name"] == name
    node = cluster.get_json(f"/apis/metrics.k8s.io/v1beta1/nodes/{cluster.healthy_nodes[0]}")
    assert node["kind"] == "NodeMetrics" and node["metadata"]["name"] == cluster.healthy_nodes[0]


def _kubectl(cluster: Cluster, *args: str) -> list[list[str]]:
    result = subprocess.run(
        ["kubectl", f"--kubeconfig={cluster.kubeconfig}", *args, "--no-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.split() for line in result.stdout.splitlines() if line.strip()]


def _kubectl_cpu(millicores: str) -> int:
    assert millicores.endswith("m"), millicores
    return int(millicores[:-1])


def _kubectl_memory(mebibytes: str) -> int:
    assert mebibytes.endswith("Mi"), mebibytes
    return int(mebibytes[:-2])


def _as_kubectl(cpu_nanocores: int, memory_bytes: int) -> tuple[int, int]:
    """kubectl prints CPU as MilliValue (rounded up) and memory as whole MiB (rounded down)."""
    return math.ceil(cpu_nanocores / 1_000_000), memory_bytes // MIB


def _close(printed: tuple[int, int], expected: tuple[int, int]) -> bool:
    return within(printed[0], expected[0], slack=1) and within(printed[1], expected[1], slack=1)


def test_kubectl_top_nodes_equals_ground_truth(cluster: Cluster) -> None:
    before = cluster.get_json("/apis/metrics.k8s.io/v1beta1/nodes")["items"]
    rows = {row[0]: row for row in _kubectl(cluster, "top", "nodes")}
    after = cluster.get_json("/apis/metrics.k8s.io/v1beta1/nodes")["items"]
    assert set(rows) == set(cluster.model.node_names())
    stamps: dict[str, set[int]] = {}
    for item in before + after:
        stamps.setdefault(item["metadata"]["name"], set()).add(parse_timestamp(item["timestamp"]))
    for node in cluster.healthy_nodes:
        printed = (_kubectl_cpu(rows[node][1]), _kubectl_memory(rows[node][3]))
        truths = [cluster.model.truth_for(node, t) for t in stamps[node]]
        expected = [_as_kubectl(t.cpu_nanocores, t.memory_working_set_bytes) for t in truths]
        assert any(_close(printed, e) for e in expected), (node, printed, expected)
    for node in cluster.model.node_names():
        if node not in cluster.healthy_nodes:
            assert rows[node][1:] == ["<unknown>"] * 4, rows[node]


def _pod_expectations(cluster: Cluster, items: list[dict[str, Any]]) -> dict[tuple[str, str], list[PodTruth]]:
    owners = _pod_node(cluster, parse_timestamp(items[0]["timestamp"]))
    found: dict[tuple[str, str], list[PodTruth]] = {}
    for item in items:
        key = (item["metadata"]["namespace"], item["metadata"]["name"])
        if owners.get(key) in cluster.healthy_nodes:
            found.setdefault(key, []).extend(
                _pod_truths_in_window(cluster, owners[key], *key, parse_timestamp(item["timestamp"]))
            )
    return found


def test_kubectl_top_pods_all_namespaces_equals_ground_truth(cluster: Cluster) -> None:
    before = cluster.get_json("/apis/metrics.k8s.io/v1beta1/pods")["items"]
    rows = _kubectl(cluster, "top", "pods", "-A")
    after = cluster.get_json("/apis/metrics.k8s.io/v1beta1/pods")["items"]
    expectations = _pod_expectations(cluster, before + after)
    printed = {(row[0], row[1]): (_kubectl_cpu(row[2]), _kubectl_memory(row[3])) for row in rows}
    assert set(expectations) <= set(printed)
    for key, truths in expectations.items():
        sums = [
            _as_kubectl(
                sum(c.cpu_nanocores for c in t.containers if c.cpu_nanocores > 0),
                sum(c.memory_working_set_bytes for c in t.containers if c.cpu_nanocores > 0),
            )
            for t in truths
        ]
        assert any(_close(printed[key], s) for s in sums), (key, printed[key], sums[:3])


def test_kubectl_top_pod_containers_equal_ground_truth(cluster: Cluster) -> None:
    namespace = cluster.get_json("/apis/metrics.k8s.io/v1beta1/pods")["items"][0]["metadata"]["namespace"]
    path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
    before = cluster.get_json(path)["items"]
    rows = _kubectl(cluster, "top", "pods", "-n", namespace, "--containers")
    after = cluster.get_json(path)["items"]
    expectations = _pod_expectations(cluster, before + after)
    assert expectations
    printed: dict[tuple[str, str], tuple[int, int]] = {
        (row[0], row[1]): (_kubectl_cpu(row[2]), _kubectl_memory(row[3])) for row in rows
    }
    for (_, pod), truths in expectations.items():
        for container in truths[0].containers:
            if container.cpu_nanocores == 0:
                continue
            options = [
                _as_kubectl(c.cpu_nanocores, c.memory_working_set_bytes)
                for t in truths
                for c in t.containers
                if c.name == container.name
            ]
            assert any(_close(printed[(pod, container.name)], o) for o in options), (pod, container.name)
