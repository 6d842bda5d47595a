"""The front's own Prometheus metrics, under metrics-server's names (pkg/server/metrics.go) so that
existing dashboards and alerts keep working, plus kubemetrics' own.

metrics-server keeps two families per node: `metrics_server_kubelet_request_duration_seconds{node}` (a
histogram: 11 buckets, +Inf, _sum and _count, so 14 series a node) and
`metrics_server_kubelet_last_request_time_seconds{node}`: 15 series a node, about a million at 65,000
nodes, more than a Prometheus scrape of /metrics should carry. So they are kept exactly as metrics-server
has them while the cluster has at most `per_node_series_max_nodes` nodes (--self-metrics-max-nodes), and
not at all above that: existing ones are dropped, new ones not created. The node-independent
`kubemetrics_kubelet_request_duration_seconds` histogram and `kubemetrics_kubelet_last_request_time_seconds`
gauge record every request at any cluster size, so a dashboard summing the per-node series over nodes reads
the same totals there.

The per-node families are held as plain numbers and written straight into the exposition
(`PerNodeKubeletSeries`): through prometheus_client, the 75,000 samples of 5,000 nodes took about 1 s to
render, on the event loop that also answers the HPA; written directly they take about 60 ms. Rendering
now runs off the loop too: `snapshot()` copies what changes (on the loop, a few milliseconds at 5,000 nodes)
and `SelfMetricsSnapshot.render()` writes the text in a thread (api/server.py).

`metrics_server_manager_tick_duration_seconds`: metrics-server has one tick per resolution that scrapes
every node at once, then stores the batch, and the histogram times that. kubemetrics has no such tick: each
node is scraped at its own slot within the resolution and stored as soon as its worker pushes it. The
equivalent kept here is the scrape cycle: for each resolution-long window of slots, the longest time from a
node's slot to its sample (or failure) being stored at the front (ingest.ScrapeCycles). In metrics-server
every node's slot is the tick's start, so the two measure the same thing; at or above the resolution,
collection is not keeping up. `kubemetrics_scrape_cycle_seconds` holds the last completed cycle's value.

`metrics_server_api_metric_freshness_seconds` is counted by the store as it renders API responses
(`MetricsStore.freshness_histogram()`) and read at each scrape of /metrics.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from kubemetrics.options import DEFAULT_SELF_METRICS_MAX_NODES

if TYPE_CHECKING:
    from kubemetrics._native import StoreStats

log = logging.getLogger(__name__)

_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)

# Go client_golang's DefBuckets, what metrics-server's kubelet request histogram uses.
_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def buckets_for_scrape_duration(resolution_seconds: float) -> tuple[float, ...]:
    """metrics-server's tick histogram buckets (utils.BucketsForScrapeDuration): DefBuckets, and for a
    resolution above the largest (10 s) four more around it: halfway there, the resolution, 1.5x and 2x."""
    largest = _DEFAULT_BUCKETS[-1]
    if resolution_seconds <= largest:
        return _DEFAULT_BUCKETS
    halfway = largest + (resolution_seconds - largest) / 2
    return (*_DEFAULT_BUCKETS, halfway, resolution_seconds, resolution_seconds * 1.5, resolution_seconds * 2)


def _go_float(value: float) -> str:
    """A sample value as prometheus_client writes it (and Go's strconv 'g' format): 1.7e+09, 0.02."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _go_bound(value: float) -> str:
    """A bucket bound as the Go client writes `le` (expfmt writeFloat): 1, 10, 1.364, not 1.0."""
    text = _go_float(value)
    return text[:-2] if text.endswith(".0") else text


_BUCKET_BOUNDS = (*(_go_float(bound) for bound in _DEFAULT_BUCKETS), "+Inf")

REQUEST_DURATION = "metrics_server_kubelet_request_duration_seconds"
REQUEST_DURATION_HELP = "[ALPHA] Duration of requests to Kubelet API in seconds"
LAST_REQUEST_TIME = "metrics_server_kubelet_last_request_time_seconds"
LAST_REQUEST_TIME_HELP = "[ALPHA] Time of last request performed to Kubelet API since unix epoch in seconds"
FRESHNESS = "metrics_server_api_metric_freshness_seconds"
FRESHNESS_HELP = "[ALPHA] Freshness of metrics exported"
TICK_DURATION = "metrics_server_manager_tick_duration_seconds"
TICK_DURATION_HELP = (
    "[ALPHA] The total time spent collecting and storing metrics in seconds. kubemetrics has no global tick: "
    "one observation per resolution, the longest time from a node's scrape slot in that resolution to its "
    "sample or failure being stored; at or above the resolution, collection is not keeping up."
)


class FreshnessSource(Protocol):
    """What the store offers for the freshness histogram (kubemetrics._native.MetricsStore)."""

    def freshness_histogram(self) -> tuple[list[int], float]:
        """Per-bucket (not cumulative) item counts for each bound, then above the last; the sum of ages."""
        ...


# A node's series copied for rendering: label, bucket counts, duration sum, count, last request time. A plain
# tuple because the copy is made on the event loop: 5,000 of them take about 3 ms, dataclasses ten times more.
_NodeRequestsCopy = tuple[str, tuple[int, ...], float, int, float]


@dataclass(slots=True)
class _NodeRequests:
    label: str  # `node="…"`, escaped once
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(_DEFAULT_BUCKETS) + 1))
    duration_sum: float = 0.0
    count: int = 0
    last_request_unix: float = 0.0


class PerNodeKubeletSeries:
    """metrics-server's per-node kubelet request histogram and last-request gauge. A prometheus_client
    collector, so registry reads (`get_sample_value`) see them, and `exposition()` writes them directly."""

    def __init__(self) -> None:
        self._nodes: dict[str, _NodeRequests] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def observe(self, node: str, duration_seconds: float, request_time_unix: float) -> None:
        requests = self._nodes.get(node)
        if requests is None:
            escaped = node.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
            requests = self._nodes[node] = _NodeRequests(label=f'node="{escaped}"')
        # Prometheus buckets are upper bounds, inclusive: 0.005 s falls in le="0.005".
        requests.bucket_counts[bisect.bisect_left(_DEFAULT_BUCKETS, duration_seconds)] += 1
        requests.duration_sum += duration_seconds
        requests.count += 1
        requests.last_request_unix = request_time_unix

    def remove(self, node: str) -> None:
        self._nodes.pop(node, None)

    def clear(self) -> None:
        self._nodes.clear()

    def collect(self) -> Iterator[Metric]:
        histogram = HistogramMetricFamily(REQUEST_DURATION, REQUEST_DURATION_HELP, labels=["node"])
        gauge = GaugeMetricFamily(LAST_REQUEST_TIME, LAST_REQUEST_TIME_HELP, labels=["node"])
        for node, requests in self._nodes.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip(_BUCKET_BOUNDS, requests.bucket_counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            histogram.add_metric([node], buckets, requests.duration_sum)
            gauge.add_metric([node], requests.last_request_unix)
        yield histogram
        yield gauge

    def copy(self) -> list[_NodeRequestsCopy]:
        """The series as they are now, to be written while the originals keep changing."""
        return [
            (r.label, tuple(r.bucket_counts), r.duration_sum, r.count, r.last_request_unix)
            for r in self._nodes.values()
        ]

    def exposition(self) -> bytes:
        return per_node_exposition(self.copy())


def per_node_exposition(nodes: Sequence[_NodeRequestsCopy]) -> bytes:
    """Both per-node families in the Prometheus text format, as generate_latest would write them (counts as
    integers, as metrics-server's Go client writes them)."""
    lines = [f"# HELP {REQUEST_DURATION} {REQUEST_DURATION_HELP}\n# TYPE {REQUEST_DURATION} histogram\n"]
    add = lines.append
    for label, bucket_counts, duration_sum, count, _ in nodes:
        cumulative = 0
        for bound, in_bucket in zip(_BUCKET_BOUNDS, bucket_counts, strict=True):
            cumulative += in_bucket
            add(f'{REQUEST_DURATION}_bucket{{{label},le="{bound}"}} {cumulative}\n')
        add(f"{REQUEST_DURATION}_count{{{label}}} {count}\n")
        add(f"{REQUEST_DURATION}_sum{{{label}}} {_go_float(duration_sum)}\n")
    add(f"# HELP {LAST_REQUEST_TIME} {LAST_REQUEST_TIME_HELP}\n# TYPE {LAST_REQUEST_TIME} gauge\n")
    for label, _, _, _, last_request_unix in nodes:
        add(f"{LAST_REQUEST_TIME}{{{label}}} {_go_float(last_request_unix)}\n")
    return "".join(lines).encode()


def freshness_exposition(bounds: Sequence[float], counts: Sequence[int], seconds_sum: float) -> bytes:
    """metrics_server_api_metric_freshness_seconds from the store's per-bucket counts (one per bound, then
    one above the last), cumulative and with `le` as metrics-server writes them."""
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"freshness histogram: {len(counts)} bucket counts for {len(bounds)} bounds (want bounds+1)")
    lines = [f"# HELP {FRESHNESS} {FRESHNESS_HELP}\n# TYPE {FRESHNESS} histogram\n"]
    cumulative = 0
    for bound, count in zip((*(_go_bound(b) for b in bounds), "+Inf"), counts, strict=True):
        cumulative += count
        lines.append(f'{FRESHNESS}_bucket{{le="{bound}"}} {cumulative}\n')
    lines.append(f"{FRESHNESS}_count {cumulative}\n{FRESHNESS}_sum {_go_float(seconds_sum)}\n")
    return "".join(lines).encode()


@dataclass(frozen=True, slots=True)
class SelfMetricsSnapshot:
    """Everything /metrics writes, as of one moment; `render` may run in any thread. prometheus_client
    families are read under their own locks, so the registry is rendered from the live objects."""

    registry: CollectorRegistry
    per_node: list[_NodeRequestsCopy]
    freshness: bytes

    def render(self) -> bytes:
        return generate_latest(self.registry) + per_node_exposition(self.per_node) + self.freshness


class SelfMetrics:
    def __init__(
        self, per_node_series_max_nodes: int = DEFAULT_SELF_METRICS_MAX_NODES, metric_resolution_seconds: float = 60.0
    ) -> None:
        # metrics-server (Go client) exports no `*_created` series. The switch is process-wide in
        # prometheus_client.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        # `registry` holds every family (reads, tests); `_registry_rendered` all but the per-node ones,
        # which `render` writes itself.
        self.registry = CollectorRegistry(auto_describe=True)
        self._registry_rendered = CollectorRegistry(auto_describe=True)
        self.per_node_series_max_nodes = per_node_series_max_nodes
        self.per_node = PerNodeKubeletSeries()
        self._per_node_kept = per_node_series_max_nodes > 0
        self._latest_request_unix = 0.0
        self.kubelet_request_total = self._add(
            Counter(
                "metrics_server_kubelet_request",
                "[ALPHA] Number of requests sent to Kubelet API",
                ["success"],
                registry=None,
            )
        )
        self.kubelet_request_duration_all_nodes = self._add(
            Histogram(
                "kubemetrics_kubelet_request_duration_seconds",
                "Duration of requests to kubelets in seconds, all nodes together: the sum over nodes of "
                "metrics_server_kubelet_request_duration_seconds, kept at any cluster size.",
                buckets=_DEFAULT_BUCKETS,
                registry=None,
            )
        )
        self.kubelet_last_request_time_all_nodes = self._add(
            Gauge(
                "kubemetrics_kubelet_last_request_time_seconds",
                "Time of the latest request to any kubelet since unix epoch in seconds: the max over nodes of "
                "metrics_server_kubelet_last_request_time_seconds.",
                registry=None,
            )
        )
        self.per_node_series_enabled = self._add(
            Gauge(
                "kubemetrics_self_metrics_per_node_series_enabled",
                "1 while the per-node metrics_server_kubelet_* series are kept, 0 while the cluster has more "
                "nodes than --self-metrics-max-nodes.",
                registry=None,
            )
        )
        self.per_node_series_enabled.set(1 if self._per_node_kept else 0)
        self.storage_points = self._add(
            Gauge("metrics_server_storage_points", "[ALPHA] Number of metrics points stored.", ["type"], registry=None)
        )
        self.scrape_errors = self._add(
            Counter(
                "kubemetrics_scrape_errors",
                "Failed kubelet scrapes by cause (timeout, connect, tls, http_status, decode, oversized, other).",
                ["kind"],
                registry=None,
            )
        )
        self.ingested_batches = self._add(
            Counter("kubemetrics_ingest_batches", "Sample batches received from workers.", ["worker"], registry=None)
        )
        self.ingested_samples = self._add(
            Counter("kubemetrics_ingest_node_samples", "Node samples received from workers.", ["worker"], registry=None)
        )
        self.worker_restarts = self._add(
            Counter("kubemetrics_worker_restarts", "Worker processes restarted after they exited.", registry=None)
        )
        self.scrape_cycle_duration = self._add(
            Histogram(
                TICK_DURATION,
                TICK_DURATION_HELP,
                buckets=buckets_for_scrape_duration(metric_resolution_seconds),
                registry=None,
            )
        )
        self.last_scrape_cycle = self._add(
            Gauge(
                "kubemetrics_scrape_cycle_seconds",
                "The last completed scrape cycle: the longest time from a node's scrape slot in one resolution "
                "to its sample or failure being stored (the latest metrics_server_manager_tick_duration_seconds "
                "observation).",
                registry=None,
            )
        )
        self.registry.register(self.per_node)
        self._freshness_source: FreshnessSource | None = None
        self._freshness_bounds: tuple[float, ...] = ()

    def attach_freshness(self, source: FreshnessSource, bounds: Sequence[float]) -> None:
        """Expose metrics_server_api_metric_freshness_seconds from `source`, counted against `bounds`."""
        self._freshness_source = source
        self._freshness_bounds = tuple(bounds)

    def observe_scrape_cycle(self, seconds: float) -> None:
        self.scrape_cycle_duration.observe(seconds)
        self.last_scrape_cycle.set(seconds)

    def _add(self, metric: _Metric) -> _Metric:
        self.registry.register(metric)
        self._registry_rendered.register(metric)
        return metric

    @property
    def per_node_series_kept(self) -> bool:
        return self._per_node_kept

    def set_node_count(self, nodes: int) -> None:
        """The cluster has `nodes` nodes: per-node series are kept while that is at most the cap."""
        self._keep_per_node(nodes <= self.per_node_series_max_nodes, nodes)

    def record_scrape(
        self, node: str, success: bool, duration_seconds: float, request_time_unix: float, per_node: bool = True
    ) -> None:
        """`per_node=False` counts the request without per-node series: the node is not (or no longer) in
        the inventory, and a series created for it now would never be removed."""
        self.kubelet_request_total.labels(success="true" if success else "false").inc()
        self.kubelet_request_duration_all_nodes.observe(duration_seconds)
        if request_time_unix > self._latest_request_unix:
            self._latest_request_unix = request_time_unix
            self.kubelet_last_request_time_all_nodes.set(request_time_unix)
        if not (per_node and self._per_node_kept):
            return
        if node not in self.per_node and len(self.per_node) >= self.per_node_series_max_nodes:
            # More nodes scraped than the cap before the inventory said how many there are.
            self._keep_per_node(False, len(self.per_node) + 1)
            return
        self.per_node.observe(node, duration_seconds, request_time_unix)

    def forget_node(self, node: str) -> None:
        """Drop a departed node's series so cardinality follows the cluster (metrics-server #1876)."""
        self.per_node.remove(node)

    def update_store(self, stats: StoreStats) -> None:
        self.storage_points.labels(type="node").set(stats.node_points)
        self.storage_points.labels(type="container").set(stats.container_points)

    def snapshot(self) -> SelfMetricsSnapshot:
        """Call on the thread that records (the event loop); render the result anywhere."""
        freshness = b""
        if self._freshness_source is not None:
            counts, seconds_sum = self._freshness_source.freshness_histogram()
            freshness = freshness_exposition(self._freshness_bounds, counts, seconds_sum)
        return SelfMetricsSnapshot(self._registry_rendered, self.per_node.copy(), freshness)

    def render(self) -> bytes:
        return self.snapshot().render()

    def _keep_per_node(self, kept: bool, nodes: int) -> None:
        kept = kept and self.per_node_series_max_nodes > 0
        if kept == self._per_node_kept:
            return
        self._per_node_kept = kept
        self.per_node_series_enabled.set(1 if kept else 0)
        if not kept:
            self.per_node.clear()
        log.info(
            "%d nodes, %s --self-metrics-max-nodes=%d: per-node metrics_server_kubelet_* series %s",
            nodes,
            "at most" if kept else "more than",
            self.per_node_series_max_nodes,
            "are kept again" if kept else "are no longer kept (kubemetrics_kubelet_* keep the totals)",
        )
