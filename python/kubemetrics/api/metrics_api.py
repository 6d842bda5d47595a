"""`metrics.k8s.io/v1beta1` resource handlers: node and pod metrics, get and list (no watch).

Bodies come ready-rendered from the Rust store (`MetricsStore.render_*_view`) in the representation
negotiated from the Accept header (`negotiation.py`): the objects as JSON or protobuf, a
`meta.k8s.io` Table (what `kubectl get` asks for), or metadata only. A list render at 150k pods
takes a while; it releases the GIL, so it runs in the default executor and the event loop keeps
answering probes and small requests meanwhile. Single-object renders are cheap and run inline.

Behaviour matched from metrics-server `pkg/api` and the apiserver's list and get handlers
(reference/metrics-server.md §2.1, §2.4, §2.5), in the apiserver's order of checks:
- an Accept header we cannot answer is a 406 before anything else;
- labelSelector goes to the store (a bad one is a 400 with the parser's message);
- fieldSelector accepts only metadata.name and metadata.namespace, with `=`, `==` and `!=`;
  anything else is a 400;
- `watch` on a list is a 405 MethodNotAllowed, checked after the selectors as the apiserver does;
- limit, continue, resourceVersion and timeoutSeconds are accepted and ignored (no pagination);
- the four 404 messages differ on purpose (node vs nodemetrics, pods vs podmetrics "ns/name");
- then the transformation: a bad `includeObject` is a 400, metadata of the wrong arity a 406.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

import orjson
from aiohttp import web
from multidict import MultiMapping

from kubemetrics._native import LabelSelectorError, ResponseView
from kubemetrics.api import ApiContext
from kubemetrics.api.encoding import escape_like_go
from kubemetrics.api.field_selector import MetadataFilter, metadata_filter
from kubemetrics.api.negotiation import Endpoint, Negotiated, negotiate, not_acceptable, unsupported_media_types
from kubemetrics.api.responses import negotiated_response
from kubemetrics.api.status import METRICS_GROUP, ApiStatusError, bad_request, method_not_supported, not_found

METRICS_PREFIX = "/apis/metrics.k8s.io/v1beta1"

_INCLUDE_OBJECT_POLICIES = ("", "Metadata", "None", "Object")


class MetricsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def list_nodes(self, request: web.Request) -> web.Response:
        negotiated = negotiate_metrics(request)
        fields = _list_filter(request.query, "nodes", namespaced=False)
        label_selector = _label_selector(request.query)
        view = self._view_after_list(request, negotiated, "*metrics.NodeMetricsList", label_selector)
        render = functools.partial(
            self._ctx.store.render_node_list_view,
            view,
            time.time(),
            label_selector,
            fields.store_name,
            fields.excluded_names,
        )
        return await negotiated_response(request, negotiated, await _render_list(render))

    async def get_node(self, request: web.Request) -> web.Response:
        negotiated = negotiate_metrics(request)
        name = request.match_info["name"]
        view, view_error = _view_of(request, negotiated, "*metrics.NodeMetrics", single=True)
        body = self._ctx.store.render_node_view(view, time.time(), name)
        if body is None:
            if self._ctx.store.has_node_metadata(name) or name in self._ctx.inventory().unselected_nodes:
                # The node exists but has no servable point yet (or it went stale, or the node
                # selector leaves it out).
                raise not_found(METRICS_GROUP, "nodemetrics", name)
            # metrics-server asks the core node lister, whose GroupResource is the singular "node".
            raise not_found("", "node", name)
        if view_error is not None:
            raise view_error
        return await negotiated_response(request, negotiated, body)

    async def list_pods(self, request: web.Request) -> web.Response:
        return await self._list_pods(request, path_namespace=None)

    async def list_namespaced_pods(self, request: web.Request) -> web.Response:
        return await self._list_pods(request, path_namespace=request.match_info["namespace"])

    async def _list_pods(self, request: web.Request, path_namespace: str | None) -> web.Response:
        negotiated = negotiate_metrics(request)
        fields = _list_filter(request.query, "pods", namespaced=True, path_namespace=path_namespace)
        label_selector = _label_selector(request.query)
        view = self._view_after_list(request, negotiated, "*metrics.PodMetricsList", label_selector)
        render = functools.partial(
            self._ctx.store.render_pod_list_view,
            view,
            time.time(),
            fields.namespace,
            label_selector,
            fields.store_name,
            fields.excluded_names,
            fields.excluded_namespaces,
        )
        return await negotiated_response(request, negotiated, await _render_list(render))

    def _view_after_list(
        self, request: web.Request, negotiated: Negotiated, go_type: str, label_selector: str | None
    ) -> ResponseView:
        """`_view_of` for a list. The apiserver transforms after listing, so a bad label selector is
        reported before a bad transformation: parse it first (rendering nothing, since no node has
        an empty name)."""
        view, error = _view_of(request, negotiated, go_type, single=False)
        if error is not None:
            if label_selector is not None:
                try:
                    self._ctx.store.render_node_list_view(_PLAIN_JSON_VIEW, 0.0, label_selector, "")
                except LabelSelectorError as err:
                    raise bad_request(str(err)) from err
            raise error
        return view

    async def get_pod(self, request: web.Request) -> web.Response:
        negotiated = negotiate_metrics(request)
        namespace = request.match_info["namespace"]
        name = request.match_info["name"]
        view, view_error = _view_of(request, negotiated, "*metrics.PodMetrics", single=True)
        body = self._ctx.store.render_pod_view(view, time.time(), namespace, name)
        if body is None:
            # Without a pod inventory (standalone, no "pods" in the file) a pod is known only through
            # its metrics, so a pod without them is simply unknown.
            pods_known = self._ctx.inventory().pods is not None
            if pods_known and self._ctx.store.has_pod_metadata(namespace, name):
                raise not_found(METRICS_GROUP, "podmetrics", f"{namespace}/{name}")
            raise not_found("", "pods", name)
        if view_error is not None:
            raise view_error
        return await negotiated_response(request, negotiated, body)


def negotiate_metrics(request: web.Request) -> Negotiated:
    negotiated = negotiate(request.headers.get("Accept", ""), Endpoint.METRICS_RESOURCE)
    if negotiated is None:
        raise unsupported_media_types()
    return negotiated


_PLAIN_JSON_VIEW = ResponseView("object")
_OBJECT_VIEWS = {"json": _PLAIN_JSON_VIEW, "protobuf": ResponseView("object", encoding="protobuf")}


def _view_of(
    request: web.Request, negotiated: Negotiated, go_type: str, *, single: bool
) -> tuple[ResponseView, ApiStatusError | None]:
    """The store view for the negotiated representation, or plain JSON and the error that the
    transformation step will raise (after the lookup, as the apiserver orders it). `go_type` is how
    the apiserver's messages name the object (`%T` of metrics-server's internal type)."""
    encoding = "protobuf" if negotiated.is_protobuf else "json"
    target = negotiated.target
    if target is None:
        return _OBJECT_VIEWS[encoding], None
    if target.kind == "Table":
        include_object = request.query.get("includeObject", "")
        if include_object not in _INCLUDE_OBJECT_POLICIES:
            return _PLAIN_JSON_VIEW, bad_request(
                "Unable to convert to Table as requested: includeObject: Invalid value: "
                f"{_go_json_quote(include_object)}: must be 'Metadata', 'Object', 'None', or empty"
            )
        return ResponseView("table", meta_version=target.version, include_object=include_object), None
    if target.kind == "PartialObjectMetadata" and not single:
        message = f"you requested PartialObjectMetadata, but the requested object is a list ({go_type})"
        return _PLAIN_JSON_VIEW, not_acceptable(message)
    if target.kind == "PartialObjectMetadataList" and single:
        message = f"you requested PartialObjectMetadataList, but the requested object is not a list ({go_type})"
        return _PLAIN_JSON_VIEW, not_acceptable(message)
    return ResponseView("metadata", encoding=encoding, meta_version=target.version), None


def _go_json_quote(text: str) -> str:
    """How field.Invalid prints a value whose type is a named string type (json.Marshal)."""
    return escape_like_go(orjson.dumps(text)).decode()


def _list_filter(
    query: MultiMapping[str], resource: str, *, namespaced: bool, path_namespace: str | None = None
) -> MetadataFilter:
    fields = metadata_filter(query.get("fieldSelector", ""), namespaced=namespaced, path_namespace=path_namespace)
    if wants_watch(query):
        raise method_not_supported(METRICS_GROUP, resource, "watch")
    return fields


def wants_watch(query: MultiMapping[str]) -> bool:
    """apimachinery's Convert_Slice_string_To_bool: present and not "0"/"false" (any case) is true,
    even an empty value."""
    if "watch" not in query:
        return False
    value = query["watch"]
    return value != "0" and value.lower() != "false"


def _label_selector(query: MultiMapping[str]) -> str | None:
    return query.get("labelSelector") or None


async def _render_list(render: Callable[[], bytes]) -> bytes:
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, render)
    except LabelSelectorError as err:
        raise bad_request(str(err)) from err
