"""The scenario's Nodes and Running Pods written straight into the control plane's etcd.

Through the API every pod costs a create and a status write by its hollow kubelet, with admission,
watch fan-out and the Node authorizer's graph behind each: about 9 ms of kube-apiserver CPU per pod
here, so 150k pods would take a quarter of an hour on the shared core before anything is measured.
What the collectors read is the same either way: kube-apiserver decodes JSON objects from etcd as it
does its own protobuf ones (storage decoding recognises both) and applies the defaults on the way,
and its watch cache sends them to every informer. Written here are the objects a kubelet would have
left behind: Nodes Ready with their addresses and kubelet port, Pods bound, Running and Ready with
running container statuses. The hollow kubelets start afterwards, find every pod in their first list
and serve them without writing anything.

etcd's v3 JSON gateway takes up to 128 operations per transaction (its default --max-txn-ops).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
from kubemetrics.simulator.hollow import format_time, node_conditions, node_status, running_status
from kubemetrics.simulator.inventory import inventory_document
from kubemetrics.simulator.model import Model, SimulationParameters

from benchmarks.runner.scenarios import Scenario

REGISTRY = "/registry"
OPERATIONS_PER_TRANSACTION = 128
PARALLEL_TRANSACTIONS = 4
KUBELET_VERSION = "v1.34.4"


class EtcdLoadError(RuntimeError):
    """etcd refused a write; the message quotes its answer."""


def node_object(document: dict[str, Any], seed: int, now: float) -> dict[str, Any]:
    """A registered, Ready Node for one node of the simulator's inventory."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": document["name"],
            "uid": str(uuid.uuid4()),
            "creationTimestamp": format_time(now),
            "labels": document["labels"],
            "annotations": {"kubemetrics.io/simulated": "true"},
        },
        "spec": {},
        "status": node_status(document, seed, node_conditions(now), KUBELET_VERSION),
    }


def pod_object(manifest: dict[str, Any], host_ip: str, now: float) -> dict[str, Any]:
    """`manifest` (bound to its node) as its kubelet leaves it: Running since `now`, every container ready."""
    uid = str(uuid.uuid4())
    metadata = {**manifest["metadata"], "uid": uid, "creationTimestamp": format_time(now)}
    spec = {
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "enableServiceLinks": True,
        **manifest["spec"],
    }
    pod = {**manifest, "metadata": metadata, "spec": spec}
    pod["status"] = running_status(pod, uid, now, host_ip)
    return pod


def inventory_nodes(nodes: int, address_base: str, port: int, seed: int) -> list[dict[str, Any]]:
    """The Nodes a simulator with these settings (and no pods of its own) lists in its inventory: known
    before it starts, so that its first list of the API already holds every pod. (Hundreds of thousands of
    pods arriving through a watch instead outrun what a Python watcher reads, and kube-apiserver drops it.)"""
    model = Model(SimulationParameters(nodes=nodes, pods_per_node=0, seed=seed))
    document = inventory_document(model, ipaddress.IPv4Address(address_base), port, 0)
    listed = document["nodes"]
    assert isinstance(listed, list)
    return listed


def node_key(name: str) -> str:
    # Nodes keep their historical storage name.
    return f"{REGISTRY}/minions/{name}"


def pod_key(namespace: str, name: str) -> str:
    return f"{REGISTRY}/pods/{namespace}/{name}"


def _b64(text: bytes) -> str:
    return base64.b64encode(text).decode()


def _batches(items: Iterator[tuple[str, dict[str, Any]]], size: int) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    for key, value in items:
        batch.append((key, orjson.dumps(value)))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def put_all(
    etcd_url: str,
    objects: Iterator[tuple[str, dict[str, Any]]],
    total: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write every (key, object), `OPERATIONS_PER_TRANSACTION` per transaction; returns how many."""
    written = 0
    batches = _batches(objects, OPERATIONS_PER_TRANSACTION)
    lock = asyncio.Lock()
    timeout = aiohttp.ClientTimeout(total=120)

    async def writer(session: aiohttp.ClientSession) -> None:
        nonlocal written
        while True:
            async with lock:
                batch = next(batches, None)
            if batch is None:
                return
            body = {
                "success": [{"requestPut": {"key": _b64(key.encode()), "value": _b64(value)}} for key, value in batch]
            }
            async with session.post(f"{etcd_url}/v3/kv/txn", data=orjson.dumps(body), timeout=timeout) as response:
                answer = await response.read()
                if response.status != 200:
                    raise EtcdLoadError(f"etcd {etcd_url}/v3/kv/txn answered {response.status}: {answer[:300]!r}")
            written += len(batch)
            if progress is not None:
                progress(written, total)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(writer(session) for _ in range(PARALLEL_TRANSACTIONS)))
    return written


def scenario_objects(
    scenario: Scenario,
    nodes: list[dict[str, Any]],
    seed: int,
    pod_manifest: Callable[[Scenario, str, int], dict[str, Any]],
    now: float | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Node of the inventory, then the scenario's pods, `pods_per_node` on each node in order."""
    stamp = time.time() if now is None else now
    for document in nodes:
        yield node_key(document["name"]), node_object(document, seed, stamp)
    for index in range(scenario.pods):
        node = nodes[index // scenario.pods_per_node]
        manifest = pod_manifest(scenario, node["name"], index)
        host_ip = next(a["address"] for a in node["addresses"] if a["type"] == "InternalIP")
        yield (
            pod_key(manifest["metadata"]["namespace"], manifest["metadata"]["name"]),
            pod_object(manifest, host_ip, stamp),
        )
