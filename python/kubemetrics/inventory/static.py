"""Standalone inventory: nodes (and optionally pods) read from a JSON file, reloaded when it changes.

File format (written by `kubemetrics simulate --inventory-file`, or by hand):

    {"nodes": [{"name": "sim-node-0",
                "addresses": [{"type": "InternalIP", "address": "127.1.0.1"},
                              {"type": "Hostname", "address": "sim-node-0"}],
                "kubeletPort": 10250,
                "labels": {"kubernetes.io/hostname": "sim-node-0"},
                "annotations": {},
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}],
     "pods": [{"namespace": "ns-1", "name": "web-0", "labels": {"app": "web"}, "nodeName": "sim-node-0"}]}

"pods" may be omitted (or null): every pod the kubelets report is then served (with no labels).
Only "name" is required for a node and "namespace" + "name" for a pod; everything else defaults
to empty (kubeletPort to 0, meaning unknown).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TypeAlias

import orjson

from kubemetrics.inventory import InventorySnapshot, NodeAddress, NodeInfo, PodInfo

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_SECONDS = 1.0


class InventoryFileError(ValueError):
    """The inventory file cannot be used; the message names the file and the offending field."""


# What identifies one version of the file without reading it: a rename-over (atomic rewrite) changes
# the inode, an in-place rewrite changes mtime and usually size.
_FileVersion: TypeAlias = tuple[int, int, int, int]


def load_inventory(path: str | os.PathLike[str]) -> InventorySnapshot:
    """Read and parse the inventory file. Raises InventoryFileError naming the file and the problem."""
    try:
        body = Path(path).read_bytes()
    except OSError as err:
        raise InventoryFileError(f"inventory file {os.fspath(path)}: cannot read: {err.strerror or err}") from err
    return parse_inventory(body, source=os.fspath(path))


def parse_inventory(body: bytes, source: str = "<inventory>") -> InventorySnapshot:
    """Parse the JSON format described in this module's docstring."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InventoryFileError(f"inventory file {source}: not valid JSON: {err}") from err
    return _InventoryParser(source).snapshot(document)


class _InventoryParser:
    def __init__(self, source: str) -> None:
        self._source = source

    def _error(self, where: str, problem: str) -> InventoryFileError:
        return InventoryFileError(f"inventory file {self._source}: {where}: {problem}")

    def snapshot(self, document: object) -> InventorySnapshot:
        if not isinstance(document, dict):
            raise self._error("top level", f"expected an object, got {_json_type(document)}")
        nodes_field = document.get("nodes")
        if not isinstance(nodes_field, list):
            problem = "missing" if nodes_field is None else f"expected a list, got {_json_type(nodes_field)}"
            raise self._error("nodes", problem)
        nodes: dict[str, NodeInfo] = {}
        for index, entry in enumerate(nodes_field):
            node = self._node(f"nodes[{index}]", entry)
            if node.name in nodes:
                raise self._error(f"nodes[{index}].name", f"duplicate node {node.name!r}")
            nodes[node.name] = node
        pods_field = document.get("pods")
        if pods_field is None:
            return InventorySnapshot(nodes=nodes, pods=None)
        if not isinstance(pods_field, list):
            raise self._error("pods", f"expected a list, got {_json_type(pods_field)}")
        pods: dict[tuple[str, str], PodInfo] = {}
        for index, entry in enumerate(pods_field):
            pod = self._pod(f"pods[{index}]", entry)
            key = (pod.namespace, pod.name)
            if key in pods:
                raise self._error(f"pods[{index}]", f"duplicate pod {pod.namespace}/{pod.name}")
            pods[key] = pod
        return InventorySnapshot(nodes=nodes, pods=pods)

    def _node(self, where: str, entry: object) -> NodeInfo:
        fields = self._object(where, entry)
        addresses_field = fields.get("addresses", [])
        if not isinstance(addresses_field, list):
            raise self._error(f"{where}.addresses", f"expected a list, got {_json_type(addresses_field)}")
        addresses = tuple(
            self._address(f"{where}.addresses[{i}]", address) for i, address in enumerate(addresses_field)
        )
        port = fields.get("kubeletPort", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise self._error(f"{where}.kubeletPort", f"expected a port number 0-65535, got {port!r}")
        return NodeInfo(
            name=self._name(f"{where}.name", fields.get("name")),
            addresses=addresses,
            kubelet_port=port,
            labels=self._string_map(f"{where}.labels", fields.get("labels")),
            annotations=self._string_map(f"{where}.annotations", fields.get("annotations")),
            capacity=self._string_map(f"{where}.capacity", fields.get("capacity")),
            allocatable=self._string_map(f"{where}.allocatable", fields.get("allocatable")),
        )

    def _address(self, where: str, entry: object) -> NodeAddress:
        fields = self._object(where, entry)
        return NodeAddress(
            type=self._name(f"{where}.type", fields.get("type")),
            address=self._name(f"{where}.address", fields.get("address")),
        )

    def _pod(self, where: str, entry: object) -> PodInfo:
        fields = self._object(where, entry)
        node_name = fields.get("nodeName", "")
        if not isinstance(node_name, str):
            raise self._error(f"{where}.nodeName", f"expected a string, got {_json_type(node_name)}")
        return PodInfo(
            namespace=self._name(f"{where}.namespace", fields.get("namespace")),
            name=self._name(f"{where}.name", fields.get("name")),
            labels=self._string_map(f"{where}.labels", fields.get("labels")),
            node_name=node_name,
        )

    def _object(self, where: str, entry: object) -> dict[str, object]:
        if not isinstance(entry, dict):
            raise self._error(where, f"expected an object, got {_json_type(entry)}")
        return entry

    def _name(self, where: str, value: object) -> str:
        if value is None:
            raise self._error(where, "missing")
        if not isinstance(value, str):
            raise self._error(where, f"expected a string, got {_json_type(value)}")
        if not value:
            raise self._error(where, "empty")
        return value

    def _string_map(self, where: str, value: object) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._error(where, f"expected an object, got {_json_type(value)}")
        for key, item in value.items():
            if not isinstance(item, str):
                raise self._error(f"{where}[{key!r}]", f"expected a string, got {_json_type(item)}")
        return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


class StaticInventorySource:
    """InventorySource over a JSON file. The first snapshot must load (a broken file at start is an
    error the caller reports); later broken rewrites keep the last good snapshot, logged once each."""

    def __init__(
        self, path: str | os.PathLike[str], poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS
    ) -> None:
        self.path = Path(path)
        self.poll_interval_seconds = poll_interval_seconds

    async def snapshots(self) -> AsyncGenerator[InventorySnapshot, None]:
        version = self._version()
        current = await asyncio.to_thread(load_inventory, self.path)
        yield current
        reported_broken: _FileVersion | None = None
        while True:
            await asyncio.sleep(self.poll_interval_seconds)
            seen = self._version()
            if seen == version:
                continue
            version = seen
            try:
                if seen is None:
                    raise InventoryFileError(f"inventory file {self.path}: disappeared")
                candidate = await asyncio.to_thread(load_inventory, self.path)
            except InventoryFileError as err:
                marker = seen or (0, 0, 0, 0)
                if marker != reported_broken:
                    log.error("%s; keeping the previous inventory (%d nodes)", err, len(current.nodes))
                    reported_broken = marker
                continue
            if reported_broken is not None:
                log.info("inventory file %s is readable again", self.path)
                reported_broken = None
            if candidate != current:
                current = candidate
                yield current

    def _version(self) -> _FileVersion | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


def inventory_to_json(snapshot: InventorySnapshot) -> bytes:
    """The file format for a snapshot (the inverse of parse_inventory; used by writers and tests)."""
    document: dict[str, object] = {
        "nodes": [
            {
                "name": node.name,
                "addresses": [{"type": a.type, "address": a.address} for a in node.addresses],
                "kubeletPort": node.kubelet_port,
                "labels": dict(node.labels),
                "annotations": dict(node.annotations),
                "capacity": dict(node.capacity),
                "allocatable": dict(node.allocatable),
            }
            for node in snapshot.nodes.values()
        ]
    }
    if snapshot.pods is not None:
        document["pods"] = [
            {"namespace": p.namespace, "name": p.name, "labels": dict(p.labels), "nodeName": p.node_name}
            for p in snapshot.pods.values()
        ]
    return orjson.dumps(document)
