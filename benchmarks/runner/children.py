"""Child processes of a run: each in its own session (its process group id is its PID), pinned to a CPU
set with `taskset`, output to a log file, and stopped by process group — then, by PID, whatever it
started in sessions of its own (kubemetrics' workers) — never by name."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchmarks.runner import procfs

STOP_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which CPUs the collector gets and which the simulator, load generator and control plane share.

    Empty strings mean "not pinned" (a one-CPU machine, or pinning turned off)."""

    collector: str
    harness: str

    @classmethod
    def default(cls) -> CpuPlan:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or shutil.which("taskset") is None:
            return cls("", "")
        rest = ",".join(str(cpu) for cpu in cpus[1:])
        return cls(str(cpus[0]), rest)

    @property
    def everything(self) -> str:
        """Both sets: for set-up work that nothing is measured during."""
        return ",".join(cpus for cpus in (self.collector, self.harness) if cpus)

    def describe(self) -> dict[str, str]:
        return {"collector": self.collector or "unpinned", "harness": self.harness or "unpinned"}


def pinned(argv: Sequence[str], cpus: str) -> list[str]:
    """`taskset -c CPUS argv...` (taskset execs, so the PID is the program's own)."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def pin_running(pid: int, cpus: str) -> None:
    """Move an already running process (every thread) to `cpus`."""
    if cpus:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=False, capture_output=True)


def raise_open_file_limit(needed: int) -> tuple[int, int]:
    """Raise this process's open-file limit (soft, and hard where allowed, e.g. as root) to `needed`, for the
    children to inherit: every simulated kubelet holds a listener and a connection, every collector a
    connection per node. Returns the limits in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, needed))
            hard = needed
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the runner dies without stopping it (its own session keeps it
    out of reach of a terminal's Ctrl-C)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One started program. `descendants` remembers every process seen under it, so that a worker it
    started in its own session is still stopped if the program itself is killed first."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )
        except BaseException:
            self._log.close()
            raise
        self.started = time.time()
        self.descendants: dict[int, int] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tree(self) -> list[int]:
        """The program and every live process under it; remembers them for `stop`."""
        pids = procfs.process_tree(self.pid)
        for pid in pids:
            if pid != self.pid and pid not in self.descendants:
                start = procfs.start_ticks(pid)
                if start is not None:
                    self.descendants[pid] = start
        return pids

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> str:
        state = "running" if self.alive() else f"exited with code {self.process.returncode}"
        return f"{self.name} (pid {self.pid}, {state}) {what}; last lines of {self.log_path}:\n{self.log_tail()}"

    def signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM to the group, wait, SIGKILL what is left of the group and of the remembered descendants."""
        if self.alive():
            self.tree()
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace_seconds)
        self.signal(signal.SIGKILL)
        deadline = time.monotonic() + grace_seconds
        for pid, start in self.descendants.items():
            # Only the process we saw: after a PID is reused, its start time differs.
            while procfs.start_ticks(pid) == start and time.monotonic() < deadline:
                time.sleep(0.05)
            if procfs.start_ticks(pid) == start:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self._log.close()
        return self.process.returncode
