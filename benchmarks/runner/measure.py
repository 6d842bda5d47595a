"""One collector over one measurement window: start it and the load, warm up, then sample for whole
resolutions, and stop both. Returns the raw observations; `analysis` turns them into figures.

Warm-up ends when every node is served (GET …/nodes lists them all) and `warmup_seconds` have passed
since the collector started; a collector that never serves every node is measured anyway after
`warmup_timeout_seconds`, and the result says how many it served. During the window:

- every 2 s: CPU seconds of the collector's process tree, its RSS and PSS; CPU of the simulator, the
  load generator and the control plane (to tell whether the harness kept up);
- at the start and the end: kubelet requests per node and path (the simulator's count) and the bytes
  every kubelet-side socket sent (`ss`);
- at the start and after every resolution: the collector's /metrics, as a Prometheus server scraping it
  at the resolution would (this is part of the load both collectors get).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.runner import kubelets, procfs, promtext
from benchmarks.runner.children import COLLECTOR_OOM_SCORE_ADJ, Child, pinned
from benchmarks.runner.collectors import CollectorClient, CollectorSpec
from benchmarks.runner.kubelets import SimulatorProcesses, SimulatorReady, TrafficDelta
from benchmarks.runner.loadgen import LoadConfig
from benchmarks.runner.progress import Progress
from benchmarks.runner.scenarios import Scenario, WindowSettings

SAMPLE_INTERVAL_SECONDS = 2.0
LISTEN_TIMEOUT_SECONDS = 120.0
_MIB = 1024 * 1024


@dataclass
class Observations:
    """Everything seen of one collector in one run."""

    collector: str
    spec: CollectorSpec
    failure: str = ""
    started_wall: float = 0.0
    seconds_to_listen: float | None = None
    seconds_to_all_nodes: float | None = None
    nodes_served_before_window: int = 0
    # Largest RSS of the collector's tree seen at the warm-up's polls (the window has its own samples).
    warmup_peak_rss_bytes: int = 0
    window_start: float = 0.0
    window_end: float = 0.0
    collector_samples: list[procfs.TreeSample] = field(default_factory=list)
    # What each process of the collector's tree is ("kubemetrics serve", "kubemetrics worker", …).
    roles: dict[int, str] = field(default_factory=dict)
    harness_samples: dict[str, list[procfs.TreeSample]] = field(default_factory=dict)
    requests_start: dict[str, dict[str, int]] = field(default_factory=dict)
    requests_end: dict[str, dict[str, int]] = field(default_factory=dict)
    # When the two request counts were taken: the kubelet figures are per resolution of this interval.
    requests_interval_seconds: float = 0.0
    traffic: TrafficDelta | None = None
    # (wall time, parsed samples) of each /metrics read.
    self_metrics: list[tuple[float, list[promtext.Sample]]] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    log_path: str = ""

    @property
    def window_seconds(self) -> float:
        return self.window_end - self.window_start

    def peak_memory(self) -> str:
        """What was seen of the collector's memory, for a failure: "" when nothing was."""
        seen = []
        if self.warmup_peak_rss_bytes:
            seen.append(f"peak RSS {self.warmup_peak_rss_bytes / _MIB:,.0f} MiB during warm-up")
        if self.collector_samples:
            rss = max(sample.rss_bytes for sample in self.collector_samples)
            pss = max(sample.pss_bytes for sample in self.collector_samples)
            seen.append(f"peak RSS {rss / _MIB:,.0f} MiB, PSS {pss / _MIB:,.0f} MiB in the window")
        return "; ".join(seen)


@dataclass(frozen=True, slots=True)
class Harness:
    """The processes around the collector, and what the load generator should ask for."""

    simulator: SimulatorProcesses
    ready: SimulatorReady
    control_plane_pids: Sequence[int]
    hpa_targets: list[tuple[str, str]]
    pods_for_get: list[tuple[str, str]]
    harness_cpus: str
    work_dir: Path
    # False: no API load at all, so the collector's CPU is scraping (and idling) only.
    with_load: bool = True


def _harness_trees(harness: Harness, load: Child | None) -> dict[str, list[int]]:
    trees = {"simulator": harness.simulator.tree()}
    if load is not None:
        trees["load-generator"] = load.tree()
    if harness.control_plane_pids:
        trees["control-plane"] = [pid for pid in harness.control_plane_pids if procfs.start_ticks(pid) is not None]
    return trees


def _start_load(spec: CollectorSpec, harness: Harness, settings: WindowSettings) -> tuple[Child, Path]:
    output = harness.work_dir / f"load-{spec.name}.json"
    output.unlink(missing_ok=True)
    config = LoadConfig(
        base_url=spec.base_url,
        output=str(output),
        hpa_targets=harness.hpa_targets,
        pods_for_get=harness.pods_for_get,
        client_cert=str(spec.identity.cert) if spec.identity else "",
        client_key=str(spec.identity.key) if spec.identity else "",
        request_timeout_seconds=max(30.0, settings.resolution_seconds * 2),
    )
    config_path = harness.work_dir / f"load-{spec.name}.config.json"
    config.write(config_path)
    argv = pinned([sys.executable, "-m", "benchmarks.runner.loadgen", str(config_path)], harness.harness_cpus)
    return Child(f"load-{spec.name}", argv, harness.work_dir, cwd=Path(__file__).resolve().parents[2]), output


def _stop_load(load: Child, output: Path) -> dict[str, Any]:
    load.signal(signal.SIGTERM)
    with contextlib.suppress(Exception):
        load.process.wait(timeout=60)
    load.stop()
    if not output.exists():
        return {"failure": load.failure("wrote no results")}
    document: dict[str, Any] = orjson.loads(output.read_bytes())
    return document


async def _wait_listening(client: CollectorClient, child: Child, within_seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_seconds:
        if not child.alive():
            raise RuntimeError(child.failure("exited before listening"))
        status, _ = await client.get("/livez", limit_seconds=5)
        if status:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise RuntimeError(child.failure(f"did not listen within {within_seconds:.0f}s"))


async def _warm_up(
    client: CollectorClient,
    child: Child,
    scenario: Scenario,
    settings: WindowSettings,
    observations: Observations,
    progress: Progress,
) -> None:
    poll = max(2.0, scenario.nodes / 5000)
    started = observations.started_wall
    served = 0
    while True:
        if not child.alive():
            raise RuntimeError(child.failure(_with_memory("exited during warm-up", observations)))
        rss = procfs.rss_bytes(child.tree())
        observations.warmup_peak_rss_bytes = max(observations.warmup_peak_rss_bytes, rss)
        elapsed = time.time() - started
        if observations.seconds_to_all_nodes is None:
            served = await client.nodes_served()
            if served >= scenario.nodes:
                observations.seconds_to_all_nodes = time.time() - started
        done = observations.seconds_to_all_nodes is not None
        if done and elapsed >= settings.warmup_seconds:
            break
        if elapsed >= settings.warmup_timeout_seconds:
            progress.note(f"warm-up timed out: {served} of {scenario.nodes} nodes served; measuring anyway")
            break
        shown = scenario.nodes if done else served
        progress.bar("warming up", shown, scenario.nodes, f"{shown}/{scenario.nodes} nodes served, {elapsed:.0f}s")
        await asyncio.sleep(poll)
    observations.nodes_served_before_window = scenario.nodes if observations.seconds_to_all_nodes else served


def _with_memory(what: str, observations: Observations) -> str:
    memory = observations.peak_memory()
    return f"{what} ({memory})" if memory else what


async def _read_metrics(client: CollectorClient, observations: Observations) -> None:
    text = await client.self_metrics()
    observations.self_metrics.append((time.time(), promtext.parse(text, summed_over=("node",))))


async def measure(
    spec: CollectorSpec,
    scenario: Scenario,
    settings: WindowSettings,
    harness: Harness,
    progress: Progress,
) -> Observations:
    observations = Observations(spec.name, spec)
    # The one the OOM killer is to pick when memory runs out (a collector failure, not a lost run).
    collector = Child(
        spec.name, spec.argv, harness.work_dir, cwd=harness.work_dir, oom_score_adj=COLLECTOR_OOM_SCORE_ADJ
    )
    observations.started_wall = collector.started
    observations.log_path = str(collector.log_path)
    client = CollectorClient(spec)
    load: Child | None = None
    load_output: Path | None = None
    try:
        progress.note(f"started {' '.join(spec.argv[:6])} … (log {collector.log_path})")
        observations.seconds_to_listen = await _wait_listening(client, collector, LISTEN_TIMEOUT_SECONDS)
        if harness.with_load:
            load, load_output = _start_load(spec, harness, settings)
        await _warm_up(client, collector, scenario, settings, observations, progress)
        await _window(client, collector, load, harness, settings, observations, progress)
    except RuntimeError as err:
        observations.failure = str(err)
        progress.note(f"FAILED: {err}")
    finally:
        if load is not None and load_output is not None:
            observations.load = _stop_load(load, load_output)
        collector.stop()
        await client.close()
    return observations


async def _window(
    client: CollectorClient,
    collector: Child,
    load: Child | None,
    harness: Harness,
    settings: WindowSettings,
    observations: Observations,
    progress: Progress,
) -> None:
    ready = harness.ready
    addresses = ready.addresses()
    async with aiohttp.ClientSession() as control:
        await _read_metrics(client, observations)
        counted_from = time.time()
        observations.requests_start = await kubelets.request_counts(control, ready)
        sockets_start = await asyncio.to_thread(kubelets.socket_bytes, addresses, ready.port)
        observations.window_start = counted_from
        _sample(collector, harness, load, observations)
        end = observations.window_start + settings.window_seconds
        next_metrics = observations.window_start + settings.resolution_seconds
        while True:
            now = time.time()
            if now >= end:
                break
            if not collector.alive():
                raise RuntimeError(
                    collector.failure(_with_memory("exited during the measurement window", observations))
                )
            await asyncio.sleep(min(SAMPLE_INTERVAL_SECONDS, end - now))
            _sample(collector, harness, load, observations)
            if time.time() >= next_metrics and time.time() < end - 1:
                await _read_metrics(client, observations)
                next_metrics += settings.resolution_seconds
            elapsed = time.time() - observations.window_start
            done = int(elapsed // settings.resolution_seconds)
            progress.bar(
                "measuring",
                elapsed,
                settings.window_seconds,
                f"{done}/{settings.resolutions} resolutions",
                eta_seconds=end - time.time(),
            )
        observations.window_end = time.time()
        _sample(collector, harness, load, observations)
        observations.requests_interval_seconds = time.time() - counted_from
        observations.requests_end = await kubelets.request_counts(control, ready)
        sockets_end = await asyncio.to_thread(kubelets.socket_bytes, addresses, ready.port)
        observations.traffic = kubelets.traffic_between(sockets_start, sockets_end)
        await _read_metrics(client, observations)


def _sample(collector: Child, harness: Harness, load: Child | None, observations: Observations) -> None:
    now = time.time()
    tree = collector.tree()
    for pid in tree:
        if pid not in observations.roles:
            observations.roles[pid] = procfs.role(pid)
    observations.collector_samples.append(procfs.sample_tree(tree, now))
    for name, pids in _harness_trees(harness, load).items():
        observations.harness_samples.setdefault(name, []).append(procfs.sample_tree(pids, now, with_pss=False))
