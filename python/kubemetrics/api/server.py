"""The front's HTTPS server: routes, middlewares and TLS.

Routing follows the generic apiserver's split (reference/metrics-server.md §2.1): paths under an
installed API prefix (`/apis`, `/apis/metrics.k8s.io…`, and `/api…` with the standalone core API)
answer unknown paths and unsupported methods with Kubernetes `Status` errors, as go-restful does
there; every other unknown path gets Go's plain `404 page not found`. Objects and `Status` errors
are written in the representation negotiated from the Accept header (negotiation.py,
responses.py); the OpenAPI documents (openapi.py) sit outside the REST routes, as in the apiserver.

Authentication and authorization are not wired yet. They will be middlewares: `start_api_server`
and `create_app` take a `middlewares` sequence that runs inside request logging and `Status` error
conversion, so an authenticator/authorizer can raise `ApiStatusError` (401/403) and let the probe
paths through, as metrics-server's always-allow paths do.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from kubemetrics.api import ApiContext
from kubemetrics.api.certs import server_ssl_context, serving_cert
from kubemetrics.api.core_api import CoreApi
from kubemetrics.api.discovery import DiscoveryHandlers
from kubemetrics.api.health_endpoints import TEXT_CONTENT_TYPE, add_health_routes
from kubemetrics.api.metrics_api import METRICS_PREFIX, MetricsApi
from kubemetrics.api.openapi import OpenApiHandlers
from kubemetrics.api.responses import representation_of, status_response
from kubemetrics.api.status import ApiStatusError, internal_error, method_not_allowed, no_such_path

log = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LISTEN_BACKLOG = 1024


async def start_api_server(
    ctx: ApiContext,
    *,
    middlewares: Sequence[Middleware] = (),
    configure_tls: Callable[[ssl.SSLContext], None] | None = None,
) -> web.AppRunner:
    """Serve HTTPS on bind_address:secure_port (0 picks a free port; see `runner.addresses`).
    `configure_tls` may adjust the serving context before it is used (client certificate requests,
    api/auth.py). The caller owns the returned runner and calls `cleanup()` on it."""
    cert = await asyncio.to_thread(serving_cert, ctx.options)
    ssl_context = server_ssl_context(cert)
    if configure_tls is not None:
        configure_tls(ssl_context)
    runner = web.AppRunner(create_app(ctx, middlewares=middlewares), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(
            runner,
            ctx.options.bind_address,
            ctx.options.secure_port,
            ssl_context=ssl_context,
            backlog=_LISTEN_BACKLOG,
        )
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    log.debug("serving HTTPS on %s with certificate %s", ", ".join(map(str, runner.addresses)), cert.cert_file)
    return runner


def create_app(ctx: ApiContext, *, middlewares: Sequence[Middleware] = ()) -> web.Application:
    """The aiohttp application. `middlewares` (e.g. authentication, authorization) run innermost,
    after request logging and Status error conversion."""
    app = web.Application(middlewares=[log_request, convert_status_errors, *middlewares])
    router = app.router
    options = ctx.options

    def get(path: str, handler: Handler) -> None:
        router.add_route("*", path, get_only(handler))

    discovery = DiscoveryHandlers(options.bind_address, options.secure_port)
    for path in ("/apis", "/apis/"):
        get(path, discovery.api_group_list)
    for path in ("/apis/metrics.k8s.io", "/apis/metrics.k8s.io/"):
        get(path, discovery.api_group)
    for path in (METRICS_PREFIX, f"{METRICS_PREFIX}/"):
        get(path, discovery.resource_list)

    metrics = MetricsApi(ctx)
    get(f"{METRICS_PREFIX}/nodes", metrics.list_nodes)
    get(f"{METRICS_PREFIX}/nodes/{{name}}", metrics.get_node)
    get(f"{METRICS_PREFIX}/pods", metrics.list_pods)
    get(f"{METRICS_PREFIX}/namespaces/{{namespace}}/pods", metrics.list_namespaced_pods)
    get(f"{METRICS_PREFIX}/namespaces/{{namespace}}/pods/{{name}}", metrics.get_pod)

    # kube-openapi's handlers sit on the non-REST mux: any method gets the document.
    openapi = OpenApiHandlers()
    router.add_route("*", "/openapi/v2", openapi.v2)
    router.add_route("*", "/openapi/v3", openapi.v3_discovery)
    router.add_route("*", "/openapi/v3/{path:.+}", openapi.v3_document)

    add_health_routes(router, ctx)
    router.add_route("*", "/metrics", _self_metrics_handler(ctx))

    if options.standalone_core_api:
        core = CoreApi(ctx)
        get("/version", core.version)
        for path in ("/api", "/api/"):
            get(path, core.api_versions)
        for path in ("/api/v1", "/api/v1/"):
            get(path, core.resource_list)
        get("/api/v1/nodes", core.list_nodes)
        get("/api/v1/nodes/{name}", core.get_node)

    router.add_route("*", "/{tail:.*}", _unknown_path_handler(options.standalone_core_api))
    return app


def get_only(handler: Handler) -> Handler:
    """The API installs only get and list: other methods on a known path are a 405 Status."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed()
        return await handler(request)

    return handle


@web.middleware
async def convert_status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiStatusError as err:
        return status_response(request, err)
    except web.HTTPException:
        raise
    except Exception as err:
        log.exception("internal error serving %s %s", request.method, request.path_qs)
        return status_response(request, internal_error(str(err)))


@web.middleware
async def log_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not log.isEnabledFor(logging.DEBUG):
        return await handler(request)
    started = time.perf_counter()
    status = 0
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        log.debug(
            "%s %s -> %d in %.1f ms [%s] (Accept: %s; %s, %s)",
            request.method,
            request.path_qs,
            status,
            (time.perf_counter() - started) * 1000,
            representation_of(request),
            request.headers.get("Accept", "-"),
            request.remote,
            request.headers.get("User-Agent", "-"),
        )


def _self_metrics_handler(ctx: ApiContext) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        # Writing the text takes 80-190 ms at 5,000 nodes with per-node series: in a thread, so the HPA's
        # requests are not held up. The snapshot is taken here, on the loop that records the metrics.
        snapshot = ctx.self_metrics.snapshot()
        body = await asyncio.get_running_loop().run_in_executor(None, snapshot.render)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    return handle


def _unknown_path_handler(standalone_core_api: bool) -> Handler:
    api_prefixes = ("/apis/metrics.k8s.io", "/api") if standalone_core_api else ("/apis/metrics.k8s.io",)

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/apis", "/apis/") or any(path == p or path.startswith(p + "/") for p in api_prefixes):
            raise no_such_path()
        # Go's http.NotFound, what the generic apiserver's non-API mux answers.
        return web.Response(
            status=404,
            body=b"404 page not found\n",
            headers={"Content-Type": TEXT_CONTENT_TYPE, "X-Content-Type-Options": "nosniff"},
        )

    return handle
