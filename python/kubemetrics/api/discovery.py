"""API discovery for metrics.k8s.io (reference/metrics-server.md §2.2), legacy and aggregated.

Legacy: `GET /apis` (APIGroupList), `/apis/metrics.k8s.io` (APIGroup) and
`/apis/metrics.k8s.io/v1beta1` (APIResourceList), as JSON or protobuf. The kube-aggregator probes
the last one to mark the APIService Available, so it must answer quickly with a 2xx.

Aggregated: `GET /apis` with `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`
(or the protobuf form) gets the APIGroupDiscoveryList the generic apiserver builds from the same
resources (`endpoints/installer.go ConvertGroupVersionIntoToDiscovery`, `discovery/aggregated`):
`responseKind` with empty group and version, `scope`, `singularResource` "", verbs, freshness
`Current`, an ETag (SHA-512 of the cached document's JSON) with `Vary: Accept` and
`Cache-Control: public`, and a 304 for a matching `If-None-Match`. The kube-aggregator and
kubectl ask for it first; v2beta1 is no longer served (see negotiation.py), so such clients fall
back to the legacy documents.

All documents are built once; only `serverAddressByClientCIDRs` depends on the connection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from aiohttp import web

from kubemetrics.api import protobuf
from kubemetrics.api.encoding import JSON_CONTENT_TYPE, encode_object, escape_like_go
from kubemetrics.api.negotiation import Endpoint, Negotiated, negotiate, unsupported_media_types
from kubemetrics.api.responses import negotiated_response
from kubemetrics.api.status import METRICS_GROUP

METRICS_VERSION = "v1beta1"
METRICS_GROUP_VERSION = f"{METRICS_GROUP}/{METRICS_VERSION}"


@dataclass(frozen=True, slots=True)
class MetricsResource:
    """One served resource, as discovery describes it. singularName is "" because metrics-server's
    storages return "" from GetSingularName and the installer copies it as-is; verbs are exactly
    get and list (no watch)."""

    name: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ("get", "list")


METRICS_RESOURCES = (
    MetricsResource("nodes", "NodeMetrics", namespaced=False),
    MetricsResource("pods", "PodMetrics", namespaced=True),
)

_GROUP_VERSION = {"groupVersion": METRICS_GROUP_VERSION, "version": METRICS_VERSION}

METRICS_RESOURCE_LIST = encode_object(
    {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": METRICS_GROUP_VERSION,
        "resources": [
            {
                "name": resource.name,
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": list(resource.verbs),
            }
            for resource in METRICS_RESOURCES
        ],
    }
)

METRICS_API_GROUP = encode_object(
    {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": METRICS_GROUP,
        "versions": [_GROUP_VERSION],
        "preferredVersion": _GROUP_VERSION,
    }
)


def api_group_list(server_address: str) -> bytes:
    """`/apis`: the one group, with serverAddressByClientCIDRs as discovery/root.go adds it."""
    return encode_object(
        {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": METRICS_GROUP,
                    "versions": [_GROUP_VERSION],
                    "preferredVersion": _GROUP_VERSION,
                    "serverAddressByClientCIDRs": server_addresses(server_address),
                }
            ],
        }
    )


def server_addresses(server_address: str) -> list[dict[str, str]]:
    return [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]


def server_address_of(request: web.Request, bind_address: str, port: int) -> str:
    """The address clients reach us at: the bind address when it is specific, else the local address
    of this connection (the generic apiserver advertises its chosen public address the same way)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    host = bind_address
    if host in ("", "0.0.0.0", "::"):
        host = str(sockname[0]) if sockname else "127.0.0.1"
    if sockname:
        port = int(sockname[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def json_response(body: bytes) -> web.Response:
    return web.Response(body=body, headers={"Content-Type": JSON_CONTENT_TYPE})


# Legacy discovery in protobuf (meta/v1 generated.proto; every non-pointer field written).


def _group_version_protobuf() -> bytes:
    """GroupVersionForDiscovery{groupVersion, version}."""
    return protobuf.string(1, METRICS_GROUP_VERSION) + protobuf.string(2, METRICS_VERSION)


def _api_group_protobuf(server_address: str | None) -> bytes:
    """APIGroup{name, versions, preferredVersion, serverAddressByClientCIDRs}."""
    addresses = b""
    if server_address is not None:
        address = protobuf.string(1, "0.0.0.0/0") + protobuf.string(2, server_address)
        addresses = protobuf.message(4, address)
    return (
        protobuf.string(1, METRICS_GROUP)
        + protobuf.message(2, _group_version_protobuf())
        + protobuf.message(3, _group_version_protobuf())
        + addresses
    )


def api_group_list_protobuf(server_address: str) -> bytes:
    return protobuf.envelope("v1", "APIGroupList", protobuf.message(1, _api_group_protobuf(server_address)))


METRICS_API_GROUP_PROTOBUF = protobuf.envelope("v1", "APIGroup", _api_group_protobuf(None))


def _api_resource_protobuf(resource: MetricsResource) -> bytes:
    """APIResource{name, namespaced, kind, verbs{items}, shortNames, singularName, categories,
    group, version, storageVersionHash}."""
    return b"".join(
        (
            protobuf.string(1, resource.name),
            protobuf.integer(2, int(resource.namespaced)),
            protobuf.string(3, resource.kind),
            protobuf.message(4, protobuf.strings(1, resource.verbs)),
            protobuf.string(6, ""),
            protobuf.string(8, ""),
            protobuf.string(9, ""),
            protobuf.string(10, ""),
        )
    )


METRICS_RESOURCE_LIST_PROTOBUF = protobuf.envelope(
    "v1",
    "APIResourceList",
    protobuf.string(1, METRICS_GROUP_VERSION)
    + b"".join(protobuf.message(2, _api_resource_protobuf(resource)) for resource in METRICS_RESOURCES),
)


# Aggregated discovery (k8s.io/api apidiscovery/v2 types.go field order).

AGGREGATED_API_VERSION = "apidiscovery.k8s.io/v2"
AGGREGATED_KIND = "APIGroupDiscoveryList"


def _aggregated_items() -> list[dict[str, object]]:
    resources = [
        {
            "resource": resource.name,
            "responseKind": {"group": "", "version": "", "kind": resource.kind},
            "scope": "Namespaced" if resource.namespaced else "Cluster",
            "singularResource": "",
            "verbs": list(resource.verbs),
        }
        for resource in METRICS_RESOURCES
    ]
    return [
        {
            "metadata": {"name": METRICS_GROUP, "creationTimestamp": None},
            "versions": [{"version": METRICS_VERSION, "resources": resources, "freshness": "Current"}],
        }
    ]


AGGREGATED_DISCOVERY = encode_object(
    {"kind": AGGREGATED_KIND, "apiVersion": AGGREGATED_API_VERSION, "metadata": {}, "items": _aggregated_items()}
)

# The apiserver hashes the cached list before the encoder sets its kind and apiVersion.
AGGREGATED_DISCOVERY_ETAG = (
    hashlib.sha512(escape_like_go(orjson.dumps({"metadata": {}, "items": _aggregated_items()}))).hexdigest().upper()
)


def _aggregated_resource_protobuf(resource: MetricsResource) -> bytes:
    """APIResourceDiscovery{resource, responseKind{group, version, kind}, scope, singularResource, verbs}."""
    response_kind = protobuf.string(1, "") + protobuf.string(2, "") + protobuf.string(3, resource.kind)
    return b"".join(
        (
            protobuf.string(1, resource.name),
            protobuf.message(2, response_kind),
            protobuf.string(3, "Namespaced" if resource.namespaced else "Cluster"),
            protobuf.string(4, ""),
            protobuf.strings(5, resource.verbs),
        )
    )


def _aggregated_group_protobuf() -> bytes:
    """APIGroupDiscovery{metadata, versions: [APIVersionDiscovery{version, resources, freshness}]}."""
    version = (
        protobuf.string(1, METRICS_VERSION)
        + b"".join(protobuf.message(2, _aggregated_resource_protobuf(resource)) for resource in METRICS_RESOURCES)
        + protobuf.string(3, "Current")
    )
    return protobuf.message(1, protobuf.object_meta(METRICS_GROUP)) + protobuf.message(2, version)


AGGREGATED_DISCOVERY_PROTOBUF = protobuf.envelope(
    AGGREGATED_API_VERSION,
    AGGREGATED_KIND,
    protobuf.message(1, protobuf.EMPTY_LIST_META) + protobuf.message(2, _aggregated_group_protobuf()),
)


def negotiate_plain(request: web.Request) -> Negotiated:
    negotiated = negotiate(request.headers.get("Accept", ""), Endpoint.PLAIN)
    if negotiated is None:
        raise unsupported_media_types()
    return negotiated


class DiscoveryHandlers:
    def __init__(self, bind_address: str, port: int) -> None:
        self._bind_address = bind_address
        self._port = port

    async def api_group_list(self, request: web.Request) -> web.Response:
        aggregated = negotiate(request.headers.get("Accept", ""), Endpoint.AGGREGATED_DISCOVERY)
        if aggregated is not None and aggregated.target is not None:
            return await self._aggregated(request, aggregated)
        negotiated = negotiate_plain(request)
        address = server_address_of(request, self._bind_address, self._port)
        if negotiated.is_protobuf:
            return await negotiated_response(request, negotiated, api_group_list_protobuf(address))
        return await negotiated_response(request, negotiated, api_group_list(address))

    async def _aggregated(self, request: web.Request, negotiated: Negotiated) -> web.Response:
        quoted_etag = f'"{AGGREGATED_DISCOVERY_ETAG}"'
        headers = {"ETag": quoted_etag, "Vary": "Accept", "Cache-Control": "public"}
        if request.headers.get("If-None-Match") == quoted_etag:
            return web.Response(status=304, headers=headers)
        assert negotiated.target is not None
        content_type = negotiated.serializer.media_type + negotiated.target.media_type_params()
        body = AGGREGATED_DISCOVERY_PROTOBUF if negotiated.is_protobuf else AGGREGATED_DISCOVERY
        return await negotiated_response(request, negotiated, body, content_type=content_type, headers=headers)

    async def api_group(self, request: web.Request) -> web.Response:
        negotiated = negotiate_plain(request)
        body = METRICS_API_GROUP_PROTOBUF if negotiated.is_protobuf else METRICS_API_GROUP
        return await negotiated_response(request, negotiated, body)

    async def resource_list(self, request: web.Request) -> web.Response:
        negotiated = negotiate_plain(request)
        body = METRICS_RESOURCE_LIST_PROTOBUF if negotiated.is_protobuf else METRICS_RESOURCE_LIST
        return await negotiated_response(request, negotiated, body)
