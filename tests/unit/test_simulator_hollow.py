"""Hollow mode without an API server: quantities parse exactly, API pods use what their annotations
ask for with a counter that integrates rate changes, and the nodes count them in their own totals. Then
against a fake API server: a simulator process with --listen-nodes keeps, runs and binds to only its own
nodes' pods, and the paged list drops what its caller does not keep page by page."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from harness import eventually
from kubemetrics.inventory.kubeconfig import ApiServerConfig
from kubemetrics.simulator.apipods import ApiPods, requested_usage
from kubemetrics.simulator.hollow import HollowKubelets, HollowSettings
from kubemetrics.simulator.kubeapi import KubeClient
from kubemetrics.simulator.model import Model, SimulationParameters
from kubemetrics.simulator.quantity import QuantityError, cpu_nanocores, memory_bytes, parse_quantity
from kubemetrics.simulator.summary import SummaryRenderer
from test_simulator_server import start_fleet

MI = 1024 * 1024


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("400m", Fraction(2, 5)),
        ("1.5", Fraction(3, 2)),
        ("2", Fraction(2)),
        ("250u", Fraction(1, 4000)),
        ("64Mi", Fraction(64 * MI)),
        ("1e3", Fraction(1000)),
        ("1G", Fraction(10**9)),
        (".5", Fraction(1, 2)),
    ],
)
def test_quantities_parse_exactly(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "m", "4x", "1.2.3", "Mi"])
def test_malformed_quantities_are_refused_naming_the_text(text: str) -> None:
    with pytest.raises(QuantityError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def test_cpu_and_memory_quantities_convert_to_nanocores_and_bytes() -> None:
    assert cpu_nanocores("400m") == 400_000_000
    assert cpu_nanocores("1n") == 1
    assert memory_bytes("32Mi") == 32 * MI


def test_container_specific_annotation_wins_and_a_bad_value_falls_back_to_the_pod_wide_one() -> None:
    annotations = {
        "kubemetrics.io/usage-cpu": "300m",
        "kubemetrics.io/usage-cpu.sidecar": "20m",
        "kubemetrics.io/usage-memory.app": "lots",
        "kubemetrics.io/usage-memory": "100Mi",
    }

    app, app_problems = requested_usage(annotations, "app")
    sidecar, _ = requested_usage(annotations, "sidecar")

    assert (app.nanocores, app.memory_bytes) == (300_000_000, 100 * MI)
    assert app_problems == [
        "annotation kubemetrics.io/usage-memory.app: 'lots' is not a Kubernetes quantity (such as 250m, 1.5, 64Mi)"
    ]
    assert (sidecar.nanocores, sidecar.memory_bytes) == (20_000_000, 100 * MI)
    assert requested_usage({}, "x")[0].nanocores == 10_000_000


def _hollow_model(interval: int = 1) -> tuple[Model, ApiPods]:
    model = Model(SimulationParameters(nodes=2, pods_per_node=0, origin=1_000_000, housekeeping_interval=interval))
    pods = ApiPods(interval)
    model.extra_pods = pods
    return model, pods


def _add(pods: ApiPods, uid: str, cpu: str, start: int, now: float, node: int = 0) -> None:
    pods.add(
        uid=uid,
        namespace="ns",
        name=f"pod-{uid}",
        labels={"app": "web"},
        node_index=node,
        containers=[("app", None)],
        annotations={"kubemetrics.io/usage-cpu": cpu},
        start_time=start,
        now=now,
    )


def test_an_api_pod_appears_the_second_after_it_is_seen_and_counts_from_its_start() -> None:
    model, pods = _hollow_model()
    _add(pods, "a", "400m", start=1_000_100, now=1_000_100.4)

    assert model.truth_for(0, 1_000_100).pods == ()
    pod = model.truth_for(0, 1_000_105).pod("ns", "pod-a")
    assert pod.start_time == 1_000_100
    assert pod.cpu_nanocores == 400_000_000
    assert pod.cpu_cumulative_nanoseconds == 400_000_000 * 5
    assert pod.containers[0].memory.working_set_bytes == 32 * MI
    assert model.truth_for(1, 1_000_105).pods == ()


def test_a_usage_change_applies_from_the_next_second_and_the_counter_integrates_both_rates() -> None:
    model, pods = _hollow_model()
    _add(pods, "a", "400m", start=1_000_100, now=1_000_100.0)

    assert pods.update_usage("a", {"kubemetrics.io/usage-cpu": "100m"}, now=1_000_110.7)

    assert model.truth_for(0, 1_000_111).pod("ns", "pod-a").cpu_cumulative_nanoseconds == 400_000_000 * 11
    later = model.truth_for(0, 1_000_121).pod("ns", "pod-a")
    assert later.cpu_nanocores == 100_000_000
    assert later.cpu_cumulative_nanoseconds == 400_000_000 * 11 + 100_000_000 * 10
    assert not pods.update_usage("a", {"kubemetrics.io/usage-cpu": "100m"}, now=1_000_130.0)


def test_removed_pods_vanish_but_the_node_counter_keeps_what_they_used() -> None:
    model, pods = _hollow_model()
    base = model.truth_for(0, 1_000_200).cpu_cumulative_nanoseconds
    system_rate = model.node(0).nanocores
    _add(pods, "a", "1", start=1_000_100, now=1_000_100.0)
    with_pod = model.truth_for(0, 1_000_200)
    assert with_pod.cpu_cumulative_nanoseconds == base + 100 * 10**9
    assert with_pod.cpu_nanocores == system_rate + 10**9

    pods.remove("a", now=1_000_200.5)
    # Removing long after retires the pod into the node's total.
    _add(pods, "b", "0", start=1_000_600, now=1_000_600.0)
    pods.remove("b", now=1_000_600.0)

    assert model.truth_for(0, 1_000_300).pods == ()
    gone = model.truth_for(0, 1_000_300)
    assert gone.cpu_nanocores == system_rate
    assert gone.cpu_cumulative_nanoseconds == base + 100 * system_rate + 101 * 10**9


def test_the_summary_lists_api_pods_as_they_come_and_go() -> None:
    model, pods = _hollow_model()

    renderer = SummaryRenderer(model, 0)
    assert json.loads(renderer.render(1_000_100, full=False))["pods"] == []
    _add(pods, "a", "400m", start=1_000_100, now=1_000_100.2)
    assert json.loads(renderer.render(1_000_100, full=False))["pods"] == []
    listed = json.loads(renderer.render(1_000_101, full=True))["pods"]
    assert [p["podRef"]["uid"] for p in listed] == ["a"]
    assert listed[0]["containers"][0]["cpu"]["usageCoreNanoSeconds"] == 400_000_000
    pods.remove("a", now=1_000_101.5)
    assert json.loads(renderer.render(1_000_101, full=False))["pods"][0]["podRef"]["uid"] == "a"
    assert json.loads(renderer.render(1_000_102, full=False))["pods"] == []


# --------------------------------------------------------------------------------------------
# A fake kube-apiserver: pods (listed in pages, watched, bound, their status written) and Nodes


def api_pod(uid: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.example/web:1.0"}]}
    if node is not None:
        spec["nodeName"] = node
    return {
        "metadata": {"uid": uid, "namespace": "ns", "name": f"pod-{uid}", "annotations": {}},
        "spec": spec,
        "status": {"phase": "Pending"},
    }


@dataclass
class FakeKubeApi:
    """`pods` listed in pages of the request's limit (the continue token is the next offset), a watch that
    streams what `emit` sends, bindings refused with 409 once a pod is bound, and every list request,
    binding, pod status write and Node registration recorded."""

    pods: list[dict[str, Any]]
    list_requests: list[dict[str, str]] = field(default_factory=list)
    bindings: dict[str, str] = field(default_factory=dict)
    status_writes: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    deregistered: list[str] = field(default_factory=list)
    watches: list[asyncio.Queue[bytes | None]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/version", self._version)
        app.router.add_get("/api/v1/pods", self._pods)
        app.router.add_post("/api/v1/namespaces/{namespace}/pods/{name}/binding", self._bind)
        app.router.add_patch("/api/v1/namespaces/{namespace}/pods/{name}/status", self._pod_status)
        app.router.add_post("/api/v1/nodes", self._register)
        app.router.add_patch("/api/v1/nodes/{name}", self._ok)
        app.router.add_patch("/api/v1/nodes/{name}/status", self._ok)
        app.router.add_delete("/api/v1/nodes/{name}", self._deregister)
        return app

    def emit(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "ADDED":
            self.pods.append(pod)
        line = json.dumps({"type": kind, "object": pod}).encode() + b"\n"
        for queue in self.watches:
            queue.put_nowait(line)

    def end_watches(self) -> None:
        for queue in self.watches:
            queue.put_nowait(None)

    def _pod(self, name: str) -> dict[str, Any]:
        return next(p for p in self.pods if p["metadata"]["name"] == name)

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"gitVersion": "v1.34.0"})

    async def _ok(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch"):
            return await self._watch(request)
        self.list_requests.append(dict(request.query))
        start = int(request.query.get("continue", "0"))
        end = start + int(request.query["limit"])
        metadata = {"resourceVersion": "7"}
        if end < len(self.pods):
            metadata["continue"] = str(end)
        return web.json_response({"kind": "PodList", "metadata": metadata, "items": self.pods[start:end]})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.watches.append(queue)
        try:
            while (line := await queue.get()) is not None:
                await response.write(line)
        finally:
            self.watches.remove(queue)
        return response

    async def _bind(self, request: web.Request) -> web.Response:
        binding = await request.json()
        pod = self._pod(request.match_info["name"])
        if pod["spec"].get("nodeName"):
            message = f"pod {request.match_info['name']} is already assigned to node {pod['spec']['nodeName']}"
            return web.json_response({"kind": "Status", "code": 409, "message": message}, status=409)
        pod["spec"]["nodeName"] = self.bindings[request.match_info["name"]] = binding["target"]["name"]
        self.emit("MODIFIED", pod)
        return web.json_response({"kind": "Status", "status": "Success"}, status=201)

    async def _pod_status(self, request: web.Request) -> web.Response:
        patch = await request.json()
        self.status_writes.append(request.match_info["name"])
        pod = self._pod(request.match_info["name"])
        pod["status"] = patch["status"]
        return web.json_response(pod)

    async def _register(self, request: web.Request) -> web.Response:
        node = await request.json()
        self.registered.append(node["metadata"]["name"])
        return web.json_response(node, status=201)

    async def _deregister(self, request: web.Request) -> web.Response:
        self.deregistered.append(request.match_info["name"])
        return web.json_response({})


@contextlib.asynccontextmanager
async def kube_client(fake: FakeKubeApi) -> AsyncIterator[KubeClient]:
    """Runs `fake` on loopback and yields a client of it (plain HTTP, no credentials)."""
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    client = KubeClient(ApiServerConfig(server=f"http://127.0.0.1:{runner.addresses[0][1]}"))
    try:
        yield client
    finally:
        await client.close()
        fake.end_watches()
        await runner.cleanup()


async def test_list_all_applies_keep_to_each_page_before_asking_for_the_next(tmp_path: Path) -> None:
    fake = FakeKubeApi([api_pod(str(n)) for n in range(7)])
    judged_after_pages: list[int] = []

    def keep(pod: dict[str, Any]) -> bool:
        judged_after_pages.append(len(fake.list_requests))
        return int(pod["metadata"]["uid"]) % 3 == 0

    async with kube_client(fake) as client:
        items, version = await client.list_all("/api/v1/pods", page_size=3, keep=keep)
        everything, _ = await client.list_all("/api/v1/pods", page_size=3)

    assert [item["metadata"]["uid"] for item in items] == ["0", "3", "6"]
    assert version == "7"
    # Each page's items are judged as the page arrives (not all once the last page is in).
    assert judged_after_pages == [1, 1, 1, 2, 2, 2, 3]
    assert [r.get("continue") for r in fake.list_requests] == [None, "3", "6"] * 2
    assert len(everything) == 7


async def test_a_listen_range_keeps_runs_and_binds_to_only_its_own_nodes_pods(tmp_path: Path) -> None:
    running = await start_fleet(tmp_path, listen_range=(1, 2), nodes=4, pods_per_node=0)
    node = running.fleet.model.node_name
    # One pod on each simulated node, and one on a node of the cluster that is no simulated one.
    fake = FakeKubeApi([api_pod(uid, node(n)) for n, uid in enumerate("abcd")] + [api_pod("e", "real-node")])
    try:
        async with kube_client(fake) as client:
            hollow = HollowKubelets(running.fleet, client, HollowSettings(deregister_on_exit=True))
            await hollow.start()
            try:
                await eventually(lambda: len(fake.status_writes) >= 2, "pods b and c reported running")
                assert sorted(hollow._cache) == ["b", "c"]
                assert sorted(hollow.pods.running_uids()) == ["b", "c"]
                assert +hollow._load == Counter({1: 1, 2: 1})

                await eventually(lambda: fake.watches, "the pod watch")
                fake.emit("ADDED", api_pod("f", node(3)))
                fake.emit("ADDED", api_pod("g", node(2)))
                # Pending: bound to our least loaded node (1), not to a node of another range.
                fake.emit("ADDED", api_pod("h"))
                await eventually(lambda: {"pod-g", "pod-h"} <= {*fake.status_writes}, "pods g and h reported running")

                assert fake.bindings == {"pod-h": node(1)}
                assert sorted(fake.status_writes) == ["pod-b", "pod-c", "pod-g", "pod-h"]
                assert sorted(hollow._cache) == ["b", "c", "g", "h"]
                assert sorted(hollow.pods.running_uids()) == ["b", "c", "g", "h"]
                assert +hollow._load == Counter({1: 2, 2: 2})
                assert [p["nodeName"] for p in hollow.inventory_pods()] == [node(1), node(2), node(2), node(1)]
            finally:
                await hollow.stop()
        assert sorted(fake.registered) == sorted(fake.deregistered) == [node(1), node(2)]
    finally:
        await running.session.close()
        await running.fleet.stop()


async def test_a_pending_pod_another_process_binds_is_forgotten(tmp_path: Path) -> None:
    running = await start_fleet(tmp_path, listen_range=(0, 0), nodes=2, pods_per_node=0)
    node = running.fleet.model.node_name
    # Only node 1 matches: this process (node 0) cannot bind it, another one (node 1) will.
    pending = api_pod("p")
    pending["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node(1)}
    fake = FakeKubeApi([pending])
    try:
        async with kube_client(fake) as client:
            hollow = HollowKubelets(running.fleet, client, HollowSettings(register_nodes=False))
            await hollow.start()
            try:
                assert sorted(hollow._cache) == ["p"]
                await eventually(lambda: fake.watches, "the pod watch")
                pending["spec"]["nodeName"] = node(1)
                fake.emit("MODIFIED", pending)
                await eventually(lambda: not hollow._cache, "the pod forgotten")
                await asyncio.sleep(0.1)
                assert fake.bindings == {}
                assert fake.status_writes == []
                assert hollow.pods.running_uids() == []
                assert +hollow._load == Counter()
            finally:
                await hollow.stop()
    finally:
        await running.session.close()
        await running.fleet.stop()
