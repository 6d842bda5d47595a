"""Ingest service over a real unix socket with real grpc.aio clients and a real MetricsStore:
assignments follow the live workers and the inventory, samples reach the store, failures hide nodes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from harness import eventually
from kubemetrics._native import MetricsStore
from kubemetrics.health import HealthState
from kubemetrics.ingest import IngestServer, LatestOutcomes, SampleIngestor, WorkerRegistry, socket_address
from kubemetrics.options import SUMMARY_PATH, KubeletOptions, ServeOptions
from kubemetrics.planner import ScrapeTarget, ShardPlanner, plan
from kubemetrics.selfmetrics import SelfMetrics
from kubemetrics.supervisor import RestartBackoff, WorkerSupervisor, worker_command
from kubemetrics.v1 import ingest_pb2, ingest_pb2_grpc, sample_pb2

RESOLUTION = 15.0
T0 = 1_700_000_000 * 10**9  # Unix nanoseconds
SECOND = 10**9
WAIT = 5.0


def targets(count: int) -> list[ScrapeTarget]:
    return [ScrapeTarget(f"node-{i}", f"127.1.0.{i + 1}", 10250, SUMMARY_PATH) for i in range(count)]


def node_sample(node: str, at: int, cpu_nanos: int, memory: int = 1 << 30) -> bytes:
    point = sample_pb2.ResourcePoint(
        timestamp_unix_nanos=at, cumulative_cpu_nanos=cpu_nanos, memory_working_set_bytes=memory
    )
    container = sample_pb2.ContainerSample(
        name="app",
        point=sample_pb2.ResourcePoint(
            timestamp_unix_nanos=at,
            cumulative_cpu_nanos=cpu_nanos // 2,
            memory_working_set_bytes=memory // 4,
            start_time_unix_nanos=T0 - 3600 * SECOND,
        ),
    )
    pod = sample_pb2.PodSample(namespace="default", name=f"{node}-pod", containers=[container])
    return sample_pb2.NodeSample(node=node, scrape_time_unix_nanos=at, node_point=point, pods=[pod]).SerializeToString()


def outcome(node: str, at: int, error_kind: str = "") -> ingest_pb2.ScrapeOutcome:
    return ingest_pb2.ScrapeOutcome(
        node=node,
        success=not error_kind,
        duration_seconds=0.02,
        error_kind=error_kind,
        error_message=f"{error_kind} talking to {node}" if error_kind else "",
        request_time_unix_nanos=at,
    )


def success(node: str, at: int, cpu_nanos: int) -> ingest_pb2.SampleBatch:
    return ingest_pb2.SampleBatch(
        worker_id="w0", node_samples=[node_sample(node, at, cpu_nanos)], outcomes=[outcome(node, at)]
    )


class Front:
    """The ingest side of the front, wired as `kubemetrics serve` wires it."""

    def __init__(self, runtime_dir: Path, known_nodes: set[str]) -> None:
        self.health = HealthState(metric_resolution_seconds=RESOLUTION)
        self.metrics = SelfMetrics()
        self.store = MetricsStore(RESOLUTION)
        for node in known_nodes:
            self.store.set_node_metadata(node, {"kubernetes.io/hostname": node})
        self.registry = WorkerRegistry(ShardPlanner())
        self.ingestor = SampleIngestor(self.store, self.metrics, self.health, is_known_node=known_nodes.__contains__)
        self.server = IngestServer(self.registry, self.ingestor, self.health)
        self.address = socket_address(runtime_dir)

    def node_usage(self, node: str) -> dict[str, str] | None:
        body = self.store.render_node(time.time(), node)
        return None if body is None else dict(json.loads(body)["usage"])

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


class Worker:
    """A worker's side of the contract, as a plain grpc.aio client on its own channel."""

    def __init__(self, address: str, worker_id: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = ingest_pb2_grpc.IngestStub(self.channel)
        self.attach = self.stub.Attach(ingest_pb2.WorkerHello(worker_id=worker_id, pid=4242))

    async def next_assignment(self) -> ingest_pb2.Assignment:
        message = await asyncio.wait_for(self.attach.read(), WAIT)
        assert message is not grpc.aio.EOF, "the front ended the Attach stream"
        assert isinstance(message, ingest_pb2.Assignment)
        return message

    async def push(self, *batches: ingest_pb2.SampleBatch) -> ingest_pb2.PushSummary:
        call = self.stub.Push()
        for batch in batches:
            await call.write(batch)
        await call.done_writing()
        return await asyncio.wait_for(call, WAIT)

    async def die(self) -> None:
        await self.channel.close()


def nodes_of(assignment: ingest_pb2.Assignment) -> list[str]:
    return [target.node for target in assignment.targets]


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    # Short on purpose: a unix socket path must fit in 107 bytes, pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="km-ingest-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def front(runtime_dir: Path) -> AsyncIterator[Front]:
    front = Front(runtime_dir, known_nodes={f"node-{i}" for i in range(10)})
    await front.server.start(front.address)
    yield front
    await front.server.stop(0)


@pytest.fixture
async def workers() -> AsyncIterator[list[Worker]]:
    created: list[Worker] = []
    yield created
    for worker in created:
        await worker.channel.close()


# --- Attach -----------------------------------------------------------------------------------


async def test_attach_receives_the_whole_plan_at_once(front: Front, workers: list[Worker]) -> None:
    front.registry.set_targets(targets(10))
    workers.append(worker := Worker(front.address, "w0"))
    assignment = await worker.next_assignment()
    assert assignment.generation >= 1
    assert nodes_of(assignment) == sorted(f"node-{i}" for i in range(10))
    first = assignment.targets[0]
    assert (first.node, first.host, first.port, first.path) == ("node-0", "127.1.0.1", 10250, SUMMARY_PATH)
    assert front.registry.live_workers == {"w0"}


async def test_a_second_worker_takes_its_share_and_the_first_is_told(front: Front, workers: list[Worker]) -> None:
    front.registry.set_targets(targets(10))
    workers.append(w0 := Worker(front.address, "w0"))
    first = await w0.next_assignment()
    workers.append(w1 := Worker(front.address, "w1"))
    w1_plan = await w1.next_assignment()
    w0_plan = await w0.next_assignment()
    assert w0_plan.generation == w1_plan.generation > first.generation
    expected = plan(targets(10), ["w0", "w1"])
    assert nodes_of(w0_plan) == [t.node for t in expected["w0"]]
    assert nodes_of(w1_plan) == [t.node for t in expected["w1"]]
    assert len(w0_plan.targets) + len(w1_plan.targets) == 10


async def test_a_dead_workers_nodes_are_replanned_at_once(front: Front, workers: list[Worker]) -> None:
    front.registry.set_targets(targets(10))
    workers.append(w0 := Worker(front.address, "w0"))
    await w0.next_assignment()
    workers.append(w1 := Worker(front.address, "w1"))
    await w1.next_assignment()
    shared = await w0.next_assignment()
    assert len(shared.targets) < 10

    await w1.die()
    started = time.monotonic()
    alone = await w0.next_assignment()
    assert time.monotonic() - started < 2.0
    assert alone.generation > shared.generation
    assert nodes_of(alone) == sorted(f"node-{i}" for i in range(10))
    assert front.registry.live_workers == {"w0"}


async def test_an_inventory_change_is_sent_as_a_new_assignment(front: Front, workers: list[Worker]) -> None:
    front.registry.set_targets(targets(3))
    workers.append(worker := Worker(front.address, "w0"))
    before = await worker.next_assignment()
    front.registry.set_targets([*targets(2), ScrapeTarget("node-7", "127.1.0.8", 4443, SUMMARY_PATH)])
    after = await worker.next_assignment()
    assert after.generation > before.generation
    assert nodes_of(after) == ["node-0", "node-1", "node-7"]
    assert after.targets[2].port == 4443


async def test_a_worker_attaching_again_ends_its_previous_stream(front: Front, workers: list[Worker]) -> None:
    front.registry.set_targets(targets(4))
    workers.append(old := Worker(front.address, "w0"))
    await old.next_assignment()
    workers.append(new := Worker(front.address, "w0"))
    assert nodes_of(await new.next_assignment()) == ["node-0", "node-1", "node-2", "node-3"]
    assert await asyncio.wait_for(old.attach.read(), WAIT) is grpc.aio.EOF
    assert front.registry.live_workers == {"w0"}
    # The old stream ending must not unregister the worker id the new stream holds.
    await old.die()
    await asyncio.sleep(0.1)
    assert front.registry.live_workers == {"w0"}


async def test_attach_without_worker_id_is_rejected(front: Front, workers: list[Worker]) -> None:
    workers.append(worker := Worker(front.address, ""))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await worker.attach.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert front.registry.live_workers == frozenset()


# --- Push -------------------------------------------------------------------------------------


async def test_pushed_samples_reach_the_store_and_are_counted(front: Front, workers: list[Worker]) -> None:
    workers.append(worker := Worker(front.address, "w0"))
    summary = await worker.push(
        success("node-1", T0, cpu_nanos=30 * SECOND),
        success("node-1", T0 + 15 * SECOND, cpu_nanos=30 * SECOND + 3 * SECOND // 2),
    )
    assert (summary.batches, summary.samples) == (2, 2)
    # 1.5 CPU-seconds over 15 s = 100 millicores; memory is the latest working set (1 GiB).
    assert front.node_usage("node-1") == {"cpu": "100m", "memory": "1Gi"}
    assert front.metric("kubemetrics_ingest_batches_total", worker="w0") == 2.0
    assert front.metric("kubemetrics_ingest_node_samples_total", worker="w0") == 2.0
    assert front.metric("metrics_server_kubelet_request_total", success="true") == 2.0
    assert front.metric("metrics_server_kubelet_last_request_time_seconds", node="node-1") == (T0 + 15 * SECOND) / 1e9
    assert front.health.last_collection_progress is not None


async def test_a_failed_scrape_hides_the_node_until_it_has_two_points_again(
    front: Front, workers: list[Worker]
) -> None:
    workers.append(worker := Worker(front.address, "w0"))
    await worker.push(success("node-2", T0, 10 * SECOND), success("node-2", T0 + 15 * SECOND, 11 * SECOND))
    assert front.node_usage("node-2") is not None

    failed = ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("node-2", T0 + 30 * SECOND, "timeout")])
    await worker.push(failed)
    assert front.node_usage("node-2") is None
    assert front.metric("kubemetrics_scrape_errors_total", kind="timeout") == 1.0
    assert front.metric("metrics_server_kubelet_request_total", success="false") == 1.0

    await worker.push(success("node-2", T0 + 45 * SECOND, 12 * SECOND))
    assert front.node_usage("node-2") is None, "one point after a failure is not enough"
    await worker.push(success("node-2", T0 + 60 * SECOND, 13 * SECOND))
    assert front.node_usage("node-2") is not None


async def test_a_failure_older_than_the_latest_success_does_not_hide_the_node(
    front: Front, workers: list[Worker]
) -> None:
    workers.append(worker := Worker(front.address, "w0"))
    await worker.push(success("node-3", T0, 10 * SECOND), success("node-3", T0 + 15 * SECOND, 11 * SECOND))
    # E.g. the node's previous owner reporting a timeout after the new owner already succeeded.
    late = ingest_pb2.SampleBatch(worker_id="w1", outcomes=[outcome("node-3", T0 + 14 * SECOND, "connect")])
    await worker.push(late)
    assert front.node_usage("node-3") is not None
    assert front.metric("kubemetrics_scrape_errors_total", kind="connect") == 1.0


async def test_in_one_batch_only_the_latest_outcome_of_a_node_counts(front: Front, workers: list[Worker]) -> None:
    workers.append(worker := Worker(front.address, "w0"))
    await worker.push(success("node-4", T0, 10 * SECOND))
    both = ingest_pb2.SampleBatch(
        worker_id="w0",
        node_samples=[node_sample("node-4", T0 + 15 * SECOND, 11 * SECOND)],
        outcomes=[outcome("node-4", T0 + 15 * SECOND), outcome("node-4", T0 + 1 * SECOND, "tls")],
    )
    await worker.push(both)
    assert front.node_usage("node-4") is not None


async def test_unknown_error_kinds_are_counted_as_other(front: Front, workers: list[Worker]) -> None:
    workers.append(worker := Worker(front.address, "w0"))
    await worker.push(ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("node-5", T0, "cosmic-ray")]))
    assert front.metric("kubemetrics_scrape_errors_total", kind="other") == 1.0
    assert front.metric("kubemetrics_scrape_errors_total", kind="cosmic-ray") is None


async def test_outcomes_of_nodes_outside_the_inventory_create_no_per_node_series(
    front: Front, workers: list[Worker]
) -> None:
    workers.append(worker := Worker(front.address, "w0"))
    await worker.push(ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("departed", T0)]))
    assert front.metric("metrics_server_kubelet_request_total", success="true") == 1.0
    assert front.metric("metrics_server_kubelet_last_request_time_seconds", node="departed") is None
    assert len(front.ingestor.latest_outcomes) == 0


async def test_a_malformed_sample_is_logged_with_the_worker_and_the_stream_goes_on(
    front: Front, workers: list[Worker], caplog: pytest.LogCaptureFixture
) -> None:
    workers.append(worker := Worker(front.address, "w7"))
    garbage = ingest_pb2.SampleBatch(
        worker_id="w7", node_samples=[b"\xff\xff not a NodeSample", node_sample("node-6", T0, 10 * SECOND)]
    )
    with caplog.at_level(logging.ERROR, logger="kubemetrics.ingest"):
        summary = await worker.push(garbage, success("node-6", T0 + 15 * SECOND, 11 * SECOND))
    assert (summary.batches, summary.samples) == (2, 3)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("worker w7 sent a malformed sample in a batch of 2")
    # The valid sample next to the garbage was stored, and the following batch too.
    assert front.node_usage("node-6") is not None


def test_latest_outcomes_only_moves_forward() -> None:
    latest = LatestOutcomes()
    assert latest.note("n", 100)
    assert not latest.note("n", 99)
    assert latest.note("n", 100)
    latest.forget(["n"])
    assert latest.note("n", 1)
    assert len(latest) == 1


# --- with the real worker process -------------------------------------------------------------


@pytest.mark.integration
async def test_a_real_worker_started_by_the_supervisor_attaches_and_is_replanned_when_killed(front: Front) -> None:
    pytest.importorskip("kubemetrics.worker")
    front.registry.set_targets(targets(6))
    options = ServeOptions(metric_resolution_seconds=RESOLUTION, kubelet=KubeletOptions(insecure_tls=True))
    supervisor = WorkerSupervisor(
        ["w0", "w1"],
        worker_command(options, front.address),
        backoff=RestartBackoff(initial_seconds=2.0),
        stop_timeout_seconds=5.0,
    )
    await supervisor.start()
    try:
        await eventually(lambda: front.registry.live_workers == {"w0", "w1"}, within=30, what="both workers")
        assert front.registry.planner.shares() == plan(targets(6), ["w0", "w1"])

        os.kill(supervisor.pids()["w1"], signal.SIGKILL)
        await eventually(lambda: front.registry.live_workers == {"w0"}, within=1.5, what="w1 to be unregistered")
        assert len(front.registry.planner.assignment("w0").targets) == 6

        await eventually(lambda: front.registry.live_workers == {"w0", "w1"}, within=30, what="w1 to come back")
        assert supervisor.restarts == 1
        assert front.registry.planner.shares() == plan(targets(6), ["w0", "w1"])
    finally:
        await supervisor.shutdown()
    assert supervisor.pids() == {}
    await eventually(lambda: front.registry.live_workers == frozenset(), within=5, what="workers to detach")


async def test_the_first_plan_waits_until_every_started_worker_has_attached(runtime_dir: Path) -> None:
    front = Front(runtime_dir, known_nodes={f"node-{i}" for i in range(10)})
    front.registry = WorkerRegistry(ShardPlanner(), expected_workers=["w0", "w1"], startup_grace_seconds=WAIT * 2)
    front.server = IngestServer(front.registry, front.ingestor, front.health)
    front.registry.set_targets(targets(10))
    await front.server.start(front.address)
    first = Worker(front.address, "w0")
    try:
        pending = asyncio.ensure_future(first.next_assignment())
        await asyncio.sleep(0.5)
        assert not pending.done(), "w0 was planned alone before w1 attached"
        second = Worker(front.address, "w1")
        w0_plan, w1_plan = await asyncio.gather(pending, second.next_assignment())
        # Each node goes to exactly one worker in the very first plan: nobody is scraped twice.
        assert sorted(nodes_of(w0_plan) + nodes_of(w1_plan)) == sorted(f"node-{i}" for i in range(10))
        assert nodes_of(w0_plan) and nodes_of(w1_plan)
        await second.die()
    finally:
        await first.die()
        await front.server.stop(0)


async def test_the_first_plan_goes_out_after_the_grace_period_when_a_worker_never_attaches(runtime_dir: Path) -> None:
    front = Front(runtime_dir, known_nodes={f"node-{i}" for i in range(4)})
    front.registry = WorkerRegistry(ShardPlanner(), expected_workers=["w0", "w1"], startup_grace_seconds=0.5)
    front.server = IngestServer(front.registry, front.ingestor, front.health)
    front.registry.set_targets(targets(4))
    await front.server.start(front.address)
    only = Worker(front.address, "w0")
    try:
        started = time.monotonic()
        assignment = await only.next_assignment()
        assert 0.3 <= time.monotonic() - started < WAIT
        assert len(nodes_of(assignment)) == 4
    finally:
        await only.die()
        await front.server.stop(0)


def test_with_one_tolerated_failure_the_last_good_sample_stays_served_and_the_next_is_served_at_once() -> None:
    store = MetricsStore(RESOLUTION)
    store.set_node_metadata("node-2", {})
    ingestor = SampleIngestor(store, SelfMetrics(), tolerated_failures=1)

    def usage() -> dict[str, str] | None:
        body = store.render_node(time.time(), "node-2")
        return None if body is None else dict(json.loads(body)["usage"])

    ingestor.apply(success("node-2", T0, 10 * SECOND))
    ingestor.apply(success("node-2", T0 + 15 * SECOND, 11 * SECOND))
    assert usage() == {"cpu": "66666666n", "memory": "1Gi"}

    ingestor.apply(ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("node-2", T0 + 30 * SECOND, "timeout")]))
    assert usage() == {"cpu": "66666666n", "memory": "1Gi"}, "one failure keeps the last good sample"

    # The next good scrape pairs with the last good point: served at once, no two-resolution gap.
    ingestor.apply(success("node-2", T0 + 45 * SECOND, 13 * SECOND))
    assert usage() == {"cpu": "66666666n", "memory": "1Gi"}

    for at in (60, 75):
        ingestor.apply(
            ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("node-2", T0 + at * SECOND, "timeout")])
        )
    assert usage() is None, "a second consecutive failure hides the node, as metrics-server would at the first"
