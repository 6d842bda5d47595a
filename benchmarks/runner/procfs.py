"""CPU seconds and memory of a process tree, from /proc (Linux).

CPU: `utime + stime + cutime + cstime` summed over the tree (the c-fields hold children that exited and
were reaped, so a worker restarted during the window still counts). Memory: RSS from /proc/<pid>/statm
and PSS from /proc/<pid>/smaps_rollup, summed over the tree; PSS divides shared pages among the
processes sharing them, so forked workers are not counted twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3, the state, is index 0)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot); None if it is gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants (by parent PID), root first; empty if root is gone."""
    parents = _parents()
    if root not in parents:
        return []
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    tree = [root]
    for pid in tree:
        tree.extend(children.get(pid, ()))
    return tree


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process, its reaped children included."""
    found: dict[int, float] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime are fields 14-17 of the stat line.
            found[pid] = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return found


def role(pid: int) -> str:
    """A short name for what a process is: its program and, for `python -m kubemetrics X`, X."""
    try:
        argv = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [part.decode(errors="replace") for part in argv if part]
    for position, word in enumerate(words):
        if word == "kubemetrics" and position + 1 < len(words):
            return f"kubemetrics {words[position + 1]}"
    return Path(words[0]).name if words else "?"


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            resident = int((_PROC / str(pid) / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += resident * PAGE_BYTES
    return total


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            text = (_PROC / str(pid) / "smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


@dataclass(frozen=True, slots=True)
class TreeSample:
    """One look at a process tree."""

    wall: float
    processes: int
    cpu_seconds: float
    rss_bytes: int
    pss_bytes: int
    cpu_by_pid: dict[int, float]


def sample_tree(pids: list[int], wall: float, with_pss: bool = True) -> TreeSample:
    per_process = cpu_by_process(pids)
    return TreeSample(
        wall=wall,
        processes=len(pids),
        cpu_seconds=sum(per_process.values()),
        cpu_by_pid=per_process,
        rss_bytes=rss_bytes(pids),
        pss_bytes=pss_bytes(pids) if with_pss else 0,
    )
