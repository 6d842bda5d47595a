"""The comparison the differential tests rely on: it must notice every kind of difference it claims to.
These run everywhere (no processes)."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import pytest
from conformance_compare import (
    Scrape,
    compare_lists,
    family_names,
    go_duration,
    health_checks,
    nanocores,
    quantity,
    read_item,
    read_list,
    series_label_names,
    timing_problems,
)

POD_LIST: dict[str, Any] = {
    "kind": "PodMetricsList",
    "apiVersion": "metrics.k8s.io/v1beta1",
    "metadata": {},
    "items": [
        {
            "metadata": {
                "name": "web-1",
                "namespace": "default",
                "creationTimestamp": "2026-08-04T10:15:31Z",
                "labels": {"app": "web"},
            },
            "timestamp": "2026-08-04T10:15:22Z",
            "window": "10s",
            "containers": [
                {"name": "app", "usage": {"cpu": "272m", "memory": "12240Ki"}},
                {"name": "proxy", "usage": {"cpu": "2931024n", "memory": "12533761"}},
            ],
        }
    ],
}
ASKED = (1785838531.2, 1785838531.4)


def _changed(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(POD_LIST)
    change(document["items"][0])
    return document


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("272m", Fraction(272, 1000)),
        ("286479n", Fraction(286479, 10**9)),
        ("1", Fraction(1)),
        ("12240Ki", Fraction(12533760)),
        ("50Mi", Fraction(52428800)),
        ("1k", Fraction(1000)),
        ("1e3", Fraction(1000)),
        ("1.5", Fraction(3, 2)),
    ],
)
def test_quantities_are_read_exactly(text: str, value: Fraction) -> None:
    assert quantity(text) == value


def test_cpu_must_be_whole_nanocores() -> None:
    assert nanocores("1500m") == 1_500_000_000
    with pytest.raises(ValueError, match="whole number of nanocores"):
        nanocores("0.5n")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", Fraction(10)),
        ("15.004s", Fraction(15004, 1000)),
        ("1m0.5s", Fraction(121, 2)),
        ("1.5µs", Fraction(3, 2 * 10**6)),
        ("0s", Fraction(0)),
    ],
)
def test_go_durations_are_read_exactly(text: str, seconds: Fraction) -> None:
    assert go_duration(text) == seconds


def test_identical_lists_have_no_differences() -> None:
    result = compare_lists(read_list(POD_LIST), read_list(copy.deepcopy(POD_LIST)), asked_between=ASKED)

    assert (result.compared, result.differences) == (1, [])


def test_container_order_does_not_count_but_names_and_values_do() -> None:
    reordered = _changed(lambda item: item["containers"].reverse())

    assert compare_lists(read_list(POD_LIST), read_list(reordered)).differences == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda i: i["containers"][0]["usage"].update(cpu="272000003n"), "container app cpu (nanocores)"),
        (lambda i: i["containers"][0]["usage"].update(memory="12241Ki"), "container app memory (bytes)"),
        (lambda i: i["containers"][0]["usage"].update(memory="12533760"), "container app memory spelling"),
        (lambda i: i["containers"][0]["usage"].update(cpu="272000000n"), "container app cpu spelling"),
        (lambda i: i["containers"].pop(), "containers"),
        (lambda i: i["containers"][1].update(name="sidecar"), "containers"),
        (lambda i: i["metadata"]["labels"].update(app="api"), "labels"),
        (lambda i: i["metadata"].update(uid="x"), "metadata keys"),
        (lambda i: i.update(kind="PodMetrics"), "item keys"),
        (lambda i: i["metadata"].update(creationTimestamp="2026-08-04T10:15:22Z"), "creationTimestamp"),
        (lambda i: i.update(window="10.000s"), "window spelling"),
    ],
)
def test_each_field_difference_is_reported(change: Any, expected: str) -> None:
    result = compare_lists(read_list(POD_LIST), read_list(_changed(change)), asked_between=ASKED)

    assert len(result.differences) == 1, result.differences
    assert expected in result.differences[0]
    assert result.differences[0].startswith("default/web-1: ")


def test_cpu_within_the_rounding_tolerance_is_equal() -> None:
    nudged = _changed(lambda i: i["containers"][0]["usage"].update(cpu="272000002n"))

    assert compare_lists(read_list(POD_LIST), read_list(nudged)).differences == []


def test_presence_and_list_shape_differences_are_reported() -> None:
    empty = copy.deepcopy(POD_LIST)
    empty["items"] = []
    empty["metadata"] = {"resourceVersion": "1"}

    result = compare_lists(read_list(POD_LIST), read_list(empty))

    assert result.only_left == {"default/web-1"}
    assert result.differences == [
        "list metadata: metrics-server {}, kubemetrics {'resourceVersion': '1'}",
        "default/web-1: served by metrics-server only",
    ]


def test_unsorted_items_are_reported() -> None:
    two = copy.deepcopy(POD_LIST)
    second = copy.deepcopy(two["items"][0])
    second["metadata"]["name"] = "a-first"
    two["items"].append(second)

    result = compare_lists(read_list(two), read_list(two))

    assert result.differences == [
        "metrics-server: items are not sorted by (namespace, name)",
        "kubemetrics: items are not sorted by (namespace, name)",
    ]


def _scrape(at: float, sample: int, status: int = 200) -> Scrape:
    return Scrape(at, "/metrics/resource", "kubemetrics/0.1.0", status, sample if status == 200 else None)


def test_a_timestamp_must_be_one_of_the_two_latest_own_scrapes_and_the_window_reach_the_one_before() -> None:
    item = read_item(POD_LIST["items"][0])  # timestamp 10:15:22 = 1785838522, window 10 s
    scrapes = [_scrape(1785838502.3, 1785838502), _scrape(1785838512.3, 1785838512), _scrape(1785838522.3, 1785838522)]

    assert timing_problems(item, "n", scrapes, answered_at=1785838523.0) == []
    assert timing_problems(item, "n", [*scrapes, _scrape(1785838532.1, 1785838532)], 1785838532.5) == []
    late = timing_problems(
        item, "n", [*scrapes, _scrape(1785838532.1, 1785838532), _scrape(1785838542.1, 1785838542)], 1785838543.0
    )
    assert "is not the sample time of one of its collector's two latest scrapes" in late[0]
    gap = timing_problems(item, "n", [scrapes[0], scrapes[2]], 1785838523.0)
    assert "window 10.0s, but the scrape before the one at 1785838522 was at 1785838502 (20s earlier)" in gap[0]


def test_a_failed_scrape_is_no_sample() -> None:
    item = read_item(POD_LIST["items"][0])
    scrapes = [_scrape(1785838512.3, 1785838512, status=500), _scrape(1785838522.3, 1785838522)]

    assert "served after a single scrape" in timing_problems(item, "n", scrapes, 1785838523.0)[0]


def test_health_checks_and_self_metric_series_are_read() -> None:
    body = (
        "[+]ping ok\n[-]metric-storage-ready failed: reason withheld\n[+]shutdown excluded: ok\nreadyz check failed\n"
    )
    exposition = (
        "# HELP metrics_server_kubelet_request_total [ALPHA] Number of requests\n"
        'metrics_server_kubelet_request_total{success="true"} 3\n'
        'metrics_server_manager_tick_duration_seconds_bucket{le="0.005"} 1\n'
        "metrics_server_manager_tick_duration_seconds_sum 0.2\n"
        'rest_client_requests_total{code="200"} 1\n'
    )

    assert health_checks(body) == [("ping", True), ("metric-storage-ready", False), ("shutdown", True)]
    series = series_label_names(exposition)
    assert series == {
        "metrics_server_kubelet_request_total": frozenset({"success"}),
        "metrics_server_manager_tick_duration_seconds_bucket": frozenset({"le"}),
        "metrics_server_manager_tick_duration_seconds_sum": frozenset(),
    }
    assert family_names(series) == {
        "metrics_server_kubelet_request_total",
        "metrics_server_manager_tick_duration_seconds",
    }
