"""`python -m benchmarks.runner` (`make bench`, `make bench SCENARIO=100x70`): run scenarios and print the
side-by-side table of each; `--list` shows the scenarios, what each is expected to cost and what may
break."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from pathlib import Path

from kubemetrics.options import parse_duration

from benchmarks.runner import report
from benchmarks.runner.children import HARNESS_OOM_SCORE_ADJ, CpuPlan, set_oom_score_adj
from benchmarks.runner.cluster import ClusterError
from benchmarks.runner.kubelets import DEFAULT_ADDRESS_BASE, SimulatorError
from benchmarks.runner.progress import Progress
from benchmarks.runner.run import BASELINES, POPULATE, RunSettings, run_scenario
from benchmarks.runner.scenarios import SCENARIOS, Scenario, WindowSettings, auto_resolution, simulator_cores
from benchmarks.runner.watch import HarnessProcessExited

# Rates measured on the 2-core development machine (benchmarks/README.md), for --list's estimates: 7,000
# API pods were all Running 155 s after the first was created (the hollow kubelets' status writes are the
# bottleneck); Node registration is two writes per node, 16 at a time.
SIMULATOR_START_SECONDS_PER_NODE = 0.01
API_PODS_RUNNING_PER_SECOND = 45.0
NODES_REGISTERED_PER_SECOND = 100.0
# Nodes and Running pods written into etcd (etcdload.py): 10,200 objects in 3 s.
ETCD_OBJECTS_PER_SECOND = 3000.0
# The scenario cannot go on: the control plane or the simulated kubelets failed (not a collector).
HARNESS_FAILURES = (HarnessProcessExited, ClusterError, SimulatorError)


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


def _resolution(text: str) -> float | None:
    return None if text == "auto" else _seconds(text)


def window_for(scenario: Scenario, base: WindowSettings, resolution: float | None) -> WindowSettings:
    """The scenario's window: its resolution (given, or auto) and a warm-up long enough for three cycles."""
    seconds = auto_resolution(scenario) if resolution is None else resolution
    return dataclasses.replace(
        base,
        resolution_seconds=seconds,
        warmup_timeout_seconds=max(base.warmup_timeout_seconds, 3 * seconds),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runner", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        help="A scenario name (see --list) or a shape NxP[xC]; repeatable. Default: every scenario.",
    )
    parser.add_argument("--list", action="store_true", help="List the scenarios with estimated run times and exit.")
    parser.add_argument(
        "--baseline",
        choices=BASELINES,
        default="metrics-server",
        help="metrics-server: a control plane with the Nodes and Pods, metrics-server then kubemetrics; "
        "none: kubemetrics alone on a standalone simulator (default metrics-server).",
    )
    parser.add_argument(
        "--resolution",
        type=_resolution,
        default=None,
        help="--metric-resolution of both. Default auto: 15s, or per scenario the shortest of "
        "30s/60s/120s at which the simulated kubelets keep up on their one core (see --list).",
    )
    parser.add_argument("--resolutions", type=int, default=10, help="Resolutions measured after warm-up (default 10).")
    parser.add_argument(
        "--warmup", type=_seconds, default=15.0, help="Least time from collector start to the window (default 15s)."
    )
    parser.add_argument(
        "--warmup-timeout",
        type=_seconds,
        default=180.0,
        help="Measure anyway if not every node is served after this long (default 3m).",
    )
    parser.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--address-base", default=DEFAULT_ADDRESS_BASE, help="First loopback address of the kubelets.")
    default_cpus = CpuPlan.default()
    parser.add_argument("--collector-cpus", default=default_cpus.collector, help="taskset CPU list of the collector.")
    parser.add_argument(
        "--harness-cpus", default=default_cpus.harness, help="taskset CPU list of the simulator, load, control plane."
    )
    parser.add_argument("--no-pin", action="store_true", help="Pin nothing.")
    parser.add_argument(
        "--kubelet-delay", type=_seconds, default=0.0, help="Every kubelet answers this late (emulated RTT)."
    )
    parser.add_argument(
        "--housekeeping-interval", type=int, default=10, help="Seconds between kubelet stats samples (default 10)."
    )
    parser.add_argument(
        "--no-load", action="store_true", help="No API load generator: the collector's scraping cost alone."
    )
    parser.add_argument(
        "--populate",
        choices=POPULATE,
        default="etcd",
        help="How the baseline's cluster gets its Nodes and Running Pods: written into etcd (fast), or created "
        "through kube-apiserver and started by the hollow kubelets (about 130 pods a second here). Default etcd.",
    )
    parser.add_argument("--keep-work-dir", action="store_true", help="Keep logs and generated files.")
    parser.add_argument("--quiet", action="store_true", help="No progress output.")
    return parser


def estimate_seconds(scenario: Scenario, window: WindowSettings, baseline: bool, populate: str = "etcd") -> float:
    per_collector = max(window.warmup_seconds, 2 * window.resolution_seconds) + window.window_seconds + 10
    setup = 10 + scenario.nodes * SIMULATOR_START_SECONDS_PER_NODE
    if baseline:
        if populate == "etcd":
            setup += 15 + (scenario.pods + scenario.nodes) / ETCD_OBJECTS_PER_SECOND
        else:
            setup += 15 + scenario.pods / API_PODS_RUNNING_PER_SECOND + scenario.nodes / NODES_REGISTERED_PER_SECOND
        return setup + 2 * per_collector
    return setup + per_collector


def _list(base: WindowSettings, resolution: float | None, baseline: bool, populate: str) -> None:
    for scenario in SCENARIOS:
        window = window_for(scenario, base, resolution)
        minutes = estimate_seconds(scenario, window, baseline, populate) / 60
        shape = f"{scenario.nodes:,} × {scenario.pods_per_node}"
        if scenario.containers_per_pod:
            shape += f" × {scenario.containers_per_pod} containers"
        cores = simulator_cores(scenario, window.resolution_seconds)
        print(
            f"{scenario.name:12} {shape:32} ~{minutes:.0f} min at {window.resolution_seconds:g}s, "
            f"simulator ~{cores:.2f} cores  {scenario.description}"
        )
        for risk in scenario.risks:
            print(f"{'':14}risk: {risk}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    window = WindowSettings(
        resolutions=args.resolutions,
        warmup_seconds=args.warmup,
        warmup_timeout_seconds=args.warmup_timeout,
    )
    if args.resolution is not None and args.resolution < 10:
        print("--resolution: both collectors refuse a metric resolution under 10s", file=sys.stderr)
        return 2
    if args.resolutions < 1:
        print("--resolutions: at least 1", file=sys.stderr)
        return 2
    if args.list:
        _list(window, args.resolution, args.baseline != "none", args.populate)
        return 0
    try:
        scenarios = [Scenario.parse(name) for name in args.scenario] or list(SCENARIOS)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    cpus = CpuPlan("", "") if args.no_pin else CpuPlan(args.collector_cpus, args.harness_cpus)
    settings = RunSettings(
        window=window,
        baseline=args.baseline,
        results_dir=args.results_dir,
        address_base=args.address_base,
        cpus=cpus,
        kubelet_delay_seconds=args.kubelet_delay,
        housekeeping_seconds=args.housekeeping_interval,
        keep_work_dir=args.keep_work_dir,
        with_load=not args.no_load,
        populate=args.populate,
    )
    import uvloop

    # The runner is harness too (children inherit this; the collector sets its own 1000): with the control
    # plane and the simulators lowered, it would otherwise be the OOM killer's pick while no collector runs.
    set_oom_score_adj(os.getpid(), HARNESS_OOM_SCORE_ADJ)
    try:
        return uvloop.run(_run_all(scenarios, settings, args.resolution, Progress(quiet=args.quiet)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("benchmark interrupted; every process it started was stopped", file=sys.stderr)
        return 130


async def _run_all(
    scenarios: list[Scenario], settings: RunSettings, resolution: float | None, progress: Progress
) -> int:
    # SIGTERM (e.g. a CI timeout) cancels the run like Ctrl-C does, so the cleanup in every `finally`
    # stops the simulator, the collectors and the control plane before the runner exits.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    failed = False
    for scenario in scenarios:
        window = window_for(scenario, settings.window, resolution)
        try:
            document = await run_scenario(scenario, dataclasses.replace(settings, window=window), progress)
        except HARNESS_FAILURES as err:
            progress.error(f"scenario {scenario.name} failed: {err}")
            return 1
        print(report.markdown(document), flush=True)
        # A baseline that cannot run a scenario is a result; kubemetrics failing is a failure.
        ours = document["collectors"].get("kubemetrics") or {}
        failed |= ours.get("status") != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
