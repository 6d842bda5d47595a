"""The collectors under test, started the same way and read the same way.

Both get the production flags of metrics-server's manifests for reaching kubelets
(`--kubelet-insecure-tls --kubelet-preferred-address-types=InternalIP --kubelet-use-node-status-port`)
and the scenario's `--metric-resolution`, listen on 127.0.0.1, and run pinned to the collector's CPUs
(kubemetrics then starts one worker per CPU it may use; Go sets GOMAXPROCS the same way).

- kubemetrics, standalone (no control plane): `--inventory-file` with the simulator's nodes and pods;
  authentication and authorization are off.
- kubemetrics and metrics-server against the hollow cluster: `--kubeconfig` for Nodes and Pods, and
  delegated authentication/authorization against the same kube-apiserver; requests carry the cluster
  admin's client certificate (group system:masters: allowed without a SubjectAccessReview).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from benchmarks.runner.children import pinned

REPO_ROOT = Path(__file__).resolve().parents[2]
# Kubelet connections one kubemetrics worker is given at most (its open-file limit is 20,000 here); above
# it, the runner starts more workers than the collector has CPUs.
NODES_PER_WORKER = 15000
METRICS_SERVER_BUILD = REPO_ROOT / "scripts" / "metrics-server" / "build.sh"
METRICS_SERVER_VERSION = "v0.8.0"
KUBEMETRICS = "kubemetrics"
METRICS_SERVER = "metrics-server"
_KUBELET_FLAGS = (
    "--kubelet-insecure-tls",
    "--kubelet-preferred-address-types=InternalIP",
    "--kubelet-use-node-status-port",
)
NODES_PATH = "/apis/metrics.k8s.io/v1beta1/nodes"


class CollectorError(RuntimeError):
    """A collector could not be built or started; the message says why."""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CollectorSpec:
    name: str
    argv: list[str]
    port: int
    identity: ClientIdentity | None
    version: str
    mode: str
    notes: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resolution_flags(seconds: float) -> list[str]:
    """--metric-resolution, plus a shorter --kubelet-request-timeout where the default 10s would be refused
    (both collectors need the resolution ≥ timeout / 0.9): only resolutions under 11.2 s, the CI smoke's."""
    flags = [f"--metric-resolution={seconds:g}s"]
    if seconds * 0.9 < 10:
        flags.append(f"--kubelet-request-timeout={int(seconds * 0.9)}s")
    return flags


def kubemetrics_workers(nodes: int, cpus: int) -> int | None:
    """--workers for a fleet of `nodes`: None (one per CPU) unless the connections need more processes."""
    needed = -(-nodes // NODES_PER_WORKER)
    return needed if needed > cpus else None


def _kubemetrics_argv(
    inventory_flags: list[str], port: int, work_dir: Path, resolution_seconds: float, workers: int | None
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kubemetrics",
        "serve",
        *inventory_flags,
        *_KUBELET_FLAGS,
        *_resolution_flags(resolution_seconds),
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        f"--cert-dir={work_dir / 'kubemetrics-certs'}",
        *([f"--workers={workers}"] if workers else []),
    ]


def kubemetrics_standalone(
    inventory_file: Path, work_dir: Path, resolution_seconds: float, cpus: str, version: str, workers: int | None = None
) -> CollectorSpec:
    port = free_port()
    argv = _kubemetrics_argv([f"--inventory-file={inventory_file}"], port, work_dir, resolution_seconds, workers)
    return CollectorSpec(KUBEMETRICS, pinned(argv, cpus), port, None, version, "standalone (static inventory)")


def _cluster_flags(kubeconfig: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]


def kubemetrics_in_cluster(
    kubeconfig: Path,
    identity: ClientIdentity,
    work_dir: Path,
    resolution_seconds: float,
    cpus: str,
    version: str,
    workers: int | None = None,
) -> CollectorSpec:
    port = free_port()
    argv = _kubemetrics_argv(_cluster_flags(kubeconfig), port, work_dir, resolution_seconds, workers)
    return CollectorSpec(KUBEMETRICS, pinned(argv, cpus), port, identity, version, "Kubernetes inventory")


def metrics_server(
    binary: Path,
    kubeconfig: Path,
    identity: ClientIdentity,
    work_dir: Path,
    resolution_seconds: float,
    cpus: str,
    version: str,
) -> CollectorSpec:
    port = free_port()
    argv = [
        str(binary),
        *_cluster_flags(kubeconfig),
        *_KUBELET_FLAGS,
        *_resolution_flags(resolution_seconds),
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        f"--cert-dir={work_dir / 'metrics-server-certs'}",
    ]
    return CollectorSpec(METRICS_SERVER, pinned(argv, cpus), port, identity, version, "informers (Nodes, Pods)")


def build_metrics_server(version: str = METRICS_SERVER_VERSION, timeout: float = 3600.0) -> Path:
    """scripts/metrics-server/build.sh: a no-op when the binary is cached; its last stdout line is the binary."""
    if not METRICS_SERVER_BUILD.exists():
        raise CollectorError(f"{METRICS_SERVER_BUILD} is missing: cannot build the metrics-server baseline")
    try:
        result = subprocess.run(
            ["bash", str(METRICS_SERVER_BUILD), version],
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as err:
        raise CollectorError(f"{METRICS_SERVER_BUILD} {version} did not finish within {timeout:.0f}s") from err
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise CollectorError(f"{METRICS_SERVER_BUILD} {version} failed with exit code {result.returncode}")
    binary = Path(lines[-1])
    if not binary.exists():
        raise CollectorError(f"{METRICS_SERVER_BUILD} printed {binary}, which does not exist")
    return binary


class CollectorClient:
    """HTTPS to one collector (its serving certificate is self-signed: not verified)."""

    def __init__(self, spec: CollectorSpec) -> None:
        self.spec = spec
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if spec.identity is not None:
            context.load_cert_chain(str(spec.identity.cert), str(spec.identity.key))
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=2))

    async def close(self) -> None:
        await self._session.close()

    async def get(self, path: str, limit_seconds: float = 60.0) -> tuple[int, bytes]:
        try:
            async with self._session.get(
                self.spec.base_url + path,
                headers={"Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=limit_seconds),
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0, b""

    async def nodes_served(self) -> int:
        status, body = await self.get(NODES_PATH)
        if status != 200:
            return 0
        try:
            items = orjson.loads(body).get("items") or []
        except orjson.JSONDecodeError:
            return 0
        return len(items)

    async def self_metrics(self) -> str:
        status, body = await self.get("/metrics")
        return body.decode(errors="replace") if status == 200 else ""
