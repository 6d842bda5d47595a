"""Shared pieces of the API server tests (no tests of its own).

A small cluster whose usage is known exactly, loaded into a real `MetricsStore` as two encoded
samples per node 15 s apart (so CPU rates exist); the API server on 127.0.0.1 with its generated
self-signed certificate; an HTTPS client that verifies against that certificate; and a kubeconfig
that points kubectl at the server with the certificate as its only authority and no credentials.
(kubectl prompts for a user name when an HTTPS cluster has no identity at all, so the kubeconfig
names one, without a password.)
"""

from __future__ import annotations

import base64
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from kubemetrics._native import MetricsStore, encode_sample
from kubemetrics.api import ApiContext
from kubemetrics.api.server import start_api_server
from kubemetrics.health import HealthState
from kubemetrics.inventory import InventorySnapshot, NodeAddress, NodeInfo, PodInfo
from kubemetrics.options import ServeOptions
from kubemetrics.selfmetrics import SelfMetrics

RESOLUTION_SECONDS = 15.0
SCRAPE_INTERVAL_SECONDS = 15
NANOS = 1_000_000_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    millicores: int
    memory_bytes: int


@dataclass(frozen=True)
class PodUsage:
    namespace: str
    name: str
    containers: tuple[ContainerUsage, ...]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeUsage:
    name: str
    millicores: int
    memory_bytes: int
    labels: Mapping[str, str]
    allocatable_cpu: str
    allocatable_memory: str
    pods: tuple[PodUsage, ...] = ()


# Usage chosen so that every quantity has one exact canonical form:
# node-a 500m / 1Gi of 4 cores / 16Gi, node-b 250m / 2Gi of 2 cores / 16Gi.
CLUSTER = (
    NodeUsage(
        name="node-a",
        millicores=500,
        memory_bytes=1024 * MIB,
        labels={"kubernetes.io/hostname": "node-a", "pool": "web"},
        allocatable_cpu="4",
        allocatable_memory="16Gi",
        pods=(
            PodUsage("default", "web-0", (ContainerUsage("app", 100, 64 * MIB),), {"app": "web"}),
            PodUsage("default", "web-1", (ContainerUsage("app", 120, 80 * MIB),), {"app": "web"}),
        ),
    ),
    NodeUsage(
        name="node-b",
        millicores=250,
        memory_bytes=2048 * MIB,
        labels={"kubernetes.io/hostname": "node-b", "pool": "system"},
        allocatable_cpu="2",
        allocatable_memory="16Gi",
        pods=(
            PodUsage(
                "kube-system",
                "coredns-0",
                (ContainerUsage("coredns", 20, 12533760), ContainerUsage("sidecar", 5, 5 * MIB)),
                {"k8s-app": "kube-dns"},
            ),
        ),
    ),
)
# In the inventory (node metadata) but never scraped: 404 nodemetrics, `<unknown>` in kubectl top.
SILENT_NODE = NodeUsage(
    name="node-c",
    millicores=0,
    memory_bytes=0,
    labels={"kubernetes.io/hostname": "node-c", "pool": "web"},
    allocatable_cpu="8",
    allocatable_memory="32Gi",
)
# In the pod inventory (Running) but without metrics: 404 podmetrics "ns/name".
SILENT_POD = PodInfo("default", "web-2", {"app": "web"}, "node-a")


def point(timestamp_nanos: int, cpu_nanos: int, memory_bytes: int, start_nanos: int) -> dict[str, object]:
    return {
        "timestamp_unix_nanos": timestamp_nanos,
        "cumulative_cpu_nanos": cpu_nanos,
        "memory_working_set_bytes": memory_bytes,
        "start_time_unix_nanos": start_nanos,
    }


def node_sample(node: NodeUsage, timestamp_nanos: int, elapsed_seconds: int, start: int) -> bytes:
    """The node's sample `elapsed_seconds` after a reference point; everything started at `start`
    (long before, so no fresh-container shortcut applies): cumulative CPU grows by exactly
    `millicores` per second."""

    def cpu(millicores: int) -> int:
        return 10_000 * NANOS + millicores * 1_000_000 * elapsed_seconds

    return encode_sample(
        {
            "node": node.name,
            "scrape_time_unix_nanos": timestamp_nanos,
            "node_point": point(timestamp_nanos, cpu(node.millicores), node.memory_bytes, start),
            "pods": [
                {
                    "namespace": pod.namespace,
                    "name": pod.name,
                    "containers": [
                        {
                            "name": container.name,
                            "point": point(timestamp_nanos, cpu(container.millicores), container.memory_bytes, start),
                        }
                        for container in pod.containers
                    ],
                }
                for pod in node.pods
            ],
        }
    )


_built_latest_second: int | None = None


def last_scrape_second() -> int:
    """Whole-second time of the newer sample of the last store built (timestamps serialize at whole
    seconds); remembered, so a test comparing against it cannot straddle a second boundary."""
    return int(time.time()) - 5 if _built_latest_second is None else _built_latest_second


def build_store(*, with_pod_inventory: bool, latest_second: int | None = None) -> MetricsStore:
    """A real store holding CLUSTER's two samples per node and the inventory's metadata."""
    global _built_latest_second
    latest = int(time.time()) - 5 if latest_second is None else latest_second
    _built_latest_second = latest
    store = MetricsStore(RESOLUTION_SECONDS, require_pod_metadata=with_pod_inventory)
    for node in (*CLUSTER, SILENT_NODE):
        store.set_node_metadata(node.name, node.labels)
    if with_pod_inventory:
        for pod_info in inventory(with_pods=True).pods.values():  # type: ignore[union-attr]
            store.set_pod_metadata(pod_info.namespace, pod_info.name, pod_info.labels)
    start = (latest - 3600) * NANOS
    for elapsed, second in ((0, latest - SCRAPE_INTERVAL_SECONDS), (SCRAPE_INTERVAL_SECONDS, latest)):
        stored = store.ingest([node_sample(node, second * NANOS, 1000 + elapsed, start) for node in CLUSTER])
        assert stored == len(CLUSTER)
    return store


def inventory(*, with_pods: bool) -> InventorySnapshot:
    nodes = {
        node.name: NodeInfo(
            name=node.name,
            addresses=(NodeAddress("InternalIP", f"127.1.0.{index + 1}"), NodeAddress("Hostname", node.name)),
            kubelet_port=10250,
            labels=dict(node.labels),
            capacity={"cpu": node.allocatable_cpu, "memory": node.allocatable_memory, "pods": "110"},
            allocatable={"cpu": node.allocatable_cpu, "memory": node.allocatable_memory, "pods": "110"},
        )
        for index, node in enumerate((*CLUSTER, SILENT_NODE))
    }
    if not with_pods:
        return InventorySnapshot(nodes=nodes, pods=None)
    pods = {
        (pod.namespace, pod.name): PodInfo(pod.namespace, pod.name, dict(pod.labels), node.name)
        for node in CLUSTER
        for pod in node.pods
    }
    pods[(SILENT_POD.namespace, SILENT_POD.name)] = SILENT_POD
    return InventorySnapshot(nodes=nodes, pods=pods)


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class RunningApiServer:
    ctx: ApiContext
    runner: web.AppRunner
    session: aiohttp.ClientSession
    port: int
    cert_dir: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "apiserver.crt"

    async def request(self, method: str, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        async with self.session.request(method, self.base_url + path, headers=headers) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return await self.request("GET", path, headers)


def serve_options(cert_dir: Path, *, standalone_core_api: bool) -> ServeOptions:
    return ServeOptions(
        metric_resolution_seconds=RESOLUTION_SECONDS,
        secure_port=0,
        bind_address="127.0.0.1",
        cert_dir=str(cert_dir),
        standalone_core_api=standalone_core_api,
        inventory_file="inventory.json",
    )


def api_context(
    cert_dir: Path,
    *,
    standalone_core_api: bool = False,
    with_pod_inventory: bool = True,
    store: MetricsStore | None = None,
    health: HealthState | None = None,
) -> ApiContext:
    snapshot = inventory(with_pods=with_pod_inventory)
    return ApiContext(
        options=serve_options(cert_dir, standalone_core_api=standalone_core_api),
        store=store if store is not None else build_store(with_pod_inventory=with_pod_inventory),
        health=health if health is not None else HealthState(RESOLUTION_SECONDS, inventory_synced=True),
        self_metrics=SelfMetrics(),
        inventory=lambda: snapshot,
    )


def client_ssl_context(ca_file: Path) -> ssl.SSLContext:
    """Verifies the server against the generated certificate, host name (127.0.0.1) included."""
    return ssl.create_default_context(cafile=str(ca_file))


@contextlib.asynccontextmanager
async def running_api_server(
    ctx: ApiContext, middlewares: Sequence[Middleware] = ()
) -> AsyncIterator[RunningApiServer]:
    runner = await start_api_server(ctx, middlewares=middlewares)
    try:
        port = int(runner.addresses[0][1])
        cert_dir = Path(ctx.options.cert_dir)
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(cert_dir / "apiserver.crt"))
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            yield RunningApiServer(ctx, runner, session, port, cert_dir)
    finally:
        await runner.cleanup()


def write_kubeconfig(path: Path, server_url: str, ca_file: Path) -> Path:
    authority = base64.b64encode(ca_file.read_bytes()).decode()
    path.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: kubemetrics\n"
        "  cluster:\n"
        f"    server: {server_url}\n"
        f"    certificate-authority-data: {authority}\n"
        "users:\n"
        "- name: anonymous\n"
        "  user:\n"
        # A user name without password: not a credential the server checks, but without any
        # identity kubectl prompts for a user name on HTTPS servers.
        "    username: anonymous\n"
        "contexts:\n"
        "- name: kubemetrics\n"
        "  context:\n"
        "    cluster: kubemetrics\n"
        "    user: anonymous\n"
        "current-context: kubemetrics\n"
    )
    return path
