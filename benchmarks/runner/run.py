"""One scenario end to end: the cluster, each collector in turn over its window, the figures, the files.

Two ways to build the cluster:

- **standalone** (no baseline): the simulator with its own workload model, kubemetrics with a static
  inventory derived from the simulator's (plus a label per HPA-like target). No control plane needed:
  this is what the CI smoke run uses.
- **hollow** (baseline metrics-server): a real control plane, the simulator in hollow mode registering
  the Nodes, and the scenario's pods created through the API (cluster.py). metrics-server runs first,
  then kubemetrics with its Kubernetes inventory, against the same kubelets, Nodes and Pods, each with
  a fresh load generator. If the control plane or metrics-server cannot be built or started, the result
  says so and kubemetrics is measured standalone.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.runner import analysis, cluster, collectors, etcdload, kubelets, report
from benchmarks.runner.children import HARNESS_OOM_SCORE_ADJ, Child, CpuPlan, pin_running, raise_open_file_limit
from benchmarks.runner.measure import Harness, Observations, measure
from benchmarks.runner.progress import Progress
from benchmarks.runner.scenarios import Scenario, WindowSettings
from benchmarks.runner.watch import WatchedProcess, while_running

HPA_TARGETS = 100
HPA_LABEL = "kubemetrics.io/bench-hpa"
PODS_FOR_GET = 50
BASELINES = ("metrics-server", "none")
POPULATE = ("etcd", "api")


@dataclass(frozen=True)
class RunSettings:
    window: WindowSettings = field(default_factory=WindowSettings)
    baseline: str = "metrics-server"
    results_dir: Path = Path("benchmarks/results")
    address_base: str = kubelets.DEFAULT_ADDRESS_BASE
    cpus: CpuPlan = field(default_factory=CpuPlan.default)
    kubelet_delay_seconds: float = 0.0
    housekeeping_seconds: int = 10
    keep_work_dir: bool = False
    metrics_server_version: str = collectors.METRICS_SERVER_VERSION
    # False: no API load generator (the collector's scraping cost alone).
    with_load: bool = True
    # How the baseline's cluster gets its Nodes and Pods: "etcd" writes them Running into etcd (etcdload.py),
    # "api" creates them through kube-apiserver and the hollow kubelets register and start them.
    populate: str = "etcd"


def simulator_start_timeout(scenario: Scenario) -> float:
    # Every listener and its certificate is set up before `ready`; hollow mode also registers Nodes.
    return 120.0 + scenario.nodes / 20


def label_for_hpa_targets(inventory: dict[str, Any], targets: int = HPA_TARGETS) -> list[tuple[str, str]]:
    """Give every pod of a static inventory a label naming one of `targets` HPA-like listers and return
    those listers' (namespace, selector): namespaces get listers in proportion to their pods, each
    lister selecting an equal share of its namespace's pods (the simulator's namespaces are few and
    large, unlike one Deployment per HPA)."""
    pods: list[dict[str, Any]] = inventory.get("pods") or []
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for pod in sorted(pods, key=lambda p: (p["namespace"], p["name"])):
        by_namespace.setdefault(pod["namespace"], []).append(pod)
    if not by_namespace:
        return []
    total = len(pods)
    shares = {ns: max(1, int(targets * len(members) / total)) for ns, members in by_namespace.items()}
    # Hand out what rounding left to the namespaces with the most pods per lister.
    while sum(shares.values()) < targets:
        busiest = max(shares, key=lambda ns: len(by_namespace[ns]) / shares[ns])
        shares[busiest] += 1
    found: list[tuple[str, str]] = []
    for namespace, members in by_namespace.items():
        count = min(shares[namespace], len(members))
        for position, pod in enumerate(members):
            pod["labels"] = {**(pod.get("labels") or {}), HPA_LABEL: f"hpa-{position % count}"}
        found += [(namespace, f"{HPA_LABEL}=hpa-{j}") for j in range(count)]
    return found


def sample_pods(pods: list[tuple[str, str]], count: int = PODS_FOR_GET) -> list[tuple[str, str]]:
    if not pods:
        return []
    step = max(1, len(pods) // count)
    return pods[::step][:count]


class ScenarioRun:
    def __init__(self, scenario: Scenario, settings: RunSettings, progress: Progress) -> None:
        self.scenario = scenario
        self.settings = settings
        self.progress = progress
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"kubemetrics-bench-{scenario.name}-"))
        self.notes: list[str] = []
        self.observations: list[Observations] = []
        self.payload_bytes: dict[str, int] = {}
        self.cluster_kind = "standalone"

    async def run(self) -> dict[str, Any]:
        self.progress.stage(self.scenario.name)
        self.progress.note(f"work directory {self.work_dir}")
        started = time.monotonic()
        failed = False
        try:
            if self.settings.baseline == "metrics-server":
                await self._run_with_baseline()
            else:
                await self._run_standalone()
        except Exception:
            failed = True
            raise
        finally:
            # Failures quote these logs.
            if failed or self.settings.keep_work_dir or any(o.failure for o in self.observations):
                self.notes.append(f"logs kept in {self.work_dir}")
            else:
                shutil.rmtree(self.work_dir, ignore_errors=True)
        document = self._document(time.monotonic() - started)
        directory = report.write_scenario(document, self.settings.results_dir)
        report.write_summary(self.settings.results_dir)
        self.progress.note(f"results in {directory}")
        return document

    # ---- cluster kinds ----

    async def _start_simulator(
        self, kubeconfig: Path | None, control_plane: Sequence[WatchedProcess] = ()
    ) -> tuple[kubelets.SimulatorProcesses, kubelets.SimulatorReady]:
        """One simulator process per `kubelets.NODES_PER_SIMULATOR` nodes, each listening for its own range of
        the same fleet: the open-file limit is per process (each node takes a listener and a connection).
        Waiting for them fails at once if one of them or of the control plane's processes exits."""
        soft, _ = raise_open_file_limit(kubelets.NODES_PER_SIMULATOR * 3 + 4096)
        ranges = kubelets.listen_ranges(self.scenario.nodes)
        # A listener and a connection per node (one collector at a time).
        needed = 2 * max(last - first + 1 for first, last in ranges) + 256
        if soft != resource.RLIM_INFINITY and soft < needed:
            self.notes.append(f"open-file limit {soft} is below the {needed} a simulator process needs (ulimit -n)")
        shards = f" in {len(ranges)} processes" if len(ranges) > 1 else ""
        self.progress.note(f"starting {self.scenario.nodes} simulated kubelets{shards}")
        processes = kubelets.SimulatorProcesses()
        try:
            for number, listen_range in enumerate(ranges):
                suffix = f"-{number}" if len(ranges) > 1 else ""
                out_dir = self.work_dir / f"simulator{suffix}"
                argv = kubelets.simulator_argv(
                    self.scenario,
                    out_dir,
                    self.settings.address_base,
                    self.settings.cpus.harness,
                    kubeconfig=kubeconfig,
                    kubelet_delay_seconds=self.settings.kubelet_delay_seconds,
                    housekeeping_seconds=self.settings.housekeeping_seconds,
                    register_nodes=self.settings.populate == "api",
                    listen_range=listen_range if len(ranges) > 1 else None,
                )
                child = Child(f"simulator{suffix}", argv, self.work_dir, oom_score_adj=HARNESS_OOM_SCORE_ADJ)
                processes.add(child, out_dir)
            ready = await while_running(
                processes.wait_ready(simulator_start_timeout(self.scenario)),
                [*control_plane, *processes.watched()],
                "waiting for the simulated kubelets to be ready",
            )
        except BaseException:
            processes.stop()
            raise
        return processes, ready

    async def _run_standalone(self) -> None:
        simulator, ready = await self._start_simulator(None)
        try:
            inventory = orjson.loads(ready.inventory_file.read_bytes())
            targets = label_for_hpa_targets(inventory)
            labelled = self.work_dir / "inventory.json"
            labelled.write_bytes(orjson.dumps(inventory))
            pods = [(p["namespace"], p["name"]) for p in inventory.get("pods") or []]
            self.payload_bytes = await kubelets.payload_bytes(ready)
            harness = Harness(
                simulator,
                ready,
                (),
                targets,
                sample_pods(pods),
                self.settings.cpus.harness,
                self.work_dir,
                self.settings.with_load,
            )
            spec = collectors.kubemetrics_standalone(
                labelled,
                self.work_dir,
                self.settings.window.resolution_seconds,
                self.settings.cpus.collector,
                "working tree",
                self._workers(),
            )
            await self._measure(spec, harness, simulator.watched())
        finally:
            simulator.stop()

    async def _run_with_baseline(self) -> None:
        try:
            binary = await asyncio.to_thread(collectors.build_metrics_server, self.settings.metrics_server_version)
        except collectors.CollectorError as err:
            self._baseline_unavailable(f"metrics-server could not be built: {err}")
            await self._run_standalone()
            return
        self.progress.note("starting the control plane (etcd, kube-apiserver, kube-controller-manager)")
        try:
            control_plane = await asyncio.to_thread(
                cluster.start_control_plane, self.work_dir / "control-plane", self.settings.cpus.harness
            )
        except cluster.ClusterError as err:
            self._baseline_unavailable(f"the control plane could not be started: {err}")
            await self._run_standalone()
            return
        self.cluster_kind = "hollow (control plane + API pods)"
        try:
            if self.settings.populate == "etcd":
                self._pin(control_plane.process_ids, self.settings.cpus.everything)
                await while_running(
                    self._populate_etcd(control_plane),
                    control_plane.watched(),
                    "writing the scenario's objects into etcd",
                )
            simulator, ready = await self._start_simulator(control_plane.admin_kubeconfig, control_plane.watched())
            try:
                harness_processes = [*control_plane.watched(), *simulator.watched()]
                # Nothing is measured while the pods start: the control plane and the simulator may use
                # every CPU until then, and are pinned back beside the load before the first collector.
                setup = [*control_plane.process_ids, *simulator.tree()]
                self._pin(setup, self.settings.cpus.everything)
                try:
                    await while_running(
                        self._populate_and_wait_served(control_plane, ready),
                        harness_processes,
                        "waiting for every pod to be Running and served by its kubelet",
                    )
                finally:
                    self._pin(setup, self.settings.cpus.harness)
                # Once the kubelets run the API's pods.
                self.payload_bytes = await kubelets.payload_bytes(ready)
                identity = collectors.ClientIdentity(control_plane.admin_cert, control_plane.admin_key)
                harness = Harness(
                    simulator,
                    ready,
                    control_plane.process_ids,
                    cluster.hpa_targets(),
                    sample_pods([(cluster.namespace_of(i), f"web-{i:07d}") for i in range(self.scenario.pods)]),
                    self.settings.cpus.harness,
                    self.work_dir,
                    self.settings.with_load,
                )
                resolution = self.settings.window.resolution_seconds
                cpus = self.settings.cpus.collector
                baseline = collectors.metrics_server(
                    binary,
                    control_plane.admin_kubeconfig,
                    identity,
                    self.work_dir,
                    resolution,
                    cpus,
                    self.settings.metrics_server_version,
                )
                await self._measure(baseline, harness, harness_processes)
                ours = collectors.kubemetrics_in_cluster(
                    control_plane.admin_kubeconfig,
                    identity,
                    self.work_dir,
                    resolution,
                    cpus,
                    "working tree",
                    self._workers(),
                )
                await self._measure(ours, harness, harness_processes)
            finally:
                simulator.stop()
        finally:
            await asyncio.to_thread(control_plane.stop)

    def _workers(self) -> int | None:
        cpus = len(self.settings.cpus.collector.split(",")) if self.settings.cpus.collector else os.cpu_count() or 1
        workers = collectors.kubemetrics_workers(self.scenario.nodes, cpus)
        if workers is not None:
            self.notes.append(
                f"kubemetrics ran {workers} workers: {collectors.NODES_PER_WORKER} connections each at most"
            )
        return workers

    @staticmethod
    def _pin(pids: list[int], cpus: str) -> None:
        for pid in pids:
            pin_running(pid, cpus)

    def _baseline_unavailable(self, reason: str) -> None:
        self.progress.note(f"no baseline: {reason}")
        self.notes.append(f"metrics-server baseline not run: {reason}")

    def _creation_progress(self) -> Callable[[int, int], None]:
        started = time.monotonic()

        def created(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            eta = elapsed / done * (total - done) if done else None
            self.progress.bar("creating objects", done, total, f"{done}/{total}", eta_seconds=eta)

        return created

    async def _populate_etcd(self, control_plane: cluster.ControlPlaneHandle) -> None:
        started = time.monotonic()
        await cluster.create_namespaces(control_plane.admin_kubeconfig)
        nodes = etcdload.inventory_nodes(
            self.scenario.nodes, self.settings.address_base, kubelets.KUBELET_PORT, kubelets.SIMULATOR_SEED
        )
        objects = etcdload.scenario_objects(self.scenario, nodes, kubelets.SIMULATOR_SEED, cluster.pod_manifest)
        total = len(nodes) + self.scenario.pods
        try:
            await etcdload.put_all(control_plane.etcd_url, objects, total, self._creation_progress())
        except (etcdload.EtcdLoadError, OSError, aiohttp.ClientError) as err:
            raise cluster.ClusterError(f"writing the scenario's objects into etcd: {err}") from err
        self.progress.note(
            f"{len(nodes)} Nodes and {self.scenario.pods} Running pods written into etcd "
            f"in {time.monotonic() - started:.0f}s"
        )

    async def _populate_through_api(self, control_plane: cluster.ControlPlaneHandle) -> None:
        started = time.monotonic()
        names = [f"sim-node-{i}" for i in range(self.scenario.nodes)]
        await cluster.create_pods(control_plane.admin_kubeconfig, self.scenario, names, self._creation_progress())
        self.progress.note(f"{self.scenario.pods} pods created in {time.monotonic() - started:.0f}s")

    async def _populate_and_wait_served(
        self, control_plane: cluster.ControlPlaneHandle, ready: kubelets.SimulatorReady
    ) -> None:
        if self.settings.populate == "api":
            await self._populate_through_api(control_plane)
        await self._wait_served(control_plane, ready)

    async def _wait_served(self, control_plane: cluster.ControlPlaneHandle, ready: kubelets.SimulatorReady) -> None:
        started = time.monotonic()

        def running(done: int, total: int) -> None:
            self.progress.bar("pods running", done, total, f"{done}/{total}")

        await cluster.wait_running(
            control_plane.admin_kubeconfig, self.scenario.pods, 300 + self.scenario.pods / 20, running
        )

        def served(done: int, total: int) -> None:
            self.progress.bar("pods served by the kubelets", done, total, f"{done}/{total}")

        await kubelets.wait_pods_served(ready, self.scenario.pods, 120 + self.scenario.pods / 500, served)
        self.progress.note(f"every pod Running and served by its kubelet after {time.monotonic() - started:.0f}s")

    async def _measure(
        self, spec: collectors.CollectorSpec, harness: Harness, harness_processes: Sequence[WatchedProcess]
    ) -> None:
        """One collector's run; the collector exiting is its result, a harness process exiting fails the run."""
        self.progress.stage(f"{self.scenario.name} {spec.name}")
        observations = await while_running(
            measure(spec, self.scenario, self.settings.window, harness, self.progress),
            harness_processes,
            f"measuring {spec.name}",
        )
        self.observations.append(observations)
        self.progress.stage(self.scenario.name)

    # ---- the result ----

    def _document(self, elapsed_seconds: float) -> dict[str, Any]:
        window = self.settings.window
        figures = {
            o.collector: analysis.collector_figures(o, self.scenario, window.resolution_seconds)
            for o in self.observations
        }
        harness = {o.collector: analysis.harness_figures(o) for o in self.observations}
        notes = list(self.notes)
        for name, entry in harness.items():
            if (entry.get("simulator") or {}).get("saturated"):
                notes.append(f"the simulator was saturated while {name} ran: its figures are paced by the kubelets")
        for name, entry in figures.items():
            served = lookup_int(entry, ("served", "nodes_before_window"))
            if entry.get("status") == "ok" and served is not None and served < self.scenario.nodes:
                notes.append(f"{name} served {served} of {self.scenario.nodes} nodes when the window started")
        for name, entry in figures.items():
            errors = entry.get("load_errors") or {}
            if errors:
                listed = ", ".join(f"{kind} ×{count}" for kind, count in errors.items())
                notes.append(f"failed API requests in the window of {name}: {listed}")
        return {
            "scenario": {
                **{k: v for k, v in asdict(self.scenario).items() if k != "risks"},
                "pods": self.scenario.pods,
                "risks": list(self.scenario.risks),
            },
            "settings": {
                "resolution_seconds": window.resolution_seconds,
                "resolutions": window.resolutions,
                "warmup_seconds": window.warmup_seconds,
                "baseline": self.settings.baseline,
                "cluster": self.cluster_kind,
                "kubelet_delay_seconds": self.settings.kubelet_delay_seconds,
                "api_load": self.settings.with_load,
                "housekeeping_seconds": self.settings.housekeeping_seconds,
                "cpus": self.settings.cpus.describe(),
                "address_base": self.settings.address_base,
            },
            "machine": report.machine(),
            "elapsed_seconds": elapsed_seconds,
            "harness": {"payload_bytes": self.payload_bytes, "per_collector": harness},
            "collectors": figures,
            "ratios": analysis.ratios(figures),
            "targets": analysis.targets(self.scenario, figures),
            "notes": notes,
        }


def lookup_int(figures: dict[str, Any], path: tuple[str, ...]) -> int | None:
    value = analysis.lookup(figures, path)
    return int(value) if value is not None else None


async def run_scenario(scenario: Scenario, settings: RunSettings, progress: Progress | None = None) -> dict[str, Any]:
    return await ScenarioRun(scenario, settings, progress or Progress()).run()
