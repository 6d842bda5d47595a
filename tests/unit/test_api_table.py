"""`kubectl get nodes.metrics.k8s.io` / `pods.metrics.k8s.io`: the meta.k8s.io Table that
metrics-server's ConvertToTable and the apiserver's includeObject handling produce, byte for byte
(reference/metrics-server.md §2.5), and the metadata-only views."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kubemetrics._native import ResponseView
from test_api_support import RunningApiServer, api_context, build_store, last_scrape_second, running_api_server

NODES = "/apis/metrics.k8s.io/v1beta1/nodes"
PODS = "/apis/metrics.k8s.io/v1beta1/pods"
WEB_0 = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-0"
KUBECTL_GET_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
TABLE_V1BETA1 = "application/json;as=Table;v=v1beta1;g=meta.k8s.io"

COLUMNS = (
    b'"columnDefinitions":['
    b'{"name":"Name","type":"string","format":"name","description":"Name of the resource","priority":0},'
    b'{"name":"cpu","type":"string","format":"quantity","description":"","priority":0},'
    b'{"name":"memory","type":"string","format":"quantity","description":"","priority":0},'
    b'{"name":"Window","type":"string","format":"duration","description":"","priority":0}],'
)
CREATION_TIMESTAMP = re.compile(rb'"creationTimestamp":"([0-9TZ:-]+)"')


def rfc3339(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


@dataclass
class TableServer:
    server: RunningApiServer
    scraped: str

    async def get(self, path: str, accept: str = KUBECTL_GET_ACCEPT) -> tuple[int, bytes]:
        """Status and body with every creationTimestamp (the response time) checked and replaced by NOW."""
        before = int(time.time())
        reply = await self.server.get(path, headers={"Accept": accept})
        after = int(time.time())
        return reply.status, stamp_out_response_time(reply.body, before, after)


def stamp_out_response_time(body: bytes, before: int, after: int) -> bytes:
    for match in CREATION_TIMESTAMP.finditer(body):
        second = calendar.timegm(time.strptime(match.group(1).decode(), "%Y-%m-%dT%H:%M:%SZ"))
        assert before <= second <= after, match.group(0)
    return CREATION_TIMESTAMP.sub(b'"creationTimestamp":"NOW"', body)


@pytest.fixture
async def tables(tmp_path: Path) -> AsyncIterator[TableServer]:
    latest = last_scrape_second()
    store = build_store(with_pod_inventory=True, latest_second=latest)
    async with running_api_server(api_context(tmp_path / "certs", store=store)) as running:
        yield TableServer(running, rfc3339(latest))


def partial(name: str, labels: bytes, namespace: str = "", version: bytes = b"v1") -> bytes:
    namespace_field = f'"namespace":"{namespace}",'.encode() if namespace else b""
    return (
        b'{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/' + version + b'",'
        b'"metadata":{"name":"' + name.encode() + b'",' + namespace_field + b'"creationTimestamp":"NOW",'
        b'"labels":' + labels + b"}}"
    )


NODE_A_LABELS = b'{"kubernetes.io/hostname":"node-a","pool":"web"}'
NODE_B_LABELS = b'{"kubernetes.io/hostname":"node-b","pool":"system"}'


async def test_node_table_is_what_kubectl_get_receives(tables: TableServer) -> None:
    status, body = await tables.get(NODES)

    assert status == 200
    assert body == (
        b'{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},' + COLUMNS + b'"rows":['
        b'{"cells":["node-a","500m","1Gi","15s"],"object":' + partial("node-a", NODE_A_LABELS) + b"},"
        b'{"cells":["node-b","250m","2Gi","15s"],"object":' + partial("node-b", NODE_B_LABELS) + b"}]}\n"
    )


async def test_pod_cells_sum_containers_and_rows_carry_the_namespace(tables: TableServer) -> None:
    status, body = await tables.get(PODS)

    # coredns-0: 20m + 5m = 25m; 12240Ki + 5Mi = 17360Ki (Quantity.Add, then canonical form).
    assert status == 200
    assert body == (
        b'{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},' + COLUMNS + b'"rows":['
        b'{"cells":["web-0","100m","64Mi","15s"],"object":' + partial("web-0", b'{"app":"web"}', "default") + b"},"
        b'{"cells":["web-1","120m","80Mi","15s"],"object":' + partial("web-1", b'{"app":"web"}', "default") + b"},"
        b'{"cells":["coredns-0","25m","17360Ki","15s"],"object":'
        + partial("coredns-0", b'{"k8s-app":"kube-dns"}', "kube-system")
        + b"}]}\n"
    )


async def test_empty_table_has_null_columns_and_rows(tables: TableServer) -> None:
    status, body = await tables.get(f"{NODES}?labelSelector=pool%3Dnone")

    assert status == 200
    assert (
        body == b'{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},"columnDefinitions":null,"rows":null}\n'
    )


async def test_v1beta1_table_and_include_object_none(tables: TableServer) -> None:
    status, body = await tables.get(f"{NODES}?includeObject=None&fieldSelector=metadata.name%3Dnode-b", TABLE_V1BETA1)

    assert status == 200
    assert body == (
        b'{"kind":"Table","apiVersion":"meta.k8s.io/v1beta1","metadata":{},'
        + COLUMNS
        + b'"rows":[{"cells":["node-b","250m","2Gi","15s"],"object":null}]}\n'
    )


async def test_include_object_embeds_the_full_metrics_object(tables: TableServer) -> None:
    status, body = await tables.get(f"{WEB_0}?includeObject=Object")

    assert status == 200
    assert body == (
        b'{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},'
        + COLUMNS
        + b'"rows":[{"cells":["web-0","100m","64Mi","15s"],"object":{"kind":"PodMetrics",'
        b'"apiVersion":"metrics.k8s.io/v1beta1","metadata":{"name":"web-0","namespace":"default",'
        b'"creationTimestamp":"NOW","labels":{"app":"web"}},"timestamp":"' + tables.scraped.encode() + b'",'
        b'"window":"15s","containers":[{"name":"app","usage":{"cpu":"100m","memory":"64Mi"}}]}}]}\n'
    )


async def test_a_get_is_a_one_row_table_and_a_missing_object_a_json_status(tables: TableServer) -> None:
    status, body = await tables.get(f"{NODES}/node-b", TABLE_V1)
    missing_status, missing = await tables.get(f"{NODES}/node-c")
    only_table_status, only_table = await tables.get(f"{NODES}/node-c", TABLE_V1)

    assert status == 200
    assert body.endswith(
        b'"rows":[{"cells":["node-b","250m","2Gi","15s"],"object":' + partial("node-b", NODE_B_LABELS) + b"}]}\n"
    )
    # The Status cannot be a Table: kubectl's fallback clause (plain JSON) is used ...
    assert missing_status == 404
    assert orjson.loads(missing)["message"] == 'nodemetrics.metrics.k8s.io "node-c" not found'
    assert missing.endswith(b"}\n")
    # ... and without one the apiserver writes it as raw indented JSON.
    assert only_table_status == 404
    assert only_table.startswith(b'{\n  "kind": "Status",')


async def test_unknown_include_object_is_a_bad_request(tables: TableServer) -> None:
    status, body = await tables.get(f"{NODES}?includeObject=Everything")

    assert status == 400
    assert orjson.loads(body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Unable to convert to Table as requested: includeObject: Invalid value: "Everything": '
        "must be 'Metadata', 'Object', 'None', or empty",
        "reason": "BadRequest",
        "code": 400,
    }


async def test_a_bad_label_selector_is_reported_before_a_bad_include_object(tables: TableServer) -> None:
    status, body = await tables.get(f"{NODES}?includeObject=Everything&labelSelector=a%20in")
    _, plain = await tables.get(f"{NODES}?labelSelector=a%20in", "application/json")

    assert status == 400
    assert body == plain
    assert "unable to parse requirement" in orjson.loads(body)["message"]


async def test_partial_object_metadata_list_and_object(tables: TableServer) -> None:
    list_status, listed = await tables.get(
        PODS + "?labelSelector=app%3Dweb", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    )
    get_status, got = await tables.get(
        f"{NODES}/node-a", "application/json;as=PartialObjectMetadata;v=v1beta1;g=meta.k8s.io"
    )
    _, empty = await tables.get(
        f"{NODES}?labelSelector=pool%3Dnone", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    )

    assert list_status == 200
    assert listed == (
        b'{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{},"items":['
        + partial("web-0", b'{"app":"web"}', "default")
        + b","
        + partial("web-1", b'{"app":"web"}', "default")
        + b"]}\n"
    )
    assert get_status == 200
    assert got == partial("node-a", NODE_A_LABELS, version=b"v1beta1") + b"\n"
    # asPartialObjectMetadataList appends to a nil slice.
    assert empty == b'{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{},"items":null}\n'


async def test_metadata_of_the_wrong_arity_is_not_acceptable(tables: TableServer) -> None:
    single_for_list = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io, application/json"
    list_for_single = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io, application/json"

    list_status, listed = await tables.get(NODES, single_for_list)
    get_status, got = await tables.get(WEB_0, list_for_single)

    assert (list_status, get_status) == (406, 406)
    assert orjson.loads(listed)["message"] == (
        "you requested PartialObjectMetadata, but the requested object is a list (*metrics.NodeMetricsList)"
    )
    assert orjson.loads(got) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "you requested PartialObjectMetadataList, but the requested object is not a list "
        "(*metrics.PodMetrics)",
        "reason": "NotAcceptable",
        "details": {},
        "code": 406,
    }


async def test_exclusions_and_contradictions_of_the_field_selector_apply_to_tables(tables: TableServer) -> None:
    _, without_a = await tables.get(f"{NODES}?fieldSelector=metadata.name!%3Dnode-a")
    _, pods = await tables.get(f"{PODS}?fieldSelector=metadata.namespace!%3Ddefault&includeObject=None")
    _, nothing = await tables.get(f"{NODES}?fieldSelector=metadata.name%3Dnode-a,metadata.name%3Dnode-b")

    assert [row["cells"][0] for row in orjson.loads(without_a)["rows"]] == ["node-b"]
    assert orjson.loads(pods)["rows"] == [{"cells": ["coredns-0", "25m", "17360Ki", "15s"], "object": None}]
    assert orjson.loads(nothing)["rows"] is None


def test_response_views_are_validated() -> None:
    assert repr(ResponseView("table", meta_version="v1beta1", include_object="")) == (
        "ResponseView('table', meta_version='v1beta1', include_object='Metadata')"
    )
    assert repr(ResponseView("metadata", encoding="protobuf")) == (
        "ResponseView('metadata', encoding='protobuf', meta_version='v1')"
    )
    for bad in (
        lambda: ResponseView("table", encoding="protobuf"),
        lambda: ResponseView("yaml"),
        lambda: ResponseView("object", encoding="yaml"),
        lambda: ResponseView("table", meta_version="v2"),
        lambda: ResponseView("table", include_object="All"),
    ):
        with pytest.raises(ValueError):
            bad()
