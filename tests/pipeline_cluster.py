"""A real pipeline on loopback: the simulator (fake kubelets over HTTPS), `kubemetrics serve` with two
real worker processes, and the real HTTPS API — shared by the integration tests of this directory.

Four simulated nodes misbehave from the start (hang, HTTP 500, garbage, truncated body); the others
are healthy. Resolution is the minimum metrics-server allows (10 s) to keep the run short.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from harness import ChildProcess, free_port, kubemetrics_argv, wait_until
from kubemetrics.simulator import cli as simulator_cli
from kubemetrics.simulator.model import Model

RESOLUTION_SECONDS = 10.0
NODES = 12
PODS_PER_NODE = 4
SEED = 11
FAULTS = {"sim-node-1": "hang", "sim-node-4": "http500", "sim-node-7": "garbage", "sim-node-10": "truncated"}
ADDRESS_BASE = "127.42.0.0"


@dataclass
class Cluster:
    work_dir: Path
    simulator: ChildProcess
    front: ChildProcess
    model: Model
    api_url: str
    kubeconfig: Path
    ssl_context: ssl.SSLContext

    @property
    def healthy_nodes(self) -> list[str]:
        return [n for n in self.model.node_names() if n not in FAULTS]

    def get(self, path: str) -> tuple[int, bytes]:
        return https_get(self.api_url + path, self.ssl_context)

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, f"GET {path} → {status}: {body[:300]!r}"
        return orjson.loads(body)


def https_get(url: str, context: ssl.SSLContext, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def _simulator_model(argv: list[str], origin: int) -> Model:
    parser = argparse.ArgumentParser()
    simulator_cli.add_flags(parser)
    config = simulator_cli.config_from(parser.parse_args(argv), origin)
    return Model(config.params)


def _write_kubeconfig(path: Path, server: str, ca_pem: bytes) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubemetrics",
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
            }
        ],
        "users": [{"name": "anonymous", "user": {"username": "anonymous"}}],
        "contexts": [{"name": "kubemetrics", "context": {"cluster": "kubemetrics", "user": "anonymous"}}],
        "current-context": "kubemetrics",
    }
    path.write_bytes(orjson.dumps(doc))


@contextlib.contextmanager
def running_cluster(work: Path) -> Iterator[Cluster]:
    sim_dir = work / "sim"
    origin = int(time.time()) - 3600  # pods started an hour ago: steady rates, no fresh-container window
    sim_args = [
        f"--nodes={NODES}",
        f"--pods-per-node={PODS_PER_NODE}",
        f"--seed={SEED}",
        f"--out-dir={sim_dir}",
        f"--address-base={ADDRESS_BASE}",
        f"--origin={origin}",
        "--restart-interval=0",
        "--churn-interval=0",
        *(f"--fault={node}={kind}" for node, kind in FAULTS.items()),
    ]
    model = _simulator_model(sim_args, origin)
    simulator = ChildProcess("simulator", kubemetrics_argv("simulate", *sim_args), work)
    front: ChildProcess | None = None
    try:
        wait_until(lambda: (sim_dir / "ready").exists() or not simulator.alive(), 60, what="simulator ready")
        assert simulator.alive(), simulator.log_text()
        port = free_port()
        front = ChildProcess(
            "front",
            kubemetrics_argv(
                "serve",
                f"--inventory-file={sim_dir / 'inventory.json'}",
                f"--kubelet-certificate-authority={sim_dir / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--metric-resolution={RESOLUTION_SECONDS:g}s",
                "--kubelet-request-timeout=3s",
                "--workers=2",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={work / 'certs'}",
                f"--runtime-dir={work / 'run'}",
                "--standalone-core-api",
            ),
            work,
        )
        cert = work / "certs" / "apiserver.crt"
        wait_until(lambda: cert.exists() or not front.alive(), 60, what="serving certificate")
        assert front.alive(), front.log_text()
        context = ssl.create_default_context(cafile=str(cert))
        api_url = f"https://127.0.0.1:{port}"
        kubeconfig = work / "kubeconfig"
        _write_kubeconfig(kubeconfig, api_url, cert.read_bytes())
        result = Cluster(work, simulator, front, model, api_url, kubeconfig, context)

        def all_healthy_nodes_served() -> bool:
            try:
                status, body = result.get("/apis/metrics.k8s.io/v1beta1/nodes")
            except OSError:
                return False
            if status != 200:
                return False
            served = {item["metadata"]["name"] for item in orjson.loads(body)["items"]}
            if not set(result.healthy_nodes) <= served:
                return False
            status, body = result.get("/apis/metrics.k8s.io/v1beta1/pods")
            pods = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in orjson.loads(body)["items"]}
            now = int(time.time())
            expected = {
                (pod.namespace, pod.name) for node in result.healthy_nodes for pod in model.truth_for(node, now).pods
            }
            return status == 200 and expected <= pods

        # Two points per node and container are needed: first scrapes are spread over one resolution,
        # and a container's second point must carry a newer kubelet sample time.
        wait_until(all_healthy_nodes_served, 5 * RESOLUTION_SECONDS, interval=0.5, what="all healthy nodes served")
        yield result
    finally:
        if front is not None:
            front.stop()
        simulator.stop()


_CPU_SUFFIX = {"n": 1, "u": 1_000, "m": 1_000_000, "": 1_000_000_000}
_MEMORY_SUFFIX = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3, "": 1}


def parse_cpu_nanocores(quantity: str) -> int:
    number = quantity.rstrip("num")
    return int(number) * _CPU_SUFFIX[quantity[len(number) :]]


def parse_memory_bytes(quantity: str) -> int:
    number = quantity.rstrip("KMGik")
    return int(number) * _MEMORY_SUFFIX[quantity[len(number) :]]


def parse_timestamp(text: str) -> int:
    import datetime

    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp())


def within(actual: float, expected: float, fraction: float = 0.02, slack: float = 0.0) -> bool:
    return abs(actual - expected) <= max(abs(expected) * fraction, slack)
