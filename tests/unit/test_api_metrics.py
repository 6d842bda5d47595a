"""metrics.k8s.io/v1beta1 over HTTPS: lists, gets, selectors, watch refusal and metrics-server's
exact error documents, served from a real MetricsStore."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from kubemetrics._native import LabelSelectorError
from test_api_support import (
    RunningApiServer,
    api_context,
    build_store,
    last_scrape_second,
    running_api_server,
)

NODES = "/apis/metrics.k8s.io/v1beta1/nodes"
PODS = "/apis/metrics.k8s.io/v1beta1/pods"


def rfc3339(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningApiServer]:
    async with running_api_server(api_context(tmp_path / "certs")) as running:
        yield running


@pytest.fixture
async def standalone_server(tmp_path: Path) -> AsyncIterator[RunningApiServer]:
    """No pod inventory: every pod with metrics is served, and only those are known."""
    ctx = api_context(tmp_path / "certs", standalone_core_api=True, with_pod_inventory=False)
    async with running_api_server(ctx) as running:
        yield running


def items(body: bytes) -> list[dict[str, object]]:
    document = orjson.loads(body)
    assert isinstance(document, dict)
    result = document["items"]
    assert isinstance(result, list)
    return result


def names(body: bytes) -> list[str]:
    found = []
    for item in items(body):
        metadata = item["metadata"]
        assert isinstance(metadata, dict)
        namespace = metadata.get("namespace")
        found.append(f"{namespace}/{metadata['name']}" if namespace else str(metadata["name"]))
    return found


# --- nodes ------------------------------------------------------------------------------------------


async def test_node_list_serves_every_node_with_metrics_sorted_by_name(server: RunningApiServer) -> None:
    reply = await server.get(NODES)

    assert reply.status == 200
    assert reply.content_type == "application/json"
    document = orjson.loads(reply.body)
    assert document["kind"] == "NodeMetricsList"
    assert document["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert document["metadata"] == {}
    # node-c has metadata but was never scraped: a list silently leaves it out.
    assert names(reply.body) == ["node-a", "node-b"]
    node_a = items(reply.body)[0]
    assert node_a["usage"] == {"cpu": "500m", "memory": "1Gi"}
    assert node_a["window"] == "15s"
    assert node_a["timestamp"] == rfc3339(last_scrape_second())
    assert node_a["metadata"]["labels"] == {"kubernetes.io/hostname": "node-a", "pool": "web"}  # type: ignore[index]


async def test_node_get_returns_one_node_metrics_object(server: RunningApiServer) -> None:
    reply = await server.get(f"{NODES}/node-b")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    document = orjson.loads(reply.body)
    assert document["kind"] == "NodeMetrics"
    assert document["metadata"]["name"] == "node-b"
    assert document["usage"] == {"cpu": "250m", "memory": "2Gi"}


async def test_node_with_metadata_but_no_metrics_is_a_nodemetrics_404(server: RunningApiServer) -> None:
    reply = await server.get(f"{NODES}/node-c")

    assert reply.status == 404
    assert reply.content_type == "application/json"
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"nodemetrics.metrics.k8s.io \\"node-c\\" not found","reason":"NotFound",'
        b'"details":{"name":"node-c","group":"metrics.k8s.io","kind":"nodemetrics"},"code":404}\n'
    )


async def test_unknown_node_is_a_core_node_404(server: RunningApiServer) -> None:
    reply = await server.get(f"{NODES}/no-such-node")

    assert reply.status == 404
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"node \\"no-such-node\\" not found","reason":"NotFound",'
        b'"details":{"name":"no-such-node","kind":"node"},"code":404}\n'
    )


async def test_node_label_selector_is_applied_by_the_store(server: RunningApiServer) -> None:
    assert names((await server.get(f"{NODES}?labelSelector=pool%3Dweb")).body) == ["node-a"]
    assert names((await server.get(f"{NODES}?labelSelector=pool+in+(web,system)")).body) == ["node-a", "node-b"]
    assert names((await server.get(f"{NODES}?labelSelector=pool%3Dnone")).body) == []


async def test_bad_label_selector_is_a_400_with_the_parser_message(server: RunningApiServer) -> None:
    selector = "pool in web"
    with pytest.raises(LabelSelectorError) as parse_error:
        server.ctx.store.render_node_list(time.time(), selector)
    message = json.dumps(str(parse_error.value), ensure_ascii=False)

    reply = await server.get(f"{NODES}?labelSelector=pool+in+web")

    assert reply.status == 400
    assert reply.content_type == "application/json"
    expected = (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        f'"message":{message},"reason":"BadRequest","code":400}}\n'
    )
    assert reply.text == expected


async def test_field_selector_on_node_name(server: RunningApiServer) -> None:
    assert names((await server.get(f"{NODES}?fieldSelector=metadata.name%3Dnode-b")).body) == ["node-b"]
    assert names((await server.get(f"{NODES}?fieldSelector=metadata.name%3D%3Dnode-a")).body) == ["node-a"]
    # != is filtered after rendering.
    assert names((await server.get(f"{NODES}?fieldSelector=metadata.name!%3Dnode-a")).body) == ["node-b"]
    # Contradictory terms and namespaces (nodes have none) match nothing.
    contradictory = "metadata.name%3Dnode-a,metadata.name%3Dnode-b"
    assert names((await server.get(f"{NODES}?fieldSelector={contradictory}")).body) == []
    assert names((await server.get(f"{NODES}?fieldSelector=metadata.namespace%3Ddefault")).body) == []
    assert names((await server.get(f"{NODES}?fieldSelector=metadata.namespace%3D")).body) == ["node-a", "node-b"]


async def test_field_selector_keeps_the_list_document_shape_when_filtering(server: RunningApiServer) -> None:
    reply = await server.get(f"{NODES}?fieldSelector=metadata.name!%3Dnode-b")
    plain = await server.get(f"{NODES}?fieldSelector=metadata.name%3Dnode-a")

    assert reply.status == 200
    filtered = orjson.loads(reply.body)
    unfiltered = orjson.loads(plain.body)
    for document in (filtered, unfiltered):
        for item in document["items"]:
            item["metadata"].pop("creationTimestamp")
    assert filtered == unfiltered
    assert reply.body.endswith(b"\n") == plain.body.endswith(b"\n")


async def test_unknown_field_selector_is_a_400(server: RunningApiServer) -> None:
    reply = await server.get(f"{PODS}?fieldSelector=spec.nodeName%3Dnode-a")

    assert reply.status == 400
    assert reply.content_type == "application/json"
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"\\"spec.nodeName\\" is not a known field selector: only \\"metadata.name\\", '
        b'\\"metadata.namespace\\"","reason":"BadRequest","code":400}\n'
    )


async def test_malformed_field_selectors_are_400s_with_apimachinery_messages(server: RunningApiServer) -> None:
    no_operator = await server.get(f"{NODES}?fieldSelector=metadata.name")
    unescaped = await server.get(f"{NODES}?fieldSelector=metadata.name%3Da%3Db")
    bad_escape = await server.get(f"{NODES}?fieldSelector=metadata.name%3Da%5Cx")

    assert [no_operator.status, unescaped.status, bad_escape.status] == [400, 400, 400]
    assert orjson.loads(no_operator.body)["message"] == (
        "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    )
    # Go prints the rune with %v: its code point.
    assert orjson.loads(unescaped.body)["message"] == "invalid field selector: unescaped character in value: 61"
    assert orjson.loads(bad_escape.body)["message"] == "invalid field selector: invalid escape sequence: \\x"


async def test_watch_on_a_list_is_method_not_allowed(server: RunningApiServer) -> None:
    for query in ("watch=true", "watch=1", "watch="):
        reply = await server.get(f"{NODES}?{query}")
        assert reply.status == 405, query
        assert reply.content_type == "application/json"
        assert reply.body == (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            b'"message":"watch is not supported on resources of kind \\"nodes.metrics.k8s.io\\"",'
            b'"reason":"MethodNotAllowed","details":{"group":"metrics.k8s.io","kind":"nodes"},"code":405}\n'
        )
    pods = await server.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?watch=true")
    assert pods.status == 405
    assert orjson.loads(pods.body)["message"] == 'watch is not supported on resources of kind "pods.metrics.k8s.io"'
    assert orjson.loads(pods.body)["details"] == {"group": "metrics.k8s.io", "kind": "pods"}


async def test_watch_false_and_paging_parameters_are_ignored(server: RunningApiServer) -> None:
    reply = await server.get(f"{NODES}?watch=false&limit=1&continue=abc&resourceVersion=0&timeoutSeconds=5")

    assert reply.status == 200
    assert names(reply.body) == ["node-a", "node-b"]


async def test_watch_paths_are_not_installed(server: RunningApiServer) -> None:
    reply = await server.get("/apis/metrics.k8s.io/v1beta1/watch/nodes")

    assert reply.status == 404
    assert reply.content_type == "application/json"
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"the server could not find the requested resource","reason":"NotFound",'
        b'"details":{},"code":404}\n'
    )


async def test_other_methods_are_method_not_allowed(server: RunningApiServer) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        reply = await server.request(method, f"{NODES}/node-a")
        assert reply.status == 405, method
        assert reply.content_type == "application/json"
        assert reply.body == (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            b'"message":"the server does not allow this method on the requested resource",'
            b'"reason":"MethodNotAllowed","details":{},"code":405}\n'
        )


# --- pods -------------------------------------------------------------------------------------------


async def test_pod_list_across_namespaces_is_sorted_by_namespace_then_name(server: RunningApiServer) -> None:
    reply = await server.get(PODS)

    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert orjson.loads(reply.body)["kind"] == "PodMetricsList"
    assert names(reply.body) == ["default/web-0", "default/web-1", "kube-system/coredns-0"]
    coredns = items(reply.body)[2]
    assert coredns["containers"] == [
        {"name": "coredns", "usage": {"cpu": "20m", "memory": "12240Ki"}},
        {"name": "sidecar", "usage": {"cpu": "5m", "memory": "5Mi"}},
    ]
    assert coredns["window"] == "15s"
    assert coredns["timestamp"] == rfc3339(last_scrape_second())
    assert coredns["metadata"]["labels"] == {"k8s-app": "kube-dns"}  # type: ignore[index]


async def test_namespaced_pod_list_and_selectors(server: RunningApiServer) -> None:
    base = "/apis/metrics.k8s.io/v1beta1/namespaces"
    assert names((await server.get(f"{base}/default/pods")).body) == ["default/web-0", "default/web-1"]
    assert names((await server.get(f"{base}/empty/pods")).body) == []
    assert names((await server.get(f"{PODS}?labelSelector=k8s-app%3Dkube-dns")).body) == ["kube-system/coredns-0"]
    assert names((await server.get(f"{PODS}?fieldSelector=metadata.namespace%3Dkube-system")).body) == [
        "kube-system/coredns-0"
    ]
    assert names((await server.get(f"{PODS}?fieldSelector=metadata.name%3Dweb-1")).body) == ["default/web-1"]
    assert names((await server.get(f"{PODS}?fieldSelector=metadata.namespace!%3Ddefault")).body) == [
        "kube-system/coredns-0"
    ]
    # The URL's namespace and a different fieldSelector namespace together match nothing.
    conflicting = await server.get(f"{base}/default/pods?fieldSelector=metadata.namespace%3Dkube-system")
    assert conflicting.status == 200
    assert names(conflicting.body) == []


async def test_pod_get_returns_its_containers(server: RunningApiServer) -> None:
    reply = await server.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    document = orjson.loads(reply.body)
    assert document["kind"] == "PodMetrics"
    assert document["metadata"]["namespace"] == "default"
    assert document["containers"] == [{"name": "app", "usage": {"cpu": "120m", "memory": "80Mi"}}]


async def test_running_pod_without_metrics_is_a_podmetrics_404_naming_namespace_and_pod(
    server: RunningApiServer,
) -> None:
    reply = await server.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-2")

    assert reply.status == 404
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"podmetrics.metrics.k8s.io \\"default/web-2\\" not found","reason":"NotFound",'
        b'"details":{"name":"default/web-2","group":"metrics.k8s.io","kind":"podmetrics"},"code":404}\n'
    )


async def test_unknown_pod_is_a_pods_404(server: RunningApiServer) -> None:
    reply = await server.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/ghost")

    assert reply.status == 404
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"pods \\"ghost\\" not found","reason":"NotFound",'
        b'"details":{"name":"ghost","kind":"pods"},"code":404}\n'
    )


async def test_without_pod_inventory_pods_are_known_only_by_their_metrics(
    standalone_server: RunningApiServer,
) -> None:
    listed = await standalone_server.get(PODS)
    missing = await standalone_server.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-2")

    assert names(listed.body) == ["default/web-0", "default/web-1", "kube-system/coredns-0"]
    # Pods without inventory labels are served without labels.
    assert "labels" not in items(listed.body)[0]["metadata"]  # type: ignore[operator]
    assert missing.status == 404
    assert orjson.loads(missing.body)["message"] == 'pods "web-2" not found'


async def test_names_are_escaped_in_messages_as_go_does(server: RunningApiServer) -> None:
    reply = await server.get(f"{NODES}/a%3Cb%3E%26c")

    assert reply.status == 404
    assert b'"message":"node \\"a\\u003cb\\u003e\\u0026c\\" not found"' in reply.body
    assert orjson.loads(reply.body)["details"]["name"] == "a<b>&c"


async def test_empty_store_serves_empty_lists(tmp_path: Path) -> None:
    store = build_store(with_pod_inventory=True)
    for node in ("node-a", "node-b"):
        store.forget_node(node)
    async with running_api_server(api_context(tmp_path / "certs", store=store)) as running:
        nodes = await running.get(NODES)
        pods = await running.get(PODS)
        node_a = await running.get(f"{NODES}/node-a")

    assert (nodes.status, names(nodes.body)) == (200, [])
    assert (pods.status, names(pods.body)) == (200, [])
    assert node_a.status == 404
    assert orjson.loads(node_a.body)["message"] == 'nodemetrics.metrics.k8s.io "node-a" not found'
