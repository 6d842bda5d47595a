"""The processes a scenario depends on besides the collector: the control plane (etcd, kube-apiserver,
kube-controller-manager) and the simulated kubelets. The runner watches them while it waits on anything
(simulators ready, pods served, set-up, a collector's warm-up and window): when one exits — the kernel's
OOM killer takes the largest process when memory runs out — the scenario fails at once, naming it and how
it ended, instead of every wait running into its timeout."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.runner.children import Child, exit_status, log_tail

POLL_SECONDS = 1.0
T = TypeVar("T")


class HarnessProcessExited(RuntimeError):
    """A control-plane or simulator process exited while the runner depended on it."""


@dataclass(frozen=True, slots=True)
class WatchedProcess:
    name: str
    process: subprocess.Popen[Any]
    log_path: Path

    @classmethod
    def of(cls, child: Child) -> WatchedProcess:
        return cls(child.name, child.process, child.log_path)

    def exited(self) -> bool:
        return self.process.poll() is not None

    def failure(self, while_doing: str) -> str:
        pid = self.process.pid
        status = exit_status(pid, self.process.returncode)
        return (
            f"{self.name} (pid {pid}) {status}, while the runner was {while_doing}; "
            f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )


def check_running(processes: Sequence[WatchedProcess], while_doing: str) -> None:
    """Raise HarnessProcessExited for the first of `processes` that has exited."""
    for process in processes:
        if process.exited():
            raise HarnessProcessExited(process.failure(while_doing))


async def while_running(
    work: Awaitable[T],
    processes: Sequence[WatchedProcess],
    while_doing: str,
    poll_seconds: float = POLL_SECONDS,
) -> T:
    """Await `work`, checking every `poll_seconds` that every one of `processes` still runs. If one exited,
    `work` is cancelled (its cleanup runs) and HarnessProcessExited says which process, and how it ended:
    also when `work` failed first, as it does once a process it talks to is gone."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            await asyncio.wait({task}, timeout=poll_seconds)
            try:
                check_running(processes, while_doing)
            except HarnessProcessExited as exited:
                raise exited from _failure_of(task)
            if task.done():
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
            _failure_of(task)


def _failure_of(task: asyncio.Future[Any]) -> BaseException | None:
    """The exception `task` ended with (marked as seen), if it is done and was not cancelled."""
    if not task.done() or task.cancelled():
        return None
    return task.exception()
