"""How the benchmark runner sizes a scenario: simulator processes, kubemetrics workers, the automatic
resolution, and the objects it writes into etcd for the baseline's cluster."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import orjson
import pytest
from kubemetrics.simulator.hollow import _shows_running

from benchmarks.runner import cluster, collectors, etcdload, kubelets, loadgen
from benchmarks.runner.scenarios import CATALOGUE, Scenario, auto_resolution, simulator_cores


def test_listen_ranges_cover_every_node_once_within_the_per_process_limit() -> None:
    for nodes in (1, 7999, 8000, 8001, 15000, 65000):
        ranges = kubelets.listen_ranges(nodes)
        covered = [index for first, last in ranges for index in range(first, last + 1)]
        assert covered == list(range(nodes))
        assert max(last - first + 1 for first, last in ranges) <= kubelets.NODES_PER_SIMULATOR
    assert kubelets.listen_ranges(15000) == [(0, 7499), (7500, 14999)]
    assert len(kubelets.listen_ranges(65000)) == 9


def test_kubemetrics_gets_more_workers_than_cpus_only_when_connections_need_them() -> None:
    assert collectors.kubemetrics_workers(5000, 1) is None
    assert collectors.kubemetrics_workers(15000, 1) is None
    assert collectors.kubemetrics_workers(15001, 1) == 2
    assert collectors.kubemetrics_workers(65000, 1) == 5
    assert collectors.kubemetrics_workers(65000, 8) is None


def test_auto_resolution_keeps_the_simulator_within_its_budget_and_15s_where_it_can() -> None:
    assert auto_resolution(CATALOGUE["100x70"]) == 15.0
    assert auto_resolution(CATALOGUE["1000x30"]) == 15.0
    for scenario in CATALOGUE.values():
        seconds = auto_resolution(scenario)
        assert simulator_cores(scenario, seconds) <= 0.7
        if seconds > 15.0:
            assert simulator_cores(scenario, seconds / 2) > 0.7


def test_etcd_objects_are_running_pods_on_their_nodes_and_ready_nodes() -> None:
    scenario = Scenario.parse("3x2x2")
    nodes = etcdload.inventory_nodes(3, "127.64.0.0", 10250, kubelets.SIMULATOR_SEED)
    objects = list(etcdload.scenario_objects(scenario, nodes, kubelets.SIMULATOR_SEED, cluster.pod_manifest, now=1e9))
    keys = [key for key, _ in objects]
    assert keys[:3] == ["/registry/minions/sim-node-0", "/registry/minions/sim-node-1", "/registry/minions/sim-node-2"]
    assert keys[3:] == [f"/registry/pods/bench-{i:02d}/web-{i:07d}" for i in range(6)]
    node = objects[1][1]
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.64.0.2"}
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    pods = [value for _, value in objects[3:]]
    assert [p["spec"]["nodeName"] for p in pods] == ["sim-node-0"] * 2 + ["sim-node-1"] * 2 + ["sim-node-2"] * 2
    assert [p["status"]["hostIP"] for p in pods][::2] == ["127.64.0.1", "127.64.0.2", "127.64.0.3"]
    assert all(_shows_running(p) for p in pods)
    assert len({p["metadata"]["uid"] for p in pods}) == 6
    assert [len(p["status"]["containerStatuses"]) for p in pods] == [2] * 6
    assert "resourceVersion" not in pods[0]["metadata"]


def test_freshness_bins_count_every_item_by_its_own_timestamp_not_the_metadata_ones() -> None:
    def item(name: str, stamp: str) -> dict[str, object]:
        return {
            "metadata": {"name": name, "namespace": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "timestamp": stamp,
            "window": "10.5s",
            "containers": [{"name": "c", "usage": {"cpu": "1m", "memory": "1Ki"}}],
        }

    items = [item("p1", "2026-11-27T10:00:00Z"), item("p2", "2026-11-27T10:00:05Z"), item("p3", "2026-11-27T10:00:05Z")]
    body = orjson.dumps(
        {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}
    )
    sent = dt.datetime(2026, 11, 27, 10, 0, 10, tzinfo=dt.UTC).timestamp()
    count, bins = loadgen.freshness_bins(body, sent)
    assert count == 3
    # 10 s and 5 s old, in bins of FRESHNESS_BIN_SECONDS.
    assert bins == {int(10 / loadgen.FRESHNESS_BIN_SECONDS): 1, int(5 / loadgen.FRESHNESS_BIN_SECONDS): 2}
    with pytest.raises(ValueError):
        loadgen.freshness_bins(b"<html>502</html>", sent)


def test_pods_served_adds_up_the_simulator_processes_each_listing_its_own_nodes_pods(tmp_path: Path) -> None:
    files = []
    for process, pods in enumerate((3, 4, 0)):
        path = tmp_path / f"inventory-{process}.json"
        path.write_bytes(orjson.dumps({"nodes": [], "pods": [{"name": f"p{process}-{i}"} for i in range(pods)]}))
        files.append(path)
    ready = kubelets.SimulatorReady(
        out_dir=tmp_path,
        pid=1,
        nodes=6,
        port=10250,
        control_url="http://127.0.0.1:1",
        ca_file=tmp_path / "ca.crt",
        inventory_file=files[0],
        address_base=ipaddress.IPv4Address("127.64.0.1"),
        seed=1,
        inventory_files=tuple(files),
    )

    assert kubelets.pods_served(ready) == 7
