"""metrics-server and kubemetrics, same fleet, same flags: every node and pod object compared field by field
over CYCLES scrape cycles, then the health checks, the self-metrics and the discovery and error answers.

Differences kubemetrics has on purpose are either switched off by a flag in the bed (conftest:
`--tolerated-scrape-failures=0`) or asserted here as exceptions, with the reason:

- the node whose kubelet reports a negative container start time is served (with its pods) by
  kubemetrics only: metrics-server fails that node's whole scrape (kubernetes#109679);
- metrics-server lists a pod's containers in Go map order, which changes from request to request, so
  containers are compared by name;
- a freshly started kubemetrics worker takes its first sample of each node early, so its first window
  is 0.5–1.5 resolutions;
- a request with no credentials at all is 401 in kubemetrics, 403 (system:anonymous refused) upstream.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from conformance_cluster import METRICS_API, RESOLUTION_SECONDS, ConformanceBed, ask_both, print_stderr
from conformance_compare import (
    CPU_TOLERANCE_NANOCORES,
    Comparison,
    Scrape,
    ServedList,
    compare_lists,
    family_names,
    health_checks,
    read_list,
    scrapes_by,
    series_label_names,
    timing_problems,
)
from conformance_layout import BAD_START_NODE, DOWN_NODE, NODES, SKIPPED_NODE, node_name

CYCLES = 11
# What kubemetrics serves and metrics-server does not, on purpose (module docstring).
ONLY_KUBEMETRICS_NODES = {BAD_START_NODE}


@dataclass
class Cycle:
    asked_at: float
    answered_at: float
    lists: dict[tuple[str, str], ServedList]  # (collector, "nodes"|"pods") → list
    nodes: Comparison
    pods: Comparison
    timing: dict[str, list[str]]  # collector → problems


@dataclass
class Run:
    cycles: list[Cycle] = field(default_factory=list)
    # The simulator's scrape log after the last cycle (the latest scrapes of every node, by every collector).
    scrapes: dict[str, list[Scrape]] = field(default_factory=dict)

    def differences(self, kind: str, expected_only_right: set[str]) -> list[str]:
        """Every difference of every cycle except the expected kubemetrics-only objects."""
        found = []
        for number, cycle in enumerate(self.cycles):
            comparison = cycle.nodes if kind == "nodes" else cycle.pods
            for line in comparison.differences:
                key = line.split(":", 1)[0]
                if line.endswith("served by kubemetrics only") and key in expected_only_right:
                    continue
                found.append(f"cycle {number}: {line}")
        return found


def _pod_nodes(bed: ConformanceBed) -> dict[str, str]:
    return {p.key: p.node for p in bed.pods if p.node is not None}


@pytest.fixture(scope="module")
def run(bed: ConformanceBed) -> Run:
    """CYCLES questions, one per resolution; each asks both collectors for nodes and pods at the same
    instant, then reads the simulator's scrape log to line each answer up with its own scrapes."""
    result = Run()
    pod_nodes = _pod_nodes(bed)
    names = {bed.metrics_server.name: bed.metrics_server, bed.kubemetrics.name: bed.kubemetrics}
    first = time.monotonic()
    for number in range(CYCLES):
        time.sleep(max(0.0, first + number * RESOLUTION_SECONDS - time.monotonic()))
        asked, answered, answers = ask_both(bed.collectors, [f"{METRICS_API}/nodes", f"{METRICS_API}/pods"])
        scrapes = bed.hollow.scrapes()
        lists = {
            (collector.name, kind): read_list(answers[i][j])
            for i, collector in enumerate(bed.collectors)
            for j, kind in enumerate(("nodes", "pods"))
        }
        timing: dict[str, list[str]] = {}
        for name, collector in names.items():
            own = scrapes_by(scrapes, collector.user_agent)
            problems = []
            for item in lists[(name, "nodes")].items:
                problems += timing_problems(item, item.key, own.get(item.key, []), answered)
            for item in lists[(name, "pods")].items:
                node = pod_nodes[item.key]
                problems += timing_problems(item, node, own.get(node, []), answered)
            timing[name] = problems
        ms, km = bed.metrics_server.name, bed.kubemetrics.name
        cycle = Cycle(
            asked,
            answered,
            lists,
            compare_lists(lists[(ms, "nodes")], lists[(km, "nodes")], asked_between=(asked, answered)),
            compare_lists(lists[(ms, "pods")], lists[(km, "pods")], asked_between=(asked, answered)),
            timing,
        )
        result.cycles.append(cycle)
        result.scrapes = scrapes
        print_stderr(
            f"cycle {number}: {cycle.nodes.compared} nodes and {cycle.pods.compared} pods compared, "
            f"{len(cycle.nodes.differences) + len(cycle.pods.differences)} differences"
        )
    return result


def test_every_cycle_compares_all_nodes_and_pods_both_collectors_serve(bed: ConformanceBed, run: Run) -> None:
    served_pods = {p.key for p in bed.pods if p.served and p.node != BAD_START_NODE}
    served_nodes = {node_name(i) for i in range(NODES)} - {SKIPPED_NODE, DOWN_NODE, BAD_START_NODE}

    assert len(run.cycles) == CYCLES
    assert len(served_nodes) >= 100
    for cycle in run.cycles:
        assert cycle.nodes.compared == len(served_nodes)
        assert cycle.pods.compared == len(served_pods)


def test_nodes_agree_field_by_field(run: Run) -> None:
    assert run.differences("nodes", ONLY_KUBEMETRICS_NODES) == []


def test_pods_agree_field_by_field(bed: ConformanceBed, run: Run) -> None:
    only_kubemetrics = {p.key for p in bed.pods if p.node == BAD_START_NODE}

    assert run.differences("pods", only_kubemetrics) == []


def test_the_negative_start_time_node_and_its_pods_are_served_by_kubemetrics_only(
    bed: ConformanceBed, run: Run
) -> None:
    """metrics-server fails the whole scrape of a node whose kubelet writes a negative timestamp
    (`failed parsing metrics`); kubemetrics treats that one start time as unknown and keeps the node."""
    on_bad_node = {p.key for p in bed.pods if p.node == BAD_START_NODE}

    for cycle in run.cycles:
        assert cycle.nodes.only_right == ONLY_KUBEMETRICS_NODES
        assert cycle.nodes.only_left == set()
        assert cycle.pods.only_right == on_bad_node
        assert cycle.pods.only_left == set()
    assert "failed parsing metrics" in bed.metrics_server.child.log_text()
    kubemetrics_pods = run.cycles[-1].lists[(bed.kubemetrics.name, "pods")].by_key()
    assert {c.name for c in kubemetrics_pods["conformance-edge/bad-start-time"].containers} == {"main", "helper"}


def test_each_edge_case_is_present_or_absent_in_both_as_metrics_server_decides(bed: ConformanceBed, run: Run) -> None:
    last = run.cycles[-1]
    for plan in bed.pods:
        if plan.node == BAD_START_NODE:
            continue
        for collector in bed.collectors:
            present = plan.key in last.lists[(collector.name, "pods")].by_key()
            assert present == plan.served, f"{collector.name}: {plan.key} ({plan.why}): served={present}"


def test_cpu_differences_stay_within_the_rounding_tolerance(bed: ConformanceBed, run: Run) -> None:
    """The largest CPU difference of any object both served, over every cycle (printed for the record)."""
    largest = 0
    for cycle in run.cycles:
        for kind in ("nodes", "pods"):
            ours = cycle.lists[(bed.kubemetrics.name, kind)].by_key()
            for key, item in cycle.lists[(bed.metrics_server.name, kind)].by_key().items():
                if key not in ours:
                    continue
                if kind == "nodes":
                    largest = max(largest, abs(item.cpu_nanocores - ours[key].cpu_nanocores))
                    continue
                theirs = {c.name: c.cpu_nanocores for c in ours[key].containers}
                for container in item.containers:
                    largest = max(largest, abs(container.cpu_nanocores - theirs.get(container.name, 0)))
    print_stderr(f"largest CPU difference over {CYCLES} cycles: {largest} nanocores")

    assert largest <= CPU_TOLERANCE_NANOCORES


def test_served_usage_is_what_the_kubelets_report(bed: ConformanceBed, run: Run) -> None:
    """Not only equal to each other: both equal to the annotated usage (CPU within the rounding tolerance,
    memory to the byte), so the comparison cannot pass on two equally wrong answers."""
    plans = {p.key: p for p in bed.pods}
    checked = 0
    for collector in bed.collectors:
        for item in run.cycles[-1].lists[(collector.name, "pods")].items:
            plan = plans[item.key]
            expected = {c.name: c for c in plan.containers}
            assert {c.name for c in item.containers} == set(expected), item.key
            for container in item.containers:
                want = expected[container.name]
                assert want.cpu_nanocores is not None and want.memory_bytes is not None
                assert abs(container.cpu_nanocores - want.cpu_nanocores) <= CPU_TOLERANCE_NANOCORES, (
                    f"{collector.name} {item.key}/{container.name}: {container.cpu_nanocores} != {want.cpu_nanocores}"
                )
                assert container.memory_bytes == want.memory_bytes, f"{collector.name} {item.key}/{container.name}"
                checked += 1
    assert checked > 400


def test_timestamps_and_windows_line_up_with_each_collectors_own_scrapes(run: Run) -> None:
    problems = [
        f"cycle {n}: {name}: {p}" for n, c in enumerate(run.cycles) for name, ps in c.timing.items() for p in ps
    ]

    assert problems == []


def _first_samples(run: Run, user_agent: str) -> dict[str, int]:
    """Each node's first sample time by one collector (the scrape log holds the whole run)."""
    own = scrapes_by(run.scrapes, user_agent)
    return {
        node: min(s.sample_time for s in records if s.sample_time is not None)
        for node, records in own.items()
        if any(s.sample_time is not None for s in records)
    }


def test_windows_are_one_resolution_except_kubemetrics_first(bed: ConformanceBed, run: Run) -> None:
    """Whole seconds (the kubelet samples at whole seconds), one resolution apart give or take the second
    the two scrapes fall into: each node is scraped once per resolution.

    Exception, on purpose: a freshly started kubemetrics worker scrapes every node within its first
    seconds, then moves each node to the node's own slot in the resolution (worker/schedule.py), so
    the first window is 0.5–1.5 resolutions; metrics-server's first tick is one resolution before its
    second."""
    regular = {RESOLUTION_SECONDS - 1, RESOLUTION_SECONDS, RESOLUTION_SECONDS + 1}
    first_window = range(RESOLUTION_SECONDS // 2 - 1, RESOLUTION_SECONDS * 3 // 2 + 2)
    odd, first_windows = [], []
    for collector in bed.collectors:
        first = _first_samples(run, collector.user_agent)
        for number, cycle in enumerate(run.cycles):
            for item in cycle.lists[(collector.name, "nodes")].items:
                is_first = item.timestamp - item.window == first[item.key]
                if is_first and collector is bed.kubemetrics:
                    first_windows.append(item.window)
                    if item.window not in first_window:
                        odd.append(f"cycle {number}: {collector.name}: {item.key} first window {float(item.window)}s")
                elif item.window not in regular:
                    odd.append(f"cycle {number}: {collector.name}: {item.key} window {float(item.window)}s")

    assert odd == []
    print_stderr(f"kubemetrics' first windows: {sorted(float(w) for w in set(first_windows))}")


def test_kubemetrics_scrapes_the_same_endpoint_at_the_same_rate(bed: ConformanceBed, run: Run) -> None:
    scrapes = bed.hollow.scrapes()
    span = run.cycles[-1].asked_at - run.cycles[0].asked_at
    for collector in bed.collectors:
        own = scrapes_by(scrapes, collector.user_agent)
        node = node_name(0)
        in_span = [s for s in own[node] if run.cycles[0].asked_at <= s.time <= run.cycles[-1].asked_at]
        assert {s.path for records in own.values() for s in records} == {"/metrics/resource"}
        assert abs(len(in_span) - span / RESOLUTION_SECONDS) <= 1, (collector.name, len(in_span))
        assert SKIPPED_NODE not in own


def test_metrics_server_container_order_is_unspecified_so_containers_are_compared_by_name(
    bed: ConformanceBed, run: Run
) -> None:
    """metrics-server builds `containers` by ranging over a Go map: the order changes between requests.
    kubemetrics gives one order; matching metrics-server's would mean matching a random draw."""
    orders: dict[str, dict[str, set[tuple[str, ...]]]] = defaultdict(lambda: defaultdict(set))
    for cycle in run.cycles:
        for collector in bed.collectors:
            for item in cycle.lists[(collector.name, "pods")].items:
                if len(item.containers) > 1:
                    orders[collector.name][item.key].add(tuple(c.name for c in item.containers))

    varying = [key for key, seen in orders[bed.metrics_server.name].items() if len(seen) > 1]
    assert varying, "metrics-server returned every pod's containers in one order: compare the order again"
    assert all(len(seen) == 1 for seen in orders[bed.kubemetrics.name].values())


# ---------------------------------------------------------------------------------------------------
# Health, self-metrics, discovery, errors


@pytest.mark.parametrize("endpoint", ["/livez", "/readyz", "/healthz"])
def test_health_endpoints_run_the_same_named_checks(bed: ConformanceBed, endpoint: str) -> None:
    answers = {c.name: c.get(f"{endpoint}?verbose") for c in bed.collectors}
    checks = {name: health_checks(a.body) for name, a in answers.items()}
    print_stderr(f"{endpoint}: {checks}")

    assert {name: a.status for name, a in answers.items()} == {c.name: 200 for c in bed.collectors}
    assert checks[bed.kubemetrics.name] == checks[bed.metrics_server.name]
    assert all(passed for _, passed in checks[bed.kubemetrics.name])
    assert answers[bed.kubemetrics.name].body.rstrip().endswith(f"{endpoint.strip('/')} check passed")


def test_self_metrics_have_the_same_metrics_server_series_and_labels(bed: ConformanceBed) -> None:
    series = {c.name: series_label_names(c.get("/metrics").body) for c in bed.collectors}
    upstream, ours = series[bed.metrics_server.name], series[bed.kubemetrics.name]
    print_stderr(f"metrics-server series: {sorted(upstream)}")

    assert len(family_names(upstream)) == 6
    assert ours == upstream


API_PATHS = [
    METRICS_API,
    "/apis/metrics.k8s.io",
    f"{METRICS_API}/nodes/no-such-node",
    f"{METRICS_API}/nodes/{SKIPPED_NODE}",
    f"{METRICS_API}/nodes/{DOWN_NODE}",
    f"{METRICS_API}/namespaces/conformance-edge/pods/zero-cpu",
    f"{METRICS_API}/namespaces/conformance-edge/pods/pending",
    f"{METRICS_API}/namespaces/conformance-edge/pods/no-such-pod",
    f"{METRICS_API}/nodes?fieldSelector=spec.nodeName%3Dx",
    f"{METRICS_API}/pods?labelSelector=app%3D%3D%3D",
    f"{METRICS_API}/nodes?watch=true",
    f"{METRICS_API}/namespaces/conformance-edge/pods?watch=1",
]


@pytest.mark.parametrize("path", API_PATHS)
def test_discovery_and_error_answers_are_identical(bed: ConformanceBed, path: str) -> None:
    upstream, ours = (c.get(path) for c in bed.collectors)

    assert (ours.status, ours.json()) == (upstream.status, upstream.json()), f"metrics-server: {upstream.body}"


SELECTIONS = [
    f"{METRICS_API}/pods?labelSelector=app%3Dweb",
    f"{METRICS_API}/pods?labelSelector=app%20in%20(cache,auth),tier",
    f"{METRICS_API}/pods?labelSelector=!app",
    f"{METRICS_API}/pods?fieldSelector=metadata.namespace%3Dconformance-edge",
    f"{METRICS_API}/pods?fieldSelector=metadata.namespace!%3Ddefault,metadata.name!%3Dno-labels",
    f"{METRICS_API}/namespaces/default/pods",
    f"{METRICS_API}/namespaces/conformance-edge/pods?labelSelector=edge-case",
    f"{METRICS_API}/nodes?labelSelector=topology.kubernetes.io%2Fzone",
    f"{METRICS_API}/nodes?fieldSelector=metadata.name%3D{node_name(7)}",
    f"{METRICS_API}/nodes?labelSelector=kubernetes.io%2Fhostname%20notin%20({node_name(1)},{node_name(2)})",
]


@pytest.mark.parametrize("path", SELECTIONS)
def test_selectors_select_the_same_objects(bed: ConformanceBed, path: str) -> None:
    _, _, answers = ask_both(bed.collectors, [path])
    upstream, ours = (read_list(a[0]) for a in answers)
    comparison = compare_lists(upstream, ours)
    expected_extra = {k for k in comparison.only_right if k == BAD_START_NODE or k.endswith("bad-start-time")}

    assert comparison.only_left == set()
    assert comparison.only_right == expected_extra
    assert comparison.compared > 0


def test_an_identity_without_rights_is_refused_alike(bed: ConformanceBed) -> None:
    """Authenticated through the front proxy, no groups: both ask kube-apiserver (SubjectAccessReview)."""
    nobody = {"X-Remote-User": "conformance-nobody"}
    upstream, ours = (c.get(f"{METRICS_API}/namespaces/default/pods", identity=nobody) for c in bed.collectors)

    assert upstream.status == 403
    assert (ours.status, ours.json()) == (upstream.status, upstream.json()), upstream.body


@pytest.mark.parametrize("probe", ["/readyz", "/livez", "/healthz"])
def test_probes_answer_requests_without_credentials_alike(bed: ConformanceBed, probe: str) -> None:
    upstream, ours = (c.get(probe, authenticated=False) for c in bed.collectors)

    assert (upstream.status, upstream.body) == (200, "ok")
    assert (ours.status, ours.body) == (upstream.status, upstream.body)


def test_a_request_without_credentials_is_401_in_kubemetrics_where_metrics_server_says_403(
    bed: ConformanceBed,
) -> None:
    """On purpose (api/authn.py): kubemetrics treats a credential-less request as anonymous only on the
    always-allowed paths and answers 401 elsewhere; metrics-server takes it as system:anonymous everywhere
    and lets the SubjectAccessReview refuse it (403)."""
    upstream, ours = (c.get(f"{METRICS_API}/nodes", authenticated=False) for c in bed.collectors)

    assert upstream.status == 403
    assert upstream.json()["reason"] == "Forbidden"
    assert 'User "system:anonymous" cannot list resource "nodes"' in upstream.json()["message"]
    assert ours.status == 401
    assert (ours.json()["kind"], ours.json()["reason"], ours.json()["code"]) == ("Status", "Unauthorized", 401)


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.mark.parametrize("resource", ["nodes", "pods"])
def test_table_output_has_the_same_columns_and_rows(bed: ConformanceBed, resource: str) -> None:
    """What `kubectl get nodes.metrics.k8s.io` asks for; the cells hold usage and window, compared above."""
    upstream, ours = (c.get(f"{METRICS_API}/{resource}", headers={"Accept": TABLE}).json() for c in bed.collectors)
    on_bad_node = {p.name for p in bed.pods if p.node == BAD_START_NODE} | {BAD_START_NODE}

    def rows(table: dict[str, Any]) -> list[str]:
        return [row["cells"][0] for row in table["rows"] if row["cells"][0] not in on_bad_node]

    assert (
        (ours["kind"], ours["apiVersion"]) == (upstream["kind"], upstream["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    )
    assert ours["columnDefinitions"] == upstream["columnDefinitions"]
    assert rows(ours) == rows(upstream)
    assert len(rows(upstream)) > 100
    assert [sorted(row) for row in ours["rows"][:3]] == [sorted(row) for row in upstream["rows"][:3]]
