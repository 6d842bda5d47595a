"""The demo-only standalone core API: /version, /api, /api/v1 and nodes from the inventory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from test_api_support import RunningApiServer, api_context, running_api_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningApiServer]:
    ctx = api_context(tmp_path / "certs", standalone_core_api=True)
    async with running_api_server(ctx) as running:
        yield running


def node_names(body: bytes) -> list[str]:
    return [item["metadata"]["name"] for item in orjson.loads(body)["items"]]


async def test_version_looks_like_a_1_32_apiserver(server: RunningApiServer) -> None:
    reply = await server.get("/version?timeout=5s")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    document = orjson.loads(reply.body)
    assert (document["major"], document["minor"]) == ("1", "32")
    assert document["gitVersion"].startswith("v1.32.0+kubemetrics.")
    assert list(document) == [
        "major",
        "minor",
        "gitVersion",
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ]
    # Indented, as apiserver's WriteRawJSON writes it.
    assert reply.body.startswith(b'{\n  "major": "1",\n  "minor": "32",\n')


async def test_core_discovery_documents(server: RunningApiServer) -> None:
    versions = await server.get("/api")
    resources = await server.get("/api/v1")
    groups = await server.get("/apis")

    assert versions.status == 200
    assert versions.content_type == "application/json"
    assert versions.body == (
        b'{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":'
        + f'[{{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:{server.port}"}}]}}\n'.encode()
    )
    assert resources.body == (
        b'{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"nodes","singularName":"node",'
        b'"namespaced":false,"kind":"Node","verbs":["get","list"],"shortNames":["no"]}]}\n'
    )
    # Only metrics.k8s.io exists besides the core group.
    assert [group["name"] for group in orjson.loads(groups.body)["groups"]] == ["metrics.k8s.io"]


async def test_node_list_comes_from_the_inventory(server: RunningApiServer) -> None:
    reply = await server.get("/api/v1/nodes")

    assert reply.status == 200
    assert reply.content_type == "application/json"
    document = orjson.loads(reply.body)
    assert (document["kind"], document["apiVersion"]) == ("NodeList", "v1")
    assert node_names(reply.body) == ["node-a", "node-b", "node-c"]
    node_c = document["items"][2]
    assert node_c["status"]["allocatable"] == {"cpu": "8", "memory": "32Gi", "pods": "110"}
    assert node_c["status"]["addresses"] == [
        {"type": "InternalIP", "address": "127.1.0.3"},
        {"type": "Hostname", "address": "node-c"},
    ]
    assert node_c["status"]["conditions"][0]["type"] == "Ready"
    assert node_c["status"]["conditions"][0]["status"] == "True"
    assert node_c["metadata"]["labels"] == {"kubernetes.io/hostname": "node-c", "pool": "web"}
    assert list(node_c) == ["metadata", "spec", "status"]


async def test_node_list_selectors(server: RunningApiServer) -> None:
    assert node_names((await server.get("/api/v1/nodes?labelSelector=pool%3Dweb")).body) == ["node-a", "node-c"]
    assert node_names((await server.get("/api/v1/nodes?labelSelector=pool+notin+(web)")).body) == ["node-b"]
    assert node_names((await server.get("/api/v1/nodes?labelSelector=!pool")).body) == []
    assert node_names((await server.get("/api/v1/nodes?fieldSelector=metadata.name%3Dnode-b")).body) == ["node-b"]
    assert node_names((await server.get("/api/v1/nodes?fieldSelector=metadata.name!%3Dnode-b")).body) == [
        "node-a",
        "node-c",
    ]

    unsupported = await server.get("/api/v1/nodes?fieldSelector=spec.unschedulable%3Dtrue")
    assert unsupported.status == 400
    assert unsupported.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"field label not supported: spec.unschedulable","reason":"BadRequest","code":400}\n'
    )
    bad_labels = await server.get("/api/v1/nodes?labelSelector=pool+in+web")
    assert bad_labels.status == 400
    assert orjson.loads(bad_labels.body)["reason"] == "BadRequest"


async def test_node_get_and_not_found(server: RunningApiServer) -> None:
    found = await server.get("/api/v1/nodes/node-a")
    missing = await server.get("/api/v1/nodes/node-z")
    other = await server.get("/api/v1/pods")

    assert found.status == 200
    document = orjson.loads(found.body)
    assert (document["kind"], document["apiVersion"], document["metadata"]["name"]) == ("Node", "v1", "node-a")
    assert document["status"]["allocatable"]["cpu"] == "4"
    assert missing.status == 404
    assert missing.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"nodes \\"node-z\\" not found","reason":"NotFound",'
        b'"details":{"name":"node-z","kind":"nodes"},"code":404}\n'
    )
    assert other.status == 404
    assert orjson.loads(other.body)["message"] == "the server could not find the requested resource"
