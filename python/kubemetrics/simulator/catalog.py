"""The workloads the simulated cluster runs: what a medium-sized production cluster looks like from
a kubelet's point of view. DaemonSets take the first pod slots of every node; the other slots draw
an application by weight. Roughly 60% of application pods have one container, the rest carry
sidecars (service mesh proxies, exporters, log shippers), and a third start with an init container."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class WorkloadKind(enum.Enum):
    DEPLOYMENT = "Deployment"
    DAEMON_SET = "DaemonSet"
    STATEFUL_SET = "StatefulSet"


@dataclass(frozen=True, slots=True)
class ContainerProfile:
    """Ranges a container's constant CPU rate and working set are drawn from."""

    name: str
    millicores: tuple[int, int]
    memory_mib: tuple[int, int]
    # Whether the container has a memory limit (the kubelet then reports availableBytes).
    memory_limited: bool = True


@dataclass(frozen=True, slots=True)
class InitProfile:
    name: str
    millicores: tuple[int, int]
    memory_mib: tuple[int, int]
    # How long the init container runs before the application containers start.
    seconds: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Workload:
    namespace: str
    app: str
    kind: WorkloadKind
    containers: tuple[ContainerProfile, ...]
    init: InitProfile | None = None
    # Relative frequency among application (non-DaemonSet) pod slots.
    weight: int = 1


_ISTIO_PROXY = ContainerProfile("istio-proxy", (3, 25), (40, 90))
_ISTIO_INIT = InitProfile("istio-init", (20, 80), (8, 20), (2, 6))

DAEMON_SETS: tuple[Workload, ...] = (
    Workload("kube-system", "kube-proxy", WorkloadKind.DAEMON_SET, (ContainerProfile("kube-proxy", (1, 6), (15, 35)),)),
    Workload("logging", "fluent-bit", WorkloadKind.DAEMON_SET, (ContainerProfile("fluent-bit", (5, 40), (20, 60)),)),
    Workload(
        "monitoring",
        "node-exporter",
        WorkloadKind.DAEMON_SET,
        (
            ContainerProfile("node-exporter", (2, 15), (15, 40)),
            ContainerProfile("kube-rbac-proxy", (1, 3), (12, 25)),
        ),
    ),
)

APPLICATIONS: tuple[Workload, ...] = (
    Workload("default", "web", WorkloadKind.DEPLOYMENT, (ContainerProfile("nginx", (5, 120), (20, 90)),), weight=4),
    Workload(
        "shop",
        "frontend",
        WorkloadKind.DEPLOYMENT,
        (ContainerProfile("frontend", (40, 300), (120, 350)), _ISTIO_PROXY),
        init=_ISTIO_INIT,
        weight=3,
    ),
    Workload(
        "shop",
        "cart",
        WorkloadKind.DEPLOYMENT,
        (ContainerProfile("cart", (20, 150), (80, 200)), _ISTIO_PROXY),
        init=_ISTIO_INIT,
        weight=2,
    ),
    Workload(
        "shop",
        "checkout",
        WorkloadKind.DEPLOYMENT,
        (ContainerProfile("checkout", (20, 200), (90, 260), memory_limited=False),),
        weight=2,
    ),
    Workload(
        "payments",
        "payments-api",
        WorkloadKind.DEPLOYMENT,
        (
            ContainerProfile("api", (50, 400), (200, 500)),
            ContainerProfile("envoy", (5, 40), (30, 70)),
            ContainerProfile("log-shipper", (2, 12), (20, 45), memory_limited=False),
        ),
    ),
    Workload(
        "data",
        "redis",
        WorkloadKind.STATEFUL_SET,
        (ContainerProfile("redis", (10, 120), (150, 600)), ContainerProfile("redis-exporter", (1, 8), (10, 25))),
    ),
    Workload(
        "data",
        "postgres",
        WorkloadKind.STATEFUL_SET,
        (ContainerProfile("postgres", (30, 500), (300, 1200)),),
        init=InitProfile("init-permissions", (5, 30), (2, 8), (1, 4)),
    ),
    Workload(
        "batch",
        "report-worker",
        WorkloadKind.DEPLOYMENT,
        (ContainerProfile("worker", (100, 900), (150, 700), memory_limited=False),),
        weight=3,
    ),
    Workload("ml", "inference", WorkloadKind.DEPLOYMENT, (ContainerProfile("model-server", (300, 1500), (900, 2800)),)),
    Workload("kube-system", "coredns", WorkloadKind.DEPLOYMENT, (ContainerProfile("coredns", (2, 25), (15, 40)),)),
)

APPLICATION_WEIGHTS: tuple[int, ...] = tuple(w.weight for w in APPLICATIONS)


def namespaces() -> tuple[str, ...]:
    """Every namespace the simulated cluster has pods in, in first-use order."""
    seen: dict[str, None] = {}
    for workload in (*DAEMON_SETS, *APPLICATIONS):
        seen.setdefault(workload.namespace, None)
    return tuple(seen)


# What pads a workload to a fixed container count: a light sidecar (exporter, proxy, log shipper).
_PADDING_SIDECAR_MILLICORES = (1, 10)
_PADDING_SIDECAR_MEMORY_MIB = (10, 40)


def with_container_count(workload: Workload, count: int) -> Workload:
    """The workload with exactly `count` containers and no init container: its own first ones, then
    sidecars `sidecar-1`, `sidecar-2`, … (for scenarios that fix the containers per pod)."""
    own = workload.containers[:count]
    taken = {c.name for c in own}
    padding: list[ContainerProfile] = []
    number = 0
    while len(own) + len(padding) < count:
        number += 1
        name = f"sidecar-{number}"
        if name not in taken:
            padding.append(ContainerProfile(name, _PADDING_SIDECAR_MILLICORES, _PADDING_SIDECAR_MEMORY_MIB))
    return dataclasses.replace(workload, containers=(*own, *padding), init=None)
