"""What exists in the cluster: nodes to scrape (with addresses and labels) and pods to serve.

Two sources implement `InventorySource`: `static` (a JSON file, written by the simulator or by
hand; standalone mode) and, later, the Kubernetes API (list+watch). The front subscribes once and
gets a full snapshot on every change; it derives scrape targets and store metadata from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Annotation metrics-server (>= v0.7) honours to override the kubelet metrics path per node.
RESOURCE_METRICS_PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"


@dataclass(frozen=True, slots=True)
class NodeAddress:
    type: str  # Hostname, InternalIP, ExternalIP, InternalDNS, ExternalDNS
    address: str


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    addresses: tuple[NodeAddress, ...]
    # status.daemonEndpoints.kubeletEndpoint.Port; 0 when unknown.
    kubelet_port: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Kubernetes quantity strings, e.g. {"cpu": "4", "memory": "16Gi", "pods": "110"}.
    capacity: Mapping[str, str] = field(default_factory=dict)
    allocatable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    node_name: str = ""


@dataclass(frozen=True, slots=True)
class InventorySnapshot:
    nodes: Mapping[str, NodeInfo]
    # None: the source does not know pods (every pod with metrics is served, as Running).
    pods: Mapping[tuple[str, str], PodInfo] | None
    # Nodes that exist but --node-selector leaves out: never scraped nor listed, yet a GET of one is
    # "no metrics for this node" (nodemetrics not found), not "no such node", as in metrics-server.
    unselected_nodes: frozenset[str] = frozenset()


class InventorySource(Protocol):
    def snapshots(self) -> AsyncIterator[InventorySnapshot]:
        """Yield the current inventory at once, then again after every change, until cancelled."""
        ...
