"""kubemetrics._native.decode_resource_metrics on every real kubelet /metrics/resource payload.

Each decode is checked three ways: against an independent reading of the exposition with
prometheus_client's parser (the decoder's rules restated in Python), against the protoc-generated
`sample_pb2` classes (so the prost structs and proto/kubemetrics/v1/sample.proto cannot drift
apart), and through describe_sample/encode_sample and back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubemetrics import _native
from kubemetrics.v1 import sample_pb2
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Timestamp

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("KUBEMETRICS_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
RESOURCE_DIR = SHARED_DIR / "fixtures" / "kubelet" / "resource"
RESOURCE_FIXTURES = sorted(path.name for path in RESOURCE_DIR.glob("*.prom"))

SCRAPE_TIME = 1_900_000_000_123_456_789
COREDNS = '{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"}'


def read_fixture(name: str) -> bytes:
    return (RESOURCE_DIR / name).read_bytes()


def decode(body: bytes, node: str = "n1") -> dict[str, Any]:
    return _native.describe_sample(_native.decode_resource_metrics(body, node, SCRAPE_TIME))


def sample_time(timestamp: float | Timestamp | None) -> int:
    """prometheus_client gives timestamps as float seconds; the kubelet wrote whole milliseconds."""
    if timestamp is None:
        return SCRAPE_TIME
    milliseconds = round(float(timestamp) * 1000)
    return milliseconds * 1_000_000 if milliseconds > 0 else SCRAPE_TIME


def start_time(seconds: float) -> int:
    nanos = seconds * 1e9
    return int(nanos) if 1 <= nanos < 2**63 else 0  # NaN fails both comparisons


def expected_sample(body: bytes, node: str) -> dict[str, Any]:
    """The decoder's rules, restated over prometheus_client's parse of the same body."""
    node_point: dict[str, Any] | None = None
    pods: dict[tuple[str, str], dict[str, Any]] = {}
    containers: dict[tuple[str, str, str], dict[str, Any]] = {}

    def container_point(labels: dict[str, str]) -> dict[str, Any]:
        namespace, pod, name = labels["namespace"], labels["pod"], labels["container"]
        if (namespace, pod) not in pods:
            pods[namespace, pod] = {"namespace": namespace, "name": pod, "containers": []}
        if (namespace, pod, name) not in containers:
            point = empty_point()
            containers[namespace, pod, name] = point
            pods[namespace, pod]["containers"].append({"name": name, "point": point})
        return containers[namespace, pod, name]

    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name in ("node_cpu_usage_seconds_total", "node_memory_working_set_bytes"):
                node_point = node_point or empty_point()
                point = node_point
            elif sample.name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes"):
                point = container_point(sample.labels)
            elif sample.name == "container_start_time_seconds":
                container_point(sample.labels)["start_time_unix_nanos"] = start_time(sample.value)
                continue
            else:
                continue
            if "cpu" in sample.name:
                point["cumulative_cpu_nanos"] = int(sample.value * 1e9)
            else:
                point["memory_working_set_bytes"] = int(sample.value)
            point["timestamp_unix_nanos"] = sample_time(sample.timestamp)
    return {
        "node": node,
        "scrape_time_unix_nanos": SCRAPE_TIME,
        "node_point": node_point,
        "pods": list(pods.values()),
    }


def empty_point() -> dict[str, Any]:
    return {
        "timestamp_unix_nanos": SCRAPE_TIME,
        "cumulative_cpu_nanos": None,
        "memory_working_set_bytes": None,
        "start_time_unix_nanos": 0,
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
    assert RESOURCE_FIXTURES == [
        "container-cpu-zero.prom",
        "container-missing-memory.prom",
        "kind-coredns-single-pod-full.prom",
        "kind-v1.21-70pods-metrics-server-benchmark.prom",
        "negative-container-start-time.prom",
        "no-explicit-timestamps.prom",
    ]


@pytest.mark.parametrize("name", RESOURCE_FIXTURES)
def test_fixture_decodes_to_what_the_exposition_says(name: str) -> None:
    body = read_fixture(name)
    described = decode(body, node="node-from-inventory")
    assert described == expected_sample(body, "node-from-inventory")
    assert described["pods"]


@pytest.mark.parametrize("name", RESOURCE_FIXTURES)
def test_encoded_sample_is_the_proto_message_protoc_generates(name: str) -> None:
    encoded = _native.decode_resource_metrics(read_fixture(name), "n1", SCRAPE_TIME)
    assert isinstance(encoded, bytes)
    from_proto = sample_from_proto(sample_pb2.NodeSample.FromString(encoded))
    assert from_proto == _native.describe_sample(encoded)
    reencoded = sample_pb2.NodeSample.FromString(encoded).SerializeToString()
    assert _native.describe_sample(reencoded) == from_proto


@pytest.mark.parametrize("name", RESOURCE_FIXTURES)
def test_encode_sample_inverts_describe_sample(name: str) -> None:
    encoded = _native.decode_resource_metrics(read_fixture(name), "n1", SCRAPE_TIME)
    assert _native.encode_sample(_native.describe_sample(encoded)) == encoded


def test_kind_70_pods_values() -> None:
    described = decode(read_fixture("kind-v1.21-70pods-metrics-server-benchmark.prom"))
    assert described["node_point"] == {
        "timestamp_unix_nanos": 1_633_253_809_720_000_000,
        "cumulative_cpu_nanos": 357_354_910_000,
        "memory_working_set_bytes": 1_616_273_408,
        "start_time_unix_nanos": 0,
    }
    assert len(described["pods"]) == 70
    etcd = next(pod for pod in described["pods"] if pod["name"] == "etcd-e2e-control-plane")
    assert etcd == {
        "namespace": "kube-system",
        "name": "etcd-e2e-control-plane",
        "containers": [
            {
                "name": "etcd",
                "point": {
                    "timestamp_unix_nanos": 1_633_253_814_387_000_000,
                    "cumulative_cpu_nanos": 31_349_402_000,
                    "memory_working_set_bytes": 40_783_872,
                    "start_time_unix_nanos": 0,
                },
            }
        ],
    }


def test_coredns_full_payload_values() -> None:
    described = decode(read_fixture("kind-coredns-single-pod-full.prom"))
    assert described["pods"] == [
        {
            "namespace": "kube-system",
            "name": "coredns-558bd4d5db-4dpjz",
            "containers": [
                {
                    "name": "coredns",
                    "point": {
                        "timestamp_unix_nanos": 1_633_253_812_125_000_000,
                        "cumulative_cpu_nanos": 4_710_169_000,
                        "memory_working_set_bytes": 12_533_760,
                        "start_time_unix_nanos": 1_633_252_712_000_000_000,
                    },
                }
            ],
        }
    ]


def test_samples_without_timestamps_are_timed_at_the_scrape() -> None:
    described = decode(read_fixture("no-explicit-timestamps.prom"))
    assert described["node_point"]["timestamp_unix_nanos"] == SCRAPE_TIME
    assert described["pods"][0]["containers"][0]["point"]["timestamp_unix_nanos"] == SCRAPE_TIME


def test_zero_and_absent_usage_are_kept_apart() -> None:
    zero = decode(read_fixture("container-cpu-zero.prom"))["pods"][0]["containers"][0]["point"]
    assert (zero["cumulative_cpu_nanos"], zero["memory_working_set_bytes"]) == (0, 12_533_760)
    missing = decode(read_fixture("container-missing-memory.prom"))["pods"][0]["containers"][0]["point"]
    assert (missing["cumulative_cpu_nanos"], missing["memory_working_set_bytes"]) == (4_710_169_000, None)


def test_a_negative_start_time_does_not_cost_the_node() -> None:
    described = decode(read_fixture("negative-container-start-time.prom"))
    start_times = {
        pod["name"][-5:]: pod["containers"][0]["point"]["start_time_unix_nanos"] for pod in described["pods"]
    }
    assert start_times == {"fppzx": 0, "tpx4v": 1_650_974_202_419_137_280}


def test_labels_in_any_order_with_escapes() -> None:
    body = (
        b'container_cpu_usage_seconds_total{pod="a\\"b",image="x",container="c\\\\d",namespace="n\\ne"} 1.5 1000\n'
        b"container_memory_working_set_bytes"
        b'{namespace="n\\ne",container="c\\\\d",pod="a\\"b"} 1.253376e+07 2000\r\n'
    )
    described = decode(body)
    assert described["pods"] == [
        {
            "namespace": "n\ne",
            "name": 'a"b',
            "containers": [
                {
                    "name": "c\\d",
                    "point": {
                        "timestamp_unix_nanos": 2_000_000_000,
                        "cumulative_cpu_nanos": 1_500_000_000,
                        "memory_working_set_bytes": 12_533_760,
                        "start_time_unix_nanos": 0,
                    },
                }
            ],
        }
    ]
    assert described == expected_sample(body.replace(b"\r\n", b"\n"), "n1")


def test_families_match_whole_names_only() -> None:
    body = (
        f"container_cpu_usage_seconds_total_extra{COREDNS} 99 1000\n"
        "node_swap_usage_bytes 5 1000\n"
        "scrape_error 0"  # and no final newline
    ).encode()
    described = decode(body)
    assert (described["node_point"], described["pods"]) == (None, [])


def test_default_body_limit_is_shared_with_the_summary_decoder() -> None:
    body = b"scrape_error 0\n"
    assert _native.decode_resource_metrics(body, "n1", 1) == _native.decode_resource_metrics(
        body, "n1", 1, _native.DEFAULT_MAX_BODY_BYTES
    )


# --- errors ---------------------------------------------------------------------------------


def decode_error(body: bytes, node: str = "n1", **kwargs: int) -> _native.DecodeError:
    with pytest.raises(_native.DecodeError) as caught:
        _native.decode_resource_metrics(body, node, SCRAPE_TIME, **kwargs)
    return caught.value


def test_a_missing_label_names_node_offset_series_and_line() -> None:
    body = 'node_cpu_usage_seconds_total 1 1000\ncontainer_cpu_usage_seconds_total{container="c",pod="p"} 1\n'
    error = decode_error(body.encode(), node="worker-7")
    assert isinstance(error, ValueError)
    assert (error.kind, error.offset, error.field) == (
        "malformed",
        body.index("container_cpu"),
        'container_cpu_usage_seconds_total{container="c",pod="p"}',
    )
    assert str(error) == (
        f'decode /metrics/resource of node "worker-7": malformed at byte {error.offset} '
        '(field container_cpu_usage_seconds_total{container="c",pod="p"}): '
        "line 2: container series without a (non-empty) namespace label"
    )


def test_a_value_that_cannot_be_a_counter_is_a_wrong_type() -> None:
    body = f"container_cpu_usage_seconds_total{COREDNS} +Inf 1633253812125\n".encode()
    error = decode_error(body)
    assert (error.kind, error.offset, error.field) == (
        "wrong_type",
        body.index(b"+Inf"),
        f"container_cpu_usage_seconds_total{COREDNS}",
    )
    assert str(error).endswith("line 1: CPU usage +Inf is infinite")


def test_an_unparsable_value_is_malformed_at_the_value() -> None:
    body = f"container_memory_working_set_bytes{COREDNS} 12,5 1633253812125\n".encode()
    error = decode_error(body)
    assert (error.kind, error.offset) == ("malformed", body.index(b"12,5"))
    assert str(error).endswith('line 1: value "12,5" is not a number')


def test_a_scrape_error_without_data_is_a_kubelet_error() -> None:
    error = decode_error(b"scrape_error 0\nresource_scrape_error 1\n")
    assert (error.kind, error.offset, error.field) == ("kubelet_error", 15, "resource_scrape_error")
    assert str(error) == (
        'decode /metrics/resource of node "n1": kubelet_error at byte 15 (field resource_scrape_error): '
        "the kubelet reported a scrape error (resource_scrape_error is not 0) and sent no node or container metrics"
    )


def test_a_scrape_error_with_data_decodes_the_data() -> None:
    described = decode(b"node_memory_working_set_bytes 1.616273408e+09 1633253809720\nresource_scrape_error 1\n")
    assert described["node_point"] == {
        "timestamp_unix_nanos": 1_633_253_809_720_000_000,
        "cumulative_cpu_nanos": None,
        "memory_working_set_bytes": 1_616_273_408,
        "start_time_unix_nanos": 0,
    }


def test_a_body_cut_inside_a_label_set_is_truncated() -> None:
    body = read_fixture("kind-coredns-single-pod-full.prom")
    cut = body.index(b'namespace="kube-system"') + 5
    error = decode_error(body[:cut])
    assert (error.kind, error.offset) == ("truncated", cut)
    assert error.field == 'container_cpu_usage_seconds_total{container="coredns",names'


def test_an_empty_body_is_truncated() -> None:
    error = decode_error(b"")
    assert (error.kind, error.offset, error.field) == ("truncated", 0, "")


def test_oversized_body_is_refused_before_parsing() -> None:
    error = decode_error(b"\xff" * 101, max_body_bytes=100)
    assert (error.kind, error.offset, error.field) == ("oversized", 0, "")
    assert str(error) == (
        'decode /metrics/resource of node "n1": oversized at byte 0: body of 101 bytes exceeds the limit of 100 bytes'
    )


def test_invalid_utf8_is_an_encoding_error_naming_the_series() -> None:
    body = b'container_cpu_usage_seconds_total{container="c\xc3(",namespace="n",pod="p"} 1\n'
    error = decode_error(body)
    assert (error.kind, error.offset, error.field) == (
        "encoding",
        body.index(b"\xc3"),
        'container_cpu_usage_seconds_total{container="c',
    )


def test_a_summary_body_sent_to_this_decoder_is_malformed_at_byte_0() -> None:
    error = decode_error(b'{"node":{"nodeName":"n1"},"pods":[]}')
    assert (error.kind, error.offset, error.field) == ("malformed", 0, "")
    assert str(error).endswith("line 1: expected a metric name or a `#` comment")
