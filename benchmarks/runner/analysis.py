"""From observations to figures: per collector, the ratios kubemetrics / metrics-server, and the
issue's targets as met, missed or not measured."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from benchmarks.runner import procfs, promtext
from benchmarks.runner.collectors import KUBEMETRICS, METRICS_SERVER
from benchmarks.runner.measure import Observations
from benchmarks.runner.scenarios import Scenario

MIB = 1024 * 1024
RESOURCE_PATH = "/metrics/resource"
KINDS = ("hpa-list", "pods-all", "nodes-all", "pod-get")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (q in [0, 1])."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
    }


def _binned_quantiles(bins: Counter[int], bin_seconds: float) -> dict[str, float | None]:
    total = sum(bins.values())
    result: dict[str, float | None] = {"p50": None, "p90": None, "p99": None, "max": None}
    if total == 0:
        return result
    ordered = sorted(bins.items())
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        rank = q * total
        seen = 0
        for index, count in ordered:
            seen += count
            if seen >= rank:
                result[name] = (index + 0.5) * bin_seconds
                break
    result["max"] = (ordered[-1][0] + 1) * bin_seconds
    return result


def _cpu_by_role(observations: Observations) -> dict[str, float]:
    """CPU seconds in the window per kind of process (front, workers), for processes alive at both ends."""
    first, last = observations.collector_samples[0], observations.collector_samples[-1]
    by_role: dict[str, float] = {}
    for pid, seconds in last.cpu_by_pid.items():
        if pid in first.cpu_by_pid:
            name = observations.roles.get(pid, "?")
            by_role[name] = by_role.get(name, 0.0) + seconds - first.cpu_by_pid[pid]
    return by_role


def _delta(samples: Sequence[procfs.TreeSample]) -> float:
    return samples[-1].cpu_seconds - samples[0].cpu_seconds if len(samples) >= 2 else 0.0


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def _kubelet_figures(observations: Observations, nodes: int, resolutions: float) -> dict[str, Any]:
    per_node: dict[str, int] = {}
    paths: Counter[str] = Counter()
    for node, counts in observations.requests_end.items():
        before = observations.requests_start.get(node, {})
        for path, value in counts.items():
            delta = value - before.get(path, 0)
            if delta:
                per_node[node] = per_node.get(node, 0) + delta
                paths[path] += delta
    counts_by_node = [per_node.get(name, 0) for name in _node_names(observations, nodes)]
    requests = sum(paths.values())
    traffic = observations.traffic
    per_resolution = [count / resolutions for count in counts_by_node] if resolutions > 0 else []
    expected = round(resolutions)
    return {
        "requests": requests,
        "requests_by_path": dict(paths),
        "nodes_scraped": sum(1 for count in counts_by_node if count > 0),
        "requests_per_node_per_resolution": {
            "mean": requests / nodes / resolutions if nodes and resolutions else None,
            "min": min(per_resolution) if per_resolution else None,
            "max": max(per_resolution) if per_resolution else None,
        },
        "nodes_off_by_more_than_one": sum(1 for count in counts_by_node if abs(count - expected) > 1),
        "bytes_sent": traffic.bytes_sent if traffic else None,
        "bytes_per_node_per_resolution": traffic.bytes_sent / nodes / resolutions
        if traffic and nodes and resolutions
        else None,
        "connections_opened_in_window": traffic.sockets_opened if traffic else None,
        "connections_at_end": traffic.sockets_at_end if traffic else None,
    }


def _node_names(observations: Observations, nodes: int) -> list[str]:
    known = sorted(set(observations.requests_end) | set(observations.requests_start))
    prefix = "sim-node-"
    generated = [f"{prefix}{i}" for i in range(nodes)]
    return generated if all(name.startswith(prefix) for name in known) else known


def _request_durations(first: list[promtext.Sample], last: list[promtext.Sample]) -> tuple[promtext.Histogram, str]:
    """The window's kubelet request durations: metrics-server's per-node histogram where the collector
    exports it, else kubemetrics' sum over nodes (its per-node series stop above --self-metrics-max-nodes)."""
    for name in (promtext.REQUEST_DURATION, promtext.REQUEST_DURATION_ALL_NODES):
        durations = promtext.histogram(last, name).minus(promtext.histogram(first, name))
        if durations.count > 0:
            return durations, name
    return durations, promtext.REQUEST_DURATION


def _self_metric_figures(observations: Observations) -> dict[str, Any]:
    snapshots = [samples for _, samples in observations.self_metrics if samples]
    if len(snapshots) < 2:
        return {"source": "collector /metrics (not readable)"}
    first, last = snapshots[0], snapshots[-1]
    success = promtext.total(last, promtext.REQUEST_TOTAL, success="true") - promtext.total(
        first, promtext.REQUEST_TOTAL, success="true"
    )
    failed = promtext.total(last, promtext.REQUEST_TOTAL, success="false") - promtext.total(
        first, promtext.REQUEST_TOTAL, success="false"
    )
    durations, duration_source = _request_durations(first, last)
    ticks: list[float] = []
    tick_count = 0.0
    for earlier, later in itertools.pairwise(snapshots):
        step = promtext.histogram(later, promtext.TICK_DURATION).minus(
            promtext.histogram(earlier, promtext.TICK_DURATION)
        )
        if step.count > 0:
            tick_count += step.count
            # Exact when one tick fell between two reads (reads are one resolution apart), else their mean.
            ticks.extend([step.sum / step.count] * int(step.count))
    figures: dict[str, Any] = {
        "source": "collector /metrics",
        "kubelet_requests_succeeded": success,
        "kubelet_requests_failed": failed,
        "kubelet_request_seconds": {
            "mean": durations.mean,
            "p99_from_buckets": durations.quantile(0.99),
            "source": duration_source,
        },
    }
    if ticks:
        figures["cycle_seconds"] = {
            "mean": _mean(ticks),
            "max": max(ticks),
            "cycles": tick_count,
            "source": promtext.TICK_DURATION,
        }
    return figures


def _api_figures(observations: Observations) -> dict[str, Any]:
    records = observations.load.get("records") or []
    start, end = observations.window_start, observations.window_end
    by_kind: dict[str, list[list[Any]]] = {}
    for record in records:
        if start <= record[1] <= end:
            by_kind.setdefault(record[0], []).append(record)
    result: dict[str, Any] = {}
    for kind in KINDS:
        rows = by_kind.get(kind, [])
        ok = [row for row in rows if row[4] == 200]
        items = [row[6] for row in ok if row[6] >= 0]
        result[kind] = {
            "requests": len(rows),
            "errors": len(rows) - len(ok),
            "latency_seconds": _spread([row[3] for row in ok]),
            "first_byte_seconds": _spread([row[2] for row in ok]),
            "bytes_mean": _mean(row[5] for row in ok),
            "items_mean": _mean(items),
        }
    return result


def _window_errors(observations: Observations) -> dict[str, int]:
    """Failed requests inside the window, by kind and status (0: no HTTP answer)."""
    errors: Counter[str] = Counter()
    for record in observations.load.get("records") or []:
        if observations.window_start <= record[1] <= observations.window_end and record[4] != 200:
            errors[f"{record[0]}: {'HTTP ' + str(record[4]) if record[4] else 'no answer'}"] += 1
    return dict(errors)


def _freshness(observations: Observations) -> dict[str, Any]:
    bin_seconds = float(observations.load.get("freshness_bin_seconds") or 0.5)
    bins: Counter[int] = Counter()
    responses = 0
    for sent, entry in observations.load.get("freshness") or []:
        if observations.window_start <= sent <= observations.window_end:
            responses += 1
            for key, count in entry.items():
                bins[int(key)] += count
    return {
        **_binned_quantiles(bins, bin_seconds),
        "items": sum(bins.values()),
        "responses": responses,
        "source": "pods-all responses: send time − item timestamp",
    }


def _served(observations: Observations) -> dict[str, Any]:
    records = [r for r in observations.load.get("records") or [] if r[0] == "pods-all" and r[4] == 200 and r[6] >= 0]
    in_window = [r for r in records if observations.window_start <= r[1] <= observations.window_end]
    last = (in_window or records or [None])[-1]
    return {
        "pods_in_last_full_list": last[6] if last else None,
        "nodes_before_window": observations.nodes_served_before_window,
    }


def collector_figures(observations: Observations, scenario: Scenario, resolution_seconds: float) -> dict[str, Any]:
    spec = observations.spec
    result: dict[str, Any] = {
        "status": "failed" if observations.failure else "ok",
        "failure": observations.failure or None,
        "version": spec.version,
        "mode": spec.mode,
        "argv": spec.argv,
        "log": observations.log_path,
        "startup": {
            "seconds_to_listen": observations.seconds_to_listen,
            "seconds_to_all_nodes_served": observations.seconds_to_all_nodes,
        },
    }
    samples = observations.collector_samples
    if len(samples) < 2 or observations.window_seconds <= 0:
        return result
    window = observations.window_seconds
    resolutions = window / resolution_seconds
    cpu = _delta(samples)
    kubelet = _kubelet_figures(
        observations, scenario.nodes, (observations.requests_interval_seconds or window) / resolution_seconds
    )
    requests = kubelet["requests"]
    pss = [s.pss_bytes for s in samples]
    rss = [s.rss_bytes for s in samples]
    pss_mean = _mean(pss) or 0.0
    result.update(
        {
            "window": {"seconds": window, "resolutions": resolutions, "start": observations.window_start},
            "cpu": {
                "seconds": cpu,
                "cores": cpu / window,
                "ms_per_node_scrape": cpu * 1000 / requests if requests else None,
                "processes": max(s.processes for s in samples),
                "seconds_by_process_kind": _cpu_by_role(observations),
            },
            "memory": {
                "rss_bytes_max": max(rss),
                "rss_bytes_mean": _mean(rss),
                "pss_bytes_max": max(pss),
                "pss_bytes_mean": pss_mean,
                "pss_bytes_per_pod": pss_mean / scenario.pods if scenario.pods else None,
                "rss_bytes_per_pod": (_mean(rss) or 0.0) / scenario.pods if scenario.pods else None,
            },
            "kubelet": kubelet,
            "self_metrics": _self_metric_figures(observations),
            "freshness_seconds": _freshness(observations),
            "api": _api_figures(observations),
            "served": _served(observations),
            "load_errors": _window_errors(observations),
            "timeline": [
                [
                    round(s.wall - observations.window_start, 2),
                    round(s.cpu_seconds - samples[0].cpu_seconds, 3),
                    s.rss_bytes,
                    s.pss_bytes,
                ]
                for s in samples
            ],
        }
    )
    return result


def harness_figures(observations: Observations) -> dict[str, Any]:
    window = observations.window_seconds
    if window <= 0:
        return {}
    requests = sum(
        value - observations.requests_start.get(node, {}).get(path, 0)
        for node, counts in observations.requests_end.items()
        for path, value in counts.items()
    )
    result: dict[str, Any] = {}
    for name, samples in observations.harness_samples.items():
        cpu = _delta(samples)
        entry: dict[str, Any] = {"cpu_seconds": cpu, "core_share": cpu / window}
        if name == "simulator":
            entry["cpu_ms_per_kubelet_request"] = cpu * 1000 / requests if requests else None
            # Above ~80% of its core the simulator answers late and paces the collector.
            entry["saturated"] = cpu / window > 0.8
        result[name] = entry
    return result


# (label, path into a collector's figures, format) of the side-by-side table; ratios are kubemetrics /
# metrics-server, so below 1 means kubemetrics needs less.
TABLE_ROWS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("CPU, cores used (all processes)", ("cpu", "cores"), "{:.3f}"),
    ("CPU-ms per node-scrape (incl. API serving)", ("cpu", "ms_per_node_scrape"), "{:.3f}"),
    ("PSS, mean (MiB)", ("memory", "pss_bytes_mean"), "mib"),
    ("RSS, max (MiB)", ("memory", "rss_bytes_max"), "mib"),
    ("PSS bytes per pod", ("memory", "pss_bytes_per_pod"), "{:.0f}"),
    ("kubelet requests per node per resolution", ("kubelet", "requests_per_node_per_resolution", "mean"), "{:.3f}"),
    ("kubelet bytes per node per resolution", ("kubelet", "bytes_per_node_per_resolution"), "{:.0f}"),
    ("kubelet connections opened in window", ("kubelet", "connections_opened_in_window"), "{:.0f}"),
    ("kubelet request seconds, mean", ("self_metrics", "kubelet_request_seconds", "mean"), "ms"),
    ("scrape cycle seconds, mean (tick)", ("self_metrics", "cycle_seconds", "mean"), "ms"),
    ("scrape cycle seconds, max (tick)", ("self_metrics", "cycle_seconds", "max"), "ms"),
    ("freshness p50 (s)", ("freshness_seconds", "p50"), "{:.2f}"),
    ("freshness p99 (s)", ("freshness_seconds", "p99"), "{:.2f}"),
    ("startup: seconds to every node served", ("startup", "seconds_to_all_nodes_served"), "{:.1f}"),
    *(
        row
        for kind in KINDS
        for row in (
            (f"{kind} p50 latency", ("api", kind, "latency_seconds", "p50"), "ms"),
            (f"{kind} p99 latency", ("api", kind, "latency_seconds", "p99"), "ms"),
            (f"{kind} p99 first byte", ("api", kind, "first_byte_seconds", "p99"), "ms"),
        )
    ),
)


def lookup(figures: dict[str, Any], path: Sequence[str]) -> float | None:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def ratios(collectors: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    ours, theirs = collectors.get(KUBEMETRICS), collectors.get(METRICS_SERVER)
    if not ours or not theirs or theirs.get("status") != "ok":
        return {}
    result: dict[str, float | None] = {}
    for _, path, _ in TABLE_ROWS:
        a, b = lookup(ours, path), lookup(theirs, path)
        result[".".join(path)] = a / b if a is not None and b else None
    return result


def _status(value: float | None, limit: float, below: bool = True) -> str:
    if value is None:
        return "not measured"
    return "met" if (value <= limit if below else value >= limit) else "missed"


def targets(scenario: Scenario, collectors: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets that this scenario can speak to (collector CPU only, simulator excluded)."""
    ours = collectors.get(KUBEMETRICS) or {}
    theirs = collectors.get(METRICS_SERVER) or {}
    found: list[dict[str, Any]] = []

    def add(target: str, value: float | None, status: str, unit: str = "") -> None:
        found.append({"target": target, "value": value, "unit": unit, "status": status})

    cpu = lookup(ours, ("cpu", "ms_per_node_scrape"))
    if scenario.pods_per_node >= 100 and scenario.containers_per_pod == 2:
        add("CPU per node-scrape ≤ 0.30 ms at 110 pods × 2 containers", cpu, _status(cpu, 0.30), "ms")
    if scenario.pods_per_node <= 10:
        add("CPU per node-scrape ≤ 0.12 ms at ≤ 10 pods", cpu, _status(cpu, 0.12), "ms")
    their_cpu = lookup(theirs, ("cpu", "ms_per_node_scrape"))
    if theirs:
        factor = their_cpu / cpu if cpu and their_cpu else None
        add("CPU per node-scrape ≥ 3× less than metrics-server", factor, _status(factor, 3.0, below=False), "×")
        ours_pod = lookup(ours, ("memory", "pss_bytes_per_pod"))
        theirs_pod = lookup(theirs, ("memory", "pss_bytes_per_pod"))
        factor = theirs_pod / ours_pod if ours_pod and theirs_pod else None
        add("memory per pod ≥ 10× less than metrics-server", factor, _status(factor, 10.0, below=False), "×")
    if scenario.nodes == 5000 and scenario.pods_per_node == 30:
        pss = lookup(ours, ("memory", "pss_bytes_max"))
        add("whole collector ≤ 256 MiB at 5,000 × 30", pss / MIB if pss else None, _status(pss, 256 * MIB), "MiB")
    if scenario.pods >= 150_000:
        for kind, path, limit, text in (
            ("pods-all", "latency_seconds", 0.100, "full list of 150k pods p99 ≤ 100 ms (JSON)"),
            ("pods-all", "first_byte_seconds", 0.005, "full list first byte p99 ≤ 5 ms"),
            ("hpa-list", "latency_seconds", 0.005, "namespace list p99 ≤ 5 ms"),
            ("pod-get", "latency_seconds", 0.001, "single pod p99 ≤ 1 ms"),
        ):
            value = lookup(ours, ("api", kind, path, "p99"))
            add(text, value, _status(value, limit), "s")
    for nodes, limit in ((5000, 1.0), (15000, 2.5), (65000, 7.5)):
        if scenario.nodes == nodes:
            cycle = lookup(ours, ("self_metrics", "cycle_seconds", "max"))
            add(
                f"scrape cycle wall time ≤ {limit:g} s at {nodes:,} nodes (longest cycle)",
                cycle,
                _status(cycle, limit),
                "s",
            )
    mean = lookup(ours, ("kubelet", "requests_per_node_per_resolution", "mean"))
    off = lookup(ours, ("kubelet", "nodes_off_by_more_than_one"))
    paths = (ours.get("kubelet") or {}).get("requests_by_path") or {}
    # A node whose slot falls at the very edge of the window may show one request more or less.
    resolutions = lookup(ours, ("window", "resolutions")) or 1.0
    slack = max(0.02, 1.0 / max(1.0, scenario.nodes * resolutions))
    exact = mean is not None and abs(mean - 1.0) <= slack and off == 0 and set(paths) <= {RESOURCE_PATH}
    add(
        "exactly one kubelet request (GET /metrics/resource) per node per resolution",
        mean,
        "not measured" if mean is None else "met" if exact else "missed",
        "requests",
    )
    return found
