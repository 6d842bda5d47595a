"""`/healthz`, `/livez`, `/readyz` as metrics-server v0.9 serves them (pkg/server RegisterProbes on
the generic apiserver's healthz package; reference/metrics-server.md §2.7).

Check names and their order are the ones probes, dashboards and metrics-server's own e2e test
expect. The output format is apiserver `healthz.go`:
- all pass: `ok` (no newline), or with `?verbose` one `[+]name ok` line each then `<endpoint> check passed`;
- any fails: HTTP 500 and always verbose, `[-]name failed: reason withheld` (the endpoint is public;
  the reason goes to the log), then `<endpoint> check failed`;
- `?exclude=name` prints `[+]name excluded: ok`; unknown exclusions add a `warn:` line;
- each check alone at `/<endpoint>/<name>`: `ok`, or 500 `internal server error: <reason>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from kubemetrics.api import ApiContext

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
# http.Error's headers; the healthz handler sets the same on success.
_PLAIN_HEADERS = {"Content-Type": TEXT_CONTENT_TYPE, "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True, slots=True)
class HealthCheck:
    name: str
    # Returns why the check fails, or None when it passes.
    failure: Callable[[], str | None]


def _passes() -> str | None:
    return None


def health_checks(ctx: ApiContext) -> dict[str, tuple[HealthCheck, ...]]:
    """The checks of each endpoint, in metrics-server's order."""
    health = ctx.health

    def storage_ready() -> str | None:
        return None if ctx.store.ready() else "no metrics to serve"

    def informers_synced() -> str | None:
        return None if health.inventory_synced else "informers not synced yet"

    def collection_timely() -> str | None:
        return None if health.collection_timely() else "metric collection didn't finish on time"

    def not_shutting_down() -> str | None:
        return "process is shutting down" if health.shutting_down else None

    ping = HealthCheck("ping", _passes)
    log_check = HealthCheck("log", _passes)
    # The generic apiserver's post-start hooks; ours have nothing left to do once serving starts.
    max_in_flight = HealthCheck("poststarthook/max-in-flight-filter", _passes)
    object_count = HealthCheck("poststarthook/storage-object-count-tracker-hook", _passes)
    metadata_sync = HealthCheck("metadata-informer-sync", informers_synced)
    return {
        "readyz": (
            ping,
            log_check,
            max_in_flight,
            object_count,
            HealthCheck("metric-storage-ready", storage_ready),
            HealthCheck("metric-informer-sync", informers_synced),
            metadata_sync,
            HealthCheck("shutdown", not_shutting_down),
        ),
        "livez": (
            ping,
            log_check,
            max_in_flight,
            object_count,
            HealthCheck("metric-collection-timely", collection_timely),
            metadata_sync,
        ),
        "healthz": (ping, log_check, max_in_flight, object_count, metadata_sync),
    }


def add_health_routes(router: web.UrlDispatcher, ctx: ApiContext) -> None:
    for endpoint, checks in health_checks(ctx).items():
        # Any method, as Go's mux serves these paths.
        router.add_route("*", f"/{endpoint}", _root_handler(endpoint, checks))
        for check in checks:
            router.add_route("*", f"/{endpoint}/{check.name}", _single_check_handler(check))


def _root_handler(endpoint: str, checks: tuple[HealthCheck, ...]) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        excluded = set(request.query.getall("exclude", []))
        lines: list[str] = []
        failures: list[str] = []
        for check in checks:
            if check.name in excluded:
                excluded.discard(check.name)
                lines.append(f"[+]{check.name} excluded: ok\n")
                continue
            reason = check.failure()
            if reason is None:
                lines.append(f"[+]{check.name} ok\n")
            else:
                lines.append(f"[-]{check.name} failed: reason withheld\n")
                failures.append(f"[-]{check.name} failed: {reason}")
        if excluded:
            quoted = ",".join(f'"{name}"' for name in sorted(excluded))
            lines.append(f"warn: some health checks cannot be excluded: no matches for {quoted}\n")
        if failures:
            log.info("%s check failed: %s", endpoint, "; ".join(failures))
            body = "".join(lines) + f"{endpoint} check failed\n"
            return web.Response(status=500, body=body.encode(), headers=_PLAIN_HEADERS)
        if "verbose" not in request.query:
            return web.Response(body=b"ok", headers=_PLAIN_HEADERS)
        body = "".join(lines) + f"{endpoint} check passed\n"
        return web.Response(body=body.encode(), headers=_PLAIN_HEADERS)

    return handle


def _single_check_handler(check: HealthCheck) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        reason = check.failure()
        if reason is None:
            return web.Response(body=b"ok", headers={"Content-Type": TEXT_CONTENT_TYPE})
        body = f"internal server error: {reason}\n"
        return web.Response(status=500, body=body.encode(), headers=_PLAIN_HEADERS)

    return handle
