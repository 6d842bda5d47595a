"""The simulated kubelets over real HTTPS sockets: certificates, payloads 15 s apart giving exact rates,
restarts, faults, the kubelet's error texts, the inventory file and the control endpoint. Time is a
fake clock the tests move, so nothing waits for wall time."""

from __future__ import annotations

import asyncio
import calendar
import json
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from harness import FakeClock, free_loopback_block
from kubemetrics.inventory.static import load_inventory
from kubemetrics.simulator.control import start_control
from kubemetrics.simulator.faults import Fault, FaultKind, initial_faults, parse_fault, parse_fault_fraction
from kubemetrics.simulator.model import Model, SimulationParameters
from kubemetrics.simulator.pki import SERVING_DIR
from kubemetrics.simulator.server import Fleet, FleetError, FleetSettings

ORIGIN = 1_800_000_000


@dataclass
class RunningFleet:
    fleet: Fleet
    clock: FakeClock
    session: aiohttp.ClientSession

    def url(self, node: int, path: str) -> str:
        return f"https://{self.fleet.kubelets[node].address}:{self.fleet.settings.port}{path}"

    async def get(self, node: int, path: str = "/stats/summary?only_cpu_and_memory=true") -> tuple[int, bytes]:
        async with self.session.get(self.url(node, path)) as response:
            return response.status, await response.read()

    async def summary(self, node: int, full: bool = False) -> dict[str, Any]:
        status, body = await self.get(node, "/stats/summary" if full else "/stats/summary?only_cpu_and_memory=true")
        assert status == 200
        document: dict[str, Any] = json.loads(body)
        return document


def client_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


async def start_fleet(
    tmp_path: Path,
    faults: dict[str, Fault] | None = None,
    listen_range: tuple[int, int] | None = None,
    **overrides: Any,
) -> RunningFleet:
    values: dict[str, Any] = {"nodes": 3, "pods_per_node": 6, "seed": 3, "origin": ORIGIN, **overrides}
    base, port = free_loopback_block()
    clock = FakeClock(ORIGIN + 100)
    settings = FleetSettings(
        out_dir=tmp_path, address_base=base, port=port, initial_faults=faults or {}, listen_range=listen_range
    )
    fleet = Fleet(Model(SimulationParameters(**values)), settings, clock=clock)
    await fleet.start()
    connector = aiohttp.TCPConnector(ssl=client_context(fleet.ca_file))
    return RunningFleet(fleet, clock, aiohttp.ClientSession(connector=connector))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningFleet]:
    fleet = await start_fleet(tmp_path, restart_interval=0)
    yield fleet
    await fleet.session.close()
    await fleet.fleet.stop()


def unix(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


async def test_each_node_answers_on_its_own_address_with_a_certificate_from_the_cluster_ca(
    running: RunningFleet,
) -> None:
    addresses = [str(k.address) for k in running.fleet.kubelets]
    base = running.fleet.settings.address_base

    assert addresses == [str(base + 1), str(base + 2), str(base + 3)]
    for index in range(3):
        document = await running.summary(index)
        assert document["node"]["nodeName"] == f"sim-node-{index}"


async def test_each_node_serves_its_own_certificate_naming_only_that_node_as_a_real_kubelet_does(
    running: RunningFleet,
) -> None:
    for kubelet in running.fleet.kubelets:
        _reader, writer = await asyncio.open_connection(
            str(kubelet.address), running.fleet.settings.port, ssl=client_context(running.fleet.ca_file)
        )
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
        certificate = x509.load_der_x509_certificate(der)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.IPAddress) == [kubelet.address]
        assert names.get_values_for_type(x509.DNSName) == [kubelet.name]
        assert certificate.subject.rfc4514_string() == f"CN=system:node:{kubelet.name},O=system:nodes"


async def test_a_process_of_a_shared_fleet_signs_certificates_only_for_its_own_nodes(tmp_path: Path) -> None:
    running = await start_fleet(tmp_path, listen_range=(1, 2), nodes=4, restart_interval=0)
    try:
        issued = sorted(path.name for path in (tmp_path / SERVING_DIR).glob("*.crt"))
        assert issued == ["sim-node-1.crt", "sim-node-2.crt"]
    finally:
        await running.session.close()
        await running.fleet.stop()


async def test_a_client_that_does_not_trust_the_cluster_ca_is_refused(running: RunningFleet) -> None:
    async with aiohttp.ClientSession() as untrusting:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await untrusting.get(running.url(0, "/stats/summary"))


async def test_two_payloads_15s_apart_give_exactly_the_models_rates(running: RunningFleet) -> None:
    model = running.fleet.model
    first = await running.summary(1)
    running.clock.now += 15
    second = await running.summary(1)

    node_rate = (second["node"]["cpu"]["usageCoreNanoSeconds"] - first["node"]["cpu"]["usageCoreNanoSeconds"]) / (
        unix(second["node"]["cpu"]["time"]) - unix(first["node"]["cpu"]["time"])
    )
    assert node_rate == model.node(1).nanocores
    earlier = {(p["podRef"]["name"], c["name"]): c for p in first["pods"] for c in p["containers"]}
    for pod in second["pods"]:
        for container in pod["containers"]:
            before = earlier[(pod["podRef"]["name"], container["name"])]
            elapsed = unix(container["cpu"]["time"]) - unix(before["cpu"]["time"])
            rate = (container["cpu"]["usageCoreNanoSeconds"] - before["cpu"]["usageCoreNanoSeconds"]) / elapsed
            usage = model.container_usage(
                1, pod["podRef"]["namespace"], pod["podRef"]["name"], container["name"], unix(container["cpu"]["time"])
            )
            assert rate == usage.cpu_nanocores
            assert container["memory"]["workingSetBytes"] == usage.memory_working_set_bytes


async def test_a_restarted_container_reports_a_new_start_time_and_a_counter_from_zero(tmp_path: Path) -> None:
    running = await start_fleet(tmp_path, restart_fraction=1.0, restart_interval=600, churn_interval=0)
    try:
        model = running.fleet.model
        now = running.fleet.now()
        pod = model.pods_at(0, now)[4]
        spec = pod.slot.containers[0]
        restart = spec.current_start(pod.first_starts[0], now)[0] + spec.restart_period_seconds
        running.clock.now = restart - 5
        before = (await running.summary(0))["pods"][4]["containers"][0]
        running.clock.now = restart + 12
        after = (await running.summary(0))["pods"][4]["containers"][0]

        assert unix(after["startTime"]) == restart
        assert unix(before["startTime"]) == restart - spec.restart_period_seconds
        elapsed = unix(after["cpu"]["time"]) - restart
        assert after["cpu"]["usageCoreNanoSeconds"] == spec.nanocores * elapsed
        assert after["cpu"]["usageCoreNanoSeconds"] < before["cpu"]["usageCoreNanoSeconds"]
    finally:
        await running.session.close()
        await running.fleet.stop()


async def test_only_cpu_and_memory_is_honoured_only_as_exactly_one_true(running: RunningFleet) -> None:
    reduced_keys = ["nodeName", "systemContainers", "startTime", "cpu", "memory", "swap"]
    for query, reduced in (
        ("?only_cpu_and_memory=true", True),
        ("?only_cpu_and_memory=True", False),
        ("?only_cpu_and_memory=1", False),
        ("?only_cpu_and_memory=true&only_cpu_and_memory=true", False),
        ("", False),
    ):
        status, body = await running.get(0, f"/stats/summary{query}")
        assert status == 200
        assert (list(json.loads(body)["node"]) == reduced_keys) is reduced, query


async def test_large_bodies_are_chunked_and_other_paths_get_the_kubelets_404_texts(running: RunningFleet) -> None:
    async with running.session.get(running.url(0, "/stats/summary")) as response:
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Transfer-Encoding"] == "chunked"
    for path, text in (("/stats/container", b"404: Page Not Found"), ("/nope", b"404 page not found\n")):
        status, body = await running.get(0, path)
        assert (status, body) == (404, text)
    assert await running.get(0, "/healthz") == (200, b"ok")
    async with running.session.get(running.url(0, "/metrics/resource")) as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert response.headers["Content-Encoding"] == "gzip"
        assert b"node_cpu_usage_seconds_total " in await response.read()


async def test_keep_alive_serves_many_requests_on_one_connection(running: RunningFleet) -> None:
    for _ in range(5):
        await running.summary(2)

    assert running.fleet.request_counts()["sim-node-2"] == {"/stats/summary": 5}
    assert len(running.fleet.kubelets[2].connections) == 1


async def test_http500_fault_answers_with_the_kubelets_internal_error_text(tmp_path: Path) -> None:
    running = await start_fleet(tmp_path, faults={"sim-node-1": Fault(FaultKind.HTTP500)})
    try:
        status, body = await running.get(1)
        assert status == 500
        assert body.startswith(b"Internal Error: ")
        assert (await running.get(0))[0] == 200
    finally:
        await running.session.close()
        await running.fleet.stop()


async def test_garbage_and_truncated_faults_answer_200_with_bodies_that_are_not_json(running: RunningFleet) -> None:
    full_length = len((await running.get(0))[1])
    await running.fleet.set_fault("sim-node-0", Fault(FaultKind.GARBAGE))
    status, garbage = await running.get(0)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(garbage)

    await running.fleet.set_fault("sim-node-0", Fault(FaultKind.TRUNCATED))
    status, truncated = await running.get(0)
    assert status == 200
    assert abs(len(truncated) - full_length // 2) < 64
    assert truncated.startswith(b'{\n "node": {')
    with pytest.raises(ValueError):
        json.loads(truncated)


async def test_disconnect_fault_breaks_the_response_mid_body(running: RunningFleet) -> None:
    await running.fleet.set_fault("sim-node-2", Fault(FaultKind.DISCONNECT))

    with pytest.raises(aiohttp.ClientPayloadError):
        await running.get(2)


async def test_latency_fault_delays_the_answer_and_hang_never_answers(running: RunningFleet) -> None:
    await running.fleet.set_fault("sim-node-1", Fault(FaultKind.LATENCY, 0.4))
    started = time.monotonic()
    status, _ = await running.get(1)
    assert status == 200
    assert time.monotonic() - started >= 0.4

    await running.fleet.set_fault("sim-node-1", Fault(FaultKind.HANG))
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.5):
            await running.get(1)
    await running.fleet.set_fault("sim-node-1", None)
    assert (await running.get(1))[0] == 200


async def test_down_fault_refuses_connections_until_cleared(running: RunningFleet) -> None:
    await running.fleet.set_fault("sim-node-0", Fault(FaultKind.DOWN))
    with pytest.raises(aiohttp.ClientConnectorError):
        await running.get(0)

    await running.fleet.set_fault("sim-node-0", None)
    assert (await running.get(0))[0] == 200


async def test_with_a_listen_range_only_those_nodes_answer_and_the_inventory_still_lists_every_node(
    tmp_path: Path,
) -> None:
    running = await start_fleet(tmp_path, listen_range=(1, 2), nodes=4, restart_interval=0)
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            await running.get(0)
        assert (await running.summary(1))["node"]["nodeName"] == "sim-node-1"
        assert (await running.summary(2))["node"]["nodeName"] == "sim-node-2"
        with pytest.raises(aiohttp.ClientConnectorError):
            await running.get(3)
        # Clearing a fault does not make a node outside the range listen.
        await running.fleet.set_fault("sim-node-3", Fault(FaultKind.DOWN))
        await running.fleet.set_fault("sim-node-3", None)
        with pytest.raises(aiohttp.ClientConnectorError):
            await running.get(3)
        nodes = load_inventory(running.fleet.inventory_file).nodes
        assert sorted(nodes) == [f"sim-node-{i}" for i in range(4)]
    finally:
        await running.session.close()
        await running.fleet.stop()


async def test_inventory_file_lists_every_node_and_the_pods_that_exist_now(running: RunningFleet) -> None:
    fleet = running.fleet
    inventory = load_inventory(fleet.inventory_file)
    now = fleet.now()

    assert sorted(inventory.nodes) == ["sim-node-0", "sim-node-1", "sim-node-2"]
    node = inventory.nodes["sim-node-2"]
    assert [(a.type, a.address) for a in node.addresses] == [
        ("InternalIP", str(fleet.kubelets[2].address)),
        ("Hostname", "sim-node-2"),
    ]
    assert node.kubelet_port == fleet.settings.port
    assert node.labels["kubernetes.io/hostname"] == "sim-node-2"
    assert node.labels["kubernetes.io/os"] == "linux"
    assert node.capacity["cpu"] == str(fleet.model.node(2).cpu_cores)
    assert node.allocatable["cpu"] == f"{fleet.model.node(2).cpu_cores * 1000 - 90}m"
    assert node.capacity["memory"].endswith("Ki") and node.capacity["pods"] == "110"
    assert inventory.pods is not None
    expected = {(p.namespace, p.name) for n in range(3) for p in fleet.model.pods_at(n, now)}
    assert set(inventory.pods) == expected
    assert all(pod.labels["app"] for pod in inventory.pods.values())


async def test_inventory_is_rewritten_by_rename_when_pods_are_replaced(tmp_path: Path) -> None:
    running = await start_fleet(tmp_path, churn_fraction=1.0, churn_interval=60)
    try:
        fleet = running.fleet
        before = load_inventory(fleet.inventory_file)
        inode = fleet.inventory_file.stat().st_ino
        running.clock.now += 61
        fleet.publish_inventory()
        after = load_inventory(fleet.inventory_file)

        assert fleet.inventory_file.stat().st_ino != inode
        assert before.pods is not None and after.pods is not None
        assert len(after.pods) == len(before.pods)
        assert set(after.pods) != set(before.pods)
        served = {(p["podRef"]["namespace"], p["podRef"]["name"]) for p in (await running.summary(0))["pods"]}
        assert served <= set(after.pods)
    finally:
        await running.session.close()
        await running.fleet.stop()


async def test_control_endpoint_sets_lists_and_clears_faults_and_reports_truth(running: RunningFleet) -> None:
    runner, port = await start_control(running.fleet, "127.0.0.1", 0)
    control = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as client:
            async with client.put(
                f"{control}/faults", json={"sim-node-2": "http500", "sim-node-1": "latency:0.1"}
            ) as r:
                assert r.status == 200
                assert await r.json() == {"sim-node-1": "latency:0.1", "sim-node-2": "http500"}
            assert (await running.get(2))[0] == 500
            async with client.put(f"{control}/faults", json={"sim-node-2": None}) as r:
                assert await r.json() == {"sim-node-1": "latency:0.1"}
            assert (await running.get(2))[0] == 200
            async with client.put(f"{control}/faults", json={"sim-node-9": "hang"}) as r:
                assert r.status == 404
            async with client.put(f"{control}/faults", json={"sim-node-0": "explode"}) as r:
                assert r.status == 400
                assert "unknown fault" in (await r.json())["error"]
            async with client.delete(f"{control}/faults") as r:
                assert await r.json() == {}
            t = running.fleet.now()
            async with client.get(f"{control}/truth", params={"node": "sim-node-1", "t": str(t)}) as r:
                truth = await r.json()
            expected = running.fleet.model.truth_for("sim-node-1", t)
            assert truth["cpu_nanocores"] == expected.cpu_nanocores
            assert truth["sample_time"] == expected.sample_time
            assert [p["name"] for p in truth["pods"]] == [p.name for p in expected.pods]
            async with client.get(f"{control}/requests") as r:
                assert (await r.json())["sim-node-2"] == {"/stats/summary": 2}
    finally:
        await runner.cleanup()


async def test_a_taken_address_is_reported_with_the_node_and_address(tmp_path: Path) -> None:
    base, port = free_loopback_block()
    with socket.socket() as blocker:
        blocker.bind((str(base + 2), port))
        blocker.listen()
        fleet = Fleet(
            Model(SimulationParameters(nodes=3, pods_per_node=2, origin=ORIGIN)),
            FleetSettings(out_dir=tmp_path, address_base=base, port=port),
        )
        with pytest.raises(FleetError, match=rf"sim-node-1: cannot listen on {base + 2}:{port}"):
            await fleet.start()
    assert all(k.server is None for k in fleet.kubelets)


def test_fault_specs_are_parsed_and_bad_ones_say_what_is_accepted() -> None:
    assert parse_fault("latency:2.5") == Fault(FaultKind.LATENCY, 2.5)
    assert parse_fault("hang") == Fault(FaultKind.HANG)
    assert str(parse_fault("latency:3")) == "latency:3"
    with pytest.raises(ValueError, match="expected one of latency:SECONDS, http500, hang"):
        parse_fault("slow")
    with pytest.raises(ValueError, match="latency needs seconds"):
        parse_fault("latency")
    with pytest.raises(ValueError, match="takes no argument"):
        parse_fault("http500:3")


def test_fault_fraction_picks_a_seeded_share_of_nodes_and_explicit_faults_win() -> None:
    names = [f"sim-node-{i}" for i in range(2000)]
    hang = parse_fault_fraction("hang=0.05")

    faults = initial_faults(4, names, [("sim-node-7", Fault(FaultKind.HTTP500))], [hang])
    again = initial_faults(4, names, [], [hang])
    other_seed = initial_faults(5, names, [], [hang])

    hung = {name for name, fault in faults.items() if fault.kind is FaultKind.HANG}
    assert 60 < len(hung) < 140
    assert faults["sim-node-7"] == Fault(FaultKind.HTTP500)
    assert set(again) - {"sim-node-7"} == hung - {"sim-node-7"}
    assert set(other_seed) != set(again)
    assert parse_fault_fraction("latency:1.5=0.2") == (Fault(FaultKind.LATENCY, 1.5), 0.2)
    with pytest.raises(ValueError, match="within"):
        parse_fault_fraction("hang=2")


async def test_pipelined_requests_are_answered_in_order_and_connection_close_is_honoured(
    running: RunningFleet,
) -> None:
    kubelet = running.fleet.kubelets[1]
    reader, writer = await asyncio.open_connection(
        str(kubelet.address), running.fleet.settings.port, ssl=client_context(running.fleet.ca_file)
    )
    host = f"Host: {kubelet.address}\r\n"
    writer.write(
        f"GET /healthz HTTP/1.1\r\n{host}\r\n".encode()
        + f"GET /nope HTTP/1.1\r\n{host}\r\n".encode()
        + f"GET /healthz HTTP/1.1\r\n{host}Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    async with asyncio.timeout(5):
        received = await reader.read()  # until the server closes
    writer.close()

    statuses = re.findall(rb"HTTP/1\.1 (\d+) ", received)
    assert statuses == [b"200", b"404", b"200"]
    assert received.endswith(b"Connection: close\r\nContent-Length: 2\r\n\r\nok")
