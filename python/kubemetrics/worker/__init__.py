"""The worker process: scrapes the kubelets the front assigns to it and pushes decoded samples back.

    front ──Attach: full assignment on every change──► ScrapeScheduler (one loop per node)
    NodeScraper: kubelet GET ─► Rust decoder (resource or summary) ─► ScrapeResult ─► SampleBatcher ─► Push

Stages: `kubelet_client` (TLS, credentials, one capped GET), `scrape` (GET + decode + once-per-cause
failure logging), `schedule` (per-node slots), `push` (gRPC streams and batching).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from typing import Final

from kubemetrics import logs
from kubemetrics.options import WorkerOptions
from kubemetrics.worker.kubelet_client import (
    BearerToken,
    KubeletClient,
    build_tls_context,
    resolve_credential_files,
)
from kubemetrics.worker.push import (
    MAX_SAMPLE_BYTES,
    FrontConnection,
    FrontGone,
    PushStream,
    SampleBatcher,
    targets_of,
)
from kubemetrics.worker.schedule import ScrapeScheduler
from kubemetrics.worker.scrape import Decoder, NodeScraper

__all__ = ["EXIT_BAD_CONFIG", "EXIT_FRONT_GONE", "run", "run_worker"]

log = logging.getLogger(__name__)

EXIT_FRONT_GONE: Final = 1
EXIT_BAD_CONFIG: Final = 2
# The supervisor starts the front's gRPC server before its workers; this only covers a slow start.
FRONT_CONNECT_TIMEOUT_SECONDS: Final = 5.0
# On SIGTERM: time to send what was scraped and let the front acknowledge it.
SHUTDOWN_FLUSH_SECONDS: Final = 2.0


def run(options: WorkerOptions) -> int:
    """`kubemetrics worker`: returns the process exit code (non-zero when the front went away)."""
    import uvloop

    _configure_logging(options)
    exit_code: int = uvloop.run(run_worker(options, handle_signals=True))
    return exit_code


def _configure_logging(options: WorkerOptions) -> None:
    logs.configure(logging.DEBUG if options.verbosity >= 4 else logging.INFO, role=options.worker_id)


def _native_decoders() -> tuple[Decoder, Decoder]:
    """(summary decoder, /metrics/resource decoder)."""
    from kubemetrics import _native

    return _native.decode_summary, _native.decode_resource_metrics


async def run_worker(
    options: WorkerOptions,
    *,
    decoder: Decoder | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
) -> int:
    """Run until the front goes away (EXIT_FRONT_GONE) or `stop` is set / SIGTERM arrives (0)."""
    kubelet = options.kubelet
    credentials = resolve_credential_files(kubelet)
    try:
        tls_context = build_tls_context(kubelet, credentials.certificate_authority)
    except (OSError, ssl.SSLError) as err:
        log.error("Cannot set up TLS to kubelets: %s", err)
        return EXIT_BAD_CONFIG
    bearer_token = BearerToken(credentials.bearer_token_file) if credentials.bearer_token_file else None
    resource_decoder: Decoder | None = None
    if decoder is None:
        try:
            decoder, resource_decoder = _native_decoders()
        except ImportError as err:
            log.error("Cannot load the native decoder (kubemetrics._native): %s", err)
            return EXIT_BAD_CONFIG
    stop = stop if stop is not None else asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

    front = FrontConnection(options.front_address, options.worker_id)
    try:
        await front.wait_ready(FRONT_CONNECT_TIMEOUT_SECONDS)
        async with KubeletClient(kubelet, options.metric_resolution_seconds, tls_context, bearer_token) as client:
            scraper = NodeScraper(client, decoder, MAX_SAMPLE_BYTES, resource_decoder=resource_decoder)
            batcher = SampleBatcher(options.worker_id)
            scheduler = ScrapeScheduler(scraper, batcher.add, options.metric_resolution_seconds)
            try:
                return await _serve(front, scheduler, batcher, stop)
            finally:
                await scheduler.stop()
    except FrontGone as err:
        log.error("Exiting: %s", err)
        return EXIT_FRONT_GONE
    except Exception:
        # A bug: exit like a lost front, so that the supervisor starts a fresh worker.
        log.exception("Exiting on an unexpected error")
        return EXIT_FRONT_GONE
    finally:
        await front.close()


async def _serve(
    front: FrontConnection, scheduler: ScrapeScheduler, batcher: SampleBatcher, stop: asyncio.Event
) -> int:
    push_stream = front.open_push_stream()
    follow = asyncio.create_task(_follow_assignments(front, scheduler), name="follow assignments")
    forward = asyncio.create_task(_forward_batches(batcher, push_stream), name="forward batches")
    push_ended = asyncio.create_task(push_stream.wait_ended(), name="watch push stream")
    stopped = asyncio.create_task(stop.wait(), name="wait for stop")
    tasks = {follow, forward, push_ended, stopped}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if stopped not in done:
            # Whichever task ended first says why: FrontGone, or an unexpected error.
            first = next(iter(done))
            first.result()
            raise FrontGone(f"{first.get_name()} ended unexpectedly")
        follow.cancel()
        await scheduler.stop()
        batcher.close()
        # The forwarder drains the batcher and ends; cancelling it mid-write would cancel the stream.
        try:
            async with asyncio.timeout(SHUTDOWN_FLUSH_SECONDS):
                await asyncio.shield(forward)
        except (TimeoutError, FrontGone) as err:
            log.warning("Could not send the last samples before exiting: %s", err)
            return 0
        summary = await push_stream.finish(SHUTDOWN_FLUSH_SECONDS)
        if summary is not None:
            log.info("Stopped; the front acknowledged %d batches, %d samples", summary.batches, summary.samples)
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _follow_assignments(front: FrontConnection, scheduler: ScrapeScheduler) -> None:
    async for assignment in front.assignments():
        change = scheduler.apply(targets_of(assignment))
        log.info(
            "Assignment generation=%d nodes=%d added=%d removed=%d updated=%d",
            assignment.generation,
            len(scheduler.nodes),
            len(change.added),
            len(change.removed),
            len(change.updated),
        )


async def _forward_batches(batcher: SampleBatcher, push_stream: PushStream) -> None:
    while (batch := await batcher.next_batch()) is not None:
        await push_stream.write(batch)
