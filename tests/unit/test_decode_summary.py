"""kubemetrics._native.decode_summary on every real kubelet /stats/summary payload.

Each decode is checked three ways: against an independent reading of the JSON in Python (the
decoder's rules restated), against the protoc-generated `sample_pb2` classes (so the prost structs
in Rust and proto/kubemetrics/v1/sample.proto cannot drift apart), and through
describe_sample/encode_sample and back.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubemetrics import _native
from kubemetrics.v1 import sample_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("KUBEMETRICS_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
SUMMARY_DIR = SHARED_DIR / "fixtures" / "kubelet" / "summary"
SUMMARY_FIXTURES = sorted(path.name for path in SUMMARY_DIR.glob("*.json"))

SCRAPE_TIME = 1_900_000_000_123_456_789
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def read_fixture(name: str) -> bytes:
    return (SUMMARY_DIR / name).read_bytes()


def decode(body: bytes, node: str = "n1") -> dict[str, Any]:
    return _native.describe_sample(_native.decode_summary(body, node, SCRAPE_TIME))


def unix_nanos(text: str | None) -> int | None:
    if text is None:
        return None
    elapsed = datetime.fromisoformat(text) - EPOCH
    return (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000_000 + elapsed.microseconds * 1_000


def expected_point(stats: dict[str, Any], fallback_time: int | None, start_time: int) -> dict[str, Any] | None:
    """A point as the decoder promises it: timed by cpu.time, else memory.time, else the fallback."""
    cpu = stats.get("cpu") or {}
    memory = stats.get("memory") or {}
    candidates = (unix_nanos(cpu.get("time")), unix_nanos(memory.get("time")), fallback_time)
    timestamp = next((candidate for candidate in candidates if candidate is not None), None)
    if timestamp is None:
        return None
    return {
        "timestamp_unix_nanos": timestamp,
        "cumulative_cpu_nanos": cpu.get("usageCoreNanoSeconds"),
        "memory_working_set_bytes": memory.get("workingSetBytes"),
        "start_time_unix_nanos": start_time,
    }


def expected_sample(summary: dict[str, Any], node: str) -> dict[str, Any]:
    return {
        "node": node,
        "scrape_time_unix_nanos": SCRAPE_TIME,
        "node_point": expected_point(summary["node"], None, 0),
        "pods": [
            {
                "namespace": pod["podRef"]["namespace"],
                "name": pod["podRef"]["name"],
                "containers": [
                    {
                        "name": container["name"],
                        "point": expected_point(container, SCRAPE_TIME, unix_nanos(container.get("startTime")) or 0),
                    }
                    for container in pod.get("containers") or []
                ],
            }
            for pod in summary.get("pods") or []
        ],
    }


def point_from_proto(message: Any, field: str) -> dict[str, Any] | None:
    if not message.HasField(field):
        return None
    point = getattr(message, field)
    return {
        "timestamp_unix_nanos": point.timestamp_unix_nanos,
        "cumulative_cpu_nanos": point.cumulative_cpu_nanos if point.HasField("cumulative_cpu_nanos") else None,
        "memory_working_set_bytes": (
            point.memory_working_set_bytes if point.HasField("memory_working_set_bytes") else None
        ),
        "start_time_unix_nanos": point.start_time_unix_nanos,
    }


def sample_from_proto(sample: sample_pb2.NodeSample) -> dict[str, Any]:
    return {
        "node": sample.node,
        "scrape_time_unix_nanos": sample.scrape_time_unix_nanos,
        "node_point": point_from_proto(sample, "node_point"),
        "pods": [
            {
                "namespace": pod.namespace,
                "name": pod.name,
                "containers": [
                    {"name": container.name, "point": point_from_proto(container, "point")}
                    for container in pod.containers
                ],
            }
            for pod in sample.pods
        ],
    }


def test_the_fixture_directory_has_every_known_payload() -> None:
    assert {
        "legacy-no-pod-level-cpu-memory.json",
        "metrics-server-edgecases-v1.17.json",
        "minikube-v1.15-nri-datagen.json",
        "minikube-v1.19-nri-datagen.json",
        "minikube-v1.28-nri-datagen.json",
        "minikube-v1.35-nri-datagen.json",
    } <= set(SUMMARY_FIXTURES)


@pytest.mark.parametrize("name", SUMMARY_FIXTURES)
def test_fixture_decodes_to_what_the_json_says(name: str) -> None:
    body = read_fixture(name)
    described = decode(body, node="node-from-inventory")
    assert described == expected_sample(json.loads(body), "node-from-inventory")
    assert described["node_point"] is not None
    assert described["pods"]


@pytest.mark.parametrize("name", SUMMARY_FIXTURES)
def test_encoded_sample_is_the_proto_message_protoc_generates(name: str) -> None:
    encoded = _native.decode_summary(read_fixture(name), "n1", SCRAPE_TIME)
    assert isinstance(encoded, bytes)
    from_proto = sample_from_proto(sample_pb2.NodeSample.FromString(encoded))
    assert from_proto == _native.describe_sample(encoded)
    # And the other direction: protoc's encoding is read back by the Rust side unchanged.
    reencoded = sample_pb2.NodeSample.FromString(encoded).SerializeToString()
    assert _native.describe_sample(reencoded) == from_proto


@pytest.mark.parametrize("name", SUMMARY_FIXTURES)
def test_encode_sample_inverts_describe_sample(name: str) -> None:
    encoded = _native.decode_summary(read_fixture(name), "n1", SCRAPE_TIME)
    assert _native.encode_sample(_native.describe_sample(encoded)) == encoded


def test_minikube_v1_35_values() -> None:
    described = decode(read_fixture("minikube-v1.35-nri-datagen.json"))
    assert described["node_point"] == {
        "timestamp_unix_nanos": unix_nanos("2026-06-26T10:14:35Z"),
        "cumulative_cpu_nanos": 62_148_052_000,
        "memory_working_set_bytes": 917_110_784,
        "start_time_unix_nanos": 0,
    }
    assert len(described["pods"]) == 17
    etcd = next(pod for pod in described["pods"] if pod["name"] == "etcd-datagen-1-35")
    assert etcd["namespace"] == "kube-system"
    assert etcd["containers"] == [
        {
            "name": "etcd",
            "point": {
                "timestamp_unix_nanos": 1_782_468_870_000_000_000,  # 2026-06-26T10:14:30Z
                "cumulative_cpu_nanos": 2_628_368_000,
                "memory_working_set_bytes": 44_290_048,
                "start_time_unix_nanos": 1_782_468_730_000_000_000,  # 2026-06-26T10:12:10Z
            },
        }
    ]


def test_edge_cases_keep_zero_and_absent_values_apart() -> None:
    described = decode(read_fixture("metrics-server-edgecases-v1.17.json"))
    reported = {
        pod["name"]: (
            pod["containers"][0]["point"]["cumulative_cpu_nanos"],
            pod["containers"][0]["point"]["memory_working_set_bytes"],
        )
        for pod in described["pods"]
    }
    assert reported == {
        "all-fields": (29_328_792, 1_449_984),
        "zero usageCoreNanoSeconds": (0, 1_449_984),
        "no usageCoreNanoSeconds": (None, 1_449_984),
        "no CPU": (None, 1_449_984),
        "zero workingSetBytes": (29_328_792, 0),
        "no workingSetBytes": (29_328_792, None),
        "no memory": (29_328_792, None),
    }


def test_pods_and_containers_may_be_null() -> None:
    body = b'{"node":{"cpu":{"time":null}},"pods":[{"podRef":{"name":"p","namespace":"a"},"containers":null}]}'
    described = decode(body)
    assert described["node_point"] is None
    assert described["pods"] == [{"namespace": "a", "name": "p", "containers": []}]
    assert decode(b'{"node":{},"pods":null}')["pods"] == []


def test_default_body_limit_is_64_mib() -> None:
    assert _native.DEFAULT_MAX_BODY_BYTES == 64 * 1024 * 1024


# --- errors ---------------------------------------------------------------------------------


def decode_error(body: bytes, node: str = "n1", **kwargs: int) -> _native.DecodeError:
    with pytest.raises(_native.DecodeError) as caught:
        _native.decode_summary(body, node, SCRAPE_TIME, **kwargs)
    return caught.value


def test_wrong_type_names_node_offset_field_and_cause() -> None:
    body = read_fixture("metrics-server-edgecases-v1.17.json")
    start = body.index(b'"no CPU"')
    value_at = body.index(b'"2020-04-16T20:17:46Z"', start)
    damaged = body[:value_at] + b'"none"' + body[value_at + 22 :]
    error = decode_error(damaged, node="n1")
    assert isinstance(error, ValueError)
    assert error.kind == "wrong_type"
    assert error.field == "pods[3].containers[0].startTime"
    assert error.offset == value_at + 5  # the closing quote of "none"
    assert str(error) == (
        f'decode /stats/summary of node "n1": wrong_type at byte {value_at + 5} '
        '(field pods[3].containers[0].startTime): invalid value: string "none", expected RFC3339 time (malformed year)'
    )


def test_truncated_body_reports_its_length() -> None:
    body = read_fixture("minikube-v1.35-nri-datagen.json")[:50_000]
    error = decode_error(body, node="worker-7")
    assert error.kind == "truncated"
    assert error.offset == 50_000
    assert error.field.startswith("pods[")
    assert str(error).startswith('decode /stats/summary of node "worker-7": truncated at byte 50000 (field pods[')


def test_oversized_body_is_refused_before_parsing() -> None:
    error = decode_error(b"\xff" * 101, max_body_bytes=100)
    assert (error.kind, error.offset, error.field) == ("oversized", 0, "")
    assert str(error) == (
        'decode /stats/summary of node "n1": oversized at byte 0: body of 101 bytes exceeds the limit of 100 bytes'
    )


def test_invalid_utf8_is_an_encoding_error() -> None:
    body = b'{"node":{},"pods":[{"podRef":{"name":"p\xc3(","namespace":"a"}}]}'
    error = decode_error(body)
    assert (error.kind, error.offset, error.field) == ("encoding", body.index(b"\xc3"), "pods[0].podRef.name")


def test_missing_field_and_malformed_bodies() -> None:
    error = decode_error(b'{"kind":"Status","status":"Failure","code":500}')
    assert (error.kind, error.field) == ("missing_field", "node")
    error = decode_error(b'{"node":{},"pods":[]}<html>')
    assert (error.kind, error.offset, error.field) == ("malformed", 21, "")


def test_decode_error_raised_from_python_has_default_attributes() -> None:
    error = _native.DecodeError("made by a test double")
    assert (error.kind, error.offset, error.field) == ("", 0, "")


def test_describe_sample_rejects_bytes_that_are_not_a_sample() -> None:
    with pytest.raises(ValueError, match="not an encoded NodeSample"):
        _native.describe_sample(b"\xff\xff\xff")


def test_encode_sample_names_the_missing_key() -> None:
    with pytest.raises(ValueError, match=r"pods\[0\]\.containers\[0\]\.name is missing"):
        _native.encode_sample(
            {
                "node": "n1",
                "scrape_time_unix_nanos": 1,
                "pods": [{"namespace": "a", "name": "p", "containers": [{"point": None}]}],
            }
        )
