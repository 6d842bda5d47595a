"""The scenarios of the benchmark suite (reference/performance.md §10) and how a run is sized.

A scenario is a cluster shape: nodes × pods per node, optionally with a fixed number of containers per
pod. Any `NxP` or `NxPxC` spelling is accepted too (`20x5` is the CI smoke shape), so a quick run
does not need an entry here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SHAPE = re.compile(r"^(\d+)x(\d+)(?:x(\d+))?$")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    nodes: int
    pods_per_node: int
    # None: the simulator's workload mix (DaemonSets first, then applications with 1-3 containers).
    containers_per_pod: int | None = None
    description: str = ""
    # What is expected to limit or break this scenario on the 2-core machine (shown by --list and in
    # the results, so a failed run is read against what was foreseen).
    risks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pods(self) -> int:
        return self.nodes * self.pods_per_node

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """A catalogue name, or a shape `NxP` / `NxPxC`."""
        known = CATALOGUE.get(text)
        if known is not None:
            return known
        match = _SHAPE.match(text.strip())
        if match is None:
            names = ", ".join(CATALOGUE)
            raise ValueError(
                f"unknown scenario {text!r}: expected one of {names}, or a shape such as 20x5 or 1000x110x2"
            )
        nodes, pods = int(match[1]), int(match[2])
        containers = int(match[3]) if match[3] else None
        if nodes < 1 or pods < 0 or (containers is not None and containers < 1):
            raise ValueError(f"scenario {text!r}: needs at least one node and one container per pod")
        return cls(text, nodes, pods, containers, description="ad-hoc shape")


_SIMULATOR_CPU = (
    "the simulator renders, gzips and encrypts every /metrics/resource body in Python (measured: 1.5 ms of CPU "
    "per request at 5 pods, 6-8 ms at 70): past ~150-300 requests per second it saturates its core, so the "
    "automatic resolution is longer than 15 s here"
)
_HOLLOW_PODS = (
    "the metrics-server baseline needs every Node and pod as an API object: written into etcd they take a minute, "
    "but kube-apiserver's watch cache and both collectors' first lists of 150k pods take gigabytes and seconds"
)
_OPEN_FILES = (
    "the open-file limit here is 20,000 per process: the simulator runs as several processes, each listening for "
    "8,000 nodes, and kubemetrics as one worker per 15,000 nodes; metrics-server keeps a connection per node "
    "in its one process"
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "100x70",
        100,
        70,
        description="metrics-server's own envelope (its issues #857/#916)",
    ),
    Scenario(
        "1000x30",
        1000,
        30,
        description="a large ordinary cluster",
        risks=("the baseline's 30k API pods take a few minutes to create",),
    ),
    Scenario(
        "5000x30",
        5000,
        30,
        description="150k pods: Kubernetes' documented node and pod limits",
        risks=(_SIMULATOR_CPU, _HOLLOW_PODS, "5,000 TLS listeners: a simulator start of about a minute"),
    ),
    Scenario(
        "15000x10",
        15000,
        10,
        description="beyond the documented node limit",
        risks=(
            _SIMULATOR_CPU,
            _HOLLOW_PODS,
            _OPEN_FILES,
            "metrics-server is untested above 5,000 nodes; its single tick must finish within the resolution",
        ),
    ),
    Scenario(
        "65000x2",
        65000,
        2,
        description="GKE-scale node count with about 150k pods (DaemonSet pods only)",
        risks=(
            _SIMULATOR_CPU,
            _HOLLOW_PODS,
            _OPEN_FILES,
            "metrics-server would need ~65 GiB by its own sizing rules; it is expected to fail",
        ),
    ),
    Scenario(
        "1000x110x2",
        1000,
        110,
        2,
        description="dense nodes: the kubelet's pod limit, 2 containers per pod (117 KB bodies)",
        risks=(_SIMULATOR_CPU,),
    ),
)

CATALOGUE: dict[str, Scenario] = {scenario.name: scenario for scenario in SCENARIOS}
# The smallest shape that exercises every part; the CI smoke test runs it without a baseline.
SMOKE = Scenario("20x5", 20, 5, description="CI smoke run")


# Simulator CPU per kubelet request ≈ fixed + per pod (fitted to the 20x5 and 100x70 runs).
SIMULATOR_MS_PER_REQUEST = 1.07
SIMULATOR_MS_PER_POD = 0.078


def simulator_cores(scenario: Scenario, resolution_seconds: float) -> float:
    """Estimated share of a core the simulated kubelets need at one request per node per resolution."""
    containers = scenario.containers_per_pod or 1.5
    per_request = SIMULATOR_MS_PER_REQUEST + SIMULATOR_MS_PER_POD * scenario.pods_per_node * containers / 1.5
    return scenario.nodes / resolution_seconds * per_request / 1000


# Resolutions `--resolution=auto` picks from, and the share of its core the simulator may need at the one
# picked: beyond ~0.7 it answers late under the load generator beside it, and the kubelets pace the collector.
AUTO_RESOLUTIONS = (15.0, 30.0, 60.0, 120.0)
SIMULATOR_CORE_BUDGET = 0.7


def auto_resolution(scenario: Scenario) -> float:
    """metrics-server's default 15 s, or the shortest longer resolution the simulator can keep up with on its
    one core. Per node-scrape figures and memory do not depend on it; the scrape rate does."""
    for seconds in AUTO_RESOLUTIONS:
        if simulator_cores(scenario, seconds) <= SIMULATOR_CORE_BUDGET:
            return seconds
    return AUTO_RESOLUTIONS[-1]


@dataclass(frozen=True, slots=True)
class WindowSettings:
    """How long each collector runs: warm-up, then whole resolutions measured."""

    resolution_seconds: float = 15.0
    resolutions: int = 10
    # At least this long after the collector starts before measuring, on top of every node being served.
    warmup_seconds: float = 15.0
    # Give up waiting for every node to be served after this long (the result then says so).
    warmup_timeout_seconds: float = 180.0

    @property
    def window_seconds(self) -> float:
        return self.resolution_seconds * self.resolutions
