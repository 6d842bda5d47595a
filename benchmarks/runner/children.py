"""Child processes of a run: each in its own session (its process group id is its PID), pinned to a CPU
set with `taskset`, output to a log file, and stopped by process group — then, by PID, whatever it
started in sessions of its own (kubemetrics' workers) — never by name."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchmarks.runner import procfs

STOP_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1
# When memory runs out, the kernel's OOM killer kills the process with the highest badness: its memory plus
# oom_score_adj thousandths of the machine's. The collector under test is to be that process, not the
# control plane, the simulated kubelets or the runner (a lost harness loses the whole run).
COLLECTOR_OOM_SCORE_ADJ = 1000
HARNESS_OOM_SCORE_ADJ = -500

log = logging.getLogger(__name__)


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


def _oom_score_adj_file(pid: int | str) -> Path:
    return Path("/proc") / str(pid) / "oom_score_adj"


def read_oom_score_adj(pid: int) -> int | None:
    try:
        return int(_oom_score_adj_file(pid).read_text())
    except (OSError, ValueError):
        return None


def set_oom_score_adj(pid: int, value: int) -> bool:
    """Write /proc/<pid>/oom_score_adj; if that fails, log why and go on. Lowering it needs CAP_SYS_RESOURCE,
    which a container's root may lack: the collector's 1000 alone still makes it the OOM killer's pick."""
    try:
        _oom_score_adj_file(pid).write_text(f"{value}\n")
    except OSError as err:
        needs = " (lowering it needs CAP_SYS_RESOURCE)" if value < 0 and isinstance(err, PermissionError) else ""
        log.warning("could not set oom_score_adj %d for pid %d: %s%s", value, pid, err, needs)
        return False
    return True


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the runner dies without stopping it (its own session keeps it
    out of reach of a terminal's Ctrl-C)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _before_exec(oom_score_adj: int | None) -> Callable[[], None]:
    """The child's set-up before exec: die with the runner, and take `oom_score_adj`, which every process it
    forks inherits (kubemetrics' workers), however early it forks them."""

    def prepare() -> None:
        _die_with_parent()
        if oom_score_adj is not None:
            with contextlib.suppress(OSError):
                _oom_score_adj_file("self").write_text(str(oom_score_adj))

    return prepare


def _kernel_oom_kill(pid: int) -> str | None:
    """The kernel's "Killed process <pid> (...)" line, if `dmesg` can be read and has one."""
    try:
        kernel_log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    killed = re.compile(rf"Killed process {pid}\b")
    lines = [line for line in kernel_log.splitlines() if killed.search(line)]
    return re.sub(r"^\[[^]]*\]\s*", "", lines[-1]) if lines else None


def exit_status(pid: int, returncode: int) -> str:
    """How a process ended, from its `Popen.returncode` (negative: the signal that killed it). The runner
    sends SIGKILL only to what it is stopping, so a SIGKILL before that is, most likely, the OOM killer."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    if -returncode != signal.SIGKILL:
        return f"killed by {name}"
    oom_kill = _kernel_oom_kill(pid)
    if oom_kill is not None:
        return f"killed by SIGKILL: the kernel's OOM killer killed it, out of memory (dmesg: {oom_kill})"
    return "killed by SIGKILL: likely by the kernel's OOM killer, out of memory (dmesg does not confirm it)"


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


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
        oom_score_adj: int | None = None,
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
                preexec_fn=_before_exec(oom_score_adj),
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )
        except BaseException:
            self._log.close()
            raise
        self.started = time.time()
        self.descendants: dict[int, int] = {}
        if oom_score_adj is not None and read_oom_score_adj(self.pid) != oom_score_adj:
            # The child could not set it itself (or is already gone): try from here, and log if that fails.
            set_oom_score_adj(self.pid, oom_score_adj)

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
        return log_tail(self.log_path, lines)

    def failure(self, what: str) -> str:
        state = "running" if self.alive() else exit_status(self.pid, self.process.returncode)
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
