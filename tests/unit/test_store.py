"""MetricsStore through the native binding: ingestion of encoded NodeSamples, metrics-server's
two-point rules, metadata, selectors, and the exact metrics.k8s.io response bytes.

Samples are built with the protoc-generated `kubemetrics.v1.sample_pb2` classes (the same wire
format the workers push). Every render fixes `now`, so creationTimestamp is deterministic.
"""

from __future__ import annotations

import json
import threading
import types
from collections.abc import Sequence

import pytest
from kubemetrics._native import (
    LabelSelectorError,
    MetricsStore,
    StoreStats,
    decode_resource_metrics,
    decode_summary,
)
from kubemetrics.v1 import sample_pb2

SECOND = 1_000_000_000
MILLISECOND = 1_000_000
T0 = 1_785_838_500 * SECOND  # 2026-08-04T10:15:00Z
NOW = 1_785_838_531.75  # creationTimestamp 2026-08-04T10:15:31Z
CREATED = '"creationTimestamp":"2026-08-04T10:15:31Z"'
HOUR_AGO = T0 - 3600 * SECOND
GIB = 2**30


def point(timestamp: int, cpu: int | None, memory: int | None, start: int = 0) -> sample_pb2.ResourcePoint:
    return sample_pb2.ResourcePoint(
        timestamp_unix_nanos=timestamp,
        cumulative_cpu_nanos=cpu,
        memory_working_set_bytes=memory,
        start_time_unix_nanos=start,
    )


def container(name: str, reading: sample_pb2.ResourcePoint | None) -> sample_pb2.ContainerSample:
    return sample_pb2.ContainerSample(name=name, point=reading)


def pod(namespace: str, name: str, containers: Sequence[sample_pb2.ContainerSample]) -> sample_pb2.PodSample:
    return sample_pb2.PodSample(namespace=namespace, name=name, containers=containers)


def node_sample(
    node: str, node_point: sample_pb2.ResourcePoint | None, pods: Sequence[sample_pb2.PodSample] = ()
) -> bytes:
    sample = sample_pb2.NodeSample(node=node, scrape_time_unix_nanos=T0, node_point=node_point, pods=pods)
    return sample.SerializeToString()


def web_pod(timestamp: int, app_cpu: int, sidecar_cpu: int) -> sample_pb2.PodSample:
    return pod(
        "default",
        "web",
        [
            container("sidecar", point(timestamp, sidecar_cpu, 1000, HOUR_AGO)),
            container("app", point(timestamp, app_cpu, 12_533_760, HOUR_AGO)),
        ],
    )


def scraped_twice() -> MetricsStore:
    """node-a scraped at T0 and 15 s later: node at 500m / 1Gi over 15.004s, default/web's app at
    10m / 12240Ki and its sidecar at 1n / 1k over 15s."""
    store = MetricsStore(15.0)
    store.set_node_metadata("node-a", {"pool": "web", "kubernetes.io/hostname": "node-a"})
    store.set_pod_metadata("default", "web", {"app": "web"})
    first = node_sample("node-a", point(T0, 1_000 * SECOND, GIB), [web_pod(T0 + SECOND, 5 * SECOND, 100)])
    second = node_sample(
        "node-a",
        point(T0 + 15_004 * MILLISECOND, 1_000 * SECOND + 7_502_000_000, GIB),
        [web_pod(T0 + 16 * SECOND, 5 * SECOND + 150_000_000, 115)],
    )
    assert store.ingest([first]) == 1
    assert store.ingest([second]) == 1
    return store


NODE_A_ITEM = (
    '{"metadata":{"name":"node-a",' + CREATED + ',"labels":{"kubernetes.io/hostname":"node-a","pool":"web"}},'
    '"timestamp":"2026-08-04T10:15:15Z","window":"15.004s","usage":{"cpu":"500m","memory":"1Gi"}}'
)
WEB_ITEM = (
    '{"metadata":{"name":"web","namespace":"default",' + CREATED + ',"labels":{"app":"web"}},'
    '"timestamp":"2026-08-04T10:15:16Z","window":"15s","containers":['
    '{"name":"app","usage":{"cpu":"10m","memory":"12240Ki"}},'
    '{"name":"sidecar","usage":{"cpu":"1n","memory":"1k"}}]}'
)


def node_list(*item_texts: str) -> bytes:
    head = '{"kind":"NodeMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":['
    return (head + ",".join(item_texts) + "]}\n").encode()


def pod_list(*item_texts: str) -> bytes:
    head = '{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":['
    return (head + ",".join(item_texts) + "]}\n").encode()


def single(kind: str, item_text: str) -> bytes:
    return ('{"kind":"' + kind + '","apiVersion":"metrics.k8s.io/v1beta1",' + item_text[1:] + "\n").encode()


# --- rendering --------------------------------------------------------------------------------------


def test_node_list_is_byte_for_byte_metrics_server_json() -> None:
    assert scraped_twice().render_node_list(NOW) == node_list(NODE_A_ITEM)


def test_node_get_carries_kind_and_api_version() -> None:
    assert scraped_twice().render_node(NOW, "node-a") == single("NodeMetrics", NODE_A_ITEM)


def test_pod_list_and_get_are_byte_for_byte_metrics_server_json() -> None:
    store = scraped_twice()
    assert store.render_pod_list(NOW) == pod_list(WEB_ITEM)
    assert store.render_pod_list(NOW, "default") == pod_list(WEB_ITEM)
    assert store.render_pod(NOW, "default", "web") == single("PodMetrics", WEB_ITEM)


def test_empty_lists_have_an_empty_items_array() -> None:
    store = MetricsStore(15.0)
    assert store.render_node_list(NOW) == node_list()
    assert store.render_pod_list(NOW) == pod_list()
    assert scraped_twice().render_pod_list(NOW, "kube-system") == pod_list()


def test_creation_timestamp_is_the_request_time_truncated_to_seconds() -> None:
    body = scraped_twice().render_node(1_785_838_599.999, "node-a")
    assert body is not None
    assert json.loads(body)["metadata"]["creationTimestamp"] == "2026-08-04T10:16:39Z"


# --- two-point rules --------------------------------------------------------------------------------


def test_one_scrape_is_not_enough_to_serve_a_node_or_pod() -> None:
    store = MetricsStore(15.0)
    store.set_node_metadata("node-a", {})
    store.ingest([node_sample("node-a", point(T0, SECOND, GIB), [web_pod(T0, SECOND, 100)])])
    assert store.render_node(NOW, "node-a") is None
    assert store.render_pod(NOW, "default", "web") is None
    assert store.render_node_list(NOW) == node_list()
    assert not store.ready()


def test_node_without_metadata_is_not_served_but_keeps_its_points() -> None:
    store = scraped_twice()
    store.remove_node_metadata("node-a")
    assert not store.has_node_metadata("node-a")
    assert store.render_node(NOW, "node-a") is None
    assert store.render_node_list(NOW) == node_list()
    store.set_node_metadata("node-a", types.MappingProxyType({"pool": "web", "kubernetes.io/hostname": "node-a"}))
    assert store.render_node(NOW, "node-a") == single("NodeMetrics", NODE_A_ITEM)


def test_fresh_container_is_served_after_one_scrape() -> None:
    store = MetricsStore(15.0)
    started_12s_ago = pod("default", "new", [container("app", point(T0, 1_200_000_000, 4096, T0 - 12 * SECOND))])
    store.ingest([node_sample("node-a", None, [started_12s_ago])])
    body = store.render_pod(NOW, "default", "new")
    assert body == single(
        "PodMetrics",
        '{"metadata":{"name":"new","namespace":"default",' + CREATED + "},"
        '"timestamp":"2026-08-04T10:15:00Z","window":"12s",'
        '"containers":[{"name":"app","usage":{"cpu":"100m","memory":"4Ki"}}]}',
    )


def restarted_web_pod(timestamp: int, app_start: int) -> sample_pb2.PodSample:
    return pod(
        "default",
        "web",
        [
            container("sidecar", point(timestamp, 130, 1000, HOUR_AGO)),
            container("app", point(timestamp, 1_100, 12_533_760, app_start)),
        ],
    )


def test_restarted_container_hides_the_pod() -> None:
    store = scraped_twice()
    # app restarted 6 s before this scrape, after the stored reading (T0+16s): no prev, no pod.
    restarted = restarted_web_pod(T0 + 31 * SECOND, app_start=T0 + 25 * SECOND)
    store.ingest([node_sample("node-a", point(T0 + 30 * SECOND, 1_001 * SECOND, GIB), [restarted])])
    assert store.render_pod(NOW, "default", "web") is None
    assert store.stats().container_points == 1


def test_restarted_container_between_10s_and_one_resolution_old_is_rated_from_its_start() -> None:
    store = scraped_twice()
    restarted = restarted_web_pod(T0 + 31 * SECOND, app_start=T0 + 20 * SECOND)
    store.ingest([node_sample("node-a", point(T0 + 30 * SECOND, 1_001 * SECOND, GIB), [restarted])])
    body = store.render_pod(NOW, "default", "web")
    assert body is not None
    document = json.loads(body)
    assert document["window"] == "11s"
    assert document["containers"][0] == {"name": "app", "usage": {"cpu": "100n", "memory": "12240Ki"}}


def test_counter_decrease_skips_only_that_container() -> None:
    store = scraped_twice()
    store.ingest([node_sample("node-a", None, [web_pod(T0 + 31 * SECOND, 5 * SECOND + 300_000_000, 1)])])
    body = store.render_pod(NOW, "default", "web")
    assert body is not None
    containers = json.loads(body)["containers"]
    assert containers == [{"name": "app", "usage": {"cpu": "10m", "memory": "12240Ki"}}]


def test_one_container_without_memory_drops_the_whole_pod() -> None:
    store = scraped_twice()
    incomplete = pod(
        "default",
        "web",
        [
            container("sidecar", point(T0 + 31 * SECOND, 130, None, HOUR_AGO)),
            container("app", point(T0 + 31 * SECOND, 6 * SECOND, 12_533_760, HOUR_AGO)),
        ],
    )
    store.ingest([node_sample("node-a", point(T0 + 30 * SECOND, 1_001 * SECOND, GIB), [incomplete])])
    assert store.render_pod(NOW, "default", "web") is None
    assert store.stats().pods == 0


def test_a_node_sample_replaces_every_pod_the_node_reported() -> None:
    store = scraped_twice()
    store.ingest([node_sample("node-a", point(T0 + 30 * SECOND, 1_001 * SECOND, GIB))])
    assert store.render_pod_list(NOW) == pod_list()
    assert store.stats().pods == 0


def test_node_point_with_zero_cpu_hides_the_node() -> None:
    store = scraped_twice()
    store.ingest([node_sample("node-a", point(T0 + 30 * SECOND, 0, GIB))])
    assert store.render_node(NOW, "node-a") is None
    assert store.stats().nodes == 0


# --- selectors and field filters ----------------------------------------------------------------------


def test_label_selector_and_name_filter_lists() -> None:
    store = scraped_twice()
    assert store.render_node_list(NOW, "pool in (web, batch)") == node_list(NODE_A_ITEM)
    assert store.render_node_list(NOW, "pool!=web") == node_list()
    assert store.render_node_list(NOW, None, "node-a") == node_list(NODE_A_ITEM)
    assert store.render_node_list(NOW, None, "node-b") == node_list()
    assert store.render_pod_list(NOW, None, "app=web") == pod_list(WEB_ITEM)
    assert store.render_pod_list(NOW, None, "!app") == pod_list()
    assert store.render_pod_list(NOW, "default", None, "web") == pod_list(WEB_ITEM)
    assert store.render_pod_list(NOW, "default", None, "other") == pod_list()


def test_invalid_label_selector_raises_with_the_apiserver_message() -> None:
    store = scraped_twice()
    with pytest.raises(LabelSelectorError) as raised:
        store.render_pod_list(NOW, None, "app in web")
    assert str(raised.value) == "unable to parse requirement: found 'web' expected: '('"
    assert isinstance(raised.value, ValueError)
    with pytest.raises(LabelSelectorError, match=r"^found ',', expected: !, identifier, or 'end of string'$"):
        store.render_node_list(NOW, ",pool")


# --- metadata, forgetting, pruning ---------------------------------------------------------------------


def test_require_pod_metadata_serves_only_inventory_pods() -> None:
    store = MetricsStore(15.0, require_pod_metadata=True)
    fresh = pod("default", "new", [container("app", point(T0, 1_200_000_000, 4096, T0 - 12 * SECOND))])
    store.ingest([node_sample("node-a", None, [fresh])])
    assert store.render_pod(NOW, "default", "new") is None
    assert not store.has_pod_metadata("default", "new")
    store.set_pod_metadata("default", "new", {})
    assert store.has_pod_metadata("default", "new")
    body = store.render_pod(NOW, "default", "new")
    assert body is not None
    assert "labels" not in json.loads(body)["metadata"], "empty labels are omitted"
    store.remove_pod_metadata("default", "new")
    assert store.render_pod(NOW, "default", "new") is None


def test_forget_node_drops_its_points_and_pods() -> None:
    store = scraped_twice()
    store.forget_node("node-a")
    assert store.render_node(NOW, "node-a") is None
    assert store.render_pod(NOW, "default", "web") is None
    assert store.has_node_metadata("node-a")
    assert stats_tuple(store.stats()) == (0, 0, 0, 0, 0)


def test_retain_nodes_prunes_the_others_and_counts_them() -> None:
    store = scraped_twice()
    store.ingest([node_sample("node-b", point(T0, SECOND, GIB)), node_sample("node-c", point(T0, SECOND, GIB))])
    assert store.retain_nodes(iter(["node-b"])) == 2
    assert store.stats().nodes == 1
    assert store.stats().pods == 0
    assert store.retain_nodes(["node-b"]) == 0


# --- ingestion, stats, readiness ----------------------------------------------------------------------


def stats_tuple(stats: StoreStats) -> tuple[int, int, int, int, int]:
    return (stats.nodes, stats.node_points, stats.pods, stats.containers, stats.container_points)


def test_stats_and_readiness_follow_the_points() -> None:
    store = scraped_twice()
    assert stats_tuple(store.stats()) == (1, 1, 1, 2, 2)
    assert store.ready()
    store.ingest([node_sample("node-b", point(T0, SECOND, GIB))])
    assert stats_tuple(store.stats()) == (2, 1, 1, 2, 2)
    assert repr(store.stats()) == "StoreStats(nodes=2, node_points=1, pods=1, containers=2, container_points=2)"


def test_node_points_alone_are_not_ready() -> None:
    store = MetricsStore(15.0)
    store.ingest(
        [node_sample("node-a", point(T0, SECOND, GIB)), node_sample("node-a", point(T0 + 15 * SECOND, 2 * SECOND, GIB))]
    )
    assert store.stats().node_points == 1
    assert not store.ready()


def test_a_bad_sample_is_named_and_the_others_are_still_stored() -> None:
    store = MetricsStore(15.0)
    good = node_sample("node-a", point(T0, SECOND, GIB))
    with pytest.raises(ValueError, match=r"^samples\[1\] \(3 bytes\) is not an encoded NodeSample: .*2 valid samples"):
        store.ingest([good, b"\xff\xff\xff", node_sample("node-b", point(T0, SECOND, GIB))])
    assert store.stats().nodes == 2


def test_ingest_refuses_non_bytes() -> None:
    store = MetricsStore(15.0)
    with pytest.raises(TypeError, match=r"samples\[0\] must be bytes"):
        store.ingest(["not bytes"])  # type: ignore[list-item]
    assert store.ingest([]) == 0


def test_resolution_must_be_positive() -> None:
    with pytest.raises(ValueError, match="metric_resolution_seconds"):
        MetricsStore(0.0)


def test_renders_run_in_other_threads_while_ingesting() -> None:
    store = scraped_twice()
    bodies: list[bytes] = []
    errors: list[BaseException] = []

    def render_repeatedly() -> None:
        try:
            for _ in range(200):
                bodies.append(store.render_pod_list(NOW))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=render_repeatedly) for _ in range(3)]
    for thread in threads:
        thread.start()
    for step in range(200):
        timestamp = T0 + (17 + step) * SECOND
        store.ingest([node_sample("node-a", None, [web_pod(timestamp, 6 * SECOND + step * 1000, 200 + step)])])
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(bodies) == 600
    assert all(json.loads(body)["kind"] == "PodMetricsList" for body in bodies)


# --- a container reporting a zero working set (metrics-server #1330) ---------------------------------


def resource_body(timestamp: int, app_cpu_seconds: float, sidecar_memory: str) -> bytes:
    """/metrics/resource for default/web: `app` at 12240Ki and a `sidecar` whose working set is
    `sidecar_memory` as written, or that has no memory series at all when it is empty."""
    ms = timestamp // MILLISECOND
    started = HOUR_AGO // SECOND
    lines = []
    for name, cpu in (("app", app_cpu_seconds), ("sidecar", app_cpu_seconds / 10)):
        labels = f'{{container="{name}",namespace="default",pod="web"}}'
        lines.append(f"container_cpu_usage_seconds_total{labels} {cpu} {ms}")
        memory = "12533760" if name == "app" else sidecar_memory
        if memory:
            lines.append(f"container_memory_working_set_bytes{labels} {memory} {ms}")
        lines.append(f"container_start_time_seconds{labels} {started}")
    return ("\n".join(lines) + "\n").encode()


def summary_body(timestamp: int, app_cpu_seconds: float, sidecar_memory: str) -> bytes:
    """/stats/summary for default/web with the sidecar's `memory` object given as JSON text."""
    time_text = f"2026-08-04T10:15:{(timestamp - T0) // SECOND:02d}Z"
    start_text = "2026-08-04T09:15:00Z"

    def container_json(name: str, cpu_nanos: int, memory: str) -> str:
        cpu = f'{{"time":"{time_text}","usageCoreNanoSeconds":{cpu_nanos}}}'
        return f'{{"name":"{name}","startTime":"{start_text}","cpu":{cpu},"memory":{memory}}}'

    app_nanos = int(app_cpu_seconds * SECOND)
    containers = [
        container_json("app", app_nanos, f'{{"time":"{time_text}","workingSetBytes":12533760}}'),
        container_json("sidecar", app_nanos // 10, sidecar_memory),
    ]
    pods = f'[{{"podRef":{{"name":"web","namespace":"default"}},"containers":[{",".join(containers)}]}}]'
    return f'{{"node":{{"nodeName":"node-a"}},"pods":{pods}}}'.encode()


def zero_memory_scrapes(decoder: str, sidecar_memory: str | None) -> list[bytes]:
    """Two scrapes of default/web 15 s apart, decoded as a worker would; `sidecar_memory` None means
    the sidecar reports no working set at all."""
    samples = []
    for offset, app_cpu in ((SECOND, 5.0), (16 * SECOND, 5.15)):
        timestamp = T0 + offset
        if decoder == "resource":
            body = resource_body(timestamp, app_cpu, "" if sidecar_memory is None else sidecar_memory)
            samples.append(decode_resource_metrics(body, "node-a", timestamp))
        else:
            memory = "null"
            if sidecar_memory is not None:
                memory = f'{{"time":"2026-08-04T10:15:00Z","workingSetBytes":{sidecar_memory}}}'
            samples.append(decode_summary(summary_body(timestamp, app_cpu, memory), "node-a", timestamp))
    return samples


WEB_WITH_ZERO_MEMORY_SIDECAR = single(
    "PodMetrics",
    '{"metadata":{"name":"web","namespace":"default",' + CREATED + "},"
    '"timestamp":"2026-08-04T10:15:16Z","window":"15s","containers":['
    '{"name":"app","usage":{"cpu":"10m","memory":"12240Ki"}},'
    '{"name":"sidecar","usage":{"cpu":"1m","memory":"0"}}]}',
)


@pytest.mark.parametrize("decoder", ["resource", "summary"])
def test_a_sidecar_reporting_zero_memory_hides_its_pod_as_metrics_server_does(decoder: str) -> None:
    store = MetricsStore(15.0)
    assert store.ingest(zero_memory_scrapes(decoder, "0")) == 2
    assert store.render_pod(NOW, "default", "web") is None
    assert store.stats().pods == 0


@pytest.mark.parametrize("decoder", ["resource", "summary"])
def test_keep_zero_memory_containers_serves_the_pod_with_memory_zero(decoder: str) -> None:
    store = MetricsStore(15.0, keep_zero_memory_containers=True)
    assert store.ingest(zero_memory_scrapes(decoder, "0")) == 2
    assert store.render_pod(NOW, "default", "web") == WEB_WITH_ZERO_MEMORY_SIDECAR
    assert stats_tuple(store.stats()) == (0, 0, 1, 2, 2)


@pytest.mark.parametrize("decoder", ["resource", "summary"])
def test_keep_zero_memory_containers_still_hides_a_pod_with_missing_memory(decoder: str) -> None:
    store = MetricsStore(15.0, keep_zero_memory_containers=True)
    assert store.ingest(zero_memory_scrapes(decoder, None)) == 2
    assert store.render_pod(NOW, "default", "web") is None
    assert store.stats().pods == 0
