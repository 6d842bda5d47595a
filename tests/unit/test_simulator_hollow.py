"""Hollow mode without an API server: quantities parse exactly, API pods use what their annotations
ask for with a counter that integrates rate changes, and the nodes count them in their own totals."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from kubemetrics.simulator.apipods import ApiPods, requested_usage
from kubemetrics.simulator.model import Model, SimulationParameters
from kubemetrics.simulator.quantity import QuantityError, cpu_nanocores, memory_bytes, parse_quantity
from kubemetrics.simulator.summary import SummaryRenderer

MI = 1024 * 1024


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("400m", Fraction(2, 5)),
        ("1.5", Fraction(3, 2)),
        ("2", Fraction(2)),
        ("250u", Fraction(1, 4000)),
        ("64Mi", Fraction(64 * MI)),
        ("1e3", Fraction(1000)),
        ("1G", Fraction(10**9)),
        (".5", Fraction(1, 2)),
    ],
)
def test_quantities_parse_exactly(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "m", "4x", "1.2.3", "Mi"])
def test_malformed_quantities_are_refused_naming_the_text(text: str) -> None:
    with pytest.raises(QuantityError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def test_cpu_and_memory_quantities_convert_to_nanocores_and_bytes() -> None:
    assert cpu_nanocores("400m") == 400_000_000
    assert cpu_nanocores("1n") == 1
    assert memory_bytes("32Mi") == 32 * MI


def test_container_specific_annotation_wins_and_a_bad_value_falls_back_to_the_pod_wide_one() -> None:
    annotations = {
        "kubemetrics.io/usage-cpu": "300m",
        "kubemetrics.io/usage-cpu.sidecar": "20m",
        "kubemetrics.io/usage-memory.app": "lots",
        "kubemetrics.io/usage-memory": "100Mi",
    }

    app, app_problems = requested_usage(annotations, "app")
    sidecar, _ = requested_usage(annotations, "sidecar")

    assert (app.nanocores, app.memory_bytes) == (300_000_000, 100 * MI)
    assert app_problems == [
        "annotation kubemetrics.io/usage-memory.app: 'lots' is not a Kubernetes quantity (such as 250m, 1.5, 64Mi)"
    ]
    assert (sidecar.nanocores, sidecar.memory_bytes) == (20_000_000, 100 * MI)
    assert requested_usage({}, "x")[0].nanocores == 10_000_000


def _hollow_model(interval: int = 1) -> tuple[Model, ApiPods]:
    model = Model(SimulationParameters(nodes=2, pods_per_node=0, origin=1_000_000, housekeeping_interval=interval))
    pods = ApiPods(interval)
    model.extra_pods = pods
    return model, pods


def _add(pods: ApiPods, uid: str, cpu: str, start: int, now: float, node: int = 0) -> None:
    pods.add(
        uid=uid,
        namespace="ns",
        name=f"pod-{uid}",
        labels={"app": "web"},
        node_index=node,
        containers=[("app", None)],
        annotations={"kubemetrics.io/usage-cpu": cpu},
        start_time=start,
        now=now,
    )


def test_an_api_pod_appears_the_second_after_it_is_seen_and_counts_from_its_start() -> None:
    model, pods = _hollow_model()
    _add(pods, "a", "400m", start=1_000_100, now=1_000_100.4)

    assert model.truth_for(0, 1_000_100).pods == ()
    pod = model.truth_for(0, 1_000_105).pod("ns", "pod-a")
    assert pod.start_time == 1_000_100
    assert pod.cpu_nanocores == 400_000_000
    assert pod.cpu_cumulative_nanoseconds == 400_000_000 * 5
    assert pod.containers[0].memory.working_set_bytes == 32 * MI
    assert model.truth_for(1, 1_000_105).pods == ()


def test_a_usage_change_applies_from_the_next_second_and_the_counter_integrates_both_rates() -> None:
    model, pods = _hollow_model()
    _add(pods, "a", "400m", start=1_000_100, now=1_000_100.0)

    assert pods.update_usage("a", {"kubemetrics.io/usage-cpu": "100m"}, now=1_000_110.7)

    assert model.truth_for(0, 1_000_111).pod("ns", "pod-a").cpu_cumulative_nanoseconds == 400_000_000 * 11
    later = model.truth_for(0, 1_000_121).pod("ns", "pod-a")
    assert later.cpu_nanocores == 100_000_000
    assert later.cpu_cumulative_nanoseconds == 400_000_000 * 11 + 100_000_000 * 10
    assert not pods.update_usage("a", {"kubemetrics.io/usage-cpu": "100m"}, now=1_000_130.0)


def test_removed_pods_vanish_but_the_node_counter_keeps_what_they_used() -> None:
    model, pods = _hollow_model()
    base = model.truth_for(0, 1_000_200).cpu_cumulative_nanoseconds
    system_rate = model.node(0).nanocores
    _add(pods, "a", "1", start=1_000_100, now=1_000_100.0)
    with_pod = model.truth_for(0, 1_000_200)
    assert with_pod.cpu_cumulative_nanoseconds == base + 100 * 10**9
    assert with_pod.cpu_nanocores == system_rate + 10**9

    pods.remove("a", now=1_000_200.5)
    # Removing long after retires the pod into the node's total.
    _add(pods, "b", "0", start=1_000_600, now=1_000_600.0)
    pods.remove("b", now=1_000_600.0)

    assert model.truth_for(0, 1_000_300).pods == ()
    gone = model.truth_for(0, 1_000_300)
    assert gone.cpu_nanocores == system_rate
    assert gone.cpu_cumulative_nanoseconds == base + 100 * system_rate + 101 * 10**9


def test_the_summary_lists_api_pods_as_they_come_and_go() -> None:
    model, pods = _hollow_model()

    renderer = SummaryRenderer(model, 0)
    assert json.loads(renderer.render(1_000_100, full=False))["pods"] == []
    _add(pods, "a", "400m", start=1_000_100, now=1_000_100.2)
    assert json.loads(renderer.render(1_000_100, full=False))["pods"] == []
    listed = json.loads(renderer.render(1_000_101, full=True))["pods"]
    assert [p["podRef"]["uid"] for p in listed] == ["a"]
    assert listed[0]["containers"][0]["cpu"]["usageCoreNanoSeconds"] == 400_000_000
    pods.remove("a", now=1_000_101.5)
    assert json.loads(renderer.render(1_000_101, full=False))["pods"][0]["podRef"]["uid"] == "a"
    assert json.loads(renderer.render(1_000_102, full=False))["pods"] == []
