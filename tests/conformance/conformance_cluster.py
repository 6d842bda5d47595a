"""The differential test bed: one real control plane, one hollow fleet, and two collectors scraping it —
the upstream metrics-server binary and kubemetrics — started with the same flags.

Both are queried directly over HTTPS as an aggregated API server is queried by kube-apiserver: with the
front-proxy client certificate and `X-Remote-User`/`X-Remote-Group: system:masters`, which both trust
through the request-header CA they read from the cluster's extension-apiserver-authentication ConfigMap.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from conformance_compare import Scrape, read_scrapes
from conformance_layout import PodPlan
from control_plane import CertAndKey, ControlPlane
from harness import REPO_ROOT, ChildProcess

T = TypeVar("T")
METRICS_API = "/apis/metrics.k8s.io/v1beta1"
MASTERS = {"X-Remote-User": "conformance-tester", "X-Remote-Group": "system:masters"}
BUILD_SCRIPT = REPO_ROOT / "scripts" / "metrics-server" / "build.sh"
DEFAULT_METRICS_SERVER_VERSION = "v0.8.0"
# Both collectors: what metrics-server's manifests set, with a short resolution to keep the run short
# (metrics-server needs resolution × 0.9 ≥ the kubelet request timeout).
RESOLUTION_SECONDS = 10
REQUEST_TIMEOUT = "5s"
METRICS_SERVER_USER_AGENT = "metrics-server/"
KUBEMETRICS_USER_AGENT = "kubemetrics/"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def build_metrics_server(version: str, timeout: float) -> Path:
    """scripts/metrics-server/build.sh (a cache hit takes well under a second); returns the binary. The build
    runs in its own process group so a timeout or an interrupt also stops the Go compilers under it."""
    build = subprocess.Popen(
        ["bash", str(BUILD_SCRIPT), version], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, _ = build.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(build.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        build.wait()
        raise
    lines = stdout.strip().splitlines()
    if build.returncode != 0 or not lines:
        raise RuntimeError(f"{BUILD_SCRIPT} {version} failed with exit code {build.returncode} (output above)")
    return Path(lines[-1])


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


class Collector:
    """One metrics collector under test, reachable on 127.0.0.1:port."""

    def __init__(self, name: str, child: ChildProcess, port: int, user_agent: str, front_proxy: CertAndKey) -> None:
        self.name = name
        self.child = child
        self.port = port
        self.user_agent = user_agent
        self._front_proxy = front_proxy

    def _context(self, client_cert: bool) -> ssl.SSLContext:
        # The serving certificates are self-signed for localhost, as both generate them in --cert-dir;
        # kube-apiserver talks to them with insecureSkipTLSVerify the same way.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if client_cert:
            context.load_cert_chain(str(self._front_proxy.cert), str(self._front_proxy.key))
        return context

    def get(
        self,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        identity: dict[str, str] | None = None,
        authenticated: bool = True,
    ) -> Answer:
        """GET as `identity` (request headers; default a system:masters user) behind the front-proxy
        certificate, or with no credentials at all."""
        names = (MASTERS if identity is None else identity) if authenticated else {}
        all_headers = {**names, **(headers or {})}
        request = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}", headers=all_headers)
        context = self._context(authenticated)
        try:
            with urllib.request.urlopen(request, context=context, timeout=15) as response:
                return Answer(response.status, response.read().decode(), response.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as err:
            with err:
                return Answer(err.code, err.read().decode(errors="replace"), err.headers.get("Content-Type", ""))

    def get_json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer.status == 200, f"{self.name} GET {path}: {answer.status} {answer.body[:500]}"
        return answer.json()

    def stop(self) -> int | None:
        return self.child.stop()


def ask_both(collectors: Sequence[Collector], paths: Sequence[str]) -> tuple[float, float, list[list[Any]]]:
    """GET every path from every collector at once (one thread each); returns (asked at, all answered at,
    answers[collector][path]) so both answers describe the same instant."""
    with ThreadPoolExecutor(max_workers=len(collectors) * len(paths)) as pool:
        started = time.time()
        futures = [[pool.submit(c.get_json, p) for p in paths] for c in collectors]
        answers = [[f.result() for f in row] for row in futures]
        finished = time.time()
    return started, finished, answers


@dataclass
class Hollow:
    child: ChildProcess
    ready: dict[str, Any]

    @property
    def control_url(self) -> str:
        return str(self.ready["controlUrl"])

    def scrapes(self) -> dict[str, list[Scrape]]:
        with urllib.request.urlopen(f"{self.control_url}/scrapes", timeout=15) as response:
            return read_scrapes(json.loads(response.read()))

    def set_faults(self, faults: dict[str, str | None]) -> None:
        request = urllib.request.Request(f"{self.control_url}/faults", data=json.dumps(faults).encode(), method="PUT")
        with urllib.request.urlopen(request, timeout=15) as response:
            assert response.status == 200


@dataclass
class ConformanceBed:
    control_plane: ControlPlane
    hollow: Hollow
    pods: list[PodPlan]
    metrics_server: Collector
    kubemetrics: Collector
    metrics_server_version: str
    setup_seconds: float

    @property
    def collectors(self) -> tuple[Collector, Collector]:
        return self.metrics_server, self.kubemetrics

    def pod(self, namespace: str, name: str) -> PodPlan:
        return next(p for p in self.pods if p.namespace == namespace and p.name == name)


def collector_flags(control_plane: ControlPlane, port: int, cert_dir: Path, node_selector: str) -> list[str]:
    """The flags both collectors get: metrics-server's production manifest (InternalIP, node-status port,
    insecure kubelet TLS as its e2e overlay has it) run outside a cluster with the admin kubeconfig."""
    admin = control_plane.admin_kubeconfig
    return [
        f"--kubeconfig={admin}",
        f"--authentication-kubeconfig={admin}",
        f"--authorization-kubeconfig={admin}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--kubelet-insecure-tls",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        f"--metric-resolution={RESOLUTION_SECONDS}s",
        f"--kubelet-request-timeout={REQUEST_TIMEOUT}",
        f"--node-selector={node_selector}",
    ]


def print_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
