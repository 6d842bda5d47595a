"""The cluster the metrics-server baseline needs: a real control plane (scripts/control-plane: etcd,
kube-apiserver, kube-controller-manager from the Go module proxy), the simulator in hollow mode
registering one Node per simulated kubelet, and every pod of the scenario created through the API
with its node already chosen, so the hollow kubelets run it (status Running) and report it.

Both collectors then see the same cluster: metrics-server through its informers, kubemetrics through
its Kubernetes inventory (`--kubeconfig`), with the same kubelets behind the Nodes.

Pods go into 100 namespaces `bench-00` … `bench-99`, all labelled `app=web`, so each HPA-like lister
(one per namespace) selects a hundredth of the cluster, as one HorizontalPodAutoscaler per
Deployment would. Containers per pod: the scenario's count, or alternately 1 and 2 (the simulator's
own mix averages about 1.5).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from kubemetrics.inventory.kubeconfig import load_kubeconfig
from kubemetrics.simulator.kubeapi import ApiError, KubeClient

from benchmarks.runner.children import HARNESS_OOM_SCORE_ADJ, pin_running, set_oom_score_adj
from benchmarks.runner.scenarios import Scenario
from benchmarks.runner.watch import WatchedProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROL_PLANE_SCRIPT = REPO_ROOT / "scripts" / "control-plane" / "control_plane.py"
NAMESPACES = 100
NAMESPACE_PREFIX = "bench-"
APP_LABEL = {"app": "web"}
_PARALLEL_CREATES = 24
_CREATE_RETRY_SECONDS = 60.0
# A cold build of the control plane takes about a quarter of an hour on two cores.
BUILD_TIMEOUT_SECONDS = 3 * 3600.0


# Neither collector needs a controller (both read Nodes and Pods with the admin's kubeconfig), and the
# default set's garbage collector and ReplicaSet informers hold every pod: 1.4 GB at 130k pods. One
# cheap controller keeps kube-controller-manager itself, and its start-up check, as the e2e tests run it.
BENCH_CONTROLLERS = ("--controllers=serviceaccount-controller",)


class ClusterError(RuntimeError):
    """The control plane or the API objects could not be set up; the message says which and why."""


def _control_plane_module() -> ModuleType:
    """scripts/control-plane/control_plane.py, imported by path (it is a script, not a package)."""
    name = "kubemetrics_bench_control_plane"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, CONTROL_PLANE_SCRIPT)
    if spec is None or spec.loader is None:
        raise ClusterError(f"cannot import {CONTROL_PLANE_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class ControlPlaneHandle:
    """What the runner uses of a started control plane."""

    admin_kubeconfig: Path
    apiserver_url: str
    # The cluster admin's client certificate (group system:masters): the load generator presents it to a
    # collector with delegated authorization, which then allows every request without a SubjectAccessReview.
    admin_cert: Path
    admin_key: Path
    etcd_url: str
    process_ids: list[int]
    _cluster: Any

    def watched(self) -> list[WatchedProcess]:
        """etcd, kube-apiserver and kube-controller-manager, to fail a scenario at once if one exits."""
        return [WatchedProcess(p.name, p.process, Path(p.log_path)) for p in self._cluster.processes]

    def stop(self) -> None:
        self._cluster.stop()


def start_control_plane(run_dir: Path, harness_cpus: str) -> ControlPlaneHandle:
    """Build (a no-op when cached) and start the control plane, pinned beside the simulator."""
    module = _control_plane_module()
    try:
        binaries = module.build_binaries(timeout=BUILD_TIMEOUT_SECONDS)
        cluster = module.start_control_plane(binaries, run_dir, controller_manager_args=BENCH_CONTROLLERS)
    except module.ControlPlaneError as err:
        raise ClusterError(str(err)) from err
    pids = [int(process.pid) for process in cluster.processes]
    for pid in pids:
        pin_running(pid, harness_cpus)
        # kube-apiserver is the largest process of a big run: memory running out must kill the collector.
        set_oom_score_adj(pid, HARNESS_OOM_SCORE_ADJ)
    return ControlPlaneHandle(
        admin_kubeconfig=Path(cluster.admin_kubeconfig),
        apiserver_url=str(cluster.apiserver_url),
        admin_cert=Path(cluster.pki.admin.cert),
        admin_key=Path(cluster.pki.admin.key),
        etcd_url=str(cluster.etcd_url),
        process_ids=pids,
        _cluster=cluster,
    )


def namespace_of(pod_index: int) -> str:
    return f"{NAMESPACE_PREFIX}{pod_index % NAMESPACES:02d}"


def hpa_targets() -> list[tuple[str, str]]:
    """(namespace, label selector) of the 100 HPA-like listers."""
    return [(f"{NAMESPACE_PREFIX}{n:02d}", "app=web") for n in range(NAMESPACES)]


def pod_manifest(scenario: Scenario, node_name: str, pod_index: int) -> dict[str, Any]:
    containers = scenario.containers_per_pod or 1 + pod_index % 2
    names = ["app", *(f"sidecar-{n}" for n in range(1, containers))]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{pod_index:07d}",
            "namespace": namespace_of(pod_index),
            "labels": dict(APP_LABEL),
            # Usage the hollow kubelet reports: spread so values differ from pod to pod.
            "annotations": {
                "kubemetrics.io/usage-cpu": f"{5 + pod_index * 37 % 400}m",
                "kubemetrics.io/usage-memory": f"{20 + pod_index * 53 % 480}Mi",
            },
        },
        "spec": {
            # Bound at creation: there is no scheduler, and the hollow kubelets run what is bound to them.
            "nodeName": node_name,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": name, "image": "registry.k8s.io/pause:3.10"} for name in names],
        },
    }


async def _create_with_retry(client: KubeClient, path: str, body: dict[str, Any]) -> None:
    """Create; 409 (exists) is fine; a namespace's default ServiceAccount may not exist yet: retry."""
    deadline = time.monotonic() + _CREATE_RETRY_SECONDS
    delay = 0.2
    while True:
        try:
            await client.request("POST", path, body)
            return
        except ApiError as err:
            if err.status == 409:
                return
            retryable = err.status in (0, 429, 500, 503) or "serviceaccount" in str(err).lower()
            if not retryable or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


async def create_namespaces(admin_kubeconfig: Path) -> None:
    client = KubeClient(load_kubeconfig(admin_kubeconfig), request_timeout=60.0)
    try:
        await _create_namespaces(client)
    except ApiError as err:
        raise ClusterError(f"creating the scenario's namespaces: {err}") from err
    finally:
        await client.close()


async def _create_namespaces(client: KubeClient) -> None:
    for n in range(NAMESPACES):
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{NAMESPACE_PREFIX}{n:02d}"}}
        await _create_with_retry(client, "/api/v1/namespaces", namespace)


async def create_pods(
    admin_kubeconfig: Path, scenario: Scenario, node_names: list[str], progress: Callable[[int, int], None]
) -> None:
    """Every namespace, then every pod, `_PARALLEL_CREATES` requests at a time."""
    client = KubeClient(load_kubeconfig(admin_kubeconfig), request_timeout=60.0)
    try:
        await _create_namespaces(client)
        total = scenario.pods
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(total):
            queue.put_nowait(index)
        created = 0

        async def creator() -> None:
            nonlocal created
            while not queue.empty():
                index = queue.get_nowait()
                node = node_names[index // scenario.pods_per_node]
                manifest = pod_manifest(scenario, node, index)
                await _create_with_retry(client, f"/api/v1/namespaces/{namespace_of(index)}/pods", manifest)
                created += 1
                if created % 200 == 0 or created == total:
                    progress(created, total)

        await asyncio.gather(*(creator() for _ in range(_PARALLEL_CREATES)))
    except ApiError as err:
        raise ClusterError(f"creating the scenario's pods: {err}") from err
    finally:
        await client.close()


async def running_pods(admin_kubeconfig: Path) -> int:
    """Pods with status.phase=Running (paged list; remainingItemCount is not given with a field selector)."""
    client = KubeClient(load_kubeconfig(admin_kubeconfig), request_timeout=120.0)
    try:
        items, _ = await client.list_all("/api/v1/pods?fieldSelector=status.phase%3DRunning", page_size=5000)
    finally:
        await client.close()
    return len(items)


async def wait_running(
    admin_kubeconfig: Path, expected: int, within_seconds: float, progress: Callable[[int, int], None]
) -> None:
    deadline = time.monotonic() + within_seconds
    while True:
        running = await running_pods(admin_kubeconfig)
        progress(running, expected)
        if running >= expected:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"only {running} of {expected} pods Running after {within_seconds:.0f}s")
        await asyncio.sleep(5.0)
