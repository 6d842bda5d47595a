"""How the benchmark runner watches the processes it depends on and steers the OOM killer: a control-plane
or simulator process that exits fails the wait at once, naming it and how it ended; the collector under
test is the OOM killer's first pick, and its being killed is its result (a failed baseline is not a failed
run)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest

from benchmarks.runner import __main__ as cli
from benchmarks.runner import analysis, children, procfs, report
from benchmarks.runner.children import COLLECTOR_OOM_SCORE_ADJ, HARNESS_OOM_SCORE_ADJ, Child
from benchmarks.runner.collectors import CollectorClient, CollectorSpec
from benchmarks.runner.measure import Observations, _warm_up
from benchmarks.runner.progress import Progress
from benchmarks.runner.run import RunSettings
from benchmarks.runner.scenarios import Scenario, WindowSettings
from benchmarks.runner.watch import HarnessProcessExited, WatchedProcess, while_running

POLL = 0.05


@pytest.fixture
def started(tmp_path: Path) -> Any:
    """Start a Child; every one started is stopped at the end of the test."""
    started: list[Child] = []

    def start(name: str, argv: list[str], **options: Any) -> Child:
        child = Child(name, argv, tmp_path, **options)
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop(grace_seconds=1.0)


def _kill(child: Child, signum: signal.Signals = signal.SIGKILL) -> None:
    os.kill(child.pid, signum)
    child.process.wait(timeout=5)


async def test_a_control_plane_process_killed_during_a_wait_fails_it_at_once_naming_it(started: Any) -> None:
    apiserver = started("kube-apiserver", ["sleep", "60"])
    simulator = started("simulator-0", ["sleep", "60"])
    cleaned_up = asyncio.Event()

    async def simulators_ready() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned_up.set()

    asyncio.get_running_loop().call_later(0.2, os.kill, apiserver.pid, signal.SIGKILL)
    begun = time.monotonic()
    with pytest.raises(HarnessProcessExited) as failed:
        await while_running(
            simulators_ready(),
            [WatchedProcess.of(simulator), WatchedProcess.of(apiserver)],
            "waiting for the simulated kubelets to be ready",
            poll_seconds=POLL,
        )
    assert time.monotonic() - begun < 5
    message = str(failed.value)
    assert f"kube-apiserver (pid {apiserver.pid}) killed by SIGKILL" in message
    assert "OOM killer" in message and "out of memory" in message
    assert "while the runner was waiting for the simulated kubelets to be ready" in message
    assert str(apiserver.log_path) in message
    assert cleaned_up.is_set(), "the wait was not cancelled"
    assert simulator.alive()


async def test_a_simulator_exiting_with_a_code_is_named_with_it_even_when_the_work_failed_first(
    started: Any,
) -> None:
    simulator = started("simulator-3", ["sh", "-c", "echo cannot list pods; sleep 0.2; exit 3"])

    async def pods_served() -> None:
        await asyncio.to_thread(simulator.process.wait, 5)
        raise ConnectionError("the kubelets stopped answering")

    with pytest.raises(HarnessProcessExited) as failed:
        await while_running(pods_served(), [WatchedProcess.of(simulator)], "waiting for pods", poll_seconds=5)
    message = str(failed.value)
    assert f"simulator-3 (pid {simulator.pid}) exited with code 3" in message
    assert "cannot list pods" in message
    assert isinstance(failed.value.__cause__, ConnectionError)


async def test_a_process_stopped_by_another_signal_is_named_with_that_signal(started: Any) -> None:
    etcd = started("etcd", ["sleep", "60"])
    _kill(etcd, signal.SIGTERM)
    with pytest.raises(HarnessProcessExited, match=r"etcd \(pid \d+\) killed by SIGTERM, while"):
        await while_running(asyncio.sleep(60), [WatchedProcess.of(etcd)], "writing into etcd", poll_seconds=POLL)


async def test_the_work_returns_its_result_while_every_process_runs(started: Any) -> None:
    etcd = started("etcd", ["sleep", "60"])

    async def work() -> str:
        await asyncio.sleep(0.2)
        return "served"

    assert await while_running(work(), [WatchedProcess.of(etcd)], "waiting", poll_seconds=POLL) == "served"


def test_a_sigkill_is_confirmed_as_an_oom_kill_when_dmesg_has_the_kernels_line(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel_log = (
        "[ 1046.580028] Out of memory: Killed process 42421 (etcd) total-vm:1kB\n"
        "[ 1046.590028] Out of memory: Killed process 4242 (kube-apiserver) total-vm:8958608kB, anon-rss:6455144kB\n"
    )

    def dmesg(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv == ["dmesg"]
        return subprocess.CompletedProcess(argv, 0, stdout=kernel_log)

    monkeypatch.setattr(subprocess, "run", dmesg)
    status = children.exit_status(4242, -signal.SIGKILL)
    assert status.startswith("killed by SIGKILL: the kernel's OOM killer killed it, out of memory")
    assert "(dmesg: Out of memory: Killed process 4242 (kube-apiserver) total-vm:8958608kB" in status
    unconfirmed = children.exit_status(424, -signal.SIGKILL)
    assert unconfirmed == (
        "killed by SIGKILL: likely by the kernel's OOM killer, out of memory (dmesg does not confirm it)"
    )
    assert children.exit_status(424, 0) == "exited with code 0"


def test_the_collector_and_what_it_forks_get_the_oom_killers_first_pick(started: Any, tmp_path: Path) -> None:
    # A front that forks its worker at once, as kubemetrics serve does.
    front = started("kubemetrics", ["sh", "-c", "sleep 60 & wait"], oom_score_adj=COLLECTOR_OOM_SCORE_ADJ)
    deadline = time.monotonic() + 5
    while len(front.tree()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    tree = front.tree()
    assert len(tree) == 2
    assert [children.read_oom_score_adj(pid) for pid in tree] == [COLLECTOR_OOM_SCORE_ADJ] * 2


def _may_lower_oom_score_adj() -> bool:
    """CAP_SYS_RESOURCE (bit 24 of the effective capabilities): a container's root may lack it."""
    status = Path("/proc/self/status").read_text()
    effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    return bool(int(effective, 16) >> 24 & 1)


@pytest.mark.skipif(not _may_lower_oom_score_adj(), reason="a negative oom_score_adj needs CAP_SYS_RESOURCE")
def test_the_harness_gets_a_negative_oom_score_adj(started: Any) -> None:
    simulator = started("simulator", ["sleep", "60"], oom_score_adj=HARNESS_OOM_SCORE_ADJ)
    assert children.read_oom_score_adj(simulator.pid) == HARNESS_OOM_SCORE_ADJ
    kube_apiserver = subprocess.Popen(["sleep", "60"])
    try:
        assert children.set_oom_score_adj(kube_apiserver.pid, HARNESS_OOM_SCORE_ADJ)
        assert children.read_oom_score_adj(kube_apiserver.pid) == HARNESS_OOM_SCORE_ADJ
    finally:
        kube_apiserver.kill()
        kube_apiserver.wait()


@pytest.mark.skipif(_may_lower_oom_score_adj(), reason="here a negative oom_score_adj is allowed")
def test_a_harness_process_starts_anyway_when_its_oom_score_adj_cannot_be_lowered(
    started: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=children.__name__):
        simulator = started("simulator", ["sleep", "60"], oom_score_adj=HARNESS_OOM_SCORE_ADJ)
    assert simulator.alive()
    assert f"could not set oom_score_adj -500 for pid {simulator.pid}" in caplog.text
    assert "needs CAP_SYS_RESOURCE" in caplog.text


def test_an_oom_score_adj_that_cannot_be_written_is_logged_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    with caplog.at_level(logging.WARNING, logger=children.__name__):
        assert not children.set_oom_score_adj(gone.pid, HARNESS_OOM_SCORE_ADJ)
    assert f"could not set oom_score_adj -500 for pid {gone.pid}" in caplog.text


class _KillingClient:
    """Answers the warm-up's node count once, and the kernel kills the collector meanwhile."""

    def __init__(self, collector: Child) -> None:
        self.collector = collector

    async def nodes_served(self) -> int:
        _kill(self.collector)
        return 0


async def test_a_collector_killed_during_warm_up_is_its_failed_result_with_its_memory(
    started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children, "_kernel_oom_kill", lambda pid: None)
    collector = started("metrics-server", ["sleep", "60"], oom_score_adj=COLLECTOR_OOM_SCORE_ADJ)
    spec = CollectorSpec("metrics-server", ["sleep", "60"], 0, None, "v0.8.0", "informers (Nodes, Pods)")
    observations = Observations(spec.name, spec, started_wall=collector.started)
    scenario = Scenario("3x1", 3, 1)
    settings = WindowSettings(resolution_seconds=15.0, resolutions=1, warmup_seconds=60, warmup_timeout_seconds=60)
    with pytest.raises(RuntimeError) as failed:
        client = cast(CollectorClient, _KillingClient(collector))
        await _warm_up(client, collector, scenario, settings, observations, Progress(quiet=True))
    observations.failure = str(failed.value)
    figures = analysis.collector_figures(observations, scenario, 15.0)
    assert figures["status"] == "failed"
    assert figures["failure"].startswith(f"metrics-server (pid {collector.pid}, killed by SIGKILL: likely by ")
    assert "OOM killer, out of memory" in figures["failure"]
    assert "exited during warm-up (peak RSS " in figures["failure"]
    assert " MiB during warm-up)" in figures["failure"]


def test_peak_memory_names_the_window_samples_largest_rss_and_pss() -> None:
    spec = CollectorSpec("kubemetrics", [], 0, None, "", "")
    observations = Observations("kubemetrics", spec)
    assert observations.peak_memory() == ""
    mib = 1024 * 1024
    observations.collector_samples = [
        procfs.TreeSample(0.0, 2, 1.0, 3000 * mib, 2000 * mib, {}),
        procfs.TreeSample(2.0, 2, 2.0, 2500 * mib, 2100 * mib, {}),
    ]
    assert observations.peak_memory() == "peak RSS 3,000 MiB, PSS 2,100 MiB in the window"


def _document(**statuses: str) -> dict[str, Any]:
    return {"collectors": {name.replace("_", "-"): {"status": status} for name, status in statuses.items()}}


async def test_a_killed_baseline_is_a_result_a_failed_kubemetrics_or_harness_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome: dict[str, Any] = {}

    async def run_scenario(*_: Any) -> dict[str, Any]:
        if isinstance(outcome["result"], BaseException):
            raise outcome["result"]
        return cast(dict[str, Any], outcome["result"])

    monkeypatch.setattr(cli, "run_scenario", run_scenario)
    monkeypatch.setattr(report, "markdown", lambda document: "")
    scenarios = [Scenario("3x1", 3, 1)]
    progress = Progress(quiet=True)

    outcome["result"] = _document(metrics_server="failed", kubemetrics="ok")
    assert await cli._run_all(scenarios, RunSettings(), 15.0, progress) == 0
    outcome["result"] = _document(metrics_server="ok", kubemetrics="failed")
    assert await cli._run_all(scenarios, RunSettings(), 15.0, progress) == 1
    outcome["result"] = HarnessProcessExited("kube-apiserver (pid 19210) killed by SIGKILL: …")
    assert await cli._run_all(scenarios, RunSettings(), 15.0, progress) == 1
    assert "scenario 3x1 failed: kube-apiserver (pid 19210) killed by SIGKILL" in capsys.readouterr().err
