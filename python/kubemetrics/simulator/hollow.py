"""Hollow mode: the simulated kubelets join a real cluster through its API server.

What a kubelet (and, for binding, a scheduler) would do, done through the API only:

- **Nodes.** One Node per simulated node, named as the model names it, with the labels, capacity and
  allocatable of the inventory, InternalIP = its loopback address, Hostname = its name, and
  daemonEndpoints.kubeletEndpoint.Port = the fleet's port, so a metrics collector that discovers
  kubelets from Nodes dials the simulated ones. Ready=True is re-posted every `heartbeat_interval`
  (lastHeartbeatTime), which keeps a node-lifecycle controller content; no Lease is kept.
- **Scheduling.** A Pending pod without spec.nodeName is bound (pods/binding) to the least loaded
  simulated node whose labels match its nodeSelector, ties broken round-robin. Taints, affinity and
  resources are not considered. With --listen-nodes, a process binds only to the nodes it listens for.
- **Running.** A pod bound to a simulated node is started at once: its status becomes Running with
  every condition True, a startTime, a loopback pod IP and running container statuses. The node's
  kubelet endpoint then serves it (apipods.py: usage from the pod's annotations).
- **Deleting.** A pod with a deletionTimestamp stops at once and is deleted with gracePeriodSeconds=0,
  as a kubelet does once its containers have stopped.

Pods are followed with one list + watch over all namespaces; each pod is reconciled by its UID from
the newest object seen, one worker at a time per pod. Only the pods a process looks after are kept: those
bound to a node it listens for (--listen-nodes: several processes share a fleet, each serving its range)
and those still to be bound; the others are dropped as they arrive, page by page in a list.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import ipaddress
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubemetrics.simulator.apipods import ApiPod, ApiPods
from kubemetrics.simulator.inventory import inventory_document
from kubemetrics.simulator.kubeapi import MERGE_PATCH, STRATEGIC_MERGE_PATCH, ApiError, KubeClient
from kubemetrics.simulator.quantity import QuantityError, memory_bytes
from kubemetrics.simulator.server import Fleet

log = logging.getLogger(__name__)

_PODS = "/api/v1/pods"
_NODES = "/api/v1/nodes"
_PARALLEL_NODE_REQUESTS = 16
_RETRY_FIRST_SECONDS = 0.5
_RETRY_MAX_SECONDS = 30.0
_NODE_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


@dataclass(frozen=True, slots=True)
class HollowSettings:
    register_nodes: bool = True
    deregister_on_exit: bool = False
    heartbeat_interval_seconds: float = 30.0
    workers: int = 4


def format_time(unix_seconds: float) -> str:
    """A metav1.Time: RFC 3339, UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(unix_seconds)))


def parse_time(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


def pod_ip(uid: str) -> str:
    """A loopback address per pod, away from the node addresses' default range (nothing listens on it)."""
    h = int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=4).digest(), "little")
    return str(ipaddress.IPv4Address(f"127.{192 + h % 63}.{(h >> 8) % 256}.{1 + (h >> 16) % 254}"))


class _UidQueue:
    """UIDs to reconcile: each at most once in the queue and never in two workers at once."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._again: set[str] = set()

    def add(self, uid: str) -> None:
        if uid in self._active:
            self._again.add(uid)
        elif uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    async def get(self) -> str:
        uid = await self._queue.get()
        self._queued.discard(uid)
        self._active.add(uid)
        return uid

    def done(self, uid: str) -> None:
        self._active.discard(uid)
        if uid in self._again:
            self._again.discard(uid)
            self.add(uid)


class HollowKubelets:
    """The fleet's kubelets as seen by an API server: Nodes, bindings, pod statuses."""

    def __init__(self, fleet: Fleet, client: KubeClient, settings: HollowSettings) -> None:
        self.fleet = fleet
        self.model = fleet.model
        self.client = client
        self.settings = settings
        self.pods = ApiPods(self.model.params.housekeeping_interval)
        self.model.extra_pods = self.pods
        fleet.extra_inventory_pods = self.inventory_pods
        self._node_index = {name: index for index, name in enumerate(self.model.node_names())}
        self._node_labels: list[dict[str, str]] = []
        # The nodes this process listens for (all without --listen-nodes): the only ones it binds to.
        self._bindable: list[int] = []
        self._cache: dict[str, dict[str, Any]] = {}
        self._queue = _UidQueue()
        self._retries: dict[str, float] = {}
        # Which node each pod of ours is (or is being) bound to: the load the binder balances.
        self._assigned: dict[str, int] = {}
        self._load: Counter[int] = Counter()
        self._cursor = 0
        self._registered_at = 0
        self._kubelet_version = "v0.0.0"
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()
        self._inventory_dirty = asyncio.Event()

    # ---- lifecycle ----

    async def start(self) -> None:
        """Register the nodes (if asked), list the pods and start following them. Returns once the first
        list is handled; raises ApiError if the API server cannot be used."""
        nodes = inventory_document(self.model, self.fleet.settings.address_base, self.fleet.settings.port, 0)["nodes"]
        assert isinstance(nodes, list)
        self._node_labels = [dict(node["labels"]) for node in nodes]
        self._bindable = [index for index in range(len(nodes)) if self.fleet.settings.listens_for(index)]
        version = await self.client.request("GET", "/version")
        self._kubelet_version = str(version.get("gitVersion") or self._kubelet_version)
        self._registered_at = int(self.fleet.clock())
        if self.settings.register_nodes:
            # With --listen-nodes, each simulator process keeps the Nodes it listens for.
            ours = [doc for index, doc in enumerate(nodes) if self.fleet.settings.listens_for(index)]
            await self._for_each_node(lambda doc: self._register(doc), ours)
            self._tasks.append(asyncio.create_task(self._heartbeat()))
        watcher = asyncio.create_task(self._follow_pods())
        self._tasks.append(watcher)
        for _ in range(self.settings.workers):
            self._tasks.append(asyncio.create_task(self._work()))
        self._tasks.append(asyncio.create_task(self._keep_inventory_current()))
        synced = asyncio.create_task(self._synced.wait())
        await asyncio.wait({synced, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not self._synced.is_set():
            synced.cancel()
            watcher.result()  # re-raises what ended the watcher

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.settings.deregister_on_exit and self.settings.register_nodes:
            # Only the Nodes this process registered: with --listen-nodes the others are other processes'.
            names = [n for i, n in enumerate(self.model.node_names()) if self.fleet.settings.listens_for(i)]
            await self._for_each_node(self._deregister, names)
        await self.client.close()

    async def _for_each_node(self, action: Callable[[Any], Awaitable[None]], items: Iterable[Any]) -> None:
        limit = asyncio.Semaphore(_PARALLEL_NODE_REQUESTS)

        async def limited(item: Any) -> None:
            async with limit:
                await action(item)

        await asyncio.gather(*(limited(item) for item in items))

    # ---- nodes ----

    def _conditions(self, now: float) -> list[dict[str, str]]:
        return [
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": format_time(now),
                "lastTransitionTime": format_time(self._registered_at),
            }
            for kind, status, reason, message in _NODE_CONDITIONS
        ]

    def _node_status(self, document: dict[str, Any]) -> dict[str, Any]:
        return node_status(
            document, self.model.params.seed, self._conditions(self.fleet.clock()), self._kubelet_version
        )

    async def _register(self, document: dict[str, Any]) -> None:
        name = document["name"]
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": document["labels"],
                "annotations": {"kubemetrics.io/simulated": "true"},
            },
        }
        try:
            await self.client.request("POST", _NODES, node)
        except ApiError as err:
            if err.status != 409:
                raise
            # Registered by an earlier run: take it over.
            await self.client.request(
                "PATCH", f"{_NODES}/{name}", {"metadata": node["metadata"]}, content_type=MERGE_PATCH
            )
        await self.client.request(
            "PATCH", f"{_NODES}/{name}/status", {"status": self._node_status(document)}, content_type=MERGE_PATCH
        )

    async def _deregister(self, name: str) -> None:
        try:
            await self.client.request("DELETE", f"{_NODES}/{name}")
        except ApiError as err:
            if err.status != 404:
                log.warning("cannot remove node %s: %s", name, err)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval_seconds)
            names = [n for i, n in enumerate(self.model.node_names()) if self.fleet.settings.listens_for(i)]
            await self._for_each_node(self._beat, names)

    async def _beat(self, name: str) -> None:
        patch = {"status": {"conditions": self._conditions(self.fleet.clock())}}
        try:
            await self.client.request("PATCH", f"{_NODES}/{name}/status", patch, content_type=STRATEGIC_MERGE_PATCH)
        except ApiError as err:
            log.warning("node %s: heartbeat failed: %s", name, err)

    # ---- pods: following ----

    def _ours(self, pod: dict[str, Any]) -> bool:
        """Whether this process looks after `pod`: bound to a node it listens for, or not bound yet (every
        process may bind it). Only such pods are cached, run and counted in the load."""
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return True
        index = self._node_index.get(node)
        return index is not None and self.fleet.settings.listens_for(index)

    def _observe(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if not self._ours(pod):
            # Another process's pod (or another cluster node's): drop whatever was known of it, e.g. a
            # pending pod it won the binding of.
            self._forget(uid)
            return
        self._cache[uid] = pod
        node = pod["spec"].get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if node and phase not in ("Succeeded", "Failed"):
            self._assign(uid, self._node_index[node])
        elif node:
            self._assign(uid, None)
        self._queue.add(uid)

    def _forget(self, uid: str) -> None:
        cached = self._cache.pop(uid, None)
        self._assign(uid, None)
        # Reconciling undoes what was done for it; a pod never cached nor run (not ours) needs nothing,
        # which spares the workers the events of every other pod of the cluster.
        if cached is not None or self.pods.get(uid) is not None:
            self._queue.add(uid)

    def _assign(self, uid: str, node: int | None) -> None:
        previous = self._assigned.pop(uid, None)
        if previous is not None:
            self._load[previous] -= 1
        if node is not None:
            self._assigned[uid] = node
            self._load[node] += 1

    async def _follow_pods(self) -> None:
        failures = 0
        while True:
            try:
                # Only our pods: the others are dropped page by page and never held all at once.
                items, version = await self.client.list_all(_PODS, keep=self._ours)
                listed = {item["metadata"]["uid"] for item in items}
                # What is cached or running and not listed as ours is gone, or (a pod cached while pending)
                # was bound to another process's node meanwhile: forgetting it is right either way.
                for uid in [uid for uid in self._cache if uid not in listed]:
                    self._forget(uid)
                for uid in [uid for uid in self.pods.running_uids() if uid not in listed]:
                    self._forget(uid)
                for item in items:
                    self._observe(item)
                self._synced.set()
                failures = 0
                while version:
                    version = await self._watch(version)
            except ApiError as err:
                if not self._synced.is_set() and err.status in (401, 403):
                    raise
                failures += 1
                delay = min(_RETRY_MAX_SECONDS, _RETRY_FIRST_SECONDS * 2**failures)
                log.warning("following pods: %s; listing again in %.1fs", err, delay)
                await asyncio.sleep(delay)

    async def _watch(self, version: str) -> str:
        """Follow from `version` until the watch ends; returns where to go on ("" to list again)."""
        async for event in self.client.watch(_PODS, version):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    log.info("pod watch expired (%s); listing again", obj.get("message"))
                else:
                    log.warning("pod watch error: %s", obj.get("message"))
                return ""
            version = obj.get("metadata", {}).get("resourceVersion") or version
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self._forget(obj["metadata"]["uid"])
            elif kind in ("ADDED", "MODIFIED"):
                self._observe(obj)
        return version

    # ---- pods: reconciling ----

    async def _work(self) -> None:
        while True:
            uid = await self._queue.get()
            try:
                await self._reconcile(uid)
            except ApiError as err:
                if err.status == 404:
                    # Gone meanwhile: its DELETED event follows.
                    self._retries.pop(uid, None)
                else:
                    delay = self._retries[uid] = min(_RETRY_MAX_SECONDS, self._retries.get(uid, 0.25) * 2)
                    log.warning("pod %s: %s; again in %.1fs", self._describe(uid), err, delay)
                    asyncio.get_running_loop().call_later(delay, self._queue.add, uid)
            except Exception:
                log.exception("pod %s: unexpected failure", self._describe(uid))
            else:
                self._retries.pop(uid, None)
            finally:
                self._queue.done(uid)

    def _describe(self, uid: str) -> str:
        pod = self._cache.get(uid)
        if pod is None:
            return uid
        return f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')} ({uid})"

    async def _reconcile(self, uid: str) -> None:
        pod = self._cache.get(uid)
        now = self.fleet.clock()
        if pod is None:
            if self.pods.remove(uid, now):
                self._inventory_dirty.set()
            return
        metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        if not node:
            if status.get("phase", "Pending") == "Pending" and not metadata.get("deletionTimestamp"):
                await self._bind(pod)
            return
        if metadata.get("deletionTimestamp"):
            if self.pods.remove(uid, now):
                self._inventory_dirty.set()
            await self._delete_now(pod)
            return
        if status.get("phase") in ("Succeeded", "Failed"):
            if self.pods.remove(uid, now):
                self._inventory_dirty.set()
            return
        annotations = metadata.get("annotations") or {}
        served = self.pods.get(uid)
        if served is None:
            served = self._run(pod, self._node_index[node], now)
            self._inventory_dirty.set()
        elif self.pods.update_usage(uid, annotations, now):
            log.info("pod %s: usage now %s", self._describe(uid), _usage_text(served))
        if not _shows_running(pod):
            await self._report_running(pod, served)

    def _run(self, pod: dict[str, Any], node_index: int, now: float) -> ApiPod:
        metadata, status = pod["metadata"], pod.get("status") or {}
        start = math.floor(now)
        if _shows_running(pod) and status.get("startTime"):
            # Already started by an earlier run of the simulator: keep its times.
            start = min(start, parse_time(status["startTime"]))
        # Native sidecars (init containers with restartPolicy Always) keep running beside the containers;
        # the other init containers have finished, and a kubelet no longer reports them.
        sidecars = [c for c in pod["spec"].get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        containers = [(c["name"], _memory_limit(c)) for c in (*sidecars, *(pod["spec"].get("containers") or []))]
        served = self.pods.add(
            uid=metadata["uid"],
            namespace=metadata.get("namespace", "default"),
            name=metadata["name"],
            labels=metadata.get("labels") or {},
            node_index=node_index,
            containers=containers,
            annotations=metadata.get("annotations") or {},
            start_time=start,
            now=now,
        )
        for problem in served.problems:
            log.warning("pod %s: %s (using the default)", self._describe(served.uid), problem)
        log.info(
            "pod %s runs on %s: %s", self._describe(served.uid), self.model.node_name(node_index), _usage_text(served)
        )
        return served

    async def _bind(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        target = self._pick_node(pod["spec"].get("nodeSelector") or {})
        if target is None:
            log.debug("pod %s: no simulated node matches its nodeSelector", self._describe(metadata["uid"]))
            return
        name = self.model.node_name(target)
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"], "uid": metadata["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": name},
        }
        path = f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}/binding"
        try:
            await self.client.request("POST", path, binding)
        except ApiError as err:
            if err.status == 409:
                # Bound meanwhile (by us, another simulator process or another scheduler): the API server
                # binds a pod once and refuses any later binding with 409 Conflict. Its MODIFIED event
                # follows and says whether the node is ours.
                return
            raise
        if metadata["uid"] in self._cache:  # not forgotten (deleted) while the binding was on its way
            self._assign(metadata["uid"], target)
        log.info("pod %s bound to %s", self._describe(metadata["uid"]), name)

    def _pick_node(self, selector: dict[str, str]) -> int | None:
        """The least loaded of our nodes matching `selector`. Only our nodes: the load of the others (their
        pods are not ours) is not known here. With --listen-nodes every process sees each pending pod and
        may bind it to one of its own nodes; that is fine, as the first binding wins and the others get 409
        Conflict (see _bind). Which process wins is a race, so the ranges are not balanced against each
        other, only the nodes within each range."""
        count = len(self._node_labels)
        best: tuple[int, int] | None = None
        chosen = None
        for index in self._bindable:
            labels = self._node_labels[index]
            if any(labels.get(key) != value for key, value in selector.items()):
                continue
            rank = (self._load[index], (index - self._cursor) % count)
            if best is None or rank < best:
                best, chosen = rank, index
        if chosen is not None:
            self._cursor = (chosen + 1) % count
        return chosen

    async def _report_running(self, pod: dict[str, Any], served: ApiPod) -> None:
        metadata = pod["metadata"]
        host_ip = str(self.fleet.kubelets[served.node_index].address)
        patch = {"status": running_status(pod, served.uid, served.start_time, host_ip)}
        path = f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}/status"
        await self.client.request("PATCH", path, patch, content_type=STRATEGIC_MERGE_PATCH)

    async def _delete_now(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": metadata["uid"]},
        }
        path = f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}"
        try:
            await self.client.request("DELETE", path, options)
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    # ---- inventory ----

    def inventory_pods(self) -> list[dict[str, object]]:
        return [
            {
                "namespace": pod.namespace,
                "name": pod.name,
                "labels": pod.labels,
                "nodeName": self.model.node_name(pod.node_index),
            }
            for pod in sorted(self.pods.running(), key=lambda p: (p.namespace, p.name))
        ]

    async def _keep_inventory_current(self) -> None:
        while True:
            await self._inventory_dirty.wait()
            self._inventory_dirty.clear()
            try:
                count = self.fleet.publish_inventory()
            except OSError as err:
                log.error("cannot rewrite inventory file %s: %s", self.fleet.inventory_file, err)
            else:
                log.debug("inventory rewritten: %d pods", count)
            await asyncio.sleep(self.fleet.settings.inventory_min_interval_seconds)


def _memory_limit(container: dict[str, Any]) -> int | None:
    text = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if text is None:
        return None
    try:
        return memory_bytes(str(text))
    except QuantityError:
        return None


def _usage_text(pod: ApiPod) -> str:
    return ", ".join(
        f"{c.name} {c.segments[-1].usage.nanocores / 1e6:g}m cpu {c.segments[-1].usage.memory_bytes} B"
        for c in pod.containers
    )


def node_conditions(now: float) -> list[dict[str, str]]:
    """A healthy node's conditions, last heard from at `now`."""
    stamp = format_time(now)
    return [
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for kind, status, reason, message in _NODE_CONDITIONS
    ]


def node_status(
    document: dict[str, Any], seed: int, conditions: list[dict[str, str]], kubelet_version: str
) -> dict[str, Any]:
    """The status a kubelet posts for the inventory node `document` (inventory.py's shape)."""
    name = document["name"]
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=16).hexdigest()
    return {
        "addresses": document["addresses"],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": document["kubeletPort"]}},
        "capacity": document["capacity"],
        "allocatable": document["allocatable"],
        "conditions": conditions,
        "nodeInfo": {
            "machineID": digest,
            "systemUUID": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
            "bootID": hashlib.blake2b(f"boot/{digest}".encode(), digest_size=16).hexdigest(),
            "kernelVersion": "6.8.0-kubemetrics-sim",
            "osImage": "kubemetrics simulated node",
            "containerRuntimeVersion": "containerd://2.1.0",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def _condition_true(status: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def _shows_running(pod: dict[str, Any]) -> bool:
    """The pod's status already says what running_status would."""
    status = pod.get("status") or {}
    containers = pod.get("spec", {}).get("containers") or []
    statuses = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and _condition_true(status, "Ready")
        and len(statuses) == len(containers)
        and all("running" in (s.get("state") or {}) for s in statuses)
    )


def _image_digest(image: str) -> str:
    return hashlib.sha256(image.encode()).hexdigest()


def running_status(pod: dict[str, Any], uid: str, start_time: float, host_ip: str) -> dict[str, Any]:
    """The status a kubelet reports for `pod` once every container runs (since `start_time`) on the node
    at `host_ip`."""
    spec, status = pod["spec"], pod.get("status") or {}
    started = format_time(start_time)
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled" and c.get("status") == "True"),
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
    )
    conditions = [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": started},
        {"type": "Initialized", "status": "True", "lastTransitionTime": started},
        {"type": "Ready", "status": "True", "lastTransitionTime": started},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
        {
            "type": "PodScheduled",
            "status": "True",
            "lastTransitionTime": scheduled.get("lastTransitionTime") or started,
        },
    ]

    def container_id(name: str) -> str:
        return "containerd://" + hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()

    def image_id(image: str) -> str:
        repository = image.split("@", 1)[0].rsplit(":", 1)[0] if "/" in image or ":" in image else image
        return f"{repository}@sha256:{_image_digest(image)}"

    container_statuses = [
        {
            "name": c["name"],
            "ready": True,
            "started": True,
            "restartCount": 0,
            "image": c.get("image", ""),
            "imageID": image_id(c.get("image", "")),
            "containerID": container_id(c["name"]),
            "state": {"running": {"startedAt": started}},
            "lastState": {},
        }
        for c in spec.get("containers") or []
    ]
    result: dict[str, Any] = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip(uid),
        "podIPs": [{"ip": pod_ip(uid)}],
        "startTime": started,
        "containerStatuses": container_statuses,
    }
    init_containers = spec.get("initContainers") or []
    if init_containers:
        result["initContainerStatuses"] = [
            {
                "name": c["name"],
                "ready": True,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": image_id(c.get("image", "")),
                "containerID": container_id(c["name"]),
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": started,
                        "containerID": container_id(c["name"]),
                    }
                },
                "lastState": {},
            }
            for c in init_containers
        ]
    return result
