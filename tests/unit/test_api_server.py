"""How the application is put together: inserted middlewares (where authentication will go),
internal errors as Status documents, and HEAD."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler
from kubemetrics._native import MetricsStore, ResponseView
from kubemetrics.api.status import ApiStatusError, StatusDetails
from test_api_support import api_context, build_store, running_api_server


@web.middleware
async def deny_api_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What an authorizer will look like: refuse resource paths, let probes through."""
    if request.path.startswith("/apis/"):
        raise ApiStatusError(403, "Forbidden", "forbidden by test", StatusDetails(group="metrics.k8s.io"))
    return await handler(request)


async def test_inserted_middleware_sees_requests_before_handlers(tmp_path: Path) -> None:
    async with running_api_server(api_context(tmp_path / "certs"), middlewares=[deny_api_requests]) as server:
        denied = await server.get("/apis/metrics.k8s.io/v1beta1/nodes")
        probe = await server.get("/readyz")

    assert denied.status == 403
    assert denied.content_type == "application/json"
    assert denied.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden by test",'
        b'"reason":"Forbidden","details":{"group":"metrics.k8s.io"},"code":403}\n'
    )
    assert (probe.status, probe.body) == (200, b"ok")


class BrokenStore:
    """Delegates to a real store but cannot render node lists."""

    def __init__(self, store: MetricsStore) -> None:
        self._store = store

    def render_node_list_view(self, view: ResponseView, now: float, *args: object) -> bytes:
        raise RuntimeError("store lock poisoned")

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_unexpected_failure_is_an_internal_error_status(tmp_path: Path) -> None:
    store = cast(MetricsStore, BrokenStore(build_store(with_pod_inventory=True)))
    async with running_api_server(api_context(tmp_path / "certs", store=store)) as server:
        failed = await server.get("/apis/metrics.k8s.io/v1beta1/nodes")
        still_served = await server.get("/apis/metrics.k8s.io/v1beta1/nodes/node-a")

    assert failed.status == 500
    assert failed.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Internal error occurred: store lock poisoned","reason":"InternalError",'
        b'"details":{"causes":[{"message":"store lock poisoned"}]},"code":500}\n'
    )
    assert still_served.status == 200


async def test_head_is_answered_like_get_without_a_body(tmp_path: Path) -> None:
    async with running_api_server(api_context(tmp_path / "certs")) as server:
        head = await server.request("HEAD", "/apis/metrics.k8s.io/v1beta1")

    assert head.status == 200
    assert head.content_type == "application/json"
    assert head.body == b""


class SlowStore:
    """A real store whose list renders take a second, as they may at 150k pods."""

    def __init__(self, store: MetricsStore) -> None:
        self._store = store

    def render_pod_list_view(
        self,
        view: ResponseView,
        now: float,
        namespace: str | None = None,
        label_selector: str | None = None,
        name: str | None = None,
        excluded_names: frozenset[str] = frozenset(),
        excluded_namespaces: frozenset[str] = frozenset(),
    ) -> bytes:
        time.sleep(1.0)
        return self._store.render_pod_list_view(
            view, now, namespace, label_selector, name, excluded_names, excluded_namespaces
        )

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_list_rendering_does_not_block_other_requests(tmp_path: Path) -> None:
    store = cast(MetricsStore, SlowStore(build_store(with_pod_inventory=True)))
    async with running_api_server(api_context(tmp_path / "certs", store=store)) as server:
        slow_list = asyncio.create_task(server.get("/apis/metrics.k8s.io/v1beta1/pods"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        probe = await server.get("/livez")
        probe_seconds = time.monotonic() - started
        listed = await slow_list

    assert (probe.status, probe.body) == (200, b"ok")
    assert probe_seconds < 0.5
    assert listed.status == 200
    assert b"coredns-0" in listed.body
