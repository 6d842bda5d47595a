"""/readyz, /livez, /healthz with metrics-server v0.9's check names, order and output format, and
/metrics."""

from __future__ import annotations

import time
from pathlib import Path

from kubemetrics._native import MetricsStore
from kubemetrics.health import HealthState
from test_api_support import RESOLUTION_SECONDS, Reply, api_context, running_api_server

READYZ_CHECKS = (
    "ping",
    "log",
    "poststarthook/max-in-flight-filter",
    "poststarthook/storage-object-count-tracker-hook",
    "metric-storage-ready",
    "metric-informer-sync",
    "metadata-informer-sync",
    "shutdown",
)
LIVEZ_CHECKS = (
    "ping",
    "log",
    "poststarthook/max-in-flight-filter",
    "poststarthook/storage-object-count-tracker-hook",
    "metric-collection-timely",
    "metadata-informer-sync",
)
HEALTHZ_CHECKS = (
    "ping",
    "log",
    "poststarthook/max-in-flight-filter",
    "poststarthook/storage-object-count-tracker-hook",
    "metadata-informer-sync",
)


def verbose_report(endpoint: str, checks: tuple[str, ...], failed: tuple[str, ...] = ()) -> bytes:
    lines = [f"[-]{name} failed: reason withheld" if name in failed else f"[+]{name} ok" for name in checks]
    outcome = "failed" if failed else "passed"
    return ("\n".join(lines) + f"\n{endpoint} check {outcome}\n").encode()


def assert_plain_text(reply: Reply) -> None:
    assert reply.content_type == "text/plain; charset=utf-8"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_healthy_server_answers_ok_and_lists_checks_when_verbose(tmp_path: Path) -> None:
    async with running_api_server(api_context(tmp_path / "certs")) as server:
        short = {endpoint: await server.get(f"/{endpoint}") for endpoint in ("readyz", "livez", "healthz")}
        verbose = {endpoint: await server.get(f"/{endpoint}?verbose") for endpoint in ("readyz", "livez", "healthz")}

    for reply in short.values():
        assert (reply.status, reply.body) == (200, b"ok")
        assert_plain_text(reply)
    assert verbose["readyz"].status == 200
    assert verbose["readyz"].body == verbose_report("readyz", READYZ_CHECKS)
    assert verbose["livez"].body == verbose_report("livez", LIVEZ_CHECKS)
    assert verbose["healthz"].body == verbose_report("healthz", HEALTHZ_CHECKS)
    assert_plain_text(verbose["readyz"])


async def test_store_without_servable_metrics_is_not_ready_but_alive(tmp_path: Path) -> None:
    empty_store = MetricsStore(RESOLUTION_SECONDS)
    async with running_api_server(api_context(tmp_path / "certs", store=empty_store)) as server:
        readyz = await server.get("/readyz")
        livez = await server.get("/livez")
        single = await server.get("/readyz/metric-storage-ready")

    assert readyz.status == 500
    assert_plain_text(readyz)
    # Failures are always verbose, without the reason.
    assert readyz.body == verbose_report("readyz", READYZ_CHECKS, failed=("metric-storage-ready",))
    assert (livez.status, livez.body) == (200, b"ok")
    assert single.status == 500
    assert single.body == b"internal server error: no metrics to serve\n"


async def test_unsynced_inventory_fails_every_endpoint(tmp_path: Path) -> None:
    health = HealthState(RESOLUTION_SECONDS, inventory_synced=False)
    async with running_api_server(api_context(tmp_path / "certs", health=health)) as server:
        readyz = await server.get("/readyz")
        livez = await server.get("/livez")
        healthz = await server.get("/healthz")

    assert readyz.status == livez.status == healthz.status == 500
    assert readyz.body == verbose_report(
        "readyz", READYZ_CHECKS, failed=("metric-informer-sync", "metadata-informer-sync")
    )
    assert livez.body == verbose_report("livez", LIVEZ_CHECKS, failed=("metadata-informer-sync",))
    assert healthz.body == verbose_report("healthz", HEALTHZ_CHECKS, failed=("metadata-informer-sync",))


async def test_stuck_collection_fails_liveness_only(tmp_path: Path) -> None:
    health = HealthState(RESOLUTION_SECONDS, inventory_synced=True)
    health.last_collection_progress = time.monotonic() - 2 * RESOLUTION_SECONDS
    async with running_api_server(api_context(tmp_path / "certs", health=health)) as server:
        livez = await server.get("/livez")
        readyz = await server.get("/readyz")
        single = await server.get("/livez/metric-collection-timely")

    assert livez.status == 500
    assert livez.body == verbose_report("livez", LIVEZ_CHECKS, failed=("metric-collection-timely",))
    assert (readyz.status, readyz.body) == (200, b"ok")
    assert single.status == 500
    assert single.body == b"internal server error: metric collection didn't finish on time\n"


async def test_shutdown_fails_readiness_and_its_own_check(tmp_path: Path) -> None:
    health = HealthState(RESOLUTION_SECONDS, inventory_synced=True)
    async with running_api_server(api_context(tmp_path / "certs", health=health)) as server:
        before = await server.get("/readyz/shutdown")
        health.shutting_down = True
        after = await server.get("/readyz/shutdown")
        readyz = await server.get("/readyz")
        ping = await server.get("/readyz/ping")

    assert (before.status, before.body) == (200, b"ok")
    assert (after.status, after.body) == (500, b"internal server error: process is shutting down\n")
    assert readyz.body == verbose_report("readyz", READYZ_CHECKS, failed=("shutdown",))
    assert (ping.status, ping.body) == (200, b"ok")


async def test_excluded_checks_are_reported_and_unknown_exclusions_warned(tmp_path: Path) -> None:
    empty_store = MetricsStore(RESOLUTION_SECONDS)
    async with running_api_server(api_context(tmp_path / "certs", store=empty_store)) as server:
        quiet = await server.get("/readyz?exclude=metric-storage-ready")
        verbose = await server.get("/readyz?verbose&exclude=metric-storage-ready&exclude=zeta&exclude=alpha")

    assert (quiet.status, quiet.body) == (200, b"ok")
    assert verbose.status == 200
    assert verbose.body == (
        b"[+]ping ok\n"
        b"[+]log ok\n"
        b"[+]poststarthook/max-in-flight-filter ok\n"
        b"[+]poststarthook/storage-object-count-tracker-hook ok\n"
        b"[+]metric-storage-ready excluded: ok\n"
        b"[+]metric-informer-sync ok\n"
        b"[+]metadata-informer-sync ok\n"
        b"[+]shutdown ok\n"
        b'warn: some health checks cannot be excluded: no matches for "alpha","zeta"\n'
        b"readyz check passed\n"
    )


async def test_unknown_check_path_is_not_found(tmp_path: Path) -> None:
    async with running_api_server(api_context(tmp_path / "certs")) as server:
        reply = await server.get("/readyz/no-such-check")

    assert (reply.status, reply.body) == (404, b"404 page not found\n")


async def test_metrics_endpoint_serves_the_self_metrics_registry(tmp_path: Path) -> None:
    ctx = api_context(tmp_path / "certs")
    # The front keeps these up to date; the endpoint renders whatever the registry holds.
    ctx.self_metrics.update_store(ctx.store.stats())
    ctx.self_metrics.record_scrape("node-a", True, 0.02, 1_700_000_000.0)
    async with running_api_server(ctx) as server:
        reply = await server.get("/metrics")

    assert reply.status == 200
    assert reply.content_type == "text/plain; version=0.0.4; charset=utf-8"
    lines = reply.text.splitlines()
    assert 'metrics_server_storage_points{type="node"} 2.0' in lines
    # web-0, web-1 and coredns-0's two containers.
    assert 'metrics_server_storage_points{type="container"} 4.0' in lines
    assert 'metrics_server_kubelet_request_total{success="true"} 1.0' in lines
    assert 'metrics_server_kubelet_last_request_time_seconds{node="node-a"} 1.7e+09' in lines
