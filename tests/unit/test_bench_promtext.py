"""The runner's reading of a collector's /metrics: only the families the figures use, summed over nodes."""

from __future__ import annotations

from benchmarks.runner import analysis, promtext

TEXT = """\
# TYPE metrics_server_kubelet_request_duration_seconds histogram
metrics_server_kubelet_request_duration_seconds_bucket{node="a",le="0.1"} 3
metrics_server_kubelet_request_duration_seconds_bucket{node="a",le="+Inf"} 4
metrics_server_kubelet_request_duration_seconds_sum{node="a"} 0.9
metrics_server_kubelet_request_duration_seconds_count{node="a"} 4
metrics_server_kubelet_request_duration_seconds_bucket{node="b",le="0.1"} 1
metrics_server_kubelet_request_duration_seconds_bucket{node="b",le="+Inf"} 2
metrics_server_kubelet_request_duration_seconds_sum{node="b"} 0.3
metrics_server_kubelet_request_duration_seconds_count{node="b"} 2
metrics_server_kubelet_request_total{node="a",success="true"} 7
metrics_server_kubelet_request_total{node="b",success="true"} 5
metrics_server_kubelet_request_total{node="b",success="false"} 1
go_goroutines 42
"""


def test_summing_over_nodes_keeps_every_figure_and_one_sample_per_remaining_label_set() -> None:
    per_node = promtext.parse(TEXT)
    summed = promtext.parse(TEXT, summed_over=("node",))

    assert len(per_node) == 11
    assert len(summed) == 6
    assert all("node" not in sample.labels for sample in summed)
    for samples in (per_node, summed):
        assert promtext.total(samples, promtext.REQUEST_TOTAL, success="true") == 12
        assert promtext.total(samples, promtext.REQUEST_TOTAL, success="false") == 1
        durations = promtext.histogram(samples, promtext.REQUEST_DURATION)
        assert durations.buckets == {0.1: 4, float("inf"): 6}
        assert (round(durations.sum, 6), durations.count) == (1.2, 6)


def _kubemetrics_page(count: int, seconds: float) -> str:
    """kubemetrics' /metrics above its per-node series limit: only the histogram summed over nodes."""
    name = promtext.REQUEST_DURATION_ALL_NODES
    return (
        f'{name}_bucket{{le="0.1"}} {count}\n{name}_bucket{{le="+Inf"}} {count}\n'
        f"{name}_sum {seconds}\n{name}_count {count}\n"
    )


def test_request_durations_fall_back_to_the_sum_over_nodes_when_per_node_series_are_absent() -> None:
    first = promtext.parse(_kubemetrics_page(10, 0.5), summed_over=("node",))
    last = promtext.parse(_kubemetrics_page(30, 1.5), summed_over=("node",))

    durations, source = analysis._request_durations(first, last)

    assert source == promtext.REQUEST_DURATION_ALL_NODES
    assert (durations.count, round(durations.sum, 6)) == (20, 1.0)


def test_request_durations_prefer_metrics_servers_per_node_histogram() -> None:
    first = promtext.parse(_kubemetrics_page(10, 0.5), summed_over=("node",))
    last = promtext.parse(TEXT + _kubemetrics_page(30, 1.5), summed_over=("node",))

    durations, source = analysis._request_durations(first, last)

    assert source == promtext.REQUEST_DURATION
    assert durations.count == 6
