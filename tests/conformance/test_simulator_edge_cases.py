"""The simulator hooks the differential tests stand on: steady working sets, the kubelet edge cases set
by pod annotations, and the per-node scrape log. These run everywhere (loopback sockets only)."""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from harness import free_loopback_block
from kubemetrics.simulator.apipods import ApiPods
from kubemetrics.simulator.control import start_control
from kubemetrics.simulator.model import Model, SimulationParameters
from kubemetrics.simulator.resource import go_float, render_resource_metrics
from kubemetrics.simulator.server import Fleet, FleetSettings

ORIGIN = 1_800_000_000
START = ORIGIN + 50


def _model(**overrides: Any) -> Model:
    values: dict[str, Any] = {"nodes": 3, "pods_per_node": 4, "seed": 5, "origin": ORIGIN, **overrides}
    return Model(SimulationParameters(**values))


def test_steady_memory_holds_every_working_set_and_changes_nothing_else() -> None:
    moving, steady = _model(), _model(steady_memory=True)

    moving_sets = {moving.node_usage(0, ORIGIN + s).memory_working_set_bytes for s in (0, 300, 900)}
    steady_sets = {steady.node_usage(0, ORIGIN + s).memory_working_set_bytes for s in (0, 300, 900)}

    assert len(moving_sets) == 3
    assert len(steady_sets) == 1
    assert steady.node(0).nanocores == moving.node(0).nanocores
    assert [s.workload.app for s in steady.node(1).slots] == [s.workload.app for s in moving.node(1).slots]
    base = steady.node(0).kubelet.memory.base_bytes
    assert base == moving.node(0).kubelet.memory.base_bytes
    assert steady.node(0).kubelet.memory.working_set(ORIGIN + 123) == base


def _api_model(annotations: dict[str, str]) -> tuple[Model, ApiPods]:
    model = _model(pods_per_node=0, housekeeping_interval=1)
    pods = ApiPods(1)
    model.extra_pods = pods
    pods.add(
        uid="uid-1",
        namespace="edge",
        name="p",
        labels={},
        node_index=0,
        containers=[("main", None), ("helper", None)],
        annotations={"kubemetrics.io/usage-cpu": "100m", **annotations},
        start_time=START,
        now=START - 0.5,
    )
    return model, pods


def _lines(model: Model, now: int, container: str) -> list[str]:
    body = render_resource_metrics(model.truth_for(0, now)).decode()
    return [line for line in body.splitlines() if f'container="{container}"' in line]


def test_missing_usage_leaves_the_series_out_of_the_resource_endpoint() -> None:
    model, _ = _api_model({"kubemetrics.io/missing-usage.helper": "memory"})

    helper, main = _lines(model, START + 10, "helper"), _lines(model, START + 10, "main")

    assert [line.split("{")[0] for line in helper] == [
        "container_cpu_usage_seconds_total",
        "container_start_time_seconds",
        "container_swap_limit_bytes",
        "container_swap_usage_bytes",
    ]
    assert len(main) == 5


def test_bad_start_time_is_written_as_kubelets_wrote_it_in_kubernetes_109679() -> None:
    model, _ = _api_model({"kubemetrics.io/bad-start-time.helper": "true"})

    (helper,) = [line for line in _lines(model, START + 10, "helper") if line.startswith("container_start_time")]
    (main,) = [line for line in _lines(model, START + 10, "main") if line.startswith("container_start_time")]

    assert helper == (
        'container_start_time_seconds{container="helper",namespace="edge",pod="p"} -6.21355968e+10 -62135596800000'
    )
    assert main == f'container_start_time_seconds{{container="main",namespace="edge",pod="p"}} {go_float(START)}'


def test_raising_the_restart_count_restarts_the_container_from_the_next_second() -> None:
    model, pods = _api_model({"kubemetrics.io/restarts.main": "2"})
    before = model.truth_for(0, START + 20).pod("edge", "p")

    assert pods.update_usage(
        "uid-1", {"kubemetrics.io/usage-cpu": "100m", "kubemetrics.io/restarts.main": "3"}, START + 29.4
    )
    at = {t: model.truth_for(0, t).pod("edge", "p") for t in (START + 29, START + 30, START + 40)}

    main_before = before.containers[0]
    assert (main_before.start_time, main_before.restarts, main_before.cpu_cumulative_nanoseconds) == (
        START,
        2,
        2 * 10**9,
    )
    assert (at[START + 29].containers[0].start_time, at[START + 29].containers[0].restarts) == (START, 2)
    restarted = at[START + 30].containers[0]
    assert (restarted.start_time, restarted.restarts, restarted.cpu_cumulative_nanoseconds) == (START + 30, 3, 0)
    assert at[START + 40].containers[0].cpu_cumulative_nanoseconds == 10**9
    # The sibling and the pod's own counter are not reset.
    assert at[START + 40].containers[1].cpu_cumulative_nanoseconds == 4 * 10**9
    assert at[START + 40].cpu_cumulative_nanoseconds == 8 * 10**9
    assert (
        model.truth_for(0, START + 40).cpu_cumulative_nanoseconds
        > model.truth_for(0, START + 29).cpu_cumulative_nanoseconds
    )


async def test_every_scrape_is_logged_with_its_client_status_and_sample_second(tmp_path: Path) -> None:
    base, port = free_loopback_block((100, 250))
    clock_now = [float(ORIGIN + 100)]
    fleet = Fleet(
        _model(restart_interval=0, housekeeping_interval=1),
        FleetSettings(out_dir=tmp_path, address_base=base, port=port),
        clock=lambda: clock_now[0],
    )
    await fleet.start()
    runner, control_port = await start_control(fleet, "127.0.0.1", 0)
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(fleet.ca_file)))
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"https://{fleet.kubelets[1].address}:{port}"
            async with session.get(f"{url}/metrics/resource", headers={"User-Agent": "collector-a/1"}) as r:
                assert r.status == 200
            clock_now[0] += 10.7
            async with session.get(f"{url}/healthz", headers={"User-Agent": "collector-a/1"}) as r:
                assert r.status == 200
            async with session.put(
                f"http://127.0.0.1:{control_port}/faults", data=json.dumps({fleet.kubelets[1].name: "http500"})
            ) as r:
                assert r.status == 200
            async with session.get(f"{url}/metrics/resource", headers={"User-Agent": "collector-b/2"}) as r:
                assert r.status == 500
            async with session.get(f"http://127.0.0.1:{control_port}/scrapes") as r:
                log = await r.json()
            async with session.get(f"http://127.0.0.1:{control_port}/scrapes?node=no-such-node") as r:
                missing = r.status
    finally:
        await runner.cleanup()
        await fleet.stop()

    (node,) = log
    assert node == fleet.kubelets[1].name
    first, second = log[node]
    assert {k: first[k] for k in ("path", "user_agent", "status", "sample_time")} == {
        "path": "/metrics/resource",
        "user_agent": "collector-a/1",
        "status": 200,
        "sample_time": ORIGIN + 100,
    }
    assert {k: second[k] for k in ("user_agent", "status", "sample_time")} == {
        "user_agent": "collector-b/2",
        "status": 500,
        "sample_time": None,
    }
    assert re.fullmatch(r"\d+\.\d+", str(first["time"]))
    assert missing == 404
