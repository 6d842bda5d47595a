"""A read-only sliver of the core Kubernetes API, so that `kubectl top` works against kubemetrics
alone. DEMO ONLY: served only with `--standalone-core-api`, never in a real cluster (there the
kube-apiserver owns these paths and kubemetrics is reached through the aggregator).

kubectl needs (reference/kubelet-and-clients.md, "the smallest server kubectl top accepts"):
`/version`, `/api`, `/apis` (discovery), `/api/v1/nodes` with `status.allocatable` for the
percentage columns, and the metrics paths. Nodes come from the inventory. It has no creation
times, so the API server's start time stands in for them; every node reports Ready.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping

from aiohttp import web

import kubemetrics
from kubemetrics.api import ApiContext
from kubemetrics.api.discovery import json_response, server_address_of, server_addresses
from kubemetrics.api.encoding import JSON_CONTENT_TYPE, encode_indented, encode_object
from kubemetrics.api.field_selector import NAME_FIELD, parse_field_selector
from kubemetrics.api.label_selector import parse_label_selector
from kubemetrics.api.metrics_api import wants_watch
from kubemetrics.api.status import bad_request, method_not_supported, not_found
from kubemetrics.inventory import NodeInfo

# kubectl warns when the server is more than one minor version away; 1.32 matches the kubectl this
# project tests with. Build metadata keeps it a valid semantic version that says what it is.
KUBERNETES_MAJOR = "1"
KUBERNETES_MINOR = "32"
GIT_VERSION = f"v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.0+kubemetrics.{kubemetrics.__version__}"

CORE_RESOURCE_LIST = encode_object(
    {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "nodes",
                "singularName": "node",
                "namespaced": False,
                "kind": "Node",
                "verbs": ["get", "list"],
                "shortNames": ["no"],
            }
        ],
    }
)


def version_document() -> bytes:
    """`/version` as a kube-apiserver 1.32 writes it (indented, apimachinery version.Info fields)."""
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine().lower())
    return encode_indented(
        {
            "major": KUBERNETES_MAJOR,
            "minor": KUBERNETES_MINOR,
            "gitVersion": GIT_VERSION,
            "gitCommit": "",
            "gitTreeState": "",
            "buildDate": "",
            "goVersion": "",
            "compiler": "",
            "platform": f"{platform.system().lower()}/{machine}",
        }
    )


def rfc3339_seconds(unix_seconds: float) -> str:
    """metav1.Time: UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def node_object(node: NodeInfo, created: str) -> dict[str, object]:
    """A v1 Node (without kind/apiVersion, as list items are) in Go struct field order."""
    metadata: dict[str, object] = {"name": node.name, "creationTimestamp": created}
    if node.labels:
        metadata["labels"] = _sorted(node.labels)
    if node.annotations:
        metadata["annotations"] = _sorted(node.annotations)
    status: dict[str, object] = {}
    if node.capacity:
        status["capacity"] = _sorted(node.capacity)
    if node.allocatable:
        status["allocatable"] = _sorted(node.allocatable)
    status["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "lastHeartbeatTime": created,
            "lastTransitionTime": created,
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
    ]
    if node.addresses:
        status["addresses"] = [{"type": address.type, "address": address.address} for address in node.addresses]
    if node.kubelet_port:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": node.kubelet_port}}
    return {"metadata": metadata, "spec": {}, "status": status}


def _sorted(values: Mapping[str, str]) -> dict[str, str]:
    # Go marshals maps with sorted keys.
    return dict(sorted(values.items()))


class CoreApi:
    def __init__(self, ctx: ApiContext, started_at_unix: float | None = None) -> None:
        self._ctx = ctx
        self._created = rfc3339_seconds(time.time() if started_at_unix is None else started_at_unix)
        self._version = version_document()

    async def version(self, request: web.Request) -> web.Response:
        return json_response(self._version)

    async def api_versions(self, request: web.Request) -> web.Response:
        address = server_address_of(request, self._ctx.options.bind_address, self._ctx.options.secure_port)
        # The legacy root handler encodes APIVersions with an empty group version: no apiVersion key.
        body = encode_object(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": server_addresses(address)}
        )
        return json_response(body)

    async def resource_list(self, request: web.Request) -> web.Response:
        return json_response(CORE_RESOURCE_LIST)

    async def list_nodes(self, request: web.Request) -> web.Response:
        query = request.query
        selector = parse_label_selector(query.get("labelSelector", ""))
        wanted_names, excluded_names = _node_name_filter(query.get("fieldSelector", ""))
        if wants_watch(query):
            raise method_not_supported("", "nodes", "watch")
        nodes = self._ctx.inventory().nodes
        items = [
            node_object(node, self._created)
            for name, node in sorted(nodes.items())
            if selector.matches(node.labels)
            and (wanted_names is None or name in wanted_names)
            and name not in excluded_names
        ]
        body = encode_object({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": items})
        return web.Response(body=body, headers={"Content-Type": JSON_CONTENT_TYPE})

    async def get_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        node = self._ctx.inventory().nodes.get(name)
        if node is None:
            raise not_found("", "nodes", name)
        return json_response(encode_object({"kind": "Node", "apiVersion": "v1", **node_object(node, self._created)}))


def _node_name_filter(field_selector: str) -> tuple[set[str] | None, set[str]]:
    """(names an `=` term allows or None for any, names a `!=` term excludes). Only metadata.name is
    supported; the core node conversion func rejects other fields with this message."""
    wanted: set[str] | None = None
    excluded: set[str] = set()
    for requirement in parse_field_selector(field_selector):
        if requirement.field != NAME_FIELD:
            raise bad_request(f"field label not supported: {requirement.field}")
        if requirement.operator == "!=":
            excluded.add(requirement.value)
        else:
            wanted = {requirement.value} if wanted is None else wanted & {requirement.value}
    return wanted, excluded
