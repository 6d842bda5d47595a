"""The inventory file (format: kubemetrics.inventory.static) for the simulated cluster at a given time.

It is rewritten atomically (temporary file + rename) whenever pods are replaced, so a reader sees
either the old or the new file, never a partial one.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import orjson

from kubemetrics.simulator.addresses import node_address
from kubemetrics.simulator.model import Model, NodeSpec

INVENTORY_FILE = "inventory.json"


def _node_document(node: NodeSpec, address: ipaddress.IPv4Address, port: int) -> dict[str, object]:
    capacity_ki = node.memory_capacity_bytes // 1024
    allocatable_ki = node.memory_allocatable_bytes // 1024
    ephemeral_ki = 101_430_960
    return {
        "name": node.name,
        "addresses": [
            {"type": "InternalIP", "address": str(address)},
            {"type": "Hostname", "address": node.name},
        ],
        "kubeletPort": port,
        "labels": {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/worker": "",
            "node.kubernetes.io/instance-type": node.instance_type,
            "topology.kubernetes.io/region": "sim-region-1",
            "topology.kubernetes.io/zone": f"sim-region-1{node.zone}",
        },
        "annotations": {},
        "capacity": {
            "cpu": str(node.cpu_cores),
            "ephemeral-storage": f"{ephemeral_ki}Ki",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": f"{capacity_ki}Ki",
            "pods": str(node.max_pods),
        },
        "allocatable": {
            # The kubelet reserves a little CPU and memory for the system (kube-reserved).
            "cpu": f"{node.cpu_cores * 1000 - 90}m",
            "ephemeral-storage": str(ephemeral_ki * 1024 * 9 // 10),
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": f"{allocatable_ki}Ki",
            "pods": str(node.max_pods),
        },
    }


def inventory_document(model: Model, address_base: ipaddress.IPv4Address, port: int, t: int) -> dict[str, object]:
    """Every node, and every pod that exists at time t."""
    nodes = []
    pods = []
    for node in model.nodes():
        nodes.append(_node_document(node, node_address(address_base, node.index), port))
        for pod in model.pods_at(node.index, t):
            pods.append({"namespace": pod.namespace, "name": pod.name, "labels": pod.labels, "nodeName": node.name})
    return {"nodes": nodes, "pods": pods}


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_inventory(path: Path, model: Model, address_base: ipaddress.IPv4Address, port: int, t: int) -> int:
    """Write the inventory for time t; returns the number of pods written."""
    document = inventory_document(model, address_base, port, t)
    write_atomically(path, orjson.dumps(document))
    pods = document["pods"]
    assert isinstance(pods, list)
    return len(pods)
