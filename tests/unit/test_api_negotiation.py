"""Accept-header negotiation: goautoneg's parsing and ordering, the apiserver's choice of
serializer and transformation, and what each real client gets over HTTPS."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from kubemetrics.api.negotiation import (
    AcceptClause,
    Endpoint,
    GroupVersionKind,
    Negotiated,
    Serializer,
    negotiate,
    parse_accept,
)
from test_api_support import RunningApiServer, api_context, running_api_server

NODES = "/apis/metrics.k8s.io/v1beta1/nodes"
PROTOBUF = "application/vnd.kubernetes.protobuf"

# What real clients send (kubectl v1.32.4 observed against this server; client-go rest/request.go).
KUBECTL_TOP_ACCEPT = "application/vnd.kubernetes.protobuf, */*"  # also the HPA (kube-controller-manager)
GENERATED_CLIENT_ACCEPT = "application/vnd.kubernetes.protobuf,application/json"  # top --use-protocol-buffers=false
KUBECTL_GET_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
JSON_CLIENT_ACCEPT = "application/json, */*"


# --- parsing --------------------------------------------------------------------------------------


def test_clauses_keep_parameters_and_sort_in_goautoneg_order() -> None:
    clauses = parse_accept("*/*;q=0.8, text/*, application/json;as=Table;v=v1;g=meta.k8s.io;q=0.9, image/png")

    # goautoneg's comparison mixes q and specificity (not a strict order), and Go's insertion sort
    # then puts application/json (q=0.9) before text/* (q=1): the same order as the apiserver.
    assert [(c.type, c.subtype, c.q) for c in clauses] == [
        ("image", "png", 1.0),
        ("application", "json", pytest.approx(0.9)),
        ("text", "*", 1.0),
        ("*", "*", pytest.approx(0.8)),
    ]
    assert clauses[1].params == {"as": "Table", "v": "v1", "g": "meta.k8s.io"}


def test_malformed_clauses_and_parameters_are_dropped_as_goautoneg_does() -> None:
    clauses = parse_accept("application, application/, a/b/c, */, a/b/, x/y;k;k2=;k3==v;k4=v=;q=bad, *")

    # q=bad parses as 0, which is no refusal; being specific, it even sorts before the wildcards.
    assert clauses == [
        AcceptClause("a", "b"),
        AcceptClause("x", "y", 0.0, {"k4": "v"}),
        AcceptClause("*", "*"),
        AcceptClause("*", "*"),
    ]


def test_specific_types_go_before_wildcards_with_equal_q() -> None:
    assert [c.type + "/" + c.subtype for c in parse_accept("*/*, application/*, application/json")] == [
        "application/json",
        "application/*",
        "*/*",
    ]


# --- choosing a representation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_TOP_ACCEPT, Negotiated(Serializer.PROTOBUF)),
        (GENERATED_CLIENT_ACCEPT, Negotiated(Serializer.PROTOBUF)),
        (JSON_CLIENT_ACCEPT, Negotiated(Serializer.JSON)),
        ("", Negotiated(Serializer.JSON)),
        ("*/*", Negotiated(Serializer.JSON)),
        ("application/*", Negotiated(Serializer.JSON)),
        (KUBECTL_GET_ACCEPT, Negotiated(Serializer.JSON, GroupVersionKind("meta.k8s.io", "v1", "Table"))),
        (
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
            Negotiated(Serializer.JSON, GroupVersionKind("meta.k8s.io", "v1beta1", "Table")),
        ),
        # A Table is JSON only: its protobuf clause is skipped for the next one.
        (
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json",
            Negotiated(Serializer.JSON),
        ),
        (
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
            Negotiated(Serializer.PROTOBUF, GroupVersionKind("meta.k8s.io", "v1", "PartialObjectMetadataList")),
        ),
        ("application/json;q=0.1, application/vnd.kubernetes.protobuf;q=0.9", Negotiated(Serializer.PROTOBUF)),
        ("application/yaml, application/json;q=0.5", Negotiated(Serializer.JSON)),
        ("application/json;pretty=1", Negotiated(Serializer.JSON, pretty=True)),
        ("application/json;stream=watch", Negotiated(Serializer.JSON)),
        ("application/json;sv=v1", Negotiated(Serializer.JSON)),
        ("application/yaml", None),
        ("text/html", None),
        ("application/json;as=Table;v=v2;g=meta.k8s.io", None),
        ("application/json;as=NodeMetrics;v=v1beta1;g=metrics.k8s.io", None),
        ("application/json;stream=other", None),
        ("application/json;sv=v2", None),
    ],
)
def test_metrics_resources_negotiate_like_the_apiserver(accept: str, expected: Negotiated | None) -> None:
    assert negotiate(accept, Endpoint.METRICS_RESOURCE) == expected


def test_errors_and_legacy_discovery_allow_no_transformation() -> None:
    assert negotiate(KUBECTL_GET_ACCEPT, Endpoint.PLAIN) == Negotiated(Serializer.JSON)
    assert negotiate("application/json;as=Table;v=v1;g=meta.k8s.io", Endpoint.PLAIN) is None
    assert negotiate(KUBECTL_TOP_ACCEPT, Endpoint.PLAIN) == Negotiated(Serializer.PROTOBUF)


def test_aggregated_discovery_takes_only_the_v2_list_clause() -> None:
    v2 = GroupVersionKind("apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList")
    kubectl = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    )

    assert negotiate(kubectl, Endpoint.AGGREGATED_DISCOVERY) == Negotiated(Serializer.JSON, v2)
    assert negotiate(
        "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        Endpoint.AGGREGATED_DISCOVERY,
    ) == Negotiated(Serializer.PROTOBUF, v2)
    assert (
        negotiate(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
            Endpoint.AGGREGATED_DISCOVERY,
        )
        is None
    )


# --- over HTTPS -------------------------------------------------------------------------------------


def without_creation_time(body: bytes) -> object:
    document = orjson.loads(body)
    del document["metadata"]["creationTimestamp"]
    return document


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningApiServer]:
    async with running_api_server(api_context(tmp_path / "certs")) as running:
        yield running


@pytest.mark.parametrize(
    ("accept", "content_type", "start"),
    [
        (KUBECTL_TOP_ACCEPT, PROTOBUF, b"k8s\x00\n)\n\x16metrics.k8s.io/v1beta1\x12\x0fNodeMetricsList"),
        (GENERATED_CLIENT_ACCEPT, PROTOBUF, b"k8s\x00\n)\n\x16metrics.k8s.io/v1beta1\x12\x0fNodeMetricsList"),
        (JSON_CLIENT_ACCEPT, "application/json", b'{"kind":"NodeMetricsList",'),
        ("*/*", "application/json", b'{"kind":"NodeMetricsList",'),
        (KUBECTL_GET_ACCEPT, "application/json", b'{"kind":"Table","apiVersion":"meta.k8s.io/v1",'),
        (
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
            "application/json",
            b'{"kind":"Table","apiVersion":"meta.k8s.io/v1beta1",',
        ),
        (
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
            "application/json",
            b'{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1",',
        ),
    ],
)
async def test_each_client_gets_its_representation(
    server: RunningApiServer, accept: str, content_type: str, start: bytes
) -> None:
    reply = await server.get(NODES, headers={"Accept": accept})

    assert reply.status == 200
    assert reply.content_type == content_type
    assert reply.body.startswith(start), reply.body[:80]


async def test_unservable_accept_is_a_406_written_as_raw_indented_json(server: RunningApiServer) -> None:
    for accept in ("application/yaml", "text/html", "application/json;as=Table;v=v1;g=meta.k8s.io;stream=x"):
        reply = await server.get(NODES, headers={"Accept": accept})

        assert reply.status == 406, accept
        assert reply.content_type == "application/json"
        # WriteRawJSON: json.MarshalIndent, no trailing newline.
        assert reply.body == (
            b'{\n  "kind": "Status",\n  "apiVersion": "v1",\n  "metadata": {},\n  "status": "Failure",\n'
            b'  "message": "only the following media types are accepted: application/json, '
            b'application/vnd.kubernetes.protobuf",\n  "reason": "NotAcceptable",\n  "code": 406\n}'
        )


async def test_negotiation_comes_before_selector_errors(server: RunningApiServer) -> None:
    reply = await server.get(f"{NODES}?labelSelector=a%20in", headers={"Accept": "application/yaml"})

    assert reply.status == 406


async def test_curl_and_pretty_get_indented_json(server: RunningApiServer) -> None:
    curl = await server.get(f"{NODES}/node-b", headers={"User-Agent": "curl/8.5.0"})
    asked = await server.get(f"{NODES}/node-b?pretty=true")
    declined = await server.get(f"{NODES}/node-b?pretty=false", headers={"User-Agent": "curl/8.5.0"})
    compact = await server.get(f"{NODES}/node-b")

    assert curl.body.startswith(b'{\n  "kind": "NodeMetrics",\n  "apiVersion": "metrics.k8s.io/v1beta1",\n')
    assert not curl.body.endswith(b"\n")
    assert without_creation_time(curl.body) == without_creation_time(compact.body)
    assert asked.body.startswith(b'{\n  "kind": "NodeMetrics"')
    assert declined.body.startswith(b'{"kind":"NodeMetrics"')
    assert compact.body.startswith(b'{"kind":"NodeMetrics"')


async def test_debug_log_names_the_encoding_each_request_got(
    server: RunningApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="kubemetrics.api.server"):
        await server.get(NODES, headers={"Accept": KUBECTL_TOP_ACCEPT})
        await server.get(NODES, headers={"Accept": KUBECTL_GET_ACCEPT})
        await server.get(f"{NODES}/nope", headers={"Accept": KUBECTL_TOP_ACCEPT})

    lines = [record.getMessage() for record in caplog.records if record.name == "kubemetrics.api.server"]
    assert any(f"GET {NODES} -> 200" in line and "[protobuf]" in line for line in lines), lines
    assert any(f"GET {NODES} -> 200" in line and "[json, meta.k8s.io/v1 Table]" in line for line in lines), lines
    assert any(f"GET {NODES}/nope -> 404" in line and "[protobuf Status]" in line for line in lines), lines
