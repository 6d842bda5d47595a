"""`metrics.k8s.io/v1beta1` resource handlers: node and pod metrics, get and list (no watch).

Bodies come ready-rendered from the Rust store (`MetricsStore.render_*`). A list render at 150k
pods takes a while; it releases the GIL, so it runs in the default executor and the event loop
keeps answering probes and small requests meanwhile. Single-object renders are cheap and run inline.

Behaviour matched from metrics-server `pkg/api` and the apiserver's list handler
(reference/metrics-server.md §2.1, §2.4):
- labelSelector goes to the store (a bad one is a 400 with the parser's message);
- fieldSelector accepts only metadata.name and metadata.namespace, with `=`, `==` and `!=`
  (`!=` is applied to the rendered list); anything else is a 400;
- `watch` on a list is a 405 MethodNotAllowed, checked after the selectors as the apiserver does;
- limit, continue, resourceVersion and timeoutSeconds are accepted and ignored (no pagination);
- the four 404 messages differ on purpose (node vs nodemetrics, pods vs podmetrics "ns/name").
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from aiohttp import web
from multidict import MultiMapping

from kubemetrics._native import LabelSelectorError
from kubemetrics.api import ApiContext
from kubemetrics.api.encoding import JSON_CONTENT_TYPE
from kubemetrics.api.field_selector import MetadataFilter, filter_list_items, metadata_filter
from kubemetrics.api.status import METRICS_GROUP, bad_request, method_not_supported, not_found

METRICS_PREFIX = "/apis/metrics.k8s.io/v1beta1"


class MetricsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def list_nodes(self, request: web.Request) -> web.Response:
        fields = _list_filter(request.query, "nodes", namespaced=False)
        label_selector = _label_selector(request.query)
        render = functools.partial(self._ctx.store.render_node_list, time.time(), label_selector, fields.name)
        return await _render_list(render, fields)

    async def get_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self._ctx.store.render_node(time.time(), name)
        if body is not None:
            return _json(body)
        if self._ctx.store.has_node_metadata(name):
            # The node exists but has no servable point yet (or it went stale).
            raise not_found(METRICS_GROUP, "nodemetrics", name)
        # metrics-server asks the core node lister, whose GroupResource is the singular "node".
        raise not_found("", "node", name)

    async def list_pods(self, request: web.Request) -> web.Response:
        return await self._list_pods(request, path_namespace=None)

    async def list_namespaced_pods(self, request: web.Request) -> web.Response:
        return await self._list_pods(request, path_namespace=request.match_info["namespace"])

    async def _list_pods(self, request: web.Request, path_namespace: str | None) -> web.Response:
        fields = _list_filter(request.query, "pods", namespaced=True, path_namespace=path_namespace)
        label_selector = _label_selector(request.query)
        render = functools.partial(
            self._ctx.store.render_pod_list, time.time(), fields.namespace, label_selector, fields.name
        )
        return await _render_list(render, fields)

    async def get_pod(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        name = request.match_info["name"]
        body = self._ctx.store.render_pod(time.time(), namespace, name)
        if body is not None:
            return _json(body)
        # Without a pod inventory (standalone, no "pods" in the file) a pod is known only through its
        # metrics, so a pod without them is simply unknown.
        pods_known = self._ctx.inventory().pods is not None
        if pods_known and self._ctx.store.has_pod_metadata(namespace, name):
            raise not_found(METRICS_GROUP, "podmetrics", f"{namespace}/{name}")
        raise not_found("", "pods", name)


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


async def _render_list(render: Callable[[], bytes], fields: MetadataFilter) -> web.Response:
    loop = asyncio.get_running_loop()
    try:
        body = await loop.run_in_executor(None, render)
    except LabelSelectorError as err:
        raise bad_request(str(err)) from err
    if fields.needs_post_filter:
        body = filter_list_items(body, fields.keeps)
    return _json(body)


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, headers={"Content-Type": JSON_CONTENT_TYPE})
