"""The simulated kubelets: starting `kubemetrics simulate`, and the kubelet-side view of a collector.

Requests are counted by the simulator itself (its control endpoint's `GET /requests`, per node and
path). Bytes are counted by the kernel: `ss -ti` reports `bytes_sent` for every established socket, so
the kubelet side's sockets give the bytes each node sent on the wire (TLS records and HTTP framing
included, gzip-compressed when the collector asked for it, as both do). A socket that closes inside
the window takes its last bytes with it; the count of sockets opened in the window says whether that
happened (with keep-alive it should stay at zero after warm-up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from kubemetrics.simulator.addresses import node_address

from benchmarks.runner.children import Child, pinned
from benchmarks.runner.scenarios import Scenario
from benchmarks.runner.watch import WatchedProcess

KUBELET_PORT = 10250
DEFAULT_ADDRESS_BASE = "127.64.0.0"
HOLLOW_WORKERS = 48
# Nodes per simulator process: a listener and a connection each (two collectors never run at once), under
# an open-file limit of 20,000 with room to spare.
NODES_PER_SIMULATOR = 8000
# The simulator's default --seed: the runner derives the Nodes it writes into etcd from the same model.
SIMULATOR_SEED = 1


class SimulatorError(RuntimeError):
    """The simulator could not start or answer; the message quotes its log."""


@dataclass(frozen=True, slots=True)
class SimulatorReady:
    """What `kubemetrics simulate` wrote to its `ready` file."""

    out_dir: Path
    pid: int
    nodes: int
    port: int
    control_url: str
    ca_file: Path
    inventory_file: Path
    address_base: ipaddress.IPv4Address
    seed: int
    # Every simulator process's control endpoint (one per --listen-nodes range).
    control_urls: tuple[str, ...] = ()
    inventory_files: tuple[Path, ...] = ()

    def addresses(self) -> set[str]:
        return {str(node_address(self.address_base, index)) for index in range(self.nodes)}


def simulator_argv(
    scenario: Scenario,
    out_dir: Path,
    address_base: str,
    cpus: str,
    *,
    kubeconfig: Path | None = None,
    kubelet_delay_seconds: float = 0.0,
    housekeeping_seconds: int = 10,
    register_nodes: bool = True,
    listen_range: tuple[int, int] | None = None,
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "kubemetrics",
        "simulate",
        f"--nodes={scenario.nodes}",
        f"--out-dir={out_dir}",
        f"--address-base={address_base}",
        f"--port={KUBELET_PORT}",
        f"--housekeeping-interval={housekeeping_seconds}s",
        # A fixed pod set: the collector's inventory and the load's targets stay valid all run long.
        "--churn-interval=0",
    ]
    if listen_range is not None:
        argv.append(f"--listen-nodes={listen_range[0]}-{listen_range[1]}")
    if kubeconfig is None:
        argv.append(f"--pods-per-node={scenario.pods_per_node}")
        if scenario.containers_per_pod is not None:
            argv.append(f"--containers-per-pod={scenario.containers_per_pod}")
    else:
        # Hollow mode: the kubelets run the API's pods (created by cluster.py), and nothing else. The test
        # control plane runs no node-lifecycle controller, so nothing turns a silent Node NotReady: one
        # heartbeat an hour spares the shared core thousands of status writes per minute at 15k+ nodes.
        argv += [f"--kubeconfig={kubeconfig}", "--pods-per-node=0", "--node-heartbeat-interval=3600s"]
        # Status writes in flight while the scenario's pods start: with the default 4 they, not the API
        # server, set the pace of the set-up (about 45 pods a second).
        argv.append(f"--hollow-workers={HOLLOW_WORKERS}")
        if not register_nodes:
            # The runner writes the Nodes itself (etcdload.py).
            argv.append("--no-register-nodes")
    if kubelet_delay_seconds > 0:
        # Every kubelet answers this late: an emulated network round trip per request.
        argv.append(f"--fault-fraction=latency:{kubelet_delay_seconds:g}=1")
    return pinned(argv, cpus)


def listen_ranges(nodes: int, per_process: int = NODES_PER_SIMULATOR) -> list[tuple[int, int]]:
    """Node index ranges of equal size, one per simulator process."""
    processes = max(1, -(-nodes // per_process))
    size = -(-nodes // processes)
    return [(first, min(first + size, nodes) - 1) for first in range(0, nodes, size)]


async def wait_ready(child: Child, out_dir: Path, within_seconds: float) -> SimulatorReady:
    ready_file = out_dir / "ready"
    deadline = time.monotonic() + within_seconds
    while not ready_file.exists():
        if not child.alive():
            raise SimulatorError(child.failure("exited before it was ready"))
        if time.monotonic() > deadline:
            raise SimulatorError(child.failure(f"was not ready within {within_seconds:.0f}s"))
        await asyncio.sleep(0.25)
    document = json.loads(ready_file.read_text())
    return SimulatorReady(
        out_dir=out_dir,
        pid=int(document["pid"]),
        nodes=int(document["nodes"]),
        port=int(document["port"]),
        control_url=str(document["controlUrl"]),
        ca_file=Path(document["caFile"]),
        inventory_file=Path(document["inventoryFile"]),
        address_base=ipaddress.IPv4Address(document["addressBase"]),
        seed=int(document.get("seed", 1)),
        control_urls=(str(document["controlUrl"]),),
    )


class SimulatorProcesses:
    """The simulator processes of one fleet, used as one: started together, stopped together, their CPU
    counted together, their request counts summed. The first one's files (inventory, CA) stand for all:
    every process models the same fleet."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._out_dirs: list[Path] = []

    def add(self, child: Child, out_dir: Path) -> None:
        self.children.append(child)
        self._out_dirs.append(out_dir)

    async def wait_ready(self, within_seconds: float) -> SimulatorReady:
        readies = await asyncio.gather(
            *(
                wait_ready(child, out_dir, within_seconds)
                for child, out_dir in zip(self.children, self._out_dirs, strict=True)
            )
        )
        first = readies[0]
        return dataclasses.replace(
            first,
            control_urls=tuple(r.control_url for r in readies),
            inventory_files=tuple(r.inventory_file for r in readies),
        )

    def tree(self) -> list[int]:
        return [pid for child in self.children for pid in child.tree()]

    def watched(self) -> list[WatchedProcess]:
        return [WatchedProcess.of(child) for child in self.children]

    def stop(self) -> None:
        for child in self.children:
            child.stop()


async def wait_pods_served(
    ready: SimulatorReady, expected: int, within_seconds: float, progress: Callable[[int, int], None]
) -> None:
    """Until the kubelets serve `expected` API pods (hollow mode lists them in its inventory file)."""
    deadline = time.monotonic() + within_seconds
    while True:
        served = pods_served(ready)
        progress(served, expected)
        if served >= expected:
            return
        if time.monotonic() > deadline:
            raise SimulatorError(f"the kubelets serve {served} of {expected} pods after {within_seconds:.0f}s")
        await asyncio.sleep(2.0)


def pods_served(ready: SimulatorReady) -> int:
    """API pods the kubelets serve: each simulator process lists those of its own nodes (--listen-nodes
    ranges are disjoint), so the processes' counts add up."""
    return sum(_inventory_pods(path) for path in ready.inventory_files or (ready.inventory_file,))


def _inventory_pods(path: Path) -> int:
    try:
        return len(orjson.loads(path.read_bytes()).get("pods") or [])
    except (OSError, orjson.JSONDecodeError):
        return 0


async def request_counts(session: aiohttp.ClientSession, ready: SimulatorReady) -> dict[str, dict[str, int]]:
    """Requests served so far, per node and path."""
    counts: dict[str, dict[str, int]] = {}
    for control_url in ready.control_urls or (ready.control_url,):
        async with session.get(f"{control_url}/requests", timeout=aiohttp.ClientTimeout(total=60)) as response:
            response.raise_for_status()
            shard: dict[str, dict[str, int]] = await response.json()
        for node, paths in shard.items():
            merged = counts.setdefault(node, {})
            for path, count in paths.items():
                merged[path] = merged.get(path, 0) + count
    return counts


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def payload_bytes(ready: SimulatorReady, samples: int = 3) -> dict[str, int]:
    """Uncompressed /metrics/resource body size of a few nodes (first, middle, last)."""
    indexes = sorted({0, ready.nodes // 2, ready.nodes - 1})[:samples]
    sizes: dict[str, int] = {}
    connector = aiohttp.TCPConnector(ssl=_insecure_context())
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        for index in indexes:
            address = node_address(ready.address_base, index)
            url = f"https://{address}:{ready.port}/metrics/resource"
            async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
                sizes[str(address)] = len(await response.read())
    return sizes


@dataclass(frozen=True, slots=True)
class SocketBytes:
    """Bytes sent so far by every established kubelet-side socket, keyed by (local, peer)."""

    sent: dict[tuple[str, str], int]


def socket_bytes(addresses: set[str], port: int) -> SocketBytes:
    try:
        output = subprocess.run(
            ["ss", "-tinHO", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return SocketBytes({})
    sent: dict[tuple[str, str], int] = {}
    for line in output.splitlines():
        tokens = line.split()
        if len(tokens) < 4:
            continue
        local, peer = tokens[2], tokens[3]
        if local.rsplit(":", 1)[0] not in addresses:
            continue
        for token in tokens[4:]:
            if token.startswith("bytes_sent:"):
                sent[(local, peer)] = int(token.split(":", 1)[1])
                break
        else:
            sent[(local, peer)] = 0
    return SocketBytes(sent)


@dataclass(frozen=True, slots=True)
class TrafficDelta:
    bytes_sent: int
    sockets_opened: int
    sockets_closed: int
    sockets_at_end: int


def traffic_between(start: SocketBytes, end: SocketBytes) -> TrafficDelta:
    sent = 0
    for key, value in end.sent.items():
        sent += value - start.sent.get(key, 0)
    opened = sum(1 for key in end.sent if key not in start.sent)
    closed = sum(1 for key in start.sent if key not in end.sent)
    return TrafficDelta(sent, opened, closed, len(end.sent))
