"""Self-metrics: metrics-server's per-node kubelet series exactly as it exposes them while the cluster is
at most --self-metrics-max-nodes nodes, none above it, and node-independent totals at any size."""

from __future__ import annotations

from kubemetrics.selfmetrics import SelfMetrics
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
    # last-request gauge, the per-node switch and kubemetrics_worker_restarts_total: 18, where metrics-server
    # would expose 65,000 × 15 + 1.
    assert len(exposed) == 18
    assert [sample for sample in exposed if sample.name.startswith(PER_NODE_FAMILIES)] == []
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_count") == 65_000.0
    assert value(metrics, "kubemetrics_kubelet_last_request_time_seconds") == T0 + 64_999
    assert value(metrics, "kubemetrics_self_metrics_per_node_series_enabled") == 0.0
    assert metrics.per_node_series_kept is False


def test_without_an_inventory_count_the_cap_still_bounds_the_series() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=5_000)
    for index in range(65_000):
        metrics.record_scrape(f"node-{index:05d}", True, 0.05, T0 + index)

    assert len(samples(metrics)) == 18
    assert value(metrics, "kubemetrics_kubelet_request_duration_seconds_count") == 65_000.0


def test_at_the_cap_every_node_keeps_its_series() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=5_000)
    metrics.set_node_count(5_000)
    for index in range(5_000):
        metrics.record_scrape(f"node-{index:05d}", True, 0.05, T0 + index)

    # 18 node-independent samples plus 15 per node.
    assert len(samples(metrics)) == 18 + 5_000 * 15
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
