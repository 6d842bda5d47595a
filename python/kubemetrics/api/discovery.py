"""Legacy API discovery for metrics.k8s.io (reference/metrics-server.md §2.2).

`GET /apis` (APIGroupList), `/apis/metrics.k8s.io` (APIGroup) and `/apis/metrics.k8s.io/v1beta1`
(APIResourceList). The kube-aggregator probes the last one to mark the APIService Available, so it
must answer quickly with a 2xx. Clients asking for aggregated discovery
(`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`) get the legacy
document with `Content-Type: application/json`, and fall back to per-group discovery as they do with
any server that does not speak the aggregated form.
"""

from __future__ import annotations

from aiohttp import web

from kubemetrics.api.encoding import JSON_CONTENT_TYPE, encode_object
from kubemetrics.api.status import METRICS_GROUP

METRICS_VERSION = "v1beta1"
METRICS_GROUP_VERSION = f"{METRICS_GROUP}/{METRICS_VERSION}"

_GROUP_VERSION = {"groupVersion": METRICS_GROUP_VERSION, "version": METRICS_VERSION}

# singularName is "" because metrics-server's storages return "" from GetSingularName, and the
# installer copies it as-is; verbs are exactly get and list (no watch).
METRICS_RESOURCE_LIST = encode_object(
    {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": METRICS_GROUP_VERSION,
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
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


class DiscoveryHandlers:
    def __init__(self, bind_address: str, port: int) -> None:
        self._bind_address = bind_address
        self._port = port

    async def api_group_list(self, request: web.Request) -> web.Response:
        return json_response(api_group_list(server_address_of(request, self._bind_address, self._port)))

    async def api_group(self, request: web.Request) -> web.Response:
        return json_response(METRICS_API_GROUP)

    async def resource_list(self, request: web.Request) -> web.Response:
        return json_response(METRICS_RESOURCE_LIST)
