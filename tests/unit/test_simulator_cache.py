"""Bodies rendered once per node, form and wall second (and gzipped once), the bytes counted per node, and
a fixed container count per pod. Time is a fake clock the tests move."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import FakeClock, free_loopback_block
from kubemetrics.simulator.apipods import ApiPods
from kubemetrics.simulator.catalog import APPLICATIONS, DAEMON_SETS, with_container_count
from kubemetrics.simulator.cli import add_flags, config_from
from kubemetrics.simulator.control import start_control
from kubemetrics.simulator.faults import Fault, FaultKind
from kubemetrics.simulator.model import Model, SimulationParameters
from kubemetrics.simulator.server import Fleet, FleetSettings, RenderedBodies

ORIGIN = 1_800_000_000
RESOURCE = "/metrics/resource"
REDUCED_SUMMARY = "/stats/summary?only_cpu_and_memory=true"


@dataclass
class RunningFleet:
    fleet: Fleet
    clock: FakeClock
    session: aiohttp.ClientSession

    def url(self, node: int, path: str) -> str:
        return f"https://{self.fleet.kubelets[node].address}:{self.fleet.settings.port}{path}"

    async def get(self, node: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        # aiohttp asks for gzip unless told otherwise.
        sent = headers or {"Accept-Encoding": "identity"}
        async with self.session.get(self.url(node, path), headers=sent) as response:
            return response.status, await response.read(), response.headers.get("Content-Encoding", "")


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningFleet]:
    base, port = free_loopback_block()
    clock = FakeClock(ORIGIN + 100)
    params = SimulationParameters(nodes=2, pods_per_node=8, seed=5, origin=ORIGIN, restart_interval=0)
    fleet = Fleet(Model(params), FleetSettings(out_dir=tmp_path, address_base=base, port=port), clock=clock)
    await fleet.start()
    # auto_decompress off: the test sees the bytes on the wire.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(fleet.ca_file))),
        auto_decompress=False,
    )
    yield RunningFleet(fleet, clock, session)
    await session.close()
    await fleet.stop()


# ---- the per-second cache ----


def test_a_body_is_rendered_once_per_node_form_second_and_revision() -> None:
    bodies = RenderedBodies()
    renders: list[str] = []

    def render(text: str) -> Any:
        return lambda: renders.append(text) or text.encode()

    first = bodies.get(0, "resource", 100, 0, render("a"))
    again = bodies.get(0, "resource", 100, 0, render("b"))
    other_node = bodies.get(1, "resource", 100, 0, render("c"))
    other_form = bodies.get(0, "summary", 100, 0, render("d"))
    other_revision = bodies.get(0, "resource", 100, 1, render("e"))

    assert again is first and first.payload == b"a"
    assert (other_node.payload, other_form.payload, other_revision.payload) == (b"c", b"d", b"e")
    assert renders == ["a", "c", "d", "e"]
    assert (bodies.hits, bodies.misses, len(bodies)) == (1, 4, 4)


def test_the_next_second_empties_the_cache_so_it_holds_one_second_of_bodies() -> None:
    bodies = RenderedBodies()
    bodies.get(0, "resource", 100, 0, lambda: b"old")
    bodies.get(1, "resource", 100, 0, lambda: b"old")

    later = bodies.get(0, "resource", 101, 0, lambda: b"new")

    assert later.payload == b"new"
    assert len(bodies) == 1


def test_a_pod_source_without_a_revision_is_never_cached() -> None:
    bodies = RenderedBodies()
    renders = 0

    def render() -> bytes:
        nonlocal renders
        renders += 1
        return b"x"

    bodies.get(0, "resource", 100, None, render)
    bodies.get(0, "resource", 100, None, render)

    assert renders == 2
    assert len(bodies) == 0


def test_the_gzip_form_is_compressed_once_and_inflates_to_the_payload() -> None:
    body = RenderedBodies().get(0, "resource", 100, 0, lambda: b"metric 1\n" * 100)

    compressed = body.gzip()

    assert body.gzip() is compressed
    assert gzip.decompress(compressed) == b"metric 1\n" * 100


async def test_requests_within_a_second_get_the_same_bytes_as_a_fresh_render(running: RunningFleet) -> None:
    kubelet = running.fleet.kubelets[1]
    now = running.fleet.now()

    first = await running.get(1, RESOURCE)
    second = await running.get(1, RESOURCE)
    summary = await running.get(1, REDUCED_SUMMARY)

    assert first == second == (200, kubelet.resource_body(now), "")
    assert summary == (200, kubelet.summary_body(full=False, now=now), "")
    assert (running.fleet.bodies.hits, running.fleet.bodies.misses) == (1, 2)


async def test_a_gzip_client_gets_the_cached_body_compressed(running: RunningFleet) -> None:
    plain = await running.get(0, RESOURCE)
    status, compressed, encoding = await running.get(0, RESOURCE, {"Accept-Encoding": "gzip"})

    assert (status, encoding) == (200, "gzip")
    assert gzip.decompress(compressed) == plain[1]
    assert running.fleet.bodies.misses == 1


async def test_the_next_second_serves_that_second_s_values(running: RunningFleet) -> None:
    kubelet = running.fleet.kubelets[0]
    before = await running.get(0, RESOURCE)
    # Every object of the node ticks once per 10 s housekeeping interval, each at its own phase.
    running.clock.now += 10

    after = await running.get(0, RESOURCE)

    assert after[1] == kubelet.resource_body(running.fleet.now())
    assert after[1] != before[1]
    assert running.fleet.bodies.misses == 2


async def test_faults_still_apply_to_each_request_of_a_cached_body(running: RunningFleet) -> None:
    healthy = await running.get(0, RESOURCE)
    await running.fleet.set_fault("sim-node-0", Fault(FaultKind.TRUNCATED))
    truncated = await running.get(0, RESOURCE)
    await running.fleet.set_fault("sim-node-0", Fault(FaultKind.HTTP500))
    failed = await running.get(0, RESOURCE)
    await running.fleet.set_fault("sim-node-0", None)

    assert truncated[1] == healthy[1][: len(healthy[1]) // 2]
    assert failed[0] == 500
    assert await running.get(0, RESOURCE) == healthy


async def test_pods_from_the_api_move_the_revision_and_so_the_body(running: RunningFleet) -> None:
    pods = ApiPods(running.fleet.model.params.housekeeping_interval)
    running.fleet.model.extra_pods = pods
    now = running.fleet.now()
    before = await running.get(0, RESOURCE)
    start = pods.revision

    # Started 30 s ago, seen now: the node's counters of this very second include it.
    pods.add(
        uid="u-1",
        namespace="bench-00",
        name="web-1",
        labels={},
        node_index=0,
        containers=[("app", None)],
        annotations={},
        start_time=now - 30,
        now=now,
    )
    after_add = await running.get(0, RESOURCE)
    pods.remove("u-1", now)

    assert pods.revision == start + 2
    assert after_add[1] == running.fleet.kubelets[0].resource_body(now)
    assert after_add[1] != before[1]
    assert running.fleet.bodies.misses == 2


def test_api_pods_count_only_real_changes_in_their_revision() -> None:
    pods = ApiPods(10)
    pods.add(
        uid="u-1",
        namespace="ns",
        name="p",
        labels={},
        node_index=0,
        containers=[("app", None)],
        annotations={},
        start_time=ORIGIN,
        now=ORIGIN,
    )

    unchanged = pods.update_usage("u-1", {}, ORIGIN + 1)
    missing = pods.remove("no-such-uid", ORIGIN + 1)

    assert (unchanged, missing, pods.revision) == (False, False, 1)


# ---- bytes per node ----


async def _raw_exchange(fleet: Fleet, node: int, request: bytes) -> bytes:
    kubelet = fleet.kubelets[node]
    context = ssl.create_default_context(cafile=str(fleet.ca_file))
    reader, writer = await asyncio.open_connection(
        str(kubelet.address), fleet.settings.port, ssl=context, server_hostname=str(kubelet.address)
    )
    writer.write(request)
    received = await reader.read()
    writer.close()
    return received


async def test_the_control_endpoint_counts_the_bytes_each_node_wrote_per_path(running: RunningFleet) -> None:
    gzip_request = b"GET /metrics/resource HTTP/1.1\r\nHost: n\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    health_request = b"GET /healthz HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n"
    resource = await _raw_exchange(running.fleet, 1, gzip_request)
    health = await _raw_exchange(running.fleet, 1, health_request)
    runner, port = await start_control(running.fleet, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/response-bytes") as response:
                counted = await response.json()
            async with client.get(f"http://127.0.0.1:{port}/requests") as response:
                requests = await response.json()
    finally:
        await runner.cleanup()

    assert b"Content-Encoding: gzip" in resource
    assert counted == {"sim-node-1": {"/metrics/resource": len(resource), "/healthz": len(health)}}
    assert requests == {"sim-node-1": {"/metrics/resource": 1, "/healthz": 1}}


async def test_a_cut_response_counts_only_what_was_sent(running: RunningFleet) -> None:
    await running.fleet.set_fault("sim-node-0", Fault(FaultKind.DISCONNECT))

    received = await _raw_exchange(running.fleet, 0, b"GET /metrics/resource HTTP/1.1\r\nHost: n\r\n\r\n")

    assert running.fleet.response_byte_counts() == {"sim-node-0": {"/metrics/resource": len(received)}}


# ---- containers per pod ----


def test_a_fixed_container_count_keeps_a_workload_s_first_containers_and_pads_with_sidecars() -> None:
    payments = next(w for w in APPLICATIONS if w.app == "payments-api")
    frontend = next(w for w in APPLICATIONS if w.app == "frontend")

    assert [c.name for c in with_container_count(payments, 2).containers] == ["api", "envoy"]
    assert [c.name for c in with_container_count(DAEMON_SETS[0], 3).containers] == [
        "kube-proxy",
        "sidecar-1",
        "sidecar-2",
    ]
    assert frontend.init is not None
    assert with_container_count(frontend, 1).init is None


def test_every_model_pod_lists_exactly_the_fixed_count_of_containers() -> None:
    params = SimulationParameters(nodes=3, pods_per_node=40, origin=ORIGIN, containers_per_pod=2, churn_interval=0)
    model = Model(params)

    counts = {len(pod.containers) for node in range(3) for pod in model.truth_for(node, ORIGIN + 60).pods}
    slots = [slot for node in model.nodes() for slot in node.slots]

    assert counts == {2}
    assert all(slot.init is None for slot in slots)
    assert all(len({c.name for c in slot.containers}) == 2 for slot in slots)


def test_the_default_keeps_each_workload_s_own_containers() -> None:
    model = Model(SimulationParameters(nodes=2, pods_per_node=60, origin=ORIGIN))

    counts = {len(slot.containers) for node in model.nodes() for slot in node.slots}
    inits = sum(1 for node in model.nodes() for slot in node.slots if slot.init is not None)

    assert counts == {1, 2, 3}
    assert inits > 0


def test_the_flag_sets_the_container_count_and_rejects_a_negative_one(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser)

    config = config_from(parser.parse_args(["--out-dir", str(tmp_path), "--containers-per-pod", "2"]), ORIGIN)
    default = config_from(parser.parse_args(["--out-dir", str(tmp_path)]), ORIGIN)

    assert (config.params.containers_per_pod, default.params.containers_per_pod) == (2, 0)
    with pytest.raises(ValueError, match="containers per pod"):
        config_from(parser.parse_args(["--out-dir", str(tmp_path), "--containers-per-pod", "-1"]), ORIGIN)
