"""Worker supervisor: real child processes are started, restarted after they die, and all stopped."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from harness import eventually
from kubemetrics.options import KubeletOptions, ServeOptions, WorkerOptions, add_worker_flags, worker_options_from
from kubemetrics.selfmetrics import SelfMetrics
from kubemetrics.supervisor import (
    RestartBackoff,
    WorkerSupervisor,
    describe_exit,
    worker_command,
    worker_environment,
)

REPO_PYTHON = Path(__file__).resolve().parents[2] / "python"
FAST_BACKOFF = RestartBackoff(initial_seconds=0.05, max_seconds=0.2, reset_after_seconds=60.0)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and PR_SET_PDEATHSIG")


def stand_in_worker(pid_dir: Path, ignore_sigterm: bool = False) -> Callable[[str], list[str]]:
    """A tiny child that records its pid under its worker id, then sleeps (optionally deaf to SIGTERM)."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        if {ignore_sigterm!r}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(os.path.join({str(pid_dir)!r}, sys.argv[1] + ".pids"), "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        time.sleep(600)
        """
    )
    return lambda worker_id: [sys.executable, "-c", script, worker_id]


def recorded_pids(pid_dir: Path, worker_id: str) -> list[int]:
    path = pid_dir / f"{worker_id}.pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state and "dead" not in state


def own_children() -> set[int]:
    return set(children_of(os.getpid()))


def process_environment(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


@pytest.fixture
async def supervisors() -> AsyncIterator[list[WorkerSupervisor]]:
    """Supervisors created by a test are shut down even when it fails."""
    created: list[WorkerSupervisor] = []
    yield created
    for supervisor in created:
        await supervisor.shutdown()


async def test_starts_one_process_per_worker_id_with_the_pid_it_reports(
    tmp_path: Path, supervisors: list[WorkerSupervisor]
) -> None:
    supervisor = WorkerSupervisor(["w0", "w1", "w2"], stand_in_worker(tmp_path), backoff=FAST_BACKOFF)
    supervisors.append(supervisor)
    await supervisor.start()
    pids = supervisor.pids()
    assert sorted(pids) == ["w0", "w1", "w2"]
    # The parent-death wrapper execs in place, so the pid the supervisor holds is the worker's own.
    for worker_id, pid in pids.items():
        await eventually(lambda w=worker_id: recorded_pids(tmp_path, w) != [], what=f"{worker_id} to start")
        assert recorded_pids(tmp_path, worker_id) == [pid]
        assert running(pid)
    assert set(pids.values()) <= own_children()


async def test_workers_start_with_a_fixed_malloc_mmap_threshold_unless_the_operator_set_one(
    tmp_path: Path, supervisors: list[WorkerSupervisor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    supervisor = WorkerSupervisor(["w0"], stand_in_worker(tmp_path), backoff=FAST_BACKOFF)
    supervisors.append(supervisor)
    await supervisor.start()
    pid = supervisor.pids()["w0"]
    await eventually(lambda: recorded_pids(tmp_path, "w0") == [pid], what="w0 to start")
    assert b"MALLOC_MMAP_THRESHOLD_=131072" in process_environment(pid)
    assert worker_environment({"MALLOC_MMAP_THRESHOLD_": "65536", "A": "b"}) == {
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "A": "b",
    }


async def test_a_killed_worker_is_restarted_and_counted(tmp_path: Path, supervisors: list[WorkerSupervisor]) -> None:
    metrics = SelfMetrics()
    supervisor = WorkerSupervisor(["w0", "w1"], stand_in_worker(tmp_path), self_metrics=metrics, backoff=FAST_BACKOFF)
    supervisors.append(supervisor)
    await supervisor.start()
    before = supervisor.pids()
    await eventually(lambda: recorded_pids(tmp_path, "w0") == [before["w0"]], what="w0 to start")
    os.kill(before["w0"], signal.SIGKILL)

    await eventually(lambda: len(recorded_pids(tmp_path, "w0")) == 2, what="w0 to be restarted")
    after = supervisor.pids()
    assert after["w0"] != before["w0"]
    assert recorded_pids(tmp_path, "w0") == [before["w0"], after["w0"]]
    assert after["w1"] == before["w1"]
    assert supervisor.restarts == 1
    assert metrics.registry.get_sample_value("kubemetrics_worker_restarts_total") == 1.0


async def test_a_crash_looping_worker_backs_off(tmp_path: Path, supervisors: list[WorkerSupervisor]) -> None:
    starts = tmp_path / "starts"
    script = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    backoff = RestartBackoff(initial_seconds=0.1, max_seconds=0.4, reset_after_seconds=60.0)
    supervisor = WorkerSupervisor(["w0"], lambda _: [sys.executable, "-c", script], backoff=backoff)
    supervisors.append(supervisor)
    await supervisor.start()
    await asyncio.sleep(1.6)
    # Delays 0.1, 0.2, 0.4, 0.4, … plus an interpreter start each time: 3 to 5 restarts in 1.6 s, where
    # restarting without backoff would have made dozens.
    restarts = supervisor.restarts
    assert 2 <= restarts <= 6, f"{restarts} restarts in 1.6 s"
    # Every start ran the command (the latest one may not have written yet).
    assert len(starts.read_text()) in (restarts, restarts + 1)


def test_backoff_doubles_to_its_cap_and_resets_after_a_long_run() -> None:
    backoff = RestartBackoff()
    delays: list[float] = []
    delay: float | None = None
    for _ in range(9):
        delay = backoff.next_delay(delay, uptime_seconds=1.0)
        delays.append(delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.next_delay(30.0, uptime_seconds=60.0) == 0.5


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


async def test_shutdown_terminates_every_worker_and_leaves_no_children(tmp_path: Path) -> None:
    supervisor = WorkerSupervisor(["w0", "w1"], stand_in_worker(tmp_path), backoff=FAST_BACKOFF)
    await supervisor.start()
    pids = set(supervisor.pids().values())
    started = time.monotonic()
    await supervisor.shutdown()
    assert time.monotonic() - started < 2.0, "SIGTERM alone should have stopped the stand-ins"
    assert not any(running(pid) for pid in pids)
    assert not (pids & own_children())
    assert supervisor.pids() == {}
    assert supervisor.restarts == 0


async def test_workers_deaf_to_sigterm_are_killed_after_the_stop_timeout(tmp_path: Path) -> None:
    supervisor = WorkerSupervisor(
        ["w0"], stand_in_worker(tmp_path, ignore_sigterm=True), backoff=FAST_BACKOFF, stop_timeout_seconds=0.5
    )
    await supervisor.start()
    pid = supervisor.pids()["w0"]
    await eventually(lambda: recorded_pids(tmp_path, "w0") == [pid], what="the SIGTERM-deaf stand-in to start")
    started = time.monotonic()
    await supervisor.shutdown()
    assert 0.5 <= time.monotonic() - started < 3.0
    assert not running(pid)


def test_workers_die_with_a_front_that_is_killed_outright(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: SIGKILL the supervising process; its worker must not be left behind."""
    program = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(REPO_PYTHON)!r})
        from kubemetrics.supervisor import WorkerSupervisor

        async def main():
            command = lambda _: [sys.executable, "-c", "import time; time.sleep(600)"]
            supervisor = WorkerSupervisor(["w0"], command)
            await supervisor.start()
            print(supervisor.pids()["w0"], flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    front = subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    worker_pid = 0
    try:
        assert front.stdout is not None
        worker_pid = int(front.stdout.readline())
        assert running(worker_pid)
        front.kill()
        front.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(worker_pid), "the worker outlived its killed front"
    finally:
        if front.poll() is None:
            front.kill()
            front.wait(timeout=10)
        if front.stdout is not None:
            front.stdout.close()
        if worker_pid and running(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


def test_real_worker_command_carries_the_front_address_and_kubelet_flags() -> None:
    options = ServeOptions(
        metric_resolution_seconds=15.0,
        kubelet=KubeletOptions(port=4443, insecure_tls=True, preferred_address_types=("InternalIP",)),
        verbosity=2,
    )
    argv = worker_command(options, "unix:///run/km/ingest.sock")("w3")
    assert argv == [
        sys.executable,
        "-m",
        "kubemetrics",
        "worker",
        "--front-address=unix:///run/km/ingest.sock",
        "--worker-id=w3",
        "--metric-resolution=15.0s",
        "--kubelet-port=4443",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-request-timeout=10.0s",
        f"--kubelet-max-body-bytes={64 * 1024 * 1024}",
        "--kubelet-endpoint=auto",
        "--kubelet-insecure-tls",
        "--v=2",
    ]
    # `kubemetrics worker` accepts exactly what the supervisor passes.
    parser = argparse.ArgumentParser()
    add_worker_flags(parser)
    worker = worker_options_from(parser.parse_args(argv[4:]))
    assert worker == WorkerOptions(
        front_address="unix:///run/km/ingest.sock",
        worker_id="w3",
        metric_resolution_seconds=15.0,
        kubelet=options.kubelet,
        verbosity=2,
    )


@pytest.mark.integration
def test_serve_starts_its_workers_and_on_sigterm_stops_them_and_exits_zero(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        '{"nodes": [{"name": "n1", "addresses": [{"type": "InternalIP", "address": "127.3.0.1"}]},'
        ' {"name": "n2", "addresses": [{"type": "InternalIP", "address": "127.3.0.2"}]}]}'
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "serve.log"
    argv = [
        sys.executable, "-m", "kubemetrics", "serve",
        f"--inventory-file={inventory}", "--workers=2", f"--secure-port={port}", "--bind-address=127.0.0.1",
        f"--cert-dir={tmp_path / 'certs'}", "--metric-resolution=15s", "--kubelet-request-timeout=2s",
        "--kubelet-insecure-tls",
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        front = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            "worker w0" in log_path.read_text() and "worker w1" in log_path.read_text()
        ):
            assert front.poll() is None, log_path.read_text()
            time.sleep(0.1)
        log = log_path.read_text()
        assert (
            f"kubemetrics serving metrics.k8s.io on https://127.0.0.1:{port}: 2 workers, metric resolution 15s" in log
        )
        workers = [pid for pid in children_of(front.pid) if running(pid)]
        assert len(workers) == 2, log

        front.send_signal(signal.SIGTERM)
        assert front.wait(timeout=20) == 0, log_path.read_text()
        assert not any(running(pid) for pid in workers), "a worker outlived the front"
        assert "fork() handlers" not in log_path.read_text()
    finally:
        if front.poll() is None:
            os.killpg(front.pid, signal.SIGKILL)
            front.wait(timeout=10)
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return found
