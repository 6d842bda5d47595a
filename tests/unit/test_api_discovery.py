"""Legacy discovery documents, byte for byte (reference/metrics-server.md §2.2), and what is not
served outside standalone mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_api_support import RunningApiServer, api_context, running_api_server

AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


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
    # Clients asking for aggregated discovery get the legacy document and fall back.
    aggregated = await server.get("/apis", headers={"Accept": AGGREGATED_ACCEPT})

    for reply in (plain, aggregated):
        assert reply.status == 200
        assert reply.content_type == "application/json"
        assert reply.body == expected


async def test_core_api_paths_are_absent_outside_standalone_mode(server: RunningApiServer) -> None:
    for path in ("/version", "/api", "/api/v1", "/api/v1/nodes", "/openapi/v2", "/"):
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
