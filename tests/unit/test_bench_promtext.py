"""The runner's reading of a collector's /metrics: only the families the figures use, summed over nodes."""

from __future__ import annotations

from benchmarks.runner import promtext

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
