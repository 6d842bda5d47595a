"""Shared test plumbing: where the shared fixtures live, free ports, and child processes that are
always stopped by process group (never by name), whatever the test's outcome."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The project's shared/ directory (fixtures, references): beside the checkout unless overridden."""
    return Path(os.environ.get("KUBEMETRICS_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


def fixture_path(*parts: str) -> Path:
    return shared_dir().joinpath("fixtures", *parts)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_loopback_block(second_octets: tuple[int, int] = (100, 250)) -> tuple[ipaddress.IPv4Address, int]:
    """A random /24 in 127.<second_octets>.x.0 and a port free on its first address; the simulated nodes
    take .1 upwards of it. Suites that run side by side draw from disjoint `second_octets` ranges."""
    for _ in range(50):
        base = ipaddress.IPv4Address(f"127.{random.randint(*second_octets)}.{random.randint(0, 254)}.0")
        port = random.randint(20000, 60000)
        with socket.socket() as sock:
            try:
                sock.bind((str(base + 1), port))
            except OSError:
                continue
        return base, port
    raise RuntimeError("no free loopback address/port found")


class FakeClock:
    """A clock that stands still until the test moves `now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ChildProcess:
    """A `python -m kubemetrics …` (or any) child in its own session, output captured to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=REPO_ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the whole process group, then SIGKILL what is left."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        return self.process.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kubemetrics_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubemetrics", *args]


def children_of(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    if not task_dir.exists():
        return found
    for task in task_dir.iterdir():
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


async def eventually(predicate: Callable[[], object], what: str, within: float = 10.0, interval: float = 0.01) -> None:
    """wait_until for a test's event loop: poll `predicate` without blocking the loop."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within:g}s waiting for {what}")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.25, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
