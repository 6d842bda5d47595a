"""The API load generator, modelled on the collectors' real consumers (run as its own process, pinned
beside the simulator): `python -m benchmarks.runner.loadgen CONFIG.json` until SIGTERM, then it writes
every request's timings to the config's `output` file.

Request kinds (reference/performance.md §10.3, reference/kubelet-and-clients.md for the headers):

- `hpa-list` — one HorizontalPodAutoscaler per target: a namespaced pod list with a label selector every
  15 s per target, the targets spread evenly over the period, at most 5 at a time (the HPA controller's
  default `--concurrent-horizontal-pod-autoscaler-syncs`), on kept-alive connections, asking for
  `application/vnd.kubernetes.protobuf, */*` as client-go does.
- `pods-all` — `kubectl top pods -A` every 10 s: the full pod list, one at a time, each on a new
  connection (a new kubectl process each time), as JSON (the format target T7 is stated in; kubectl
  itself would ask for protobuf first). Every item's `timestamp` gives the sample freshness.
- `nodes-all` — `kubectl top nodes` every 10 s (protobuf), new connection each time.
- `pod-get` — one pod by name every 5 s (protobuf), cycling over a sample of pods.

Each record: kind, wall time at send, seconds to the response headers (first byte), seconds to the
last body byte, HTTP status, body bytes, items (JSON lists only, else -1).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

PROTOBUF_ACCEPT = "application/vnd.kubernetes.protobuf, */*"
JSON_ACCEPT = "application/json"
API = "/apis/metrics.k8s.io/v1beta1"
HPA_CONCURRENCY = 5
# Freshness is binned to this many seconds (served timestamps are whole seconds anyway).
FRESHNESS_BIN_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class LoadConfig:
    base_url: str
    output: str
    hpa_targets: list[tuple[str, str]]
    pods_for_get: list[tuple[str, str]]
    client_cert: str = ""
    client_key: str = ""
    hpa_period_seconds: float = 15.0
    pods_all_period_seconds: float = 10.0
    nodes_all_period_seconds: float = 10.0
    pod_get_period_seconds: float = 5.0
    request_timeout_seconds: float = 60.0

    def write(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> LoadConfig:
        document = orjson.loads(path.read_bytes())
        document["hpa_targets"] = [tuple(t) for t in document["hpa_targets"]]
        document["pods_for_get"] = [tuple(t) for t in document["pods_for_get"]]
        return cls(**document)


# kind, sent (unix s), first byte (s), total (s), status, bytes, items
Record = tuple[str, float, float, float, int, int, int]


@dataclass
class LoadResults:
    records: list[Record] = field(default_factory=list)
    # Per `pods-all` response: when it was sent, and its items' ages binned (bin index → count).
    freshness: list[tuple[float, dict[int, int]]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "records": self.records,
                "freshness": [[sent, {str(k): v for k, v in bins.items()}] for sent, bins in self.freshness],
                "freshness_bin_seconds": FRESHNESS_BIN_SECONDS,
                "errors": dict(self.errors),
            }
        )


def _ssl_context(config: LoadConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if config.client_cert:
        context.load_cert_chain(config.client_cert, config.client_key)
    return context


_TIMES: dict[str, float] = {}


def _unix(timestamp: str) -> float:
    """RFC 3339 → unix seconds, cached (a list has a handful of distinct whole-second timestamps)."""
    value = _TIMES.get(timestamp)
    if value is None:
        if len(_TIMES) > 10_000:
            _TIMES.clear()
        value = dt.datetime.fromisoformat(timestamp).timestamp()
        _TIMES[timestamp] = value
    return value


_ITEM_TIMESTAMP = re.compile(rb'"timestamp":"([^"]*)"')


def freshness_bins(body: bytes, sent: float) -> tuple[int, dict[int, int]]:
    """Items in a PodMetricsList (JSON) and their ages at send time (`sent` − item timestamp), binned.

    Only the items carry a "timestamp" key (metadata has "creationTimestamp"), and a list of 150k pods
    holds a few dozen distinct ones: a scan of the bytes and one parse per distinct value keep this to
    tens of milliseconds where decoding the whole document took seconds of this process's event loop,
    delaying the requests in flight meanwhile and inflating their measured latency."""
    if not body.lstrip().startswith(b"{") or b'"kind":"PodMetricsList"' not in body[:256]:
        raise ValueError("not a PodMetricsList")
    stamps = Counter(_ITEM_TIMESTAMP.findall(body))
    bins: Counter[int] = Counter()
    for stamp, count in stamps.items():
        bins[int(max(0.0, sent - _unix(stamp.decode())) / FRESHNESS_BIN_SECONDS)] += count
    return sum(stamps.values()), dict(bins)


class LoadGenerator:
    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.results = LoadResults()
        context = _ssl_context(config)
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout_seconds)
        self._kept_alive = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=HPA_CONCURRENCY))
        # A new connection (and TLS handshake) per request, as a new kubectl process makes.
        self._fresh = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, force_close=True))
        self._hpa_slots = asyncio.Semaphore(HPA_CONCURRENCY)

    async def close(self) -> None:
        await self._kept_alive.close()
        await self._fresh.close()

    async def request(
        self, kind: str, session: aiohttp.ClientSession, path: str, accept: str, freshness: bool = False
    ) -> None:
        sent = time.time()
        started = time.perf_counter()
        first_byte = total = -1.0
        status = size = 0
        items = -1
        try:
            async with session.get(
                self.config.base_url + path, headers={"Accept": accept}, timeout=self._timeout
            ) as response:
                first_byte = time.perf_counter() - started
                body = await response.read()
                total = time.perf_counter() - started
                status, size = response.status, len(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self.results.errors[f"{kind}: {type(err).__name__}"] += 1
            total = time.perf_counter() - started
        else:
            if status != 200:
                self.results.errors[f"{kind}: HTTP {status}"] += 1
            elif freshness:
                try:
                    items, bins = freshness_bins(body, sent)
                except (orjson.JSONDecodeError, ValueError, AttributeError):
                    self.results.errors[f"{kind}: undecodable JSON"] += 1
                else:
                    self.results.freshness.append((sent, bins))
        self.results.records.append((kind, sent, first_byte, total, status, size, items))

    async def _hpa(self, namespace: str, selector: str) -> None:
        async with self._hpa_slots:
            path = f"{API}/namespaces/{namespace}/pods?labelSelector={quote(selector, safe='')}"
            await self.request("hpa-list", self._kept_alive, path, PROTOBUF_ACCEPT)

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        loops: list[Awaitable[None]] = [
            self._every(config.pods_all_period_seconds, 0.0, stop, lambda: self._pods_all()),
            self._every(config.nodes_all_period_seconds, 0.5, stop, lambda: self._nodes_all()),
        ]
        targets = config.hpa_targets
        for position, (namespace, selector) in enumerate(targets):
            offset = config.hpa_period_seconds * position / max(1, len(targets))
            loops.append(self._every(config.hpa_period_seconds, offset, stop, self._hpa_call(namespace, selector)))
        if config.pods_for_get:
            loops.append(self._every(config.pod_get_period_seconds, 0.25, stop, self._pod_get_cycle()))
        await asyncio.gather(*loops)

    def _hpa_call(self, namespace: str, selector: str) -> Callable[[], Awaitable[None]]:
        return lambda: self._hpa(namespace, selector)

    def _pod_get_cycle(self) -> Callable[[], Awaitable[None]]:
        position = 0

        async def next_pod() -> None:
            nonlocal position
            namespace, name = self.config.pods_for_get[position % len(self.config.pods_for_get)]
            position += 1
            await self.request(
                "pod-get", self._kept_alive, f"{API}/namespaces/{namespace}/pods/{name}", PROTOBUF_ACCEPT
            )

        return next_pod

    async def _pods_all(self) -> None:
        await self.request("pods-all", self._fresh, f"{API}/pods", JSON_ACCEPT, freshness=True)

    async def _nodes_all(self) -> None:
        await self.request("nodes-all", self._fresh, f"{API}/nodes", PROTOBUF_ACCEPT)

    @staticmethod
    async def _every(period: float, offset: float, stop: asyncio.Event, call: Callable[[], Awaitable[None]]) -> None:
        """Call at offset, offset + period, …; a call still running when the next is due delays it (one at a
        time per loop, as a sequential client)."""
        due = time.monotonic() + offset
        while not stop.is_set():
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except TimeoutError:
                    pass
            await call()
            due = max(due + period, time.monotonic())


async def _main(config_path: Path) -> int:
    config = LoadConfig.read(config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    generator = LoadGenerator(config)
    try:
        runner = asyncio.create_task(generator.run(stop))
        await stop.wait()
        # In-flight requests are abandoned: only completed ones are recorded.
        runner.cancel()
        try:
            await runner
        except asyncio.CancelledError:
            pass
    finally:
        await generator.close()
    await asyncio.to_thread(Path(config.output).write_bytes, generator.results.to_json())
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.runner.loadgen CONFIG.json", file=sys.stderr)
        return 2
    import uvloop

    result: int = uvloop.run(_main(Path(argv[0])))
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
