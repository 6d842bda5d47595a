"""Simulated kubelet payloads: shaped like a real 1.35 kubelet's (key order, field presence, pretty
printing, time format), carrying exactly the model's values, and readable by the real decoder."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import fixture_path
from kubemetrics import _native
from kubemetrics.simulator.model import Model, SimulationParameters
from kubemetrics.simulator.resource import go_float, render_resource_metrics
from kubemetrics.simulator.summary import SummaryRenderer
from prometheus_client.parser import text_string_to_metric_families

ORIGIN = 1_800_000_000
NOW = ORIGIN + 777
FIXTURE_135 = fixture_path("kubelet", "summary", "minikube-v1.35-nri-datagen.json")
RFC3339_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def new_model(**overrides: Any) -> Model:
    values: dict[str, Any] = {"nodes": 3, "pods_per_node": 14, "seed": 5, "origin": ORIGIN, **overrides}
    return Model(SimulationParameters(**values))


def render(model: Model, node: int = 1, *, full: bool, now: int = NOW) -> bytes:
    return SummaryRenderer(model, node).render(now, full=full)


def key_structure(
    document: object, path: str = "", out: dict[str, set[tuple[str, ...]]] | None = None
) -> dict[str, set[tuple[str, ...]]]:
    """Per JSON path (list indices collapsed), every key sequence seen there."""
    out = {} if out is None else out
    if isinstance(document, dict):
        out.setdefault(path, set()).add(tuple(document))
        for key, value in document.items():
            key_structure(value, f"{path}.{key}", out)
    elif isinstance(document, list):
        for item in document:
            key_structure(item, f"{path}[]", out)
    return out


def all_times(document: object) -> list[object]:
    found: list[object] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("time", "startTime"):
                found.append(value)
            else:
                found.extend(all_times(value))
    elif isinstance(document, list):
        for item in document:
            found.extend(all_times(item))
    return found


def unix(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def test_summary_is_pretty_printed_as_go_restful_writes_it() -> None:
    for full in (True, False):
        body = render(new_model(), full=full)

        assert body.startswith(b'{\n "node": {\n  "nodeName": "sim-node-1",\n')
        assert body.decode() == json.dumps(json.loads(body), indent=1)
        assert not body.endswith(b"\n")


def test_full_summary_has_the_key_order_and_fields_of_a_real_1_35_kubelet() -> None:
    real = key_structure(json.loads(Path(FIXTURE_135).read_bytes()))
    simulated = key_structure(json.loads(render(new_model(), full=True)))

    assert set(simulated) == set(real)
    for path, shapes in simulated.items():
        assert shapes <= real[path], f"{path}: {shapes - real[path]} not in the real payload"
    # Both memory shapes (with and without a limit) occur, as in the real payload.
    assert simulated[".pods[].containers[].memory"] == real[".pods[].containers[].memory"]


def test_only_cpu_and_memory_summary_leaves_out_what_the_kubelet_leaves_out() -> None:
    document = json.loads(render(new_model(), full=False))
    node = document["node"]
    pod = document["pods"][4]

    assert list(document) == ["node", "pods"]
    assert list(node) == ["nodeName", "systemContainers", "startTime", "cpu", "memory", "swap"]
    assert [list(c) for c in node["systemContainers"]] == [["name", "startTime", "cpu", "memory", "swap"]] * 3
    assert [c["name"] for c in node["systemContainers"]] == ["kubelet", "runtime", "pods"]
    assert list(pod) == ["podRef", "startTime", "containers", "cpu", "memory", "swap"]
    assert all(
        list(c) == ["name", "startTime", "cpu", "memory", "swap"] for p in document["pods"] for c in p["containers"]
    )
    assert list(node["cpu"]) == ["time", "usageNanoCores", "usageCoreNanoSeconds", "psi"]


def test_without_psi_the_cpu_and_memory_sections_have_no_pressure_and_there_is_no_io() -> None:
    document = json.loads(render(new_model(psi=False), full=True))

    assert list(document["node"]["cpu"]) == ["time", "usageNanoCores", "usageCoreNanoSeconds"]
    assert "io" not in document["node"]
    assert all("io" not in p and "psi" not in p["memory"] for p in document["pods"])


def test_every_time_is_rfc3339_utc_at_whole_seconds() -> None:
    times = all_times(json.loads(render(new_model(), full=True)))

    assert len(times) > 200
    assert all(isinstance(t, str) and RFC3339_SECONDS.match(t) for t in times)


def test_summary_values_are_the_models_values() -> None:
    model = new_model()
    truth = model.truth_for(1, NOW)
    document = json.loads(render(model, full=False))
    node = document["node"]

    assert node["cpu"]["usageCoreNanoSeconds"] == truth.cpu_cumulative_nanoseconds
    assert node["cpu"]["usageNanoCores"] == truth.cpu_nanocores
    assert unix(node["cpu"]["time"]) == truth.sample_time
    assert node["memory"]["workingSetBytes"] == truth.memory.working_set_bytes
    assert unix(node["startTime"]) == truth.start_time
    assert [p["podRef"]["name"] for p in document["pods"]] == [p.name for p in truth.pods]
    for served, expected in zip(document["pods"], truth.pods, strict=True):
        assert served["podRef"] == {"name": expected.name, "namespace": expected.namespace, "uid": expected.uid}
        assert served["cpu"]["usageCoreNanoSeconds"] == expected.cpu_cumulative_nanoseconds
        assert served["memory"]["workingSetBytes"] == expected.memory.working_set_bytes
        for container, want in zip(served["containers"], expected.containers, strict=True):
            assert container["name"] == want.name
            assert unix(container["startTime"]) == want.start_time
            assert unix(container["cpu"]["time"]) == want.sample_time == unix(container["memory"]["time"])
            assert container["cpu"]["usageCoreNanoSeconds"] == want.cpu_cumulative_nanoseconds
            assert container["memory"]["workingSetBytes"] == want.memory.working_set_bytes
            assert container["memory"].get("availableBytes") == want.memory.available_bytes


def test_the_native_decoder_reads_the_simulated_payload_as_the_model_has_it() -> None:
    model = new_model()
    truth = model.truth_for(1, NOW)
    for full in (True, False):
        sample = _native.describe_sample(_native.decode_summary(render(model, full=full), "sim-node-1", NOW * 10**9))

        assert sample["node_point"]["cumulative_cpu_nanos"] == truth.cpu_cumulative_nanoseconds
        assert sample["node_point"]["timestamp_unix_nanos"] == truth.sample_time * 10**9
        decoded = {(p["namespace"], p["name"], c["name"]): c["point"] for p in sample["pods"] for c in p["containers"]}
        expected = {(p.namespace, p.name, c.name): c for p in truth.pods for c in p.containers}
        assert decoded.keys() == expected.keys()
        for key, point in decoded.items():
            assert point["cumulative_cpu_nanos"] == expected[key].cpu_cumulative_nanoseconds
            assert point["memory_working_set_bytes"] == expected[key].memory.working_set_bytes
            assert point["start_time_unix_nanos"] == expected[key].start_time * 10**9


def test_payload_follows_pod_replacements() -> None:
    model = new_model(churn_fraction=1.0, churn_interval=120)
    renderer = SummaryRenderer(model, 0)
    slot = model.node(0).slots[5]
    churn_at = ORIGIN + slot.churn_phase_seconds + 120
    before = json.loads(renderer.render(churn_at - 1, full=False))
    after = json.loads(renderer.render(churn_at + 10, full=False))

    old_name = model.pod_at(slot, churn_at - 1).name
    new_name = model.pod_at(slot, churn_at).name
    assert before["pods"][5]["podRef"]["name"] == old_name
    assert after["pods"][5]["podRef"]["name"] == new_name
    assert unix(after["pods"][5]["startTime"]) == churn_at


def test_resource_metrics_carry_the_same_values_in_kubelet_text_format() -> None:
    model = new_model()
    truth = model.truth_for(2, NOW)
    text = render_resource_metrics(truth).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}

    containers = {
        (s.labels["namespace"], s.labels["pod"], s.labels["container"]): s
        for s in families["container_cpu_usage_seconds"].samples
    }
    for pod in truth.pods:
        for container in pod.containers:
            sample = containers[(pod.namespace, pod.name, container.name)]
            assert sample.value == pytest.approx(container.cpu_cumulative_nanoseconds / 1e9, rel=1e-15)
            assert sample.timestamp == container.sample_time
    node = families["node_memory_working_set_bytes"].samples[0]
    assert node.value == truth.memory.working_set_bytes
    assert node.timestamp == truth.sample_time
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)
    cpu_lines = [line for line in text.splitlines() if line.startswith("container_cpu_usage_seconds_total{")]
    assert cpu_lines == sorted(cpu_lines, key=lambda line: re.findall(r'"([^"]*)"', line))
    assert "container_start_time_seconds{" in text and text.endswith("resource_scrape_error 0\n")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (17391616, "1.7391616e+07"),
        (40.384910049, "40.384910049"),
        (1.7506078418297591e09, "1.7506078418297591e+09"),
        (123456, "123456"),
        (1e6, "1e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0, "0"),
        (1.0, "1"),
    ],
)
def test_values_are_written_as_gos_shortest_g_format(value: float, text: str) -> None:
    assert go_float(value) == text
