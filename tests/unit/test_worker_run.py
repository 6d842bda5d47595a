"""The worker as the front sees it: fake kubelets over real TLS on loopback, a fake front over gRPC on a
unix socket, and `run_worker` with the real decoder, at a 1 s resolution."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc.aio
import kubemetrics.worker as worker
import pytest
from kubemetrics.options import WorkerOptions
from kubemetrics.v1 import ingest_pb2
from test_worker_fakes import (
    CUT,
    GARBAGE,
    OK,
    OVERSIZED,
    STATUS_500,
    SUMMARY_FIXTURE,
    TRUNCATED_JSON,
    FakeFront,
    FakeKubelet,
    FrontServer,
    SilentServer,
    TLSMaterial,
    decode_summary,
    fixture_body,
    worker_options,
)


@dataclass
class RunningWorker:
    task: asyncio.Task[int]
    stop: asyncio.Event

    async def exit_code(self, within: float) -> int:
        async with asyncio.timeout(within):
            return await self.task


@asynccontextmanager
async def running_worker(options: WorkerOptions) -> AsyncIterator[RunningWorker]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_worker(options, decoder=decode_summary, stop=stop))
    try:
        yield RunningWorker(task, stop)
    finally:
        stop.set()
        if not task.done():
            try:
                async with asyncio.timeout(5):
                    await task
            except TimeoutError:
                task.cancel()


@asynccontextmanager
async def cluster(
    tmp_path: Path, *hosts: str, front: FakeFront | None = None
) -> AsyncIterator[tuple[FrontServer, TLSMaterial]]:
    tls = TLSMaterial.create(tmp_path, *hosts)
    server = await FrontServer(tmp_path, front).start()
    try:
        yield server, tls
    finally:
        await server.stop()


@asynccontextmanager
async def kubelets(*servers: FakeKubelet | SilentServer) -> AsyncIterator[None]:
    for server in servers:
        await server.start()
    try:
        yield
    finally:
        for server in servers:
            await server.stop()


def intervals(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


async def test_scrapes_each_node_once_per_resolution_and_pushes_the_decoded_fixture(tmp_path: Path) -> None:
    async with cluster(tmp_path, "127.0.7.1", "127.0.7.2") as (server, tls):
        node_a, node_b = FakeKubelet("127.0.7.1", tls), FakeKubelet("127.0.7.2", tls)
        async with kubelets(node_a, node_b):
            server.front.assign(node_a.target("node-a"), node_b.target("node-b"))
            started = time.monotonic()
            async with running_worker(worker_options(server.address, tls)):
                await asyncio.sleep(3.4)
            front = server.front

    for kubelet in (node_a, node_b):
        times = kubelet.request_times()
        # The first request comes at once (a freshly started worker), the second at the node's slot
        # at least half a resolution later, then one per second on that slot.
        assert times[0] - started < 0.5
        assert 0.5 <= times[1] - times[0] <= 1.6
        assert all(0.85 <= gap <= 1.15 for gap in intervals(times[1:])), intervals(times)
        assert 3 <= len(times) <= 5
        assert all(request.path_qs == "/stats/summary?only_cpu_and_memory=true" for request in kubelet.requests)

    fixture = json.loads(SUMMARY_FIXTURE.read_bytes())
    expected_pods = {
        (pod["podRef"]["namespace"], pod["podRef"]["name"]): {
            container["name"]: (container["cpu"]["usageCoreNanoSeconds"], container["memory"]["workingSetBytes"])
            for container in pod["containers"]
        }
        for pod in fixture["pods"]
    }
    assert len(expected_pods) == 17
    for node, kubelet in (("node-a", node_a), ("node-b", node_b)):
        samples = front.samples_of(node)
        assert len(samples) == len(kubelet.requests)
        for sample in samples:
            node_point = sample["node_point"]
            assert node_point["cumulative_cpu_nanos"] == fixture["node"]["cpu"]["usageCoreNanoSeconds"] == 133968365000
            assert node_point["memory_working_set_bytes"] == fixture["node"]["memory"]["workingSetBytes"] == 949145600
            assert node_point["timestamp_unix_nanos"] == 1743704089_000_000_000  # 2025-04-03T18:14:49Z
            pods = {
                (pod["namespace"], pod["name"]): {
                    container["name"]: (
                        container["point"]["cumulative_cpu_nanos"],
                        container["point"]["memory_working_set_bytes"],
                    )
                    for container in pod["containers"]
                }
                for pod in sample["pods"]
            }
            assert pods == expected_pods
        outcomes = front.outcomes(node)
        assert [outcome.success for outcome in outcomes] == [True] * len(kubelet.requests)
        assert {outcome.response_bytes for outcome in outcomes} == {len(fixture_body())}
        assert all(outcome.error_kind == "" and 0 < outcome.duration_seconds < 0.5 for outcome in outcomes)
    assert [hello.worker_id for hello in front.hellos] == ["w0"]
    assert all(item.batch.worker_id == "w0" for item in front.received)


async def test_a_hanging_kubelet_times_out_without_delaying_another_nodes_samples(tmp_path: Path) -> None:
    async with cluster(tmp_path, "127.0.7.11") as (server, tls):
        healthy, silent = FakeKubelet("127.0.7.11", tls), SilentServer("127.0.7.12")
        async with kubelets(healthy, silent):
            server.front.assign(healthy.target("healthy"), silent.target("silent"))
            async with running_worker(worker_options(server.address, tls, request_timeout=0.5)):
                await asyncio.sleep(2.6)
            front = server.front

    timeouts = front.outcomes("silent")
    assert len(timeouts) >= 2
    assert {outcome.error_kind for outcome in timeouts} == {"timeout"}
    assert all(0.45 <= outcome.duration_seconds <= 0.8 for outcome in timeouts)
    assert timeouts[0].error_message.startswith("request timed out after 0.5s")
    # One request per slot (the last may still have been in flight when the worker stopped).
    assert silent.connections - len(timeouts) in (0, 1)
    # The healthy node kept its own rhythm, and its samples reached the front within a flush interval.
    assert all(0.85 <= gap <= 1.15 for gap in intervals(healthy.request_times()[1:]))
    assert len(front.samples_of("healthy")) == len(healthy.requests) >= 3
    arrivals = [item.at for item in front.received if any(o.node == "healthy" for o in item.batch.outcomes)]
    for request_at, arrival in zip(healthy.request_times(), arrivals, strict=False):
        assert arrival - request_at < 0.4


@pytest.mark.parametrize(
    ("mode", "kind", "message"),
    [
        (STATUS_500, "http_status", 'request failed, status: "500 Internal Server Error"'),
        (GARBAGE, "decode", "decode failed: "),
        (TRUNCATED_JSON, "decode", "decode failed: "),
        (OVERSIZED, "oversized", "response body exceeds --kubelet-max-body-bytes=80000 (Content-Length is "),
        (CUT, "connect", "connection broken while reading the body: "),
    ],
)
async def test_a_bad_answer_costs_only_that_nodes_sample_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str, kind: str, message: str
) -> None:
    caplog.set_level(logging.INFO, logger="kubemetrics.worker")
    async with cluster(tmp_path, "127.0.7.21", "127.0.7.22") as (server, tls):
        good, bad = FakeKubelet("127.0.7.21", tls), FakeKubelet("127.0.7.22", tls, mode=mode)
        async with kubelets(good, bad):
            server.front.assign(good.target("good"), bad.target("bad"))
            async with running_worker(worker_options(server.address, tls, max_body_bytes=80_000)):
                await server.front.wait_for(lambda: len(server.front.outcomes("bad")) >= 2, 4, "two bad outcomes")
                await server.front.wait_for(lambda: len(server.front.samples_of("good")) >= 2, 4, "good samples")
            front = server.front

    outcomes = front.outcomes("bad")
    assert {(o.success, o.error_kind) for o in outcomes} == {(False, kind)}
    assert outcomes[0].error_message.startswith(message), outcomes[0].error_message
    assert front.samples_of("bad") == []
    assert all(outcome.success for outcome in front.outcomes("good"))
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "Failed to scrape node" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    line = failures[0].getMessage()
    assert 'node="bad"' in line
    assert f'url="{bad.url}"' in line
    assert f"kind={kind}" in line
    assert json.dumps(outcomes[0].error_message) in line


async def test_a_failing_node_logs_again_on_a_new_cause_and_once_on_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kubemetrics.worker")
    async with cluster(tmp_path, "127.0.7.31") as (server, tls):
        kubelet = FakeKubelet("127.0.7.31", tls, mode=STATUS_500)
        async with kubelets(kubelet):
            server.front.assign(kubelet.target("flaky"))
            async with running_worker(worker_options(server.address, tls)):
                front = server.front
                await front.wait_for(lambda: len(front.outcomes("flaky")) >= 2, 4, "two 500s")
                kubelet.mode = GARBAGE
                await front.wait_for(lambda: front.outcomes("flaky")[-1].error_kind == "decode", 4, "a decode error")
                kubelet.mode = OK
                await front.wait_for(lambda: len(front.samples_of("flaky")) >= 2, 4, "two samples after recovery")

    lines = [r.getMessage() for r in caplog.records if 'node="flaky"' in r.getMessage()]
    assert len(lines) == 3, lines
    assert "kind=http_status" in lines[0]
    assert "kind=decode" in lines[1]
    assert lines[2].startswith("Scrape of node recovered")


async def test_reassignment_stops_removed_nodes_and_follows_a_moved_kubelet(tmp_path: Path) -> None:
    async with cluster(tmp_path, "127.0.7.41", "127.0.7.42", "127.0.7.43") as (server, tls):
        kept, removed, moved_to = (
            FakeKubelet("127.0.7.41", tls),
            FakeKubelet("127.0.7.42", tls),
            FakeKubelet("127.0.7.43", tls),
        )
        async with kubelets(kept, removed, moved_to):
            front = server.front
            front.assign(kept.target("kept"), removed.target("removed"))
            async with running_worker(worker_options(server.address, tls)):
                # Once past its first (early) request, the node is on its regular slots.
                await front.wait_for(lambda: len(front.samples_of("kept")) >= 2, 3, "two samples")
                # "kept" now lives at another address; "removed" went to another worker.
                front.assign(moved_to.target("kept"))
                reassigned_at = time.monotonic()
                await asyncio.sleep(2.3)
                kept_requests_before = [t for t in kept.request_times() if t < reassigned_at]

    assert [t for t in removed.request_times() if t > reassigned_at + 0.1] == []
    assert [t for t in kept.request_times() if t > reassigned_at + 0.1] == []
    assert len(moved_to.requests) >= 2
    # The node kept its slots: the first request at the new address is one resolution after the last one
    # at the old address.
    assert 0.85 <= moved_to.request_times()[0] - kept_requests_before[-1] <= 1.15


async def test_the_worker_exits_non_zero_when_the_front_goes_away(tmp_path: Path) -> None:
    async with cluster(tmp_path, "127.0.7.51") as (server, tls):
        kubelet = FakeKubelet("127.0.7.51", tls)
        async with kubelets(kubelet):
            server.front.assign(kubelet.target("n1"))
            async with running_worker(worker_options(server.address, tls)) as running:
                await server.front.wait_for(lambda: len(server.front.samples()) >= 1, 3, "a sample")
                await server.stop()
                stopped_at = time.monotonic()
                assert await running.exit_code(within=3) == worker.EXIT_FRONT_GONE
                assert time.monotonic() - stopped_at < 1.5


async def test_the_worker_exits_non_zero_when_the_front_ends_the_assignment_stream(tmp_path: Path) -> None:
    class EndingFront(FakeFront):
        async def Attach(
            self, request: ingest_pb2.WorkerHello, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[ingest_pb2.Assignment]:
            self.hellos.append(request)
            assert self._assignment is not None
            yield self._assignment

    async with cluster(tmp_path, "127.0.7.52", front=EndingFront()) as (server, tls):
        kubelet = FakeKubelet("127.0.7.52", tls)
        async with kubelets(kubelet):
            server.front.assign(kubelet.target("n1"))
            async with running_worker(worker_options(server.address, tls)) as running:
                assert await running.exit_code(within=3) == worker.EXIT_FRONT_GONE


async def test_the_worker_gives_up_quickly_when_no_front_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "FRONT_CONNECT_TIMEOUT_SECONDS", 0.5)
    options = worker_options(f"unix://{tmp_path}/nobody.sock", None)
    started = time.monotonic()
    assert await worker.run_worker(options, decoder=decode_summary) == worker.EXIT_FRONT_GONE
    assert time.monotonic() - started < 2


async def test_stopping_the_worker_sends_pending_results_and_ends_the_push_stream(tmp_path: Path) -> None:
    async with cluster(tmp_path, "127.0.7.61") as (server, tls):
        kubelet = FakeKubelet("127.0.7.61", tls)
        async with kubelets(kubelet):
            server.front.assign(kubelet.target("n1"))
            async with running_worker(worker_options(server.address, tls)) as running:
                await server.front.wait_for(lambda: len(server.front.samples()) >= 1, 3, "a sample")
                running.stop.set()
                assert await running.exit_code(within=3) == 0
            assert server.front.push_streams_ended == 1
            assert len(server.front.outcomes("n1")) == len(kubelet.requests)
