"""OpenAPI v2 and v3 documents as kube-apiserver's aggregator and kubectl read them: they parse,
every reference resolves, the metrics kinds carry their group-version-kind, and the handlers' ETag,
hash and caching rules are kube-openapi's."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from test_api_support import RunningApiServer, api_context, running_api_server

METRICS_KINDS = {
    "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics": "NodeMetrics",
    "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetricsList": "NodeMetricsList",
    "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics": "PodMetrics",
    "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetricsList": "PodMetricsList",
}
METRICS_PATHS = {
    "/apis/metrics.k8s.io/v1beta1/": ("getMetricsV1beta1APIResources", None),
    "/apis/metrics.k8s.io/v1beta1/nodes": ("listMetricsV1beta1NodeMetrics", "list"),
    "/apis/metrics.k8s.io/v1beta1/nodes/{name}": ("readMetricsV1beta1NodeMetrics", "get"),
    "/apis/metrics.k8s.io/v1beta1/pods": ("listMetricsV1beta1PodMetricsForAllNamespaces", "list"),
    "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods": ("listMetricsV1beta1NamespacedPodMetrics", "list"),
    "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}": (
        "readMetricsV1beta1NamespacedPodMetrics",
        "get",
    ),
}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningApiServer]:
    async with running_api_server(api_context(tmp_path / "certs")) as running:
        yield running


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def sha512_hex(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()


async def test_v2_document_has_the_metrics_paths_and_definitions(server: RunningApiServer) -> None:
    reply = await server.get("/openapi/v2")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    spec = orjson.loads(reply.body)
    assert spec["swagger"] == "2.0"
    assert spec["info"]["title"] == "kubemetrics"
    definitions = spec["definitions"]
    for name, kind in METRICS_KINDS.items():
        assert definitions[name]["x-kubernetes-group-version-kind"] == [
            {"group": "metrics.k8s.io", "kind": kind, "version": "v1beta1"}
        ]
    node_metrics = definitions["io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics"]
    assert node_metrics["required"] == ["timestamp", "window", "usage"]
    assert node_metrics["properties"]["usage"]["additionalProperties"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"
    }
    pod_metrics = definitions["io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics"]
    assert pod_metrics["properties"]["containers"]["x-kubernetes-list-type"] == "atomic"
    for ref in refs(spec):
        assert ref.removeprefix("#/definitions/") in definitions, ref
    for path, (operation_id, action) in METRICS_PATHS.items():
        operation = spec["paths"][path]["get"]
        assert operation["operationId"] == operation_id
        assert operation.get("x-kubernetes-action") == action
    list_nodes = spec["paths"]["/apis/metrics.k8s.io/v1beta1/nodes"]["get"]
    assert list_nodes["x-kubernetes-group-version-kind"] == {
        "group": "metrics.k8s.io",
        "kind": "NodeMetrics",
        "version": "v1beta1",
    }
    assert list_nodes["responses"]["200"]["schema"] == {
        "$ref": "#/definitions/io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetricsList"
    }


async def test_v2_etag_and_not_modified(server: RunningApiServer) -> None:
    reply = await server.get("/openapi/v2")
    cached = await server.get("/openapi/v2", headers={"If-None-Match": reply.headers["Etag"]})
    protobuf_only = await server.get(
        "/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v2.0+protobuf"}
    )

    assert reply.headers["Etag"] == f'"{sha512_hex(reply.body)}"'
    assert reply.headers["Vary"] == "Accept"
    assert (cached.status, cached.body) == (304, b"")
    # The protobuf form of the spec is not served.
    assert (protobuf_only.status, protobuf_only.body) == (406, b"")


async def test_v3_discovery_points_at_hashed_documents(server: RunningApiServer) -> None:
    reply = await server.get("/openapi/v3")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    paths = orjson.loads(reply.body)["paths"]
    assert sorted(paths) == ["apis", "apis/metrics.k8s.io", "apis/metrics.k8s.io/v1beta1"]
    for path, entry in paths.items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{path}?hash=")
        document = await server.get(url)
        assert document.status == 200
        assert url.endswith(sha512_hex(document.body))
        assert document.headers["Cache-Control"] == "public, immutable"
        assert "Expires" in document.headers


async def test_v3_group_version_document_serves_kubectl_explain(server: RunningApiServer) -> None:
    reply = await server.get("/openapi/v3/apis/metrics.k8s.io/v1beta1")

    assert reply.status == 200
    assert "Cache-Control" not in reply.headers
    spec = orjson.loads(reply.body)
    assert spec["openapi"] == "3.0.0"
    assert set(spec["paths"]) == set(METRICS_PATHS)
    schemas = spec["components"]["schemas"]
    for name, kind in METRICS_KINDS.items():
        assert schemas[name]["x-kubernetes-group-version-kind"] == [
            {"group": "metrics.k8s.io", "kind": kind, "version": "v1beta1"}
        ]
    # kube-openapi's v3 form: a reference with a description or default is wrapped in allOf.
    assert schemas["io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics"]["properties"]["metadata"] == {
        "default": {},
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
    }
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"] == [
        {"type": "string"},
        {"type": "number"},
    ]
    for ref in refs(spec):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    list_pods = spec["paths"]["/apis/metrics.k8s.io/v1beta1/pods"]["get"]
    assert set(list_pods["responses"]["200"]["content"]) == {"application/json", "application/vnd.kubernetes.protobuf"}


async def test_v3_stale_hash_redirects_and_unknown_documents_are_empty(server: RunningApiServer) -> None:
    discovery = orjson.loads((await server.get("/openapi/v3")).body)
    current = discovery["paths"]["apis/metrics.k8s.io/v1beta1"]["serverRelativeURL"]

    async with server.session.get(
        server.base_url + "/openapi/v3/apis/metrics.k8s.io/v1beta1?hash=0BSOLETE", allow_redirects=False
    ) as stale:
        assert stale.status == 301
        assert stale.headers["Location"] == current
    unknown = await server.get("/openapi/v3/apis/apps/v1")
    assert (unknown.status, unknown.body) == (200, b"")
