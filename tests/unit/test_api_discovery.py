"""Legacy discovery documents, byte for byte (reference/metrics-server.md §2.2), and what is not
served outside standalone mode."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_api_support import RunningApiServer, api_context, running_api_server

AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
V2BETA1_THEN_JSON_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningApiServer]:
    async with running_api_server(api_context(tmp_path / "certs")) as running:
        yield running


async def test_resource_list_is_what_the_aggregator_probes(server: RunningApiServer) -> None:
    reply = await server.get("/apis/metrics.k8s.io/v1beta1")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert reply.body == (
        b'{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"metrics.k8s.io/v1beta1",'
        b'"resources":['
        b'{"name":"nodes","singularName":"","namespaced":false,"kind":"NodeMetrics","verbs":["get","list"]},'
        b'{"name":"pods","singularName":"","namespaced":true,"kind":"PodMetrics","verbs":["get","list"]}]}\n'
    )


async def test_api_group(server: RunningApiServer) -> None:
    reply = await server.get("/apis/metrics.k8s.io")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert reply.body == (
        b'{"kind":"APIGroup","apiVersion":"v1","name":"metrics.k8s.io",'
        b'"versions":[{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"}],'
        b'"preferredVersion":{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"}}\n'
    )


async def test_group_list_carries_the_server_address(server: RunningApiServer) -> None:
    expected = (
        '{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"metrics.k8s.io",'
        '"versions":[{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"}],'
        '"preferredVersion":{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"},'
        f'"serverAddressByClientCIDRs":[{{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:{server.port}"}}]}}]}}\n'
    ).encode()

    plain = await server.get("/apis")
    # v2beta1 aggregated discovery is gone (as in Kubernetes 1.35+ libraries): such clients get the
    # legacy document and fall back to it.
    beta_only = await server.get("/apis", headers={"Accept": V2BETA1_THEN_JSON_ACCEPT})

    for reply in (plain, beta_only):
        assert reply.status == 200
        assert reply.content_type == "application/json"
        assert reply.body == expected


async def test_core_api_paths_are_absent_outside_standalone_mode(server: RunningApiServer) -> None:
    for path in ("/version", "/api", "/api/v1", "/api/v1/nodes", "/"):
        reply = await server.get(path)
        assert reply.status == 404, path
        assert reply.content_type == "text/plain; charset=utf-8"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.body == b"404 page not found\n"


async def test_unknown_paths_under_the_group_are_status_404s(server: RunningApiServer) -> None:
    for path in (
        "/apis/metrics.k8s.io/v1",
        "/apis/metrics.k8s.io/v1beta1/services",
        "/apis/metrics.k8s.io/v1beta1/nodes/",
    ):
        reply = await server.get(path)
        assert reply.status == 404, path
        assert reply.content_type == "application/json"
        assert b'"message":"the server could not find the requested resource","reason":"NotFound"' in reply.body
    # Other groups are not ours: the plain mux answers.
    other = await server.get("/apis/apps/v1")
    assert (other.status, other.body) == (404, b"404 page not found\n")


AGGREGATED_ITEMS = (
    b'"items":[{"metadata":{"name":"metrics.k8s.io","creationTimestamp":null},"versions":[{"version":"v1beta1",'
    b'"resources":['
    b'{"resource":"nodes","responseKind":{"group":"","version":"","kind":"NodeMetrics"},"scope":"Cluster",'
    b'"singularResource":"","verbs":["get","list"]},'
    b'{"resource":"pods","responseKind":{"group":"","version":"","kind":"PodMetrics"},"scope":"Namespaced",'
    b'"singularResource":"","verbs":["get","list"]}],'
    b'"freshness":"Current"}]}]'
)


async def test_aggregated_discovery_as_kubectl_and_the_aggregator_ask_for_it(server: RunningApiServer) -> None:
    reply = await server.get("/apis", headers={"Accept": AGGREGATED_ACCEPT})

    assert reply.status == 200
    assert reply.content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert reply.body == (
        b'{"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","metadata":{},'
        + AGGREGATED_ITEMS
        + b"}\n"
    )
    # The apiserver hashes the cached list, whose kind and apiVersion are not set yet.
    etag = hashlib.sha512(b'{"metadata":{},' + AGGREGATED_ITEMS + b"}").hexdigest().upper()
    assert reply.headers["Etag"] == f'"{etag}"'
    assert reply.headers["Vary"] == "Accept"
    assert reply.headers["Cache-Control"] == "public"


async def test_aggregated_discovery_is_not_modified_for_a_matching_etag(server: RunningApiServer) -> None:
    first = await server.get("/apis", headers={"Accept": AGGREGATED_ACCEPT})
    again = await server.get("/apis", headers={"Accept": AGGREGATED_ACCEPT, "If-None-Match": first.headers["Etag"]})
    stale = await server.get("/apis", headers={"Accept": AGGREGATED_ACCEPT, "If-None-Match": '"0123"'})

    assert (again.status, again.body) == (304, b"")
    assert again.headers["Etag"] == first.headers["Etag"]
    assert (stale.status, stale.body) == (200, first.body)


async def test_discovery_documents_in_an_unservable_type_are_406(server: RunningApiServer) -> None:
    for path in ("/apis", "/apis/metrics.k8s.io", "/apis/metrics.k8s.io/v1beta1"):
        reply = await server.get(path, headers={"Accept": "application/yaml"})

        assert reply.status == 406, path
        assert b'"reason": "NotAcceptable"' in reply.body
