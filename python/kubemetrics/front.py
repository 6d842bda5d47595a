"""`kubemetrics serve`: the front process.

Start-up order: read the inventory (a broken file is fatal here, as metrics-server does not serve
before its informers sync), give it to the store and the planner, open the ingest socket, start the
workers, then open the HTTPS API. SIGTERM/SIGINT stop it in the reverse order: the API first, then
the workers (which flush what they scraped into the still-open ingest service), then ingest.
"""

from __future__ import annotations

import os

# Workers are started by fork+exec and the child never touches gRPC in between, so gRPC's fork
# handlers have nothing to do; left enabled, they log "skipping fork() handlers" at every worker
# start. gRPC reads this when it is first imported, hence before the imports below.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import asyncio
import contextlib
import logging
import shutil
import signal
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

from kubemetrics import logs
from kubemetrics._native import FRESHNESS_BUCKETS, MetricsStore
from kubemetrics.api import ApiContext
from kubemetrics.api.label_selector import parse_label_selector
from kubemetrics.health import HealthState
from kubemetrics.ingest import SOCKET_NAME, IngestServer, SampleIngestor, ScrapeCycles, WorkerRegistry, socket_address
from kubemetrics.inventory import InventorySnapshot
from kubemetrics.inventory.kubeconfig import KubeconfigError, load_api_server_config
from kubemetrics.inventory.kubernetes import KubernetesInventorySource
from kubemetrics.inventory.static import InventoryFileError, StaticInventorySource
from kubemetrics.options import TLS_CIPHER_SUITES, KubeletOptions, ServeOptions
from kubemetrics.planner import AddressResolutionError, ShardPlanner, resolve_targets
from kubemetrics.selfmetrics import SelfMetrics
from kubemetrics.supervisor import WorkerSupervisor, worker_command

log = logging.getLogger(__name__)

STORE_STATS_INTERVAL_SECONDS = 5.0
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 107


def configure_logging(verbosity: int) -> None:
    """-v 0: info and above; -v 1 or more: debug too (metrics-server's V(1)+ messages)."""
    logs.configure(logging.DEBUG if verbosity >= 1 else logging.INFO)


def run(options: ServeOptions) -> int:
    configure_logging(options.verbosity)
    for warning in options.warnings():
        log.warning("%s", warning)
    import uvloop

    return uvloop.run(serve(options))


async def serve(options: ServeOptions, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or until `stop` is set); returns the process exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        with runtime_directory(options.runtime_dir) as runtime_dir:
            return await _serve_in(options, runtime_dir, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def runtime_directory(configured: str) -> Iterator[Path]:
    """The configured directory (created if needed, kept), or a private temporary one removed at exit."""
    if configured:
        path = Path(configured).resolve()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="kubemetrics-")).resolve()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _serve_in(options: ServeOptions, runtime_dir: Path, stop: asyncio.Event) -> int:
    socket_path = runtime_dir / SOCKET_NAME
    if len(os.fsencode(socket_path)) > _MAX_UNIX_SOCKET_PATH:
        log.error("--runtime-dir %s is too long for a unix socket path (%s)", runtime_dir, socket_path)
        return 1
    _remove_stale_socket(socket_path)

    try:
        inventory = _inventory_source(options).snapshots()
        first = await anext(inventory)
    except (InventoryFileError, KubeconfigError) as err:
        log.error("%s", err)
        return 1

    health = HealthState(metric_resolution_seconds=options.metric_resolution_seconds)
    self_metrics = SelfMetrics(
        per_node_series_max_nodes=options.self_metrics_max_nodes,
        metric_resolution_seconds=options.metric_resolution_seconds,
    )
    store = MetricsStore(
        options.metric_resolution_seconds,
        require_pod_metadata=first.pods is not None,
        keep_zero_memory_containers=options.keep_zero_memory_containers,
    )
    self_metrics.attach_freshness(store, FRESHNESS_BUCKETS)
    worker_ids = [f"w{i}" for i in range(options.worker_count)]
    registry = WorkerRegistry(ShardPlanner(), expected_workers=worker_ids)
    applier = InventoryApplier(store, registry, self_metrics, options.kubelet)
    ingestor = SampleIngestor(
        store,
        self_metrics,
        health,
        is_known_node=applier.has_node,
        tolerated_failures=options.tolerated_scrape_failures,
        cycles=ScrapeCycles(options.metric_resolution_seconds, self_metrics.observe_scrape_cycle),
    )
    applier.on_nodes_departed = ingestor.forget_nodes
    applier.apply(first)
    health.inventory_synced = True

    ingest = IngestServer(registry, ingestor, health)
    address = socket_address(runtime_dir)
    supervisor = WorkerSupervisor(worker_ids, worker_command(options, address), self_metrics=self_metrics)
    background: list[asyncio.Task[None]] = []
    api_runner = None
    auth = None
    try:
        try:
            await ingest.start(address)
            await supervisor.start()
            background.append(asyncio.create_task(_follow_inventory(inventory, applier), name="inventory"))
            background.append(
                asyncio.create_task(
                    _refresh_store_stats(store, applier, registry, ingestor, self_metrics, health),
                    name="store stats",
                )
            )
            from kubemetrics.api.auth import DelegatedAuth
            from kubemetrics.api.server import start_api_server

            ctx = ApiContext(
                options=options, store=store, health=health, self_metrics=self_metrics, inventory=applier.snapshot
            )
            auth = await DelegatedAuth.start(options.auth)
            api_runner = await start_api_server(
                ctx,
                middlewares=auth.middlewares if auth else (),
                configure_tls=_serving_tls(options, auth.configure_tls if auth else None),
            )
        except Exception as err:
            # Ports in use, unreadable certificates and the like: one line, no traceback.
            log.error("cannot start serving: %s", err, exc_info=not isinstance(err, OSError | RuntimeError))
            return 1
        addresses = ", ".join(f"https://{_format_address(a)}" for a in api_runner.addresses)
        log.info(
            "kubemetrics serving metrics.k8s.io on %s: %d workers, metric resolution %gs, %d nodes%s",
            addresses,
            options.worker_count,
            options.metric_resolution_seconds,
            len(first.nodes),
            "" if first.pods is None else f", {len(first.pods)} pods",
        )
        failed = await _wait_for_stop_or_failure(stop, background)
    finally:
        health.shutting_down = True
        if api_runner is not None and options.shutdown_delay_seconds > 0:
            # --shutdown-delay-duration: readyz now fails, so load balancers stop sending requests while
            # the ones already routed here are still answered.
            log.info("shutting down in %gs (--shutdown-delay-duration)", options.shutdown_delay_seconds)
            await asyncio.sleep(options.shutdown_delay_seconds)
        log.info("shutting down")
        if api_runner is not None:
            await api_runner.cleanup()
        if auth is not None:
            await auth.close()
        registry.closing = True
        await supervisor.shutdown()
        await ingest.stop()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await inventory.aclose()
    return 1 if failed else 0


async def _wait_for_stop_or_failure(stop: asyncio.Event, background: list[asyncio.Task[None]]) -> bool:
    """True when a background task died (a bug: logged, and the process exits non-zero)."""
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopping, *background], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    for task in background:
        if task in done:
            error = None if task.cancelled() else task.exception()
            log.error("%s stopped unexpectedly", task.get_name(), exc_info=error)
            return True
    return False


def _serving_tls(
    options: ServeOptions, then: Callable[[ssl.SSLContext], None] | None
) -> Callable[[ssl.SSLContext], None]:
    """Applies --tls-min-version and --tls-cipher-suites to the serving context, then `then` (the
    client-certificate set-up of delegated authentication)."""

    def configure(context: ssl.SSLContext) -> None:
        for warning in apply_serving_tls(context, options.tls_min_version, options.tls_cipher_suites):
            log.warning("%s", warning)
        if then is not None:
            then(context)

    return configure


_SSL_VERSIONS = {
    "VersionTLS10": ssl.TLSVersion.TLSv1,
    "VersionTLS11": ssl.TLSVersion.TLSv1_1,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}


def apply_serving_tls(context: ssl.SSLContext, min_version: str, cipher_suites: Sequence[str]) -> list[str]:
    """Sets the minimum TLS version (unset: TLS 1.2, the apiserver's default) and restricts TLS 1.2 and
    older to `cipher_suites` (validated crypto/tls names). Returns warnings for suites this OpenSSL lacks;
    raises ssl.SSLError when none of the listed TLS 1.2 suites is available."""
    context.minimum_version = _SSL_VERSIONS.get(min_version, ssl.TLSVersion.TLSv1_2)
    if not cipher_suites:
        return []
    # As in Go, TLS 1.3 suites are always all enabled; a list naming only TLS 1.3 suites leaves no suite
    # for older versions, so only TLS 1.3 can be negotiated.
    openssl_names = [name for suite in cipher_suites if (name := TLS_CIPHER_SUITES[suite]) is not None]
    if not openssl_names:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return []
    usable = [name for name in dict.fromkeys(openssl_names) if _cipher_usable(name)]
    if not usable:
        raise ssl.SSLError(
            f"--tls-cipher-suites: none of {', '.join(cipher_suites)} is usable with {ssl.OPENSSL_VERSION}"
        )
    context.set_ciphers(":".join(usable))
    missing = [suite for suite in cipher_suites if TLS_CIPHER_SUITES[suite] not in (None, *usable)]
    if not missing:
        return []
    return [f"--tls-cipher-suites: {', '.join(missing)} not usable with {ssl.OPENSSL_VERSION}; not offered"]


def _cipher_usable(openssl_name: str) -> bool:
    """Whether this OpenSSL build, at its configured security level, can offer the suite."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.set_ciphers(openssl_name)
    except ssl.SSLError:
        return False
    return True


def _inventory_source(options: ServeOptions) -> StaticInventorySource | KubernetesInventorySource:
    """--inventory-file (standalone) wins; otherwise the cluster from --kubeconfig or in-cluster config."""
    if options.inventory_file:
        return StaticInventorySource(options.inventory_file)
    selector = parse_label_selector(options.node_selector) if options.node_selector else None
    return KubernetesInventorySource(load_api_server_config(options.kubeconfig), node_selector=selector)


def _remove_stale_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()


def _format_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)


class InventoryApplier:
    """Turns each inventory snapshot into store metadata (which nodes and pods exist, their labels),
    scrape targets for the planner, and clean-up of departed nodes. Only differences are applied, so a
    snapshot that changes one pod costs one store call, not one per pod."""

    def __init__(
        self, store: MetricsStore, registry: WorkerRegistry, self_metrics: SelfMetrics, kubelet: KubeletOptions
    ) -> None:
        self._store = store
        self._registry = registry
        self._self_metrics = self_metrics
        self._kubelet = kubelet
        self._current = InventorySnapshot(nodes={}, pods=None)
        self._unreachable: frozenset[str] = frozenset()
        self.on_nodes_departed: Callable[[set[str]], None] = lambda nodes: None

    def snapshot(self) -> InventorySnapshot:
        return self._current

    def has_node(self, node: str) -> bool:
        return node in self._current.nodes

    def node_names(self) -> list[str]:
        return list(self._current.nodes)

    def apply(self, snapshot: InventorySnapshot) -> None:
        previous = self._current
        # Decides whether per-node self-metrics series are kept (--self-metrics-max-nodes) before this
        # snapshot's departures are forgotten and new scrapes are recorded.
        self._self_metrics.set_node_count(len(snapshot.nodes))
        self._apply_nodes(previous, snapshot)
        self._apply_pods(previous, snapshot)
        targets, errors = resolve_targets(snapshot.nodes.values(), self._kubelet)
        self._report_unreachable(errors)
        self._current = snapshot
        self._registry.set_targets(targets)
        log.debug("inventory applied: %d nodes, %d scrape targets", len(snapshot.nodes), len(targets))

    def _apply_nodes(self, previous: InventorySnapshot, snapshot: InventorySnapshot) -> None:
        for name, node in snapshot.nodes.items():
            known = previous.nodes.get(name)
            if known is None or known.labels != node.labels:
                self._store.set_node_metadata(name, node.labels)
        departed = previous.nodes.keys() - snapshot.nodes.keys()
        for name in departed:
            self._store.remove_node_metadata(name)
            self._self_metrics.forget_node(name)
        if departed:
            self.on_nodes_departed(departed)
        self._store.retain_nodes(snapshot.nodes.keys())

    def _apply_pods(self, previous: InventorySnapshot, snapshot: InventorySnapshot) -> None:
        before = previous.pods or {}
        after = snapshot.pods or {}
        for key, pod in after.items():
            known = before.get(key)
            if known is None or known.labels != pod.labels:
                self._store.set_pod_metadata(pod.namespace, pod.name, pod.labels)
        for namespace, name in before.keys() - after.keys():
            self._store.remove_pod_metadata(namespace, name)
        if (previous.pods is None) != (snapshot.pods is None) and previous.nodes:
            log.warning(
                "the inventory %s listing pods; whether unlisted pods are served is fixed at start-up "
                "(restart to change it)",
                "stopped" if snapshot.pods is None else "started",
            )

    def _report_unreachable(self, errors: list[AddressResolutionError]) -> None:
        # One line when the set of unreachable nodes changes, not one per node per snapshot.
        unreachable = frozenset(err.node for err in errors)
        if unreachable and unreachable != self._unreachable:
            more = f" (and {len(errors) - 1} more nodes)" if len(errors) > 1 else ""
            log.error("%s%s; not scraped", errors[0], more)
        self._unreachable = unreachable


async def _follow_inventory(snapshots: AsyncIterator[InventorySnapshot], applier: InventoryApplier) -> None:
    async for snapshot in snapshots:
        applier.apply(snapshot)


async def _refresh_store_stats(
    store: MetricsStore,
    applier: InventoryApplier,
    registry: WorkerRegistry,
    ingestor: SampleIngestor,
    self_metrics: SelfMetrics,
    health: HealthState,
) -> None:
    while True:
        await asyncio.sleep(STORE_STATS_INTERVAL_SECONDS)
        # A sample from a worker that had not yet heard a node was removed can re-create its points.
        store.retain_nodes(applier.node_names())
        self_metrics.update_store(store.stats())
        if ingestor.cycles is not None:
            # Cycles close as batches arrive; when none arrive, the last open ones close here.
            ingestor.cycles.close_due()
        if registry.planner.target_count() == 0:
            # Nothing to scrape is not a stuck collection loop (livez must not fail on an empty cluster).
            health.note_collection_progress()
