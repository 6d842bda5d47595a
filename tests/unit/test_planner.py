"""Shard planner: kubelet address/port resolution as metrics-server does it, and rendezvous sharding."""

from __future__ import annotations

import pytest
from kubemetrics.inventory import NodeAddress, NodeInfo
from kubemetrics.options import DEFAULT_ADDRESS_TYPES, SUMMARY_PATH, KubeletOptions
from kubemetrics.planner import (
    AddressResolutionError,
    ScrapeTarget,
    ShardPlanner,
    plan,
    resolve_target,
    resolve_targets,
)

NODE = NodeInfo(
    name="node-a",
    addresses=(
        NodeAddress("InternalIP", "10.0.0.7"),
        NodeAddress("InternalIP", "10.0.0.8"),
        NodeAddress("ExternalIP", "203.0.113.9"),
        NodeAddress("Hostname", "node-a.local"),
    ),
    kubelet_port=10255,
)


def targets_for(count: int) -> list[ScrapeTarget]:
    return [ScrapeTarget(f"node-{i}", f"127.1.{i // 250}.{i % 250 + 1}", 10250, SUMMARY_PATH) for i in range(count)]


def owners(shares: dict[str, list[ScrapeTarget]]) -> dict[str, str]:
    return {target.node: worker for worker, share in shares.items() for target in share}


# --- address and port -------------------------------------------------------------------------


def test_default_priority_prefers_hostname_over_internal_ip() -> None:
    assert resolve_target(NODE, KubeletOptions()).host == "node-a.local"


def test_first_address_of_the_first_matching_type_wins() -> None:
    kubelet = KubeletOptions(preferred_address_types=("InternalDNS", "InternalIP", "ExternalIP"))
    assert resolve_target(NODE, kubelet).host == "10.0.0.7"


def test_priority_order_not_address_order_decides() -> None:
    kubelet = KubeletOptions(preferred_address_types=("ExternalIP", "InternalIP"))
    assert resolve_target(NODE, kubelet).host == "203.0.113.9"


def test_ipv6_address_is_passed_without_brackets() -> None:
    node = NodeInfo(name="v6", addresses=(NodeAddress("InternalIP", "fd00::10"),))
    target = resolve_target(node, KubeletOptions(preferred_address_types=("InternalIP",)))
    assert (target.host, target.port) == ("fd00::10", 10250)


def test_no_matching_address_type_is_an_error_naming_node_and_types() -> None:
    kubelet = KubeletOptions(preferred_address_types=("InternalDNS", "ExternalDNS"))
    with pytest.raises(AddressResolutionError) as caught:
        resolve_target(NODE, kubelet)
    assert str(caught.value) == (
        'unable to extract connection information for node "node-a": no address matched types [InternalDNS ExternalDNS]'
    )
    assert caught.value.node == "node-a"


def test_kubelet_port_flag_is_used_unless_node_status_port_is_requested() -> None:
    assert resolve_target(NODE, KubeletOptions(port=4443)).port == 4443
    assert resolve_target(NODE, KubeletOptions(port=4443, use_node_status_port=True)).port == 10255


def test_node_status_port_of_zero_falls_back_to_the_flag() -> None:
    node = NodeInfo(name="n", addresses=(NodeAddress("Hostname", "n"),), kubelet_port=0)
    assert resolve_target(node, KubeletOptions(port=4443, use_node_status_port=True)).port == 4443


def test_target_uses_the_resource_path_with_summary_fallback_by_default() -> None:
    assert resolve_target(NODE, KubeletOptions()) == ScrapeTarget(
        "node-a", "node-a.local", 10250, "/metrics/resource", fallback_path=SUMMARY_PATH
    )
    assert SUMMARY_PATH == "/stats/summary?only_cpu_and_memory=true"
    assert resolve_target(NODE, KubeletOptions(), path="/metrics/resource").path == "/metrics/resource"


def test_kubelet_endpoint_flag_chooses_the_path_and_the_fallback() -> None:
    resource = resolve_target(NODE, KubeletOptions(endpoint="resource"))
    assert (resource.path, resource.fallback_path) == ("/metrics/resource", "")
    summary = resolve_target(NODE, KubeletOptions(endpoint="summary"))
    assert (summary.path, summary.fallback_path) == (SUMMARY_PATH, "")


def test_resource_metrics_path_annotation_overrides_the_resource_path_only() -> None:
    node = NodeInfo(
        name="kwok-0",
        addresses=(NodeAddress("Hostname", "kwok-0"),),
        annotations={"metrics.k8s.io/resource-metrics-path": "/metrics/nodes/kwok-0/metrics/resource"},
    )
    assert resolve_target(node, KubeletOptions()).path == "/metrics/nodes/kwok-0/metrics/resource"
    assert resolve_target(node, KubeletOptions(endpoint="resource")).path == "/metrics/nodes/kwok-0/metrics/resource"
    assert resolve_target(node, KubeletOptions(endpoint="summary")).path == SUMMARY_PATH


def test_resolve_targets_separates_unreachable_nodes() -> None:
    lost = NodeInfo(name="no-address", addresses=())
    targets, errors = resolve_targets([NODE, lost], KubeletOptions())
    assert [t.node for t in targets] == ["node-a"]
    assert [e.node for e in errors] == ["no-address"]
    assert f"[{' '.join(DEFAULT_ADDRESS_TYPES)}]" in str(errors[0])


# --- rendezvous sharding ----------------------------------------------------------------------


def test_every_node_goes_to_exactly_one_worker_and_shares_are_balanced() -> None:
    shares = plan(targets_for(1000), ["w0", "w1", "w2", "w3"])
    assert sorted(shares) == ["w0", "w1", "w2", "w3"]
    assert sum(len(share) for share in shares.values()) == 1000
    assert len(owners(shares)) == 1000
    for worker, share in shares.items():
        assert 200 <= len(share) <= 300, f"{worker} got {len(share)} of 1000 nodes (expected 250 ± 20 %)"


def test_plan_is_deterministic_and_independent_of_worker_order() -> None:
    targets = targets_for(300)
    assert plan(targets, ["w0", "w1", "w2"]) == plan(list(reversed(targets)), ["w2", "w0", "w1"])


def test_losing_a_worker_moves_only_its_nodes() -> None:
    targets = targets_for(1000)
    before = owners(plan(targets, ["w0", "w1", "w2", "w3"]))
    after = owners(plan(targets, ["w0", "w1", "w3"]))
    moved = {node for node in before if before[node] != after[node]}
    orphaned = {node for node, worker in before.items() if worker == "w2"}
    assert moved == orphaned
    # The lost share spreads over all survivors instead of landing on one of them.
    receivers = {after[node] for node in orphaned}
    assert receivers == {"w0", "w1", "w3"}


def test_adding_a_worker_takes_about_its_fair_share_and_nothing_else_moves() -> None:
    targets = targets_for(1000)
    before = owners(plan(targets, ["w0", "w1", "w2", "w3"]))
    after = owners(plan(targets, ["w0", "w1", "w2", "w3", "w4"]))
    moved = {node for node in before if before[node] != after[node]}
    assert all(after[node] == "w4" for node in moved)
    assert 160 <= len(moved) <= 240, f"{len(moved)} of 1000 nodes moved to the 5th worker (expected 200 ± 20 %)"


def test_no_live_worker_means_an_empty_plan() -> None:
    assert plan(targets_for(10), []) == {}


def test_shares_are_sorted_by_node_name() -> None:
    for share in plan(targets_for(50), ["w0", "w1"]).values():
        assert [t.node for t in share] == sorted(t.node for t in share)


# --- incremental planner ----------------------------------------------------------------------


def test_incremental_planner_matches_the_pure_plan_through_joins_leaves_and_inventory_changes() -> None:
    planner = ShardPlanner()
    targets = targets_for(400)
    planner.set_targets(targets)
    assert planner.shares() == {}
    for worker in ("w0", "w1", "w2", "w3"):
        planner.add_worker(worker)
    assert planner.shares() == plan(targets, ["w0", "w1", "w2", "w3"])

    planner.remove_worker("w1")
    assert planner.shares() == plan(targets, ["w0", "w2", "w3"])

    moved = ScrapeTarget("node-5", "127.9.9.9", 10250, SUMMARY_PATH)
    targets = [t for t in targets[50:] if t.node != "node-5"] + [moved, *targets_for(450)[400:]]
    planner.set_targets(targets)
    assert planner.shares() == plan(targets, ["w0", "w2", "w3"])

    planner.add_worker("w1")
    planner.add_worker("w9")
    assert planner.shares() == plan(targets, ["w0", "w1", "w2", "w3", "w9"])
    assert planner.target_count() == len(targets) == 401


def test_a_joining_worker_changes_only_its_own_and_its_donors_assignments() -> None:
    planner = ShardPlanner()
    planner.set_targets(targets_for(8))
    assert planner.add_worker("w0") == {"w0"}
    assert planner.assignment("w0").generation == planner.generation == 1
    assert len(planner.assignment("w0").targets) == 8

    changed = planner.add_worker("w1")
    assert changed == {"w0", "w1"}
    assert planner.generation == 2
    assert planner.assignment("w0").generation == planner.assignment("w1").generation == 2
    assert len(planner.assignment("w0").targets) + len(planner.assignment("w1").targets) == 8


def test_an_unchanged_inventory_is_not_a_new_plan() -> None:
    planner = ShardPlanner()
    planner.add_worker("w0")
    planner.set_targets(targets_for(5))
    generation = planner.generation
    assert planner.set_targets(targets_for(5)) == frozenset()
    assert planner.generation == generation


def test_address_change_reaches_the_owner_without_moving_the_node() -> None:
    planner = ShardPlanner()
    planner.set_targets(targets_for(20))
    for worker in ("w0", "w1", "w2"):
        planner.add_worker(worker)
    owner = planner.owner_of("node-3")
    assert owner is not None
    readdressed = [
        t if t.node != "node-3" else ScrapeTarget("node-3", "127.8.8.8", 4443, SUMMARY_PATH) for t in targets_for(20)
    ]
    assert planner.set_targets(readdressed) == {owner}
    assert planner.owner_of("node-3") == owner
    assert ScrapeTarget("node-3", "127.8.8.8", 4443, SUMMARY_PATH) in planner.assignment(owner).targets


def test_the_last_worker_leaving_unassigns_everything_until_one_returns() -> None:
    planner = ShardPlanner()
    planner.set_targets(targets_for(10))
    planner.add_worker("w0")
    assert planner.remove_worker("w0") == frozenset()
    assert planner.owner_of("node-1") is None
    with pytest.raises(KeyError):
        planner.assignment("w0")
    planner.add_worker("w1")
    assert len(planner.assignment("w1").targets) == 10
