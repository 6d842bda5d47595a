"""The few self-metrics the runner reads from a collector's /metrics (Prometheus text format).

Both collectors export metrics-server's names, so the same reader serves both:
`metrics_server_kubelet_request_total{success}`, `metrics_server_kubelet_request_duration_seconds{node}`
(kubemetrics above its per-node series limit: `kubemetrics_kubelet_request_duration_seconds`, the same
histogram summed over nodes) and (metrics-server only: kubemetrics has no global tick)
`metrics_server_manager_tick_duration_seconds`.
Only lines of the wanted metrics are parsed: metrics-server's page also carries the Go runtime's and
client-go's series, and at thousands of nodes the per-node histograms run to 100k lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

REQUEST_TOTAL = "metrics_server_kubelet_request_total"
REQUEST_DURATION = "metrics_server_kubelet_request_duration_seconds"
# kubemetrics drops the per-node series above --self-metrics-max-nodes and keeps this sum over nodes.
REQUEST_DURATION_ALL_NODES = "kubemetrics_kubelet_request_duration_seconds"
TICK_DURATION = "metrics_server_manager_tick_duration_seconds"
WANTED = (REQUEST_TOTAL, REQUEST_DURATION, REQUEST_DURATION_ALL_NODES, TICK_DURATION)

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str, wanted: Iterable[str] = WANTED, summed_over: Iterable[str] = ()) -> list[Sample]:
    """The samples of the `wanted` families. Labels in `summed_over` are dropped and the samples that then
    share a name and labels are added up: metrics-server labels its kubelet request series by node, which
    at 65,000 nodes is a million samples per read where the figures need only their sums."""
    prefixes = tuple(wanted)
    dropped = frozenset(summed_over)
    sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line.startswith(prefixes):
            continue
        brace = line.find("{")
        if brace >= 0:
            close = line.rfind("}")
            name = line[:brace]
            pairs = _LABEL.findall(line[brace + 1 : close])
            rest = line[close + 1 :].split()
        else:
            parts = line.split()
            name, pairs, rest = parts[0], [], parts[1:]
        if rest:
            key = (name, tuple(sorted((k, v) for k, v in pairs if k not in dropped)))
            sums[key] = sums.get(key, 0.0) + float(rest[0])
    return [Sample(name, dict(labels), value) for (name, labels), value in sums.items()]


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@dataclass(slots=True)
class Histogram:
    """A histogram summed over its label sets: cumulative bucket counts by upper bound, sum and count."""

    buckets: dict[float, float] = field(default_factory=dict)
    sum: float = 0.0
    count: float = 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(
            {le: value - earlier.buckets.get(le, 0.0) for le, value in self.buckets.items()},
            self.sum - earlier.sum,
            self.count - earlier.count,
        )

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket, as PromQL's histogram_quantile does."""
        if self.count <= 0:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for le in sorted(self.buckets):
            cumulative = self.buckets[le]
            if cumulative >= rank:
                if math.isinf(le):
                    return lower_bound
                share = (rank - lower_count) / (cumulative - lower_count) if cumulative > lower_count else 1.0
                return lower_bound + (le - lower_bound) * share
            lower_bound, lower_count = le, cumulative
        return lower_bound


def histogram(samples: Iterable[Sample], name: str) -> Histogram:
    result = Histogram()
    for sample in samples:
        if sample.name == f"{name}_bucket":
            le = float(sample.labels.get("le", "+Inf"))
            result.buckets[le] = result.buckets.get(le, 0.0) + sample.value
        elif sample.name == f"{name}_sum":
            result.sum += sample.value
        elif sample.name == f"{name}_count":
            result.count += sample.value
    return result


def per_label_histograms(samples: Iterable[Sample], name: str, label: str) -> dict[str, Histogram]:
    """One histogram per value of `label` (e.g. per node)."""
    grouped: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.name.startswith(name) and label in sample.labels:
            grouped.setdefault(sample.labels[label], []).append(sample)
    return {key: histogram(group, name) for key, group in grouped.items()}
