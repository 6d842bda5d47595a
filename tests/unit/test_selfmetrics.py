"""Self-metrics: metrics-server's per-node kubelet series exactly as it exposes them while the cluster is
at most --self-metrics-max-nodes nodes, none above it, and node-independent totals at any size."""

from __future__ import annotations

import pytest
from kubemetrics._native import FRESHNESS_BUCKETS, MetricsStore
from kubemetrics.selfmetrics import SelfMetrics, buckets_for_scrape_duration
from kubemetrics.v1 import sample_pb2
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

T0 = 1_700_000_000.0
PER_NODE_FAMILIES = (
    "metrics_server_kubelet_request_duration_seconds",
    "metrics_server_kubelet_last_request_time_seconds",
)


def samples(metrics: SelfMetrics) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(metrics.render().decode()) for sample in family.samples]


def per_node_lines(metrics: SelfMetrics) -> list[str]:
    return [line for line in metrics.render().decode().splitlines() if line.startswith(PER_NODE_FAMILIES)]


def value(metrics: SelfMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_below_the_cap_each_node_has_metrics_servers_series() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=3)
    metrics.set_node_count(2)
    metrics.record_scrape("node-a", True, 0.25, T0)
    metrics.record_scrape("node-a", False, 0.5, T0 + 15)
    metrics.record_scrape("node-b", True, 12.0, T0 + 16)

    # DefBuckets, `le` after `node` as the Go client writes it; a duration equal to a bound is in that bucket.
    counts_a = ["0", "0", "0", "0", "0", "1", "2", "2", "2", "2", "2", "2"]
    counts_b = ["0"] * 11 + ["1"]
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"]
    name = "metrics_server_kubelet_request_duration_seconds"
    assert per_node_lines(metrics) == [
        *(f'{name}_bucket{{node="node-a",le="{le}"}} {count}' for le, count in zip(bounds, counts_a, strict=True)),
        f'{name}_count{{node="node-a"}} 2',
        f'{name}_sum{{node="node-a"}} 0.75',
        *(f'{name}_bucket{{node="node-b",le="{le}"}} {count}' for le, count in zip(bounds, counts_b, strict=True)),
        f'{name}_count{{node="node-b"}} 1',
        f'{name}_sum{{node="node-b"}} 12.0',
        'metrics_server_kubelet_last_request_time_seconds{node="node-a"} 1.700000015e+09',
        'metrics_server_kubelet_last_request_time_seconds{node="node-b"} 1.700000016e+09',
    ]
    text = metrics.render().decode()
    assert f"# HELP {name} [ALPHA] Duration of requests to Kubelet API in seconds\n# TYPE {name} histogram\n" in text
    assert (
        "# HELP metrics_server_kubelet_last_request_time_seconds [ALPHA] Time of last request performed to Kubelet "
        "API since unix epoch in seconds\n# TYPE metrics_server_kubelet_last_request_time_seconds gauge\n"
    ) in text
    # Registry reads see them too.
    assert value(metrics, f"{name}_bucket", node="node-a", le="0.25") == 1.0
    assert value(metrics, "metrics_server_kubelet_last_request_time_seconds", node="node-b") == T0 + 16


def test_the_node_independent_series_hold_the_totals_of_the_per_node_ones() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=3)
    metrics.set_node_count(2)
    metrics.record_scrape("node-a", True, 0.25, T0)
    metrics.record_scrape("node-a", False, 0.5, T0 + 15)
    metrics.record_scrape("node-b", True, 12.0, T0 + 16)

    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_count") == 3.0
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_sum") == 12.75
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_bucket", le="0.5") == 2.0
    assert value(metrics, "kubemetrics_kubelet_last_request_time_seconds") == T0 + 16
    assert value(metrics, "metrics_server_kubelet_request_total", success="true") == 2.0
    assert value(metrics, "metrics_server_kubelet_request_total", success="false") == 1.0


def test_65000_nodes_expose_a_bounded_number_of_samples() -> None:
    metrics = SelfMetrics()  # the default cap, 5,000 nodes
    metrics.set_node_count(65_000)
    for index in range(65_000):
        metrics.record_scrape(f"node-{index:05d}", True, 0.05, T0 + index)

    exposed = samples(metrics)
    # metrics_server_kubelet_request_total{success="true"}, the 14 series of the all-nodes histogram, its
    # last-request gauge, the per-node switch, kubemetrics_worker_restarts_total, the 18 series of the tick
    # histogram (resolution 60 s: 15 bounds) and the last cycle gauge: 37, where metrics-server would expose
    # 65,000 × 15 + 19.
    assert len(exposed) == 37
    assert [sample for sample in exposed if sample.name.startswith(PER_NODE_FAMILIES)] == []
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_count") == 65_000.0
    assert value(metrics, "kubemetrics_kubelet_last_request_time_seconds") == T0 + 64_999
    assert value(metrics, "kubemetrics_self_metrics_per_node_series_enabled") == 0.0
    assert metrics.per_node_series_kept is False


def test_without_an_inventory_count_the_cap_still_bounds_the_series() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=5_000)
    for index in range(65_000):
        metrics.record_scrape(f"node-{index:05d}", True, 0.05, T0 + index)

    assert len(samples(metrics)) == 37
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_count") == 65_000.0


def test_at_the_cap_every_node_keeps_its_series() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=5_000)
    metrics.set_node_count(5_000)
    for index in range(5_000):
        metrics.record_scrape(f"node-{index:05d}", True, 0.05, T0 + index)

    # 37 node-independent samples plus 15 per node.
    assert len(samples(metrics)) == 37 + 5_000 * 15
    assert metrics.per_node_series_kept is True


def test_crossing_the_cap_drops_the_per_node_series_and_coming_back_keeps_them_again() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=2)
    metrics.set_node_count(2)
    metrics.record_scrape("node-a", True, 0.05, T0)
    metrics.record_scrape("node-b", True, 0.05, T0)
    assert len(per_node_lines(metrics)) == 2 * 15

    metrics.set_node_count(3)
    metrics.record_scrape("node-c", True, 0.05, T0 + 1)
    assert per_node_lines(metrics) == []
    assert value(metrics, "kubemetrics_self_metrics_per_node_series_enabled") == 0.0

    metrics.set_node_count(2)
    metrics.record_scrape("node-a", True, 0.05, T0 + 15)
    # Started afresh: node-a's earlier request was dropped with the rest.
    assert value(metrics, "metrics_server_kubelet_request_duration_seconds_count", node="node-a") == 1.0
    assert len(per_node_lines(metrics)) == 15
    assert value(metrics, "kubemetrics_self_metrics_per_node_series_enabled") == 1.0


def test_a_cap_of_zero_keeps_no_per_node_series() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=0)
    metrics.set_node_count(1)
    metrics.record_scrape("node-a", True, 0.05, T0)
    assert per_node_lines(metrics) == []
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_count") == 1.0


def test_a_departed_nodes_series_are_removed() -> None:
    metrics = SelfMetrics()
    metrics.set_node_count(2)
    metrics.record_scrape("node-a", True, 0.05, T0)
    metrics.record_scrape("node-b", True, 0.05, T0)
    metrics.forget_node("node-a")
    metrics.forget_node("never-seen")
    assert [line.split("{")[1].split("}")[0].split(",")[0] for line in per_node_lines(metrics)] == [
        'node="node-b"'
    ] * 15


def test_a_node_not_in_the_inventory_is_counted_without_series() -> None:
    metrics = SelfMetrics()
    metrics.record_scrape("gone", False, 0.05, T0, per_node=False)
    assert per_node_lines(metrics) == []
    assert value(metrics, "metrics_server_kubelet_request_total", success="false") == 1.0
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_count") == 1.0


# --- metrics_server_manager_tick_duration_seconds ----------------------------------------------

DEF_BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]


def family_lines(metrics: SelfMetrics, name: str) -> list[str]:
    return [line for line in metrics.render().decode().splitlines() if line.startswith(name)]


def test_tick_buckets_extend_the_default_ones_around_a_resolution_above_10s() -> None:
    defaults = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    assert buckets_for_scrape_duration(15.0) == (*defaults, 12.5, 15.0, 22.5, 30.0)
    assert buckets_for_scrape_duration(60.0) == (*defaults, 35.0, 60.0, 90.0, 120.0)
    assert buckets_for_scrape_duration(10.0) == defaults
    assert buckets_for_scrape_duration(5.0) == defaults


def test_each_scrape_cycle_is_one_tick_observation_and_the_last_one_is_a_gauge() -> None:
    metrics = SelfMetrics(metric_resolution_seconds=15.0)
    metrics.observe_scrape_cycle(0.3)
    metrics.observe_scrape_cycle(14.0)
    metrics.observe_scrape_cycle(16.0)

    name = "metrics_server_manager_tick_duration_seconds"
    counts = ["0"] * 6 + ["1"] * 5 + ["1", "2", "3", "3", "3"]
    bounds = [*DEF_BOUNDS, "12.5", "15.0", "22.5", "30.0", "+Inf"]
    assert family_lines(metrics, name) == [
        *(f'{name}_bucket{{le="{le}"}} {count}.0' for le, count in zip(bounds, counts, strict=True)),
        f"{name}_count 3.0",
        f"{name}_sum 30.3",
    ]
    assert family_lines(metrics, "kubemetrics_scrape_cycle_seconds") == ["kubemetrics_scrape_cycle_seconds 16.0"]
    text = metrics.render().decode()
    assert f"# HELP {name} [ALPHA] The total time spent collecting and storing metrics in seconds." in text
    assert f"# TYPE {name} histogram\n" in text


# --- metrics_server_api_metric_freshness_seconds -----------------------------------------------

# Go's ExponentialBuckets(1, 1.364, 20): each bound the previous one times 1.364 in float64.
FRESHNESS_BOUNDS = [
    1.0,
    1.364,
    1.8604960000000004,
    2.5377165440000007,
    3.4614453660160014,
    4.721411479245826,
    6.440005257691307,
    8.784167171490942,
    11.981604021913647,
    16.342907885890217,
    22.291726356354257,
    30.405914750067208,
    41.47366771909167,
    56.57008276884105,
    77.16159289669919,
    105.2484127110977,
    143.55883493793726,
    195.81425085534644,
    267.09063816669254,
    364.31163045936864,
]


class FakeFreshness:
    """The store's freshness_histogram() with fixed numbers."""

    def __init__(self, counts: list[int], seconds_sum: float) -> None:
        self.counts = counts
        self.seconds_sum = seconds_sum

    def freshness_histogram(self) -> tuple[list[int], float]:
        return list(self.counts), self.seconds_sum


def test_freshness_is_written_as_metrics_server_writes_it() -> None:
    metrics = SelfMetrics()
    # Two items 10 s old (10 < 11.98…), one 400 s old (above the last bound).
    metrics.attach_freshness(FakeFreshness([0] * 8 + [2] + [0] * 11 + [1], 420.0), FRESHNESS_BOUNDS)

    name = "metrics_server_api_metric_freshness_seconds"
    text = metrics.render().decode()
    assert (
        f"# HELP {name} [ALPHA] Freshness of metrics exported\n# TYPE {name} histogram\n"
        f'{name}_bucket{{le="1"}} 0\n'
        f'{name}_bucket{{le="1.364"}} 0\n'
        f'{name}_bucket{{le="1.8604960000000004"}} 0\n'
        f'{name}_bucket{{le="2.5377165440000007"}} 0\n'
        f'{name}_bucket{{le="3.4614453660160014"}} 0\n'
        f'{name}_bucket{{le="4.721411479245826"}} 0\n'
        f'{name}_bucket{{le="6.440005257691307"}} 0\n'
        f'{name}_bucket{{le="8.784167171490942"}} 0\n'
        f'{name}_bucket{{le="11.981604021913647"}} 2\n'
        f'{name}_bucket{{le="16.342907885890217"}} 2\n'
        f'{name}_bucket{{le="22.291726356354257"}} 2\n'
        f'{name}_bucket{{le="30.405914750067208"}} 2\n'
        f'{name}_bucket{{le="41.47366771909167"}} 2\n'
        f'{name}_bucket{{le="56.57008276884105"}} 2\n'
        f'{name}_bucket{{le="77.16159289669919"}} 2\n'
        f'{name}_bucket{{le="105.2484127110977"}} 2\n'
        f'{name}_bucket{{le="143.55883493793726"}} 2\n'
        f'{name}_bucket{{le="195.81425085534644"}} 2\n'
        f'{name}_bucket{{le="267.09063816669254"}} 2\n'
        f'{name}_bucket{{le="364.31163045936864"}} 2\n'
        f'{name}_bucket{{le="+Inf"}} 3\n'
        f"{name}_count 3\n"
        f"{name}_sum 420.0\n"
    ) in text


def test_freshness_is_read_from_the_store_at_every_scrape() -> None:
    metrics = SelfMetrics()
    source = FakeFreshness([0] * 21, 0.0)
    metrics.attach_freshness(source, FRESHNESS_BOUNDS)
    name = "metrics_server_api_metric_freshness_seconds"
    assert f"{name}_count 0" in family_lines(metrics, name)

    source.counts = [1] + [0] * 20
    source.seconds_sum = 0.5
    assert family_lines(metrics, name)[-3:] == [f'{name}_bucket{{le="+Inf"}} 1', f"{name}_count 1", f"{name}_sum 0.5"]


def test_a_freshness_histogram_of_the_wrong_shape_is_refused() -> None:
    metrics = SelfMetrics()
    metrics.attach_freshness(FakeFreshness([0] * 20, 0.0), FRESHNESS_BOUNDS)
    with pytest.raises(ValueError, match="20 bucket counts for 20 bounds"):
        metrics.render()


# --- the exposed set and rendering off the loop --------------------------------------------------


def exposed_families(text: str) -> set[tuple[str, str, tuple[str, ...]]]:
    """(name, type, label names) of every family, as a Prometheus scrape reads the text: names from the
    TYPE lines, label names from the samples (`le` belongs to the histogram type)."""
    types = dict(line.split(" ")[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    labels: dict[str, set[str]] = {name: set() for name in types}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            owner = next(
                name for name in types if sample.name in (name, *(name + s for s in ("_bucket", "_sum", "_count")))
            )
            labels[owner].update(label for label in sample.labels if label != "le")
    return {(name, kind, tuple(sorted(labels[name]))) for name, kind in types.items()}


def test_the_metrics_server_families_are_exactly_metrics_servers() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=3, metric_resolution_seconds=15.0)
    metrics.attach_freshness(FakeFreshness([1] * 21, 30.0), FRESHNESS_BOUNDS)
    metrics.set_node_count(1)
    metrics.record_scrape("node-a", True, 0.25, T0)
    metrics.record_scrape("node-a", False, 0.25, T0 + 15)
    metrics.update_store(MetricsStore(15.0).stats())
    metrics.observe_scrape_cycle(0.4)

    families = exposed_families(metrics.render().decode())
    # reference/metrics-server.md §2.8, the set metrics-server's e2e test asserts.
    assert {family for family in families if family[0].startswith("metrics_server_")} == {
        ("metrics_server_api_metric_freshness_seconds", "histogram", ()),
        ("metrics_server_kubelet_last_request_time_seconds", "gauge", ("node",)),
        ("metrics_server_kubelet_request_duration_seconds", "histogram", ("node",)),
        ("metrics_server_kubelet_request_total", "counter", ("success",)),
        ("metrics_server_manager_tick_duration_seconds", "histogram", ()),
        ("metrics_server_storage_points", "gauge", ("type",)),
    }


def test_a_snapshot_renders_what_was_recorded_when_it_was_taken() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=3)
    metrics.set_node_count(2)
    metrics.record_scrape("node-a", True, 0.25, T0)
    before = metrics.render()
    snapshot = metrics.snapshot()

    metrics.record_scrape("node-a", True, 0.5, T0 + 15)
    metrics.record_scrape("node-b", True, 0.5, T0 + 15)

    lines = snapshot.render().decode().splitlines()
    assert [line for line in lines if line.startswith(PER_NODE_FAMILIES)] == [
        line for line in before.decode().splitlines() if line.startswith(PER_NODE_FAMILIES)
    ]
    assert 'metrics_server_kubelet_request_duration_seconds_count{node="node-a"} 1' in lines
    assert 'metrics_server_kubelet_request_duration_seconds_count{node="node-a"} 2' in per_node_lines(metrics)


def node_sample(node: str, at_unix: float) -> bytes:
    at = int(at_unix * 1e9)
    point = sample_pb2.ResourcePoint(
        timestamp_unix_nanos=at, cumulative_cpu_nanos=at // 100, memory_working_set_bytes=1 << 30
    )
    container = sample_pb2.ContainerSample(
        name="app",
        point=sample_pb2.ResourcePoint(
            timestamp_unix_nanos=at,
            cumulative_cpu_nanos=at // 200,
            memory_working_set_bytes=1 << 28,
            start_time_unix_nanos=int((T0 - 3600) * 1e9),
        ),
    )
    pod = sample_pb2.PodSample(namespace="default", name="web-0", containers=[container])
    return sample_pb2.NodeSample(node=node, scrape_time_unix_nanos=at, node_point=point, pods=[pod]).SerializeToString()


def test_freshness_counts_the_items_a_real_store_returned() -> None:
    store = MetricsStore(15.0)
    store.set_node_metadata("node-a", {})
    store.ingest([node_sample("node-a", T0 - 15.0), node_sample("node-a", T0)])
    metrics = SelfMetrics()
    metrics.attach_freshness(store, FRESHNESS_BUCKETS)
    assert list(FRESHNESS_BUCKETS) == FRESHNESS_BOUNDS

    # One node and one pod, each 10 s old when listed.
    assert b'"name":"node-a"' in store.render_node_list(T0 + 10.0)
    assert b'"name":"web-0"' in store.render_pod_list(T0 + 10.0)

    assert store.freshness_histogram() == ([0] * 8 + [2] + [0] * 12, 20.0)
    name = "metrics_server_api_metric_freshness_seconds"
    assert family_lines(metrics, name)[7:10] == [
        f'{name}_bucket{{le="8.784167171490942"}} 0',
        f'{name}_bucket{{le="11.981604021913647"}} 2',
        f'{name}_bucket{{le="16.342907885890217"}} 2',
    ]
    assert family_lines(metrics, name)[-3:] == [f'{name}_bucket{{le="+Inf"}} 2', f"{name}_count 2", f"{name}_sum 20.0"]
