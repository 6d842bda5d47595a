"""CPU per kubelet fetch: the worker's HTTP/1.1 client against aiohttp, over TLS to simulated kubelets.

Starts `kubemetrics simulate` (its own process group, stopped by PID when done), then fetches every
node's /metrics/resource once per round, all nodes concurrently as a worker's per-node loops do, with
each client in turn: `KubeletClient` (kubemetrics.worker.kubelet_client) and the aiohttp session the
worker used before it (same TLS context, keep-alive, size cap and deadline). Both ask for gzip, as Go's
transport does, so both get the gzip-compressed body a kubelet sends metrics-server. Only this
process's CPU time (user + system) is counted, never the simulator's; clients alternate over several
trials and the median per request is reported, the machine being shared and noisy.

Run: `taskset -c 0 .venv/bin/python -m benchmarks.kubelet_fetch [--nodes N --pods-per-node P
--rounds R --trials T]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvloop
from kubemetrics.options import KubeletOptions
from kubemetrics.worker.kubelet_client import (
    USER_AGENT,
    KubeletClient,
    ScrapeFailure,
    build_tls_context,
    connection_keepalive_seconds,
    kubelet_url,
)
from yarl import URL

RESOURCE_PATH = "/metrics/resource"
RESOLUTION_SECONDS = 15.0
SIMULATOR_START_SECONDS = 60.0

Fetch = Callable[[URL], Awaitable[bytes]]


@dataclass(frozen=True)
class Simulator:
    process: subprocess.Popen[bytes]
    ca_file: Path
    urls: list[URL]


def start_simulator(out_dir: Path, nodes: int, pods_per_node: int, port: int, address_base: str) -> Simulator:
    argv = [
        sys.executable,
        "-m",
        "kubemetrics",
        "simulate",
        f"--nodes={nodes}",
        f"--pods-per-node={pods_per_node}",
        f"--out-dir={out_dir}",
        f"--port={port}",
        f"--address-base={address_base}",
    ]
    log = (out_dir / "simulator.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ready = out_dir / "ready"
    deadline = time.monotonic() + SIMULATOR_START_SECONDS
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_simulator(process)
            raise SystemExit(f"the simulator did not start; see {out_dir / 'simulator.log'}")
        time.sleep(0.1)
    inventory = json.loads((out_dir / "inventory.json").read_text())
    urls = []
    for node in inventory["nodes"]:
        address = next(a["address"] for a in node["addresses"] if a["type"] == "InternalIP")
        urls.append(URL(kubelet_url(address, node["kubeletPort"], RESOURCE_PATH), encoded=True))
    return Simulator(process, out_dir / "ca.crt", urls)


def stop_simulator(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the simulator's own process group (it leads it), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class AiohttpFetcher:
    """The worker's kubelet GET as it was on aiohttp: one session, the same settings and body cap."""

    def __init__(self, options: KubeletOptions, tls_context: ssl.SSLContext) -> None:
        self._timeout = options.request_timeout_seconds
        self._limit = options.max_body_bytes
        connector = aiohttp.TCPConnector(
            ssl=tls_context,
            limit=0,
            limit_per_host=0,
            keepalive_timeout=connection_keepalive_seconds(RESOLUTION_SECONDS),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def get(self, url: URL) -> bytes:
        async with asyncio.timeout(self._timeout):
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise ScrapeFailure("http_status", f"status {response.status}", status=response.status)
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.content.iter_any():
                    received += len(chunk)
                    if received > self._limit:
                        response.close()
                        raise ScrapeFailure("oversized", "too large", received)
                    chunks.append(chunk)
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def close(self) -> None:
        await self._session.close()


@dataclass(frozen=True)
class Trial:
    cpu_ms_per_request: float
    wall_ms_per_round: float
    body_bytes: float


async def measure(fetch: Fetch, urls: Sequence[URL], rounds: int) -> Trial:
    # One round first so that every connection is open: the steady state is kept-alive connections.
    await asyncio.gather(*(fetch(url) for url in urls))
    received = 0
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        bodies = await asyncio.gather(*(fetch(url) for url in urls))
        received += sum(len(body) for body in bodies)
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
    requests = rounds * len(urls)
    return Trial(cpu / requests * 1e3, wall / rounds * 1e3, received / requests)


async def compare(ca_file: Path, urls: Sequence[URL], rounds: int, trials: int) -> dict[str, list[Trial]]:
    options = KubeletOptions(certificate_authority=str(ca_file))
    tls_context = build_tls_context(options, str(ca_file))
    results: dict[str, list[Trial]] = {"aiohttp": [], "KubeletClient": []}
    for trial in range(trials):
        # Alternate which client goes first, so that drift in the machine's load hits both alike.
        order = ("aiohttp", "KubeletClient") if trial % 2 == 0 else ("KubeletClient", "aiohttp")
        for name in order:
            if name == "aiohttp":
                fetcher = AiohttpFetcher(options, tls_context)
                try:
                    results[name].append(await measure(fetcher.get, urls, rounds))
                finally:
                    await fetcher.close()
            else:
                async with KubeletClient(options, RESOLUTION_SECONDS, tls_context, None) as client:
                    results[name].append(await measure(client.get, urls, rounds))
    return results


async def sample_body(ca_file: Path, url: URL) -> bytes:
    options = KubeletOptions(certificate_authority=str(ca_file))
    async with KubeletClient(options, RESOLUTION_SECONDS, build_tls_context(options, str(ca_file)), None) as client:
        return await client.get(url)


def inflate_ms(body: bytes, repeats: int = 2000) -> float:
    """CPU per gzip inflate of `body` as the simulator compresses it (level 1), the way the client inflates."""
    compressed = gzip.compress(body, compresslevel=1)
    started = time.process_time()
    for _ in range(repeats):
        zlib.decompressobj(31).decompress(compressed, len(body) + 1)
    return (time.process_time() - started) / repeats * 1e3


def report(results: dict[str, list[Trial]], nodes: int, rounds: int, inflate: float) -> None:
    print(f"{nodes} kubelets x {rounds} rounds per trial, {len(results['aiohttp'])} trials; CPU of this process only")
    medians: dict[str, float] = {}
    for name, trials in results.items():
        cpu = [trial.cpu_ms_per_request for trial in trials]
        medians[name] = statistics.median(cpu)
        wall = statistics.median(trial.wall_ms_per_round for trial in trials)
        body = statistics.median(trial.body_bytes for trial in trials)
        print(
            f"  {name:<14} CPU {medians[name]:.3f} ms/request (trials {min(cpu):.3f}..{max(cpu):.3f}), "
            f"{wall:.1f} ms/round wall, {body:.0f} body bytes/request (decoded)"
        )
    print(f"  aiohttp / KubeletClient CPU per request: {medians['aiohttp'] / medians['KubeletClient']:.2f}x")
    print(f"  of which gzip inflate (zlib) alone, both clients: {inflate:.3f} ms/request")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=40, help="fetches of every node per trial")
    parser.add_argument("--trials", type=int, default=6, help="trials per client, alternating")
    parser.add_argument("--port", type=int, default=10250)
    parser.add_argument("--address-base", default="127.3.0.0", help="the simulator's --address-base")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubelet-fetch-") as directory:
        simulator = start_simulator(Path(directory), args.nodes, args.pods_per_node, args.port, args.address_base)
        try:
            results = uvloop.run(compare(simulator.ca_file, simulator.urls, args.rounds, args.trials))
            body = uvloop.run(sample_body(simulator.ca_file, simulator.urls[0]))
        finally:
            stop_simulator(simulator.process)
    report(results, args.nodes, args.rounds, inflate_ms(body))


if __name__ == "__main__":
    main()
