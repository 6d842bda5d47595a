"""The pods the differential tests run on the hollow nodes, and what each is there to exercise.

Everything is derived from SEED, so every run places the same pods with the same usage on the same
nodes. Pods are bound by `spec.nodeName` (no scheduler), so each edge case sits on a known node.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SEED = 20260
NODES = 110
NODE_PREFIX = "sim-node-"
# The regular pods fill nodes 0 … REGULAR_NODES-1; the last nodes each hold one edge case of their own.
REGULAR_NODES = 105
PODS_PER_REGULAR_NODE = 2
# Excluded by --node-selector=metrics-server-skip!=true on both collectors (metrics-server's e2e setup).
SKIPPED_NODE = f"{NODE_PREFIX}105"
SKIP_LABEL = "metrics-server-skip"
NODE_SELECTOR = f"{SKIP_LABEL}!=true"
# A container restarts here while the transition test watches.
RESTART_NODE = f"{NODE_PREFIX}106"
# Answers 500 for about one resolution while the transition test watches.
FLAKY_NODE = f"{NODE_PREFIX}107"
# Its kubelet never listens (simulator fault `down`).
DOWN_NODE = f"{NODE_PREFIX}108"
# One container reports a negative start time (kubernetes#109679).
BAD_START_NODE = f"{NODE_PREFIX}109"

EDGE_NAMESPACE = "conformance-edge"
NAMESPACES = ("conformance-web", "conformance-data", "conformance-batch", EDGE_NAMESPACE, "default")

USAGE_CPU = "kubemetrics.io/usage-cpu"
USAGE_MEMORY = "kubemetrics.io/usage-memory"
MISSING_USAGE = "kubemetrics.io/missing-usage"
BAD_START_TIME = "kubemetrics.io/bad-start-time"
RESTARTS = "kubemetrics.io/restarts"


def node_name(index: int) -> str:
    return f"{NODE_PREFIX}{index}"


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    # The usage the kubelet reports (None: the series is left out).
    cpu_nanocores: int | None
    memory_bytes: int | None
    sidecar: bool = False


@dataclass
class PodPlan:
    namespace: str
    name: str
    node: str | None  # None: left Pending (no node matches its nodeSelector)
    containers: list[ContainerPlan]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # Whether a collector with metrics-server's semantics serves it, and why not.
    served: bool = True
    why: str = "a running pod with complete usage"
    init_container: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "containers": [
                {"name": c.name, "image": "registry.example/conformance:1.0"} for c in self.containers if not c.sidecar
            ],
            "terminationGracePeriodSeconds": 0,
        }
        init = [
            {"name": c.name, "image": "registry.example/conformance:1.0", "restartPolicy": "Always"}
            for c in self.containers
            if c.sidecar
        ]
        if self.init_container:
            init.insert(0, {"name": "init", "image": "registry.example/conformance:1.0"})
        if init:
            spec["initContainers"] = init
        if self.node is None:
            spec["nodeSelector"] = {"conformance.kubemetrics.io/no-such-node": "true"}
        else:
            spec["nodeName"] = self.node
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            metadata["labels"] = self.labels
        if self.annotations:
            metadata["annotations"] = self.annotations
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _usage_annotations(containers: list[ContainerPlan]) -> dict[str, str]:
    annotations = {}
    for c in containers:
        if c.cpu_nanocores is not None:
            annotations[f"{USAGE_CPU}.{c.name}"] = f"{c.cpu_nanocores}n"
        if c.memory_bytes is not None:
            annotations[f"{USAGE_MEMORY}.{c.name}"] = str(c.memory_bytes)
    missing = {
        c.name: ",".join(s for s, v in (("cpu", c.cpu_nanocores), ("memory", c.memory_bytes)) if v is None)
        for c in containers
    }
    annotations.update({f"{MISSING_USAGE}.{name}": what for name, what in missing.items() if what})
    return annotations


def _random_memory(rng: random.Random) -> int:
    """Mostly page-aligned working sets (served as Ki/Mi), some odd byte counts (served as plain bytes)."""
    roll = rng.random()
    if roll < 0.1:
        return rng.randint(1, 2**31)
    if roll < 0.2:
        return rng.randint(1, 4096) * 1024 * 1024
    return rng.randint(256, 2**20) * 4096


def regular_pods(rng: random.Random) -> list[PodPlan]:
    pods = []
    namespaces = (*NAMESPACES[:3], "default")
    apps = ("web", "api", "cache", "worker", "report", "auth")
    for node in range(REGULAR_NODES):
        for slot in range(PODS_PER_REGULAR_NODE):
            app = rng.choice(apps)
            names = ("app", "sidecar", "exporter")[: rng.choice((1, 1, 2, 3))]
            containers = [ContainerPlan(n, rng.randint(100_000, 2_000_000_000), _random_memory(rng)) for n in names]
            labels: dict[str, str] = {}
            if rng.random() < 0.9:
                labels = {"app": app, "pod-template-hash": f"{rng.getrandbits(32):08x}"}
                if rng.random() < 0.3:
                    labels["app.kubernetes.io/part-of"] = "conformance"
                    labels["tier"] = ""
            pods.append(
                PodPlan(
                    namespace=rng.choice(namespaces),
                    name=f"{app}-{node}-{slot}-{rng.getrandbits(20):05x}",
                    node=node_name(node),
                    containers=containers,
                    labels=labels,
                    annotations=_usage_annotations(containers),
                )
            )
    return pods


def edge_pods() -> list[PodPlan]:
    """One pod per edge case (plus metrics-server's e2e workloads), each on a known node."""
    edge = EDGE_NAMESPACE
    ten_milli, mebibytes_32 = 10_000_000, 32 * 1024 * 1024

    def two(second_cpu: int | None, second_memory: int | None) -> list[ContainerPlan]:
        return [ContainerPlan("main", ten_milli, mebibytes_32), ContainerPlan("helper", second_cpu, second_memory)]

    def pod(name: str, node: str | None, containers: list[ContainerPlan], **kwargs: Any) -> PodPlan:
        plan = PodPlan(edge, name, node, containers, labels={"edge-case": name}, **kwargs)
        plan.annotations = {**_usage_annotations(containers), **plan.annotations}
        return plan

    single = [ContainerPlan("main", 250_000_000, 64 * 1024 * 1024)]
    pods = [
        pod("zero-cpu", node_name(1), two(0, mebibytes_32), served=False, why="a container reports 0 CPU"),
        pod("zero-memory", node_name(2), two(ten_milli, 0), served=False, why="a container reports 0 memory"),
        pod("missing-memory", node_name(3), two(ten_milli, None), served=False, why="a container has no memory series"),
        pod("missing-cpu", node_name(4), two(None, mebibytes_32), served=False, why="a container has no CPU series"),
        # Restarted before the collectors start (conftest raises the count): counter and start time are the
        # new instance's, the pod's own counter keeps the old one's.
        pod("restarted-before", node_name(5), list(single), annotations={f"{RESTARTS}.main": "0"}),
        pod("restarting", RESTART_NODE, list(single), annotations={f"{RESTARTS}.main": "0"}),
        pod("on-flaky-node", FLAKY_NODE, list(single)),
        pod("on-down-node", DOWN_NODE, list(single), served=False, why="its kubelet is unreachable"),
        pod("on-skipped-node", SKIPPED_NODE, list(single), served=False, why="its node is not selected"),
        pod("pending", None, list(single), served=False, why="not Running (no node matches its nodeSelector)"),
        pod(
            "bad-start-time",
            BAD_START_NODE,
            two(ten_milli, mebibytes_32),
            annotations={f"{BAD_START_TIME}.helper": "true"},
        ),
        pod("beside-bad-start-time", BAD_START_NODE, list(single)),
        pod("no-labels", node_name(6), list(single)),
    ]
    pods[-1].labels = {}
    pods += upstream_e2e_pods()
    return pods


# metrics-server's test/e2e_test.go workloads, in `default`, with the usage its consumers generate.
CPU_CONSUMER = "cpu-consumer"
MEMORY_CONSUMER = "memory-consumer"
INIT_CONTAINER_CONSUMER = "cmwithinitcontainer-consumer"
SIDECAR_CONSUMER = "sidecarpod-consumer"
INIT_SIDECAR_CONSUMER = "initsidecarpod-consumer"


def upstream_e2e_pods() -> list[PodPlan]:
    def pod(name: str, node: int, containers: list[ContainerPlan], **kwargs: Any) -> PodPlan:
        return PodPlan(
            "default",
            name,
            node_name(node),
            containers,
            labels={"name": name},
            annotations=_usage_annotations(containers),
            **kwargs,
        )

    return [
        pod(CPU_CONSUMER, 10, [ContainerPlan(CPU_CONSUMER, 50_000_000, 8 * 1024 * 1024)]),
        pod(MEMORY_CONSUMER, 11, [ContainerPlan(MEMORY_CONSUMER, 2_000_000, 50 * 1024 * 1024)]),
        pod(
            INIT_CONTAINER_CONSUMER,
            12,
            [ContainerPlan(INIT_CONTAINER_CONSUMER, 20_000_000, 12 * 1024 * 1024)],
            init_container=True,
        ),
        pod(
            SIDECAR_CONSUMER,
            13,
            [
                ContainerPlan(SIDECAR_CONSUMER, 30_000_000, 16 * 1024 * 1024),
                ContainerPlan("sidecar-container", 5_000_000, 10 * 1024 * 1024),
            ],
        ),
        pod(
            INIT_SIDECAR_CONSUMER,
            14,
            [
                ContainerPlan("init-sidecar-container", 5_000_000, 10 * 1024 * 1024, sidecar=True),
                ContainerPlan(INIT_SIDECAR_CONSUMER, 30_000_000, 16 * 1024 * 1024),
            ],
        ),
    ]


def all_pods() -> list[PodPlan]:
    return regular_pods(random.Random(SEED)) + edge_pods()
