"""Static inventory source: the JSON file format, reload on change, and broken files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import orjson
import pytest
from kubemetrics._native import MetricsStore
from kubemetrics.front import InventoryApplier
from kubemetrics.ingest import SampleIngestor, WorkerRegistry
from kubemetrics.inventory import InventorySnapshot, NodeAddress, NodeInfo, PodInfo
from kubemetrics.inventory.static import (
    InventoryFileError,
    StaticInventorySource,
    inventory_to_json,
    load_inventory,
    parse_inventory,
)
from kubemetrics.options import SUMMARY_PATH, KubeletOptions
from kubemetrics.planner import ScrapeTarget, ShardPlanner
from kubemetrics.selfmetrics import SelfMetrics
from kubemetrics.v1 import ingest_pb2, sample_pb2

# The example from the module docstring, verbatim.
DOCUMENTED_EXAMPLE = b"""
{"nodes": [{"name": "sim-node-0",
            "addresses": [{"type": "InternalIP", "address": "127.1.0.1"},
                          {"type": "Hostname", "address": "sim-node-0"}],
            "kubeletPort": 10250,
            "labels": {"kubernetes.io/hostname": "sim-node-0"},
            "annotations": {},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}],
 "pods": [{"namespace": "ns-1", "name": "web-0", "labels": {"app": "web"}, "nodeName": "sim-node-0"}]}
"""

POLL = 0.05


def nodes_document(*names: str, pods: list[dict[str, object]] | None = None) -> bytes:
    document: dict[str, object] = {
        "nodes": [{"name": name, "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]} for name in names]
    }
    if pods is not None:
        document["pods"] = pods
    return orjson.dumps(document)


def rewrite(path: Path, body: bytes) -> None:
    """Replace the file atomically, as a well-behaved writer does."""
    staging = path.with_suffix(".tmp")
    staging.write_bytes(body)
    os.replace(staging, path)


class SnapshotFeed:
    """Consumes a source in a task (as the front does), so tests can wait for or rule out snapshots
    without cancelling the generator."""

    def __init__(self, source: StaticInventorySource) -> None:
        self._queue: asyncio.Queue[InventorySnapshot | BaseException] = asyncio.Queue()
        self._task = asyncio.create_task(self._consume(source))

    async def _consume(self, source: StaticInventorySource) -> None:
        try:
            async for snapshot in source.snapshots():
                self._queue.put_nowait(snapshot)
        except Exception as err:
            self._queue.put_nowait(err)

    async def next(self, within: float = 5.0) -> InventorySnapshot:
        item = await asyncio.wait_for(self._queue.get(), within)
        if isinstance(item, BaseException):
            raise item
        return item

    async def assert_quiet(self, during: float) -> None:
        await asyncio.sleep(during)
        assert self._queue.empty(), f"unexpected snapshot: {self._queue.get_nowait()}"

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# --- parsing ----------------------------------------------------------------------------------


def test_documented_example_parses_into_nodes_and_pods() -> None:
    snapshot = parse_inventory(DOCUMENTED_EXAMPLE)
    assert snapshot.nodes == {
        "sim-node-0": NodeInfo(
            name="sim-node-0",
            addresses=(NodeAddress("InternalIP", "127.1.0.1"), NodeAddress("Hostname", "sim-node-0")),
            kubelet_port=10250,
            labels={"kubernetes.io/hostname": "sim-node-0"},
            annotations={},
            capacity={"cpu": "8", "memory": "32Gi", "pods": "110"},
            allocatable={"cpu": "8", "memory": "32Gi", "pods": "110"},
        )
    }
    assert snapshot.pods == {("ns-1", "web-0"): PodInfo("ns-1", "web-0", {"app": "web"}, "sim-node-0")}


def test_without_pods_key_pods_are_unknown_not_empty() -> None:
    assert parse_inventory(nodes_document("a")).pods is None
    assert parse_inventory(nodes_document("a", pods=[])).pods == {}


def test_optional_node_fields_default_to_empty() -> None:
    snapshot = parse_inventory(b'{"nodes": [{"name": "bare"}]}')
    assert snapshot.nodes["bare"] == NodeInfo(name="bare", addresses=(), kubelet_port=0)


def test_to_json_round_trips() -> None:
    snapshot = parse_inventory(DOCUMENTED_EXAMPLE)
    assert parse_inventory(inventory_to_json(snapshot)) == snapshot
    unknown_pods = parse_inventory(nodes_document("a", "b"))
    assert parse_inventory(inventory_to_json(unknown_pods)) == unknown_pods


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "top level: expected an object, got a list"),
        (b"{}", "nodes: missing"),
        (b'{"nodes": {}}', "nodes: expected a list, got an object"),
        (b'{"nodes": [{"addresses": []}]}', "nodes[0].name: missing"),
        (b'{"nodes": [{"name": ""}]}', "nodes[0].name: empty"),
        (b'{"nodes": [{"name": "a"}, {"name": "a"}]}', "nodes[1].name: duplicate node 'a'"),
        (b'{"nodes": [{"name": "a", "kubeletPort": "10250"}]}', "nodes[0].kubeletPort: expected a port number"),
        (b'{"nodes": [{"name": "a", "kubeletPort": 70000}]}', "nodes[0].kubeletPort: expected a port number"),
        (
            b'{"nodes": [{"name": "a", "addresses": [{"type": "InternalIP"}]}]}',
            "nodes[0].addresses[0].address: missing",
        ),
        (
            b'{"nodes": [{"name": "a", "labels": {"x": 1}}]}',
            "nodes[0].labels['x']: expected a string, got a number (1)",
        ),
        (b'{"nodes": [], "pods": [{"name": "p"}]}', "pods[0].namespace: missing"),
        (b'{"nodes": [], "pods": 3}', "pods: expected a list, got a number (3)"),
        (
            b'{"nodes": [], "pods": [{"namespace": "n", "name": "p"}, {"namespace": "n", "name": "p"}]}',
            "pods[1]: duplicate pod n/p",
        ),
    ],
)
def test_bad_documents_are_rejected_with_the_file_and_field_named(body: bytes, message: str) -> None:
    with pytest.raises(InventoryFileError) as caught:
        parse_inventory(body, source="/etc/inventory.json")
    assert str(caught.value).startswith("inventory file /etc/inventory.json: ")
    assert message in str(caught.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(InventoryFileError, match=f"inventory file {missing}: cannot read: No such file"):
        load_inventory(missing)


# --- source: reload -------------------------------------------------------------------------


async def test_source_yields_at_once_then_on_every_change(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_bytes(nodes_document("a"))
    feed = SnapshotFeed(StaticInventorySource(path, poll_interval_seconds=POLL))
    try:
        assert list((await feed.next()).nodes) == ["a"]
        rewrite(path, nodes_document("a", "b"))
        assert list((await feed.next()).nodes) == ["a", "b"]
        # An in-place rewrite (same inode) is noticed too.
        path.write_bytes(nodes_document("c", pods=[]))
        third = await feed.next()
        assert (list(third.nodes), third.pods) == (["c"], {})
    finally:
        await feed.close()


async def test_rewriting_the_same_content_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_bytes(nodes_document("a"))
    feed = SnapshotFeed(StaticInventorySource(path, poll_interval_seconds=POLL))
    try:
        await feed.next()
        rewrite(path, nodes_document("a"))
        await feed.assert_quiet(10 * POLL)
    finally:
        await feed.close()


async def test_broken_rewrite_keeps_previous_snapshot_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "inventory.json"
    path.write_bytes(nodes_document("a"))
    feed = SnapshotFeed(StaticInventorySource(path, poll_interval_seconds=POLL))
    try:
        await feed.next()
        with caplog.at_level(logging.ERROR, logger="kubemetrics.inventory.static"):
            rewrite(path, b'{"nodes": [{"name": 7}]}')
            await feed.assert_quiet(10 * POLL)
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors == [
            f"inventory file {path}: nodes[0].name: expected a string, got a number (7); "
            "keeping the previous inventory (1 nodes)"
        ]
        rewrite(path, nodes_document("a", "fixed"))
        assert list((await feed.next()).nodes) == ["a", "fixed"]
    finally:
        await feed.close()


async def test_file_removed_keeps_previous_snapshot_until_it_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "inventory.json"
    path.write_bytes(nodes_document("a"))
    feed = SnapshotFeed(StaticInventorySource(path, poll_interval_seconds=POLL))
    try:
        await feed.next()
        with caplog.at_level(logging.ERROR, logger="kubemetrics.inventory.static"):
            path.unlink()
            await feed.assert_quiet(10 * POLL)
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
            f"inventory file {path}: disappeared; keeping the previous inventory (1 nodes)"
        ]
        path.write_bytes(nodes_document("b"))
        assert list((await feed.next()).nodes) == ["b"]
    finally:
        await feed.close()


async def test_broken_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_bytes(b'{"nodes": "all of them"}')
    feed = SnapshotFeed(StaticInventorySource(path, poll_interval_seconds=POLL))
    try:
        with pytest.raises(InventoryFileError, match="nodes: expected a list, got a string"):
            await feed.next()
    finally:
        await feed.close()


# --- snapshots applied by the front to the store and the planner ------------------------------

T0 = 1_700_000_000 * 10**9


def two_points(store: MetricsStore, node: str) -> None:
    for step in (0, 1):
        at = T0 + step * 15 * 10**9
        point = sample_pb2.ResourcePoint(
            timestamp_unix_nanos=at, cumulative_cpu_nanos=10**10 + step * 10**9, memory_working_set_bytes=1 << 20
        )
        store.ingest(
            [sample_pb2.NodeSample(node=node, scrape_time_unix_nanos=at, node_point=point).SerializeToString()]
        )


def served_labels(store: MetricsStore, node: str) -> dict[str, str] | None:
    body = store.render_node(time.time(), node)
    return None if body is None else dict(orjson.loads(body)["metadata"].get("labels", {}))


def applier_for(store: MetricsStore, metrics: SelfMetrics) -> tuple[InventoryApplier, WorkerRegistry, SampleIngestor]:
    registry = WorkerRegistry(ShardPlanner())
    registry.planner.add_worker("w0")
    applier = InventoryApplier(store, registry, metrics, KubeletOptions(preferred_address_types=("InternalIP",)))
    ingestor = SampleIngestor(store, metrics, is_known_node=applier.has_node)
    applier.on_nodes_departed = ingestor.latest_outcomes.forget
    return applier, registry, ingestor


def test_applied_snapshot_gives_the_store_its_nodes_and_pods_and_the_planner_its_targets() -> None:
    store, metrics = MetricsStore(15.0, require_pod_metadata=True), SelfMetrics()
    applier, registry, _ = applier_for(store, metrics)
    snapshot = parse_inventory(
        b'{"nodes": [{"name": "a", "labels": {"zone": "1"},'
        b' "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},'
        b' {"name": "no-address"}],'
        b' "pods": [{"namespace": "ns", "name": "p", "labels": {"app": "x"}, "nodeName": "a"}]}'
    )
    applier.apply(snapshot)
    assert applier.snapshot() is snapshot
    assert store.has_node_metadata("a") and store.has_node_metadata("no-address")
    assert store.has_pod_metadata("ns", "p")
    assert registry.planner.assignment("w0").targets == (
        ScrapeTarget("a", "10.0.0.1", 10250, "/metrics/resource", fallback_path=SUMMARY_PATH),
    )
    two_points(store, "a")
    assert served_labels(store, "a") == {"zone": "1"}


def test_departed_nodes_and_pods_leave_the_store_self_metrics_and_the_plan() -> None:
    store, metrics = MetricsStore(15.0, require_pod_metadata=True), SelfMetrics()
    applier, registry, ingestor = applier_for(store, metrics)
    applier.apply(
        parse_inventory(
            b'{"nodes": [{"name": "a", "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},'
            b' {"name": "b", "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}],'
            b' "pods": [{"namespace": "ns", "name": "p"}, {"namespace": "ns", "name": "q"}]}'
        )
    )
    two_points(store, "b")
    ingestor.apply(
        ingest_pb2.SampleBatch(
            worker_id="w0", outcomes=[ingest_pb2.ScrapeOutcome(node="b", success=True, request_time_unix_nanos=T0)]
        )
    )
    assert (
        metrics.registry.get_sample_value("metrics_server_kubelet_last_request_time_seconds", {"node": "b"}) == T0 / 1e9
    )
    assert len(ingestor.latest_outcomes) == 1

    applier.apply(
        parse_inventory(
            b'{"nodes": [{"name": "a", "labels": {"new": "label"},'
            b' "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}],'
            b' "pods": [{"namespace": "ns", "name": "p"}]}'
        )
    )
    assert not store.has_node_metadata("b")
    assert store.render_node(time.time(), "b") is None
    assert store.stats().nodes == 0, "the departed node's points are dropped"
    assert not store.has_pod_metadata("ns", "q") and store.has_pod_metadata("ns", "p")
    assert metrics.registry.get_sample_value("metrics_server_kubelet_last_request_time_seconds", {"node": "b"}) is None
    assert len(ingestor.latest_outcomes) == 0
    assert [t.node for t in registry.planner.assignment("w0").targets] == ["a"]
    two_points(store, "a")
    assert served_labels(store, "a") == {"new": "label"}
