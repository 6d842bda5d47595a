"""The simulator's ground truth: deterministic, exact rates from whole-second samples, memory that
moves page-aligned, restarts, churn, init containers and housekeeping sample times."""

from __future__ import annotations

import collections
import dataclasses
import itertools

import pytest
from kubemetrics.simulator.catalog import WorkloadKind
from kubemetrics.simulator.model import PAGE_BYTES, Model, NodeTruth, SimulationParameters

ORIGIN = 1_800_000_000
NOW = ORIGIN + 1234


def model(**overrides: object) -> Model:
    params = SimulationParameters(nodes=4, pods_per_node=12, seed=11, origin=ORIGIN)
    return Model(dataclasses.replace(params, **overrides))  # type: ignore[arg-type]


def containers_by_key(truth: NodeTruth) -> dict[tuple[str, str, str], object]:
    return {(p.namespace, p.name, c.name): c for p in truth.pods for c in p.containers}


def test_same_seed_and_parameters_give_the_same_cluster_and_another_seed_a_different_one() -> None:
    first = model().truth_for("sim-node-2", NOW)
    again = model().truth_for("sim-node-2", NOW)
    other = model(seed=12).truth_for("sim-node-2", NOW)

    assert first == again
    assert [p.name for p in first.pods] != [p.name for p in other.pods]
    assert first.cpu_nanocores != other.cpu_nanocores


def test_container_counter_gives_its_exact_rate_from_any_two_samples_15s_apart() -> None:
    fleet = model(restart_interval=0, churn_interval=0)
    checked = 0
    for node in fleet.node_names():
        before = fleet.truth_for(node, NOW)
        after = fleet.truth_for(node, NOW + 15)
        later = containers_by_key(after)
        for key, first in containers_by_key(before).items():
            second = later[key]
            assert second.sample_time > first.sample_time
            rate = (second.cpu_cumulative_nanoseconds - first.cpu_cumulative_nanoseconds) / (
                second.sample_time - first.sample_time
            )
            assert rate == first.cpu_nanocores
            checked += 1
    assert checked > 40


def test_node_counter_runs_at_its_pods_plus_system_rate_and_never_goes_back() -> None:
    fleet = model(restart_fraction=1.0, churn_fraction=1.0, churn_interval=60)
    spec = fleet.node("sim-node-1")
    steady = sum(s.overhead_nanocores + sum(c.nanocores for c in s.containers) for s in spec.slots)
    system = spec.kubelet.nanocores + spec.runtime.nanocores + spec.other_nanocores

    readings = [fleet.truth_for("sim-node-1", NOW + step) for step in range(0, 600, 15)]

    assert spec.nanocores == steady + system
    for first, second in itertools.pairwise(readings):
        delta = second.cpu_cumulative_nanoseconds - first.cpu_cumulative_nanoseconds
        assert delta == spec.nanocores * (second.sample_time - first.sample_time)
    pods_cgroup = readings[0].system_containers[2]
    assert pods_cgroup.name == "pods"
    assert pods_cgroup.cpu_nanocores == steady


def test_pod_cgroup_counts_its_containers_and_sandbox_overhead() -> None:
    fleet = model(restart_interval=0, churn_interval=0)
    pod = fleet.pods_at("sim-node-0", NOW)[5]

    first = fleet.pod_usage("sim-node-0", pod.namespace, pod.name, NOW)
    second = fleet.pod_usage("sim-node-0", pod.namespace, pod.name, NOW + 15)

    expected = pod.slot.overhead_nanocores + sum(c.nanocores for c in pod.slot.containers)
    assert (second.cpu_cumulative_nanoseconds - first.cpu_cumulative_nanoseconds) / 15 == expected
    assert second.cpu_nanocores == expected


def test_working_sets_are_page_aligned_stay_near_their_base_and_move_with_time() -> None:
    fleet = model()
    moved = 0
    for pod in fleet.pods_at("sim-node-3", NOW):
        for spec in pod.slot.containers:
            values = [spec.memory.working_set(NOW + step) for step in range(0, 3600, 300)]
            assert all(v % PAGE_BYTES == 0 for v in values)
            low = spec.memory.base_bytes - spec.memory.swing_bytes - PAGE_BYTES
            high = spec.memory.base_bytes + spec.memory.swing_bytes
            assert all(low <= v <= high for v in values)
            moved += len(set(values)) > 1
    assert moved > 10


def test_reported_memory_is_the_models_value_at_the_reported_time() -> None:
    fleet = model()
    truth = fleet.truth_for("sim-node-1", NOW)
    for pod in truth.pods:
        for container in pod.containers:
            usage = fleet.container_usage("sim-node-1", pod.namespace, pod.name, container.name, container.sample_time)
            assert usage.memory_working_set_bytes == container.memory.working_set_bytes
            assert usage.cpu_cumulative_nanoseconds == container.cpu_cumulative_nanoseconds
            assert container.memory.usage_bytes >= container.memory.working_set_bytes >= container.memory.rss_bytes
    node = fleet.node_usage("sim-node-1", truth.sample_time)
    assert node.memory_working_set_bytes == truth.memory.working_set_bytes
    assert (
        truth.memory.available_bytes == fleet.node("sim-node-1").memory_capacity_bytes - node.memory_working_set_bytes
    )


def test_sample_times_trail_now_by_less_than_the_housekeeping_interval_and_differ_between_containers() -> None:
    fleet = model(housekeeping_interval=10)
    truth = fleet.truth_for("sim-node-0", NOW)
    lags = [NOW - c.sample_time for p in truth.pods for c in p.containers]
    lags += [NOW - p.sample_time for p in truth.pods] + [NOW - truth.sample_time]

    assert all(0 <= lag < 10 for lag in lags)
    assert len(set(lags)) >= 4
    # The pods cgroup is sampled with the root cgroup, as in real payloads.
    assert truth.system_containers[2].sample_time == truth.sample_time


def test_restart_gives_the_container_a_new_start_time_and_restarts_its_counter_from_zero() -> None:
    fleet = model(restart_fraction=1.0, restart_interval=600, churn_interval=0)
    pod = fleet.pods_at("sim-node-0", NOW)[4]
    spec = pod.slot.containers[0]
    first_start = pod.first_starts[0]
    before_start, before_restarts = spec.current_start(first_start, NOW)
    restart = before_start + spec.restart_period_seconds

    just_before = fleet.container_usage("sim-node-0", pod.namespace, pod.name, spec.name, restart - 1)
    at_restart = fleet.container_usage("sim-node-0", pod.namespace, pod.name, spec.name, restart)
    after = fleet.container_usage("sim-node-0", pod.namespace, pod.name, spec.name, restart + 20)

    assert just_before.start_time == before_start
    assert at_restart.start_time == restart == after.start_time
    assert at_restart.cpu_cumulative_nanoseconds == 0
    assert after.cpu_cumulative_nanoseconds == spec.nanocores * 20
    assert just_before.cpu_cumulative_nanoseconds > after.cpu_cumulative_nanoseconds
    assert spec.current_start(first_start, restart)[1] == before_restarts + 1
    # The pod cgroup does not restart with its container.
    pod_before = fleet.pod_usage("sim-node-0", pod.namespace, pod.name, restart - 1)
    pod_after = fleet.pod_usage("sim-node-0", pod.namespace, pod.name, restart + 20)
    assert pod_after.cpu_cumulative_nanoseconds - pod_before.cpu_cumulative_nanoseconds == 21 * pod_after.cpu_nanocores


def test_a_first_sample_taken_right_at_a_restart_is_not_earlier_than_the_new_start() -> None:
    fleet = model(restart_fraction=1.0, restart_interval=600, churn_interval=0)
    pod = fleet.pods_at("sim-node-0", NOW)[4]
    spec = pod.slot.containers[0]
    restart = spec.current_start(pod.first_starts[0], NOW)[0] + spec.restart_period_seconds

    truth = fleet.truth_for("sim-node-0", restart)
    container = truth.pod(pod.namespace, pod.name).containers[0]

    assert container.start_time == restart
    assert container.sample_time == restart
    assert container.cpu_cumulative_nanoseconds == 0


def test_churn_replaces_a_pod_by_a_new_one_of_the_same_workload() -> None:
    fleet = model(churn_fraction=1.0, churn_interval=300, restart_interval=0)
    slot = fleet.node("sim-node-1").slots[6]
    change = fleet.next_pod_change_after(ORIGIN)
    assert change is not None
    churn_at = ORIGIN + slot.churn_phase_seconds

    old = fleet.pod_at(slot, churn_at - 1)
    new = fleet.pod_at(slot, churn_at)

    assert new.start_time == churn_at
    assert new.uid != old.uid
    assert new.labels["app"] == old.labels["app"]
    assert new.namespace == old.namespace
    if slot.workload.kind is WorkloadKind.STATEFUL_SET:
        assert new.name == old.name
    else:
        assert new.name != old.name
        assert new.name.rsplit("-", 1)[0] == old.name.rsplit("-", 1)[0]
    assert fleet.layout_valid_until("sim-node-1", churn_at - 1) <= churn_at


def test_statefulset_pods_keep_their_name_across_churn() -> None:
    fleet = model(nodes=10, churn_fraction=1.0, churn_interval=300)
    slots = [s for n in fleet.nodes() for s in n.slots if s.workload.kind is WorkloadKind.STATEFUL_SET]
    assert slots
    slot = slots[0]
    churn_at = ORIGIN + slot.churn_phase_seconds

    assert fleet.pod_at(slot, churn_at).name == fleet.pod_at(slot, churn_at - 1).name
    assert fleet.pod_at(slot, churn_at).uid != fleet.pod_at(slot, churn_at - 1).uid


def test_pod_names_and_uids_are_unique_across_a_larger_cluster() -> None:
    fleet = model(nodes=300, pods_per_node=30)
    names = collections.Counter()
    uids = set()
    for node in fleet.nodes():
        for pod in fleet.pods_at(node.index, NOW):
            names[(pod.namespace, pod.name)] += 1
            uids.add(pod.uid)

    assert sum(names.values()) == 9000
    assert names.most_common(1)[0][1] == 1
    assert len(uids) == 9000


def test_nodes_run_daemonsets_first_then_a_mix_of_single_container_pods_sidecars_and_init_containers() -> None:
    fleet = model(nodes=40, pods_per_node=30)
    slots = [s for n in fleet.nodes() for s in n.slots]
    applications = [s for s in slots if s.workload.kind is not WorkloadKind.DAEMON_SET]
    sizes = collections.Counter(len(s.containers) for s in applications)

    for node in fleet.nodes():
        assert [s.workload.app for s in node.slots[:3]] == ["kube-proxy", "fluent-bit", "node-exporter"]
    assert 0.45 < sizes[1] / len(applications) < 0.8
    assert sizes[2] > 0 and sizes[3] > 0
    assert 0.15 < sum(s.init is not None for s in applications) / len(applications) < 0.5


def test_an_init_container_is_listed_only_while_it_runs_and_its_cpu_stays_in_the_pod() -> None:
    fleet = model(nodes=10, churn_fraction=1.0, churn_interval=300, restart_interval=0)
    slot = next(s for n in fleet.nodes() for s in n.slots if s.init is not None)
    init = slot.init
    assert init is not None
    node = fleet.node(slot.node_index).name
    start = ORIGIN + slot.churn_phase_seconds
    pod = fleet.pod_at(slot, start)

    during = fleet.truth_for(node, start + init.duration_seconds - 1).pod(pod.namespace, pod.name)
    after_time = pod.app_start + 30
    after = fleet.truth_for(node, after_time).pod(pod.namespace, pod.name)

    assert [c.name for c in during.containers] == [init.name]
    assert [c.name for c in after.containers] == [c.name for c in slot.containers]
    usage = fleet.pod_usage(node, pod.namespace, pod.name, after_time)
    expected = (
        init.nanocores * init.duration_seconds
        + sum(c.nanocores * (after_time - first) for c, first in zip(slot.containers, pod.first_starts, strict=True))
        + slot.overhead_nanocores * (after_time - start)
    )
    assert usage.cpu_cumulative_nanoseconds == expected


def test_node_names_map_to_indices_and_unknown_names_are_refused() -> None:
    fleet = model()

    assert fleet.node_names() == ["sim-node-0", "sim-node-1", "sim-node-2", "sim-node-3"]
    assert fleet.node_index("sim-node-3") == 3
    for bad in ("sim-node-4", "sim-node-01", "node-1", "sim-node-"):
        with pytest.raises(KeyError):
            fleet.node_index(bad)


def test_parameters_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="housekeeping"):
        SimulationParameters(housekeeping_interval=0).validate()
    with pytest.raises(ValueError, match="restart fraction"):
        SimulationParameters(restart_fraction=1.5).validate()
    with pytest.raises(ValueError, match="at least 10s"):
        SimulationParameters(churn_interval=5).validate()
