"""kubemetrics as the aggregated metrics API of the test control plane, for the e2e modules that need it.

- `hollow_simulator`: `kubemetrics simulate` in hollow mode, its nodes registered as Ready Nodes, its
  kubelets reporting each pod's usage from the pod's annotations; `Hollow.truth` is what a kubelet reports.
- `kubemetrics_front`: `kubemetrics serve` discovering those nodes through the API, scraping them with
  two workers and authenticating/authorizing through kube-apiserver (delegated).
- `registered_apiservice`: the ExternalName Service kube-system/kubemetrics → 127.0.0.1 and the APIService
  v1beta1.metrics.k8s.io, so `kubectl top` and the HPA reach the front through the aggregator.
- Readers for what comes back: `kubectl top` tables and resource quantities.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from control_plane import CertAndKey, ControlPlane
from harness import ChildProcess, free_loopback_block, free_port, kubemetrics_argv

# Disjoint from the hollow-kubelet test (100-190) and the conformance suite (231-250).
E2E_AGGREGATED_OCTETS = (191, 230)

T = TypeVar("T")
APISERVICE = "v1beta1.metrics.k8s.io"
METRICS_API = "/apis/metrics.k8s.io/v1beta1"
USAGE_ANNOTATION = "kubemetrics.io/usage-cpu"
MEMORY_ANNOTATION = "kubemetrics.io/usage-memory"
MASTERS = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
MEBIBYTE = 1024 * 1024


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def kubectl_json(cluster: ControlPlane, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------------------------------
# The simulated nodes


@dataclass(frozen=True)
class Usage:
    millicores: float
    memory_bytes: int


@dataclass
class KubeletTruth:
    """What the simulated kubelets report: each node's usage, and each pod's per container."""

    nodes: dict[str, Usage]
    containers: dict[tuple[str, str], dict[str, Usage]]

    def pod(self, namespace: str, name: str) -> Usage:
        """What metrics-server reports for a pod: the sums over its containers."""
        containers = self.containers[(namespace, name)].values()
        return Usage(sum(c.millicores for c in containers), sum(c.memory_bytes for c in containers))


@dataclass
class Hollow:
    child: ChildProcess
    ready: dict[str, Any]
    ca_file: Path
    started_in: float

    def truth(self, nodes: Iterable[str], at: Mapping[str, int] | None = None) -> KubeletTruth:
        """The simulator's own account (its control endpoint's /truth) of what these nodes' kubelets
        report now, or at `at[node]` (Unix seconds): CPU rates (constant while a pod's annotations are)
        and memory working sets (a pod's constant too; a node's drifts slowly with its system daemons)."""
        truth = KubeletTruth({}, {})
        for node in nodes:
            url = f"{self.ready['controlUrl']}/truth?node={urllib.parse.quote(node)}"
            if at is not None:
                url += f"&t={at[node]}"
            with urllib.request.urlopen(url, timeout=10) as response:
                document = json.loads(response.read())
            truth.nodes[node] = _usage(document)
            for pod in document["pods"]:
                containers = {c["name"]: _usage(c) for c in pod["containers"]}
                truth.containers[(pod["namespace"], pod["name"])] = containers
        return truth


def _usage(reading: dict[str, Any]) -> Usage:
    return Usage(reading["cpu_nanocores"] / 1e6, int(reading["memory"]["working_set_bytes"]))


@contextlib.contextmanager
def hollow_simulator(control_plane: ControlPlane, work: Path, nodes: int, *extra_args: str) -> Iterator[Hollow]:
    """`nodes` simulated nodes sim-node-0… joined to the cluster; their Nodes are deleted again at exit."""
    base, port = free_loopback_block(E2E_AGGREGATED_OCTETS)
    out_dir = work / "out"
    started = time.monotonic()
    child = ChildProcess(
        "hollow-simulate",
        kubemetrics_argv(
            "simulate",
            f"--kubeconfig={control_plane.admin_kubeconfig}",
            f"--nodes={nodes}",
            f"--out-dir={out_dir}",
            f"--address-base={base}",
            f"--port={port}",
            "--housekeeping-interval=1s",
            "--deregister-on-exit",
            "-v=1",
            *extra_args,
        ),
        work,
    )
    try:
        ready_file = out_dir / "ready"
        wait_for(
            "the simulator's ready file",
            lambda: True if ready_file.exists() or not child.alive() else None,
            timeout=120,
        )
        assert child.alive(), child.log_text()
        started_in = time.monotonic() - started
        print(f"hollow simulator with {nodes} nodes ready in {started_in:.1f}s", file=sys.stderr)
        yield Hollow(child, json.loads(ready_file.read_text()), out_dir / "ca.crt", started_in)
    finally:
        code = child.stop()
        assert code == 0, child.log_text()


# --------------------------------------------------------------------------------------------------
# kubemetrics serve


@dataclass
class Front:
    child: ChildProcess
    port: int
    serving_cert: Path

    def get(self, path: str, *, cert: CertAndKey | None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET straight to the front (not through the aggregator), presenting `cert`."""
        context = ssl.create_default_context(cafile=str(self.serving_cert))
        if cert is not None:
            context.load_cert_chain(str(cert.cert), str(cert.key))
        request = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())


@contextlib.contextmanager
def kubemetrics_front(control_plane: ControlPlane, hollow: Hollow, work: Path) -> Iterator[Front]:
    """Two workers, 10 s resolution, inventory and delegated auth from the cluster as the admin."""
    port = free_port()
    admin = control_plane.admin_kubeconfig
    child = ChildProcess(
        "kubemetrics-serve",
        kubemetrics_argv(
            "serve",
            f"--kubeconfig={admin}",
            f"--authentication-kubeconfig={admin}",
            f"--authorization-kubeconfig={admin}",
            f"--kubelet-certificate-authority={hollow.ca_file}",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            "--metric-resolution=10s",
            "--kubelet-request-timeout=5s",
            "--workers=2",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={work / 'certs'}",
            # Debug logging: one line per request with the representation it was answered in.
            "-v=1",
        ),
        work,
    )
    try:
        wait_for(
            "the front to listen",
            lambda: True if _listening(port) or not child.alive() else None,
            timeout=60,
        )
        assert child.alive(), child.log_text()
        yield Front(child, port, work / "certs" / "apiserver.crt")
    finally:
        code = child.stop()
        assert code == 0, child.log_text()[-4000:]


# --------------------------------------------------------------------------------------------------
# The APIService


@contextlib.contextmanager
def registered_apiservice(control_plane: ControlPlane, front: Front) -> Iterator[float]:
    """The Service and APIService; yields the seconds it took for the APIService to become Available."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubemetrics", "namespace": "kube-system"},
        "spec": {
            "type": "ExternalName",
            "externalName": "127.0.0.1",
            "ports": [{"name": "https", "port": front.port, "protocol": "TCP"}],
        },
    }
    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": APISERVICE},
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "insecureSkipTLSVerify": True,
            "service": {"namespace": "kube-system", "name": "kubemetrics", "port": front.port},
        },
    }
    started = time.monotonic()
    control_plane.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, apiservice]})
    )
    try:
        wait_for("the APIService to be Available", lambda: True if apiservice_available(control_plane) else None, 60)
        yield time.monotonic() - started
    finally:
        control_plane.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found")
        control_plane.kubectl("-n", "kube-system", "delete", "service", "kubemetrics", "--ignore-not-found")


def apiservice_available(cluster: ControlPlane) -> bool:
    return available_condition(cluster).get("status") == "True"


def available_condition(cluster: ControlPlane) -> dict[str, Any]:
    status = kubectl_json(cluster, "get", "apiservice", APISERVICE).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "Available"), {})


# --------------------------------------------------------------------------------------------------
# Reading answers


def top_table(output: str) -> dict[str, list[str]]:
    """`kubectl top` output → first column → the other columns."""
    rows = [line.split() for line in output.strip().splitlines()]
    return {row[0]: row[1:] for row in rows[1:]}


def top_rows(output: str, key_columns: int) -> dict[tuple[str, ...], list[str]]:
    """`kubectl top` output → the first `key_columns` columns → the other columns."""
    rows = [line.split() for line in output.strip().splitlines()]
    return {tuple(row[:key_columns]): row[key_columns:] for row in rows[1:]}


def parse_time(timestamp: str) -> int:
    """A metav1.Time (RFC 3339, whole seconds) as Unix seconds."""
    return int(datetime.datetime.fromisoformat(timestamp).timestamp())


def parse_millicores(quantity: str) -> float:
    if quantity.endswith("n"):
        return int(quantity[:-1]) / 1e6
    if quantity.endswith("u"):
        return int(quantity[:-1]) / 1e3
    if quantity.endswith("m"):
        return float(quantity[:-1])
    return float(quantity) * 1000


_BINARY_SUFFIXES = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def parse_bytes(quantity: str) -> int:
    for suffix, factor in _BINARY_SUFFIXES.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)
