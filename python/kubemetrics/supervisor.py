"""Starts the worker processes, restarts the ones that exit, and stops them all on shutdown.

Workers run in their own session (a terminal's Ctrl-C reaches only the front, which then stops them
in order) and, on Linux, with PR_SET_PDEATHSIG=SIGTERM so that they never outlive a front that was
killed outright. A worker that keeps dying is restarted with exponential backoff; the backoff resets
once a worker has stayed up for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kubemetrics.options import ServeOptions, kubelet_flags_argv
from kubemetrics.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

CommandBuilder = Callable[[str], Sequence[str]]
"""worker id -> argv of the process to run for it."""

# Sets PR_SET_PDEATHSIG (1) in a fresh interpreter, then execs the worker: the setting survives execve,
# and doing it here rather than in a preexec_fn keeps the fork in a process full of gRPC threads free
# of Python code between fork and exec. The parent-pid check closes the race where the front died
# before prctl took effect. (The signal follows the death of the spawning *thread*: workers are always
# spawned from the event loop's thread, which lives as long as the front.)
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0) != 0:\n"
    "    sys.exit('prctl(PR_SET_PDEATHSIG) failed: ' + os.strerror(ctypes.get_errno()))\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(0)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


# glibc raises its mmap threshold each time a large block is freed; from then on the event loop's 256 KiB
# TLS read buffer of every kubelet connection comes from the heap, where each page once touched stays
# resident for as long as the connection is kept. A fixed threshold keeps every such buffer in its own
# mapping, resident only where written: a worker with 3,000 kept-alive kubelet connections went from
# 185 to 154 MB. An operator's own setting wins.
WORKER_MALLOC_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def worker_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The environment a worker starts with: the front's, plus the allocator settings above."""
    environment = dict(parent)
    for name, value in WORKER_MALLOC_ENVIRONMENT.items():
        environment.setdefault(name, value)
    return environment


def worker_command(options: ServeOptions, front_address: str) -> CommandBuilder:
    """`python -m kubemetrics worker …` for each worker id, with the front's kubelet flags."""

    def build(worker_id: str) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "kubemetrics",
            "worker",
            f"--front-address={front_address}",
            f"--worker-id={worker_id}",
            f"--metric-resolution={options.metric_resolution_seconds}s",
            *kubelet_flags_argv(options.kubelet),
        ]
        if options.verbosity:
            argv.append(f"--v={options.verbosity}")
        return argv

    return build


def with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """Wrap argv so the process gets SIGTERM when this process dies (Linux); unchanged elsewhere."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-c", _PDEATHSIG_EXEC, str(os.getpid()), *argv]


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    # A worker that ran at least this long before exiting is restarted after `initial_seconds` again.
    reset_after_seconds: float = 60.0

    def next_delay(self, previous: float | None, uptime_seconds: float) -> float:
        if previous is None or uptime_seconds >= self.reset_after_seconds:
            return self.initial_seconds
        return min(previous * 2, self.max_seconds)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class _WorkerSlot:
    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None


class WorkerSupervisor:
    def __init__(
        self,
        worker_ids: Sequence[str],
        command_for: CommandBuilder,
        self_metrics: SelfMetrics | None = None,
        backoff: RestartBackoff | None = None,
        stop_timeout_seconds: float = 5.0,
        parent_death_signal: bool = True,
    ) -> None:
        self._slots = [_WorkerSlot(worker_id) for worker_id in worker_ids]
        self._command_for = command_for
        self._self_metrics = self_metrics
        self._backoff = backoff or RestartBackoff()
        self._stop_timeout_seconds = stop_timeout_seconds
        self._parent_death_signal = parent_death_signal
        self._stopping = asyncio.Event()
        self.restarts = 0

    def pids(self) -> dict[str, int]:
        """Worker id -> pid of its running process (absent while it is down)."""
        return {
            slot.worker_id: slot.process.pid
            for slot in self._slots
            if slot.process is not None and slot.process.returncode is None
        }

    async def start(self) -> None:
        """Start every worker; returns once each has been spawned (not once it attached)."""
        for slot in self._slots:
            slot.process = await self._spawn(slot.worker_id)
            slot.task = asyncio.create_task(self._keep_running(slot), name=f"supervise-{slot.worker_id}")

    async def shutdown(self) -> None:
        """SIGTERM every worker, SIGKILL those still running after the stop timeout; reap them all."""
        self._stopping.set()
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        for slot in self._slots:
            self._signal(slot, signal.SIGTERM)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._stop_timeout_seconds)
        if pending:
            for slot in self._slots:
                if slot.task in pending and self._signal(slot, signal.SIGKILL):
                    log.warning("worker %s did not stop within %gs; killed", slot.worker_id, self._stop_timeout_seconds)
            await asyncio.wait(pending)
        for task in tasks:
            # Surface a supervision bug instead of losing it; the processes are gone either way.
            if not task.cancelled() and task.exception() is not None:
                log.error("supervising a worker failed", exc_info=task.exception())

    async def _keep_running(self, slot: _WorkerSlot) -> None:
        delay: float | None = None
        while True:
            started = time.monotonic()
            process = slot.process
            if process is None:
                returncode = 127
            else:
                if self._stopping.is_set():
                    self._signal(slot, signal.SIGTERM)
                returncode = await process.wait()
            if self._stopping.is_set():
                if process is not None:
                    log.info("worker %s (pid %d) %s", slot.worker_id, process.pid, describe_exit(returncode))
                return
            delay = self._backoff.next_delay(delay, time.monotonic() - started)
            log.error(
                "worker %s (pid %s) %s after %.1fs; restarting in %gs",
                slot.worker_id,
                process.pid if process is not None else "-",
                describe_exit(returncode),
                time.monotonic() - started,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            slot.process = await self._spawn(slot.worker_id)
            self.restarts += 1
            if self._self_metrics is not None:
                self._self_metrics.worker_restarts.inc()

    async def _spawn(self, worker_id: str) -> asyncio.subprocess.Process | None:
        argv = list(self._command_for(worker_id))
        if self._parent_death_signal:
            argv = with_parent_death_signal(argv)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
                env=worker_environment(os.environ),
            )
        except OSError as err:
            log.error("cannot start worker %s (%s): %s", worker_id, argv[0], err)
            return None
        log.debug("worker %s started (pid %d): %s", worker_id, process.pid, " ".join(argv))
        return process

    @staticmethod
    def _signal(slot: _WorkerSlot, sig: signal.Signals) -> bool:
        process = slot.process
        if process is None or process.returncode is not None:
            return False
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            return False
        return True
