"""Which worker scrapes which node, and where each kubelet is reached.

Targets are resolved from the inventory the way metrics-server does it (pkg/utils/address_resolver.go
and the kubelet client's port choice). Nodes are sharded over live workers by rendezvous
(highest-random-weight) hashing: every (worker, node) pair gets a pseudo-random weight and the node
goes to the worker with the highest one. Losing a worker therefore moves only that worker's nodes,
and adding one takes only the nodes it now wins, so kubelets keep their scraper (and its schedule)
across restarts of the others.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import xxhash

from kubemetrics.inventory import RESOURCE_METRICS_PATH_ANNOTATION, NodeInfo
from kubemetrics.options import RESOURCE_PATH, SUMMARY_PATH, KubeletOptions


class AddressResolutionError(ValueError):
    """A node has no address of any preferred type; it cannot be scraped."""

    def __init__(self, node: str, preferred_types: Collection[str]) -> None:
        # Wording of metrics-server: `unable to extract connection information for node %q: no address
        # matched types %v` (Go prints the slice space-separated in brackets).
        super().__init__(
            f'unable to extract connection information for node "{node}": '
            f"no address matched types [{' '.join(preferred_types)}]"
        )
        self.node = node


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    node: str
    host: str  # IP or DNS name; IPv6 without brackets (the worker brackets it in URLs)
    port: int
    path: str
    fallback_path: str = ""


def scrape_paths(node: NodeInfo, endpoint: str) -> tuple[str, str]:
    """(path, fallback path) for --kubelet-endpoint. The resource path honours the node's
    metrics.k8s.io/resource-metrics-path annotation, as metrics-server >= v0.7 does."""
    if endpoint == "summary":
        return SUMMARY_PATH, ""
    resource = node.annotations.get(RESOURCE_METRICS_PATH_ANNOTATION) or RESOURCE_PATH
    return resource, SUMMARY_PATH if endpoint == "auto" else ""


def resolve_target(node: NodeInfo, kubelet: KubeletOptions, path: str | None = None) -> ScrapeTarget:
    """Address: the first address of the first preferred type the node has (reachability is not
    checked, as upstream). Port: the node's daemonEndpoints port when --kubelet-use-node-status-port
    is set and the node reports one, else --kubelet-port. Path: from --kubelet-endpoint unless given.
    Raises AddressResolutionError."""
    host = _preferred_address(node, kubelet.preferred_address_types)
    port = node.kubelet_port if kubelet.use_node_status_port and node.kubelet_port else kubelet.port
    if path is not None:
        return ScrapeTarget(node=node.name, host=host, port=port, path=path)
    primary, fallback = scrape_paths(node, kubelet.endpoint)
    return ScrapeTarget(node=node.name, host=host, port=port, path=primary, fallback_path=fallback)


def _preferred_address(node: NodeInfo, preferred_types: Collection[str]) -> str:
    for address_type in preferred_types:
        for address in node.addresses:
            if address.type == address_type:
                return address.address
    raise AddressResolutionError(node.name, preferred_types)


def resolve_targets(
    nodes: Iterable[NodeInfo], kubelet: KubeletOptions, path: str | None = None
) -> tuple[list[ScrapeTarget], list[AddressResolutionError]]:
    """Targets for every node that has a usable address, and the errors for those that have none."""
    targets: list[ScrapeTarget] = []
    errors: list[AddressResolutionError] = []
    for node in nodes:
        try:
            targets.append(resolve_target(node, kubelet, path))
        except AddressResolutionError as err:
            errors.append(err)
    return targets, errors


def worker_seed(worker_id: str) -> int:
    """Each worker hashes node names with its own seed; weight(worker, node) = xxh3(node, seed)."""
    return int(xxhash.xxh64_intdigest(worker_id.encode()))


def node_weight(node: str, seed: int) -> int:
    return int(xxhash.xxh3_64_intdigest(node.encode(), seed))


def _wins(weight: int, worker_id: str, best_weight: int, best_worker: str) -> bool:
    # Worker ids break the (astronomically unlikely) ties, so every planner instance agrees.
    return weight > best_weight or (weight == best_weight and worker_id > best_worker)


def _owner_among(node: str, seeds: Mapping[str, int]) -> tuple[str, int]:
    best_worker = ""
    best_weight = -1
    encoded = node.encode()
    for worker_id, seed in seeds.items():
        weight = int(xxhash.xxh3_64_intdigest(encoded, seed))
        if _wins(weight, worker_id, best_weight, best_worker):
            best_worker, best_weight = worker_id, weight
    return best_worker, best_weight


def plan(targets: Iterable[ScrapeTarget], live_worker_ids: Iterable[str]) -> dict[str, list[ScrapeTarget]]:
    """Every live worker → the targets it owns (sorted by node name). Empty when no worker is live."""
    seeds = {worker_id: worker_seed(worker_id) for worker_id in live_worker_ids}
    shares: dict[str, list[ScrapeTarget]] = {worker_id: [] for worker_id in seeds}
    if not seeds:
        return shares
    for target in targets:
        owner, _ = _owner_among(target.node, seeds)
        shares[owner].append(target)
    for share in shares.values():
        share.sort(key=lambda target: target.node)
    return shares


@dataclass(frozen=True, slots=True)
class Assignment:
    """What one worker scrapes, as of plan `generation`."""

    generation: int
    targets: tuple[ScrapeTarget, ...]


class ShardPlanner:
    """The current plan, kept equal to `plan(targets, workers)` but updated incrementally: a worker
    joining hashes each node once against it, a worker leaving re-hashes only its own nodes, and an
    inventory change hashes only new nodes. Every change that moves something is a new generation;
    each mutator returns the workers whose assignment changed (they must be told)."""

    def __init__(self) -> None:
        self._seeds: dict[str, int] = {}
        self._targets: dict[str, ScrapeTarget] = {}
        # node -> (owner, owner's weight); only while at least one worker is live.
        self._owners: dict[str, tuple[str, int]] = {}
        self._shares: dict[str, dict[str, ScrapeTarget]] = {}
        self._assignments: dict[str, Assignment] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def workers(self) -> frozenset[str]:
        return frozenset(self._seeds)

    def target_count(self) -> int:
        return len(self._targets)

    def owner_of(self, node: str) -> str | None:
        owner = self._owners.get(node)
        return owner[0] if owner else None

    def assignment(self, worker_id: str) -> Assignment:
        """The worker's current assignment; KeyError when the worker is not live."""
        return self._assignments[worker_id]

    def shares(self) -> dict[str, list[ScrapeTarget]]:
        """The whole plan in `plan()`'s shape."""
        return {worker_id: list(self._assignments[worker_id].targets) for worker_id in self._seeds}

    def add_worker(self, worker_id: str) -> frozenset[str]:
        if worker_id in self._seeds:
            return frozenset()
        seed = worker_seed(worker_id)
        self._seeds[worker_id] = seed
        share: dict[str, ScrapeTarget] = {}
        self._shares[worker_id] = share
        changed = {worker_id}
        for node, target in self._targets.items():
            weight = node_weight(node, seed)
            current = self._owners.get(node)
            if current is None or _wins(weight, worker_id, current[1], current[0]):
                if current is not None:
                    del self._shares[current[0]][node]
                    changed.add(current[0])
                self._owners[node] = (worker_id, weight)
                share[node] = target
        return self._publish(changed)

    def remove_worker(self, worker_id: str) -> frozenset[str]:
        if worker_id not in self._seeds:
            return frozenset()
        del self._seeds[worker_id]
        orphans = self._shares.pop(worker_id)
        self._assignments.pop(worker_id, None)
        changed: set[str] = set()
        for node, target in orphans.items():
            if not self._seeds:
                del self._owners[node]
                continue
            owner, weight = _owner_among(node, self._seeds)
            self._owners[node] = (owner, weight)
            self._shares[owner][node] = target
            changed.add(owner)
        return self._publish(changed)

    def set_targets(self, targets: Iterable[ScrapeTarget]) -> frozenset[str]:
        incoming = {target.node: target for target in targets}
        changed: set[str] = set()
        for node in self._targets.keys() - incoming.keys():
            owner = self._owners.pop(node, None)
            if owner is not None:
                del self._shares[owner[0]][node]
                changed.add(owner[0])
        for node, target in incoming.items():
            previous = self._targets.get(node)
            if previous == target:
                continue
            if previous is not None and node in self._owners:
                owner_id = self._owners[node][0]
            elif self._seeds:
                owner_id, weight = _owner_among(node, self._seeds)
                self._owners[node] = (owner_id, weight)
            else:
                continue
            self._shares[owner_id][node] = target
            changed.add(owner_id)
        self._targets = incoming
        return self._publish(changed)

    def _publish(self, changed: set[str]) -> frozenset[str]:
        if not changed:
            return frozenset()
        self._generation += 1
        for worker_id in changed:
            share = self._shares[worker_id]
            targets = tuple(share[node] for node in sorted(share))
            self._assignments[worker_id] = Assignment(generation=self._generation, targets=targets)
        return frozenset(changed)
