"""Ground truth for the simulated fleet, pure and deterministic from the parameters and the time.

Everything the kubelets serve is a function of (parameters, node, second):

- Each node has a fixed number of pod *slots*. A slot always holds one pod of the same workload; when
  the slot churns, its pod is deleted and replaced by a new pod of the same workload (new name for a
  Deployment/DaemonSet, same name and a new UID for a StatefulSet) with the same container profile.
- Each container runs at a constant CPU rate (nanocores). Its cumulative counter is
  ``rate × (t − start)``: with t and start whole seconds (the kubelet reports whole-second times) the
  rate computed from any two samples is exact. A restarting container gets a new start time every
  ~``restart_interval`` and its counter starts again from 0.
- The pod cgroup keeps counting across container restarts: it holds every container's CPU since
  the container first started in this pod, the finished init container's CPU, and a small overhead
  (the sandbox). The node's counter runs at a constant rate: the sum of its slots' steady rates plus
  the system (kubelet, runtime and other processes), from boot. It never decreases, as on a real node.
- Working sets move slowly (base + sinusoid), page-aligned.
- Sample times: each object (container, pod, node, system container) has its own housekeeping phase,
  as cAdvisor's per-cgroup housekeeping ticks do; at wall second ``now`` it reports its last tick
  (never earlier than its own start, as cAdvisor samples a new cgroup at once).

Pods whose init container finished list only their running containers (the CRI stats provider drops
terminated containers; the cAdvisor one has no cgroup for them): the init container is listed only
while it runs, for its first seconds after the pod starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from kubemetrics.simulator.catalog import (
    APPLICATION_WEIGHTS,
    APPLICATIONS,
    DAEMON_SETS,
    Workload,
    WorkloadKind,
    with_container_count,
)

T = TypeVar("T")

PAGE_BYTES = 4096
MIB = 1024 * 1024
GIB = 1024 * MIB
MILLICORE_NANOCORES = 1_000_000
CORE_NANOCORES = 1_000_000_000
# A time no structural change will happen before.
FOREVER = 2**62
MAX_CONTAINERS_PER_POD = 64

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes
_SUFFIX_SPACE = len(_NAME_ALPHABET) ** 5
# Odd, and not a multiple of 3, so multiplying by it permutes the suffix space (27**5 = 3**15).
_SUFFIX_SCRAMBLE = 2654435761


def page_floor(value: float) -> int:
    return int(value) // PAGE_BYTES * PAGE_BYTES


def generated_name(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_NAME_ALPHABET))
        chars.append(_NAME_ALPHABET[digit])
    return "".join(chars)


def stable_hash(*parts: object) -> bytes:
    return hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=16).digest()


def _stable_uid(*parts: object) -> str:
    """A version-4-shaped UUID derived from `parts` (what uuid.UUID(bytes=..., version=4) prints)."""
    raw = bytearray(stable_hash(*parts))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_EIGHT_WORDS = struct.Struct("<8Q")


class Draws:
    """A deterministic stream of random draws keyed by a string: blake2b in counter mode.

    Used instead of random.Random because seeding a Mersenne Twister per node and per slot costs
    more than the rest of building a 60,000-pod fleet; the stream is the same on every platform."""

    __slots__ = ("_block", "_key", "_values")

    def __init__(self, *key: object) -> None:
        self._key = "/".join(str(part) for part in key).encode()
        self._block = 0
        self._values: list[int] = []

    def _next64(self) -> int:
        if not self._values:
            digest = hashlib.blake2b(self._key + b"#%d" % self._block, digest_size=64).digest()
            self._values = list(_EIGHT_WORDS.unpack(digest))
            self._values.reverse()
            self._block += 1
        return self._values.pop()

    def randrange(self, stop: int) -> int:
        """Uniform in [0, stop)."""
        return self._next64() * stop >> 64

    def randint(self, low: int, high: int) -> int:
        """Uniform in [low, high]."""
        return low + self.randrange(high - low + 1)

    def random(self) -> float:
        """Uniform in [0, 1)."""
        return (self._next64() >> 11) / 9007199254740992.0

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def choice(self, options: Sequence[T]) -> T:
        return options[self.randrange(len(options))]

    def weighted_choice(self, options: Sequence[T], weights: Sequence[int]) -> T:
        point = self.randrange(sum(weights))
        for option, weight in zip(options, weights, strict=True):
            if point < weight:
                return option
            point -= weight
        raise AssertionError("unreachable: the point is below the total weight")


def housekeeping_tick(now: int, phase: int, interval: int) -> int:
    """The last housekeeping tick at or before `now` of an object whose ticks fall on `phase` mod `interval`."""
    if interval <= 1:
        return now
    return now - (now - phase) % interval


@dataclass(frozen=True, slots=True)
class SimulationParameters:
    nodes: int = 10
    pods_per_node: int = 30
    seed: int = 1
    # Unix seconds: when the simulation started. Churn counts from here; pods that exist at the start
    # were created before it.
    origin: int = 0
    housekeeping_interval: int = 10
    # Restarting containers restart every ~restart_interval seconds (0: no restarts).
    restart_interval: int = 600
    restart_fraction: float = 0.01
    # Churning slots replace their pod every churn_interval seconds (0: no churn).
    churn_interval: int = 600
    churn_fraction: float = 0.02
    node_name_prefix: str = "sim-node-"
    # Pressure-stall information in cpu/memory/io sections, as 1.33+ kubelets with KubeletPSI report.
    psi: bool = True
    # Working sets stay at their base (no slow swing): every sample of an object then reads the same,
    # so two collectors scraping at different seconds must report identical memory.
    steady_memory: bool = False
    # Every model pod has exactly this many containers and no init container (0: each workload's own).
    containers_per_pod: int = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SimulationParameters:
        """The parameters a running simulator wrote to its --out-dir (simulation.json)."""
        fields = json.loads(Path(path).read_text())
        return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})

    def validate(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"nodes should be at least 1, got {self.nodes}")
        if self.pods_per_node < 0:
            raise ValueError(f"pods per node should not be negative, got {self.pods_per_node}")
        if self.housekeeping_interval < 1:
            raise ValueError(f"housekeeping interval should be at least 1s, got {self.housekeeping_interval}")
        if self.restart_interval < 0 or self.churn_interval < 0:
            raise ValueError("restart and churn intervals should be 0 (off) or positive")
        if 0 < self.restart_interval < 10 or 0 < self.churn_interval < 10:
            raise ValueError("restart and churn intervals should be at least 10s")
        if not 0 <= self.containers_per_pod <= MAX_CONTAINERS_PER_POD:
            raise ValueError(
                f"containers per pod should be 0 (each workload's own) to {MAX_CONTAINERS_PER_POD}, "
                f"got {self.containers_per_pod}"
            )
        for name, fraction in (("restart", self.restart_fraction), ("churn", self.churn_fraction)):
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"{name} fraction should be within [0, 1], got {fraction}")


@dataclass(frozen=True, slots=True)
class MemoryProfile:
    """A working set that moves as base + swing·sin(2π(t + phase)/period), page-aligned."""

    base_bytes: int
    swing_bytes: int
    period_seconds: int
    phase_seconds: int
    # Page cache on top of the working set (usageBytes − workingSetBytes).
    cache_bytes: int
    rss_permille: int
    page_faults_per_second: int
    limit_bytes: int | None

    def working_set(self, t: int) -> int:
        if self.swing_bytes == 0:
            return self.base_bytes
        angle = 2.0 * math.pi * ((t + self.phase_seconds) % self.period_seconds) / self.period_seconds
        return page_floor(self.base_bytes + self.swing_bytes * math.sin(angle))

    def rss(self, working_set: int) -> int:
        return page_floor(working_set * self.rss_permille / 1000)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    nanocores: int
    memory: MemoryProfile
    # Seconds after the pod's application phase begins (after the init container) that it starts.
    start_delay_seconds: int
    # 0: never restarts. Otherwise restarts at first_start + restart_phase + k·restart_period.
    restart_period_seconds: int
    restart_phase_seconds: int
    housekeeping_phase: int

    def current_start(self, first_start: int, t: int) -> tuple[int, int]:
        """(start time of the instance running at t, restarts so far)."""
        if self.restart_period_seconds == 0 or t < first_start + self.restart_phase_seconds:
            return first_start, 0
        restarts = (t - first_start - self.restart_phase_seconds) // self.restart_period_seconds + 1
        return first_start + self.restart_phase_seconds + (restarts - 1) * self.restart_period_seconds, restarts


@dataclass(frozen=True, slots=True)
class InitContainerSpec:
    name: str
    nanocores: int
    duration_seconds: int
    memory: MemoryProfile
    housekeeping_phase: int


@dataclass(frozen=True, slots=True)
class SystemContainerSpec:
    """A node-level cgroup the kubelet reports under systemContainers (kubelet, runtime)."""

    name: str
    start_time: int
    nanocores: int
    memory: MemoryProfile
    housekeeping_phase: int


@dataclass(frozen=True, slots=True)
class PodSlotSpec:
    node_index: int
    index: int
    # Unique across the cluster (node_index * pods_per_node + index).
    global_index: int
    workload: Workload
    template_hash: str
    containers: tuple[ContainerSpec, ...]
    init: InitContainerSpec | None
    # The sandbox and pod cgroup overhead.
    overhead_nanocores: int
    overhead_memory_bytes: int
    # Start of the pod that occupies the slot when the simulation starts (before origin).
    initial_start: int
    churn_period_seconds: int
    churn_phase_seconds: int
    housekeeping_phase: int

    @property
    def steady_nanocores(self) -> int:
        """The pod cgroup's rate once every container runs."""
        return self.overhead_nanocores + sum(c.nanocores for c in self.containers)

    @property
    def init_seconds(self) -> int:
        return self.init.duration_seconds if self.init is not None else 0


@dataclass(frozen=True, slots=True)
class NodeSpec:
    index: int
    name: str
    boot_time: int
    cpu_cores: int
    memory_capacity_bytes: int
    memory_allocatable_bytes: int
    max_pods: int
    kubelet: SystemContainerSpec
    runtime: SystemContainerSpec
    pods_cgroup_start: int
    # CPU of processes outside the listed system containers (systemd, sshd, kernel threads, ...).
    other_nanocores: int
    # Working set outside any listed cgroup (kernel, other processes).
    other_memory_bytes: int
    page_cache_bytes: int
    housekeeping_phase: int
    instance_type: str
    zone: str
    slots: tuple[PodSlotSpec, ...]
    # The "pods" cgroup's constant rate: every slot at steady state.
    pods_cgroup_nanocores: int
    # The node's constant rate: the pods cgroup plus kubelet, runtime and other processes.
    nanocores: int


@dataclass(frozen=True, slots=True)
class PodInstance:
    """The pod that occupies a slot during one churn generation."""

    slot: PodSlotSpec
    generation: int
    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    start_time: int
    # When the application containers begin (after the init container, if any).
    app_start: int
    # When each of slot.containers first starts in this pod.
    first_starts: tuple[int, ...]

    def init_running(self, t: int) -> bool:
        return self.slot.init is not None and self.start_time <= t < self.app_start


# ---- truth: the values a kubelet serves, and what a correct collector computes from them ----


@dataclass(frozen=True, slots=True)
class Usage:
    """One cgroup's readings at exactly time `t`."""

    t: int
    start_time: int
    cpu_nanocores: int
    cpu_cumulative_nanoseconds: int
    memory_working_set_bytes: int


@dataclass(frozen=True, slots=True)
class MemoryReading:
    working_set_bytes: int
    usage_bytes: int
    rss_bytes: int
    available_bytes: int | None
    page_faults: int
    major_page_faults: int


@dataclass(frozen=True, slots=True)
class ContainerTruth:
    name: str
    start_time: int
    # The time the kubelet reports for this container's cpu and memory (its last housekeeping tick).
    sample_time: int
    # The model's constant rate; any two samples of the same instance give exactly this.
    cpu_nanocores: int
    cpu_cumulative_nanoseconds: int
    memory: MemoryReading
    restarts: int
    # Series the kubelet leaves out for this container on /metrics/resource ("cpu", "memory"), as a
    # kubelet whose runtime has no stats for a cgroup yet does.
    missing_series: tuple[str, ...] = ()
    # The kubelet reports the start as Go's zero time with a negative sample timestamp on
    # /metrics/resource (kubernetes#109679).
    start_time_unset: bool = False

    @property
    def memory_working_set_bytes(self) -> int:
        return self.memory.working_set_bytes


@dataclass(frozen=True, slots=True)
class PodTruth:
    namespace: str
    name: str
    uid: str
    start_time: int
    sample_time: int
    # The pod cgroup's current rate and cumulative counter (containers + init + overhead).
    cpu_nanocores: int
    cpu_cumulative_nanoseconds: int
    memory: MemoryReading
    containers: tuple[ContainerTruth, ...]

    @property
    def containers_cpu_nanocores(self) -> int:
        """What metrics-server reports for the pod: the sum of its containers' rates."""
        return sum(c.cpu_nanocores for c in self.containers)

    @property
    def containers_memory_working_set_bytes(self) -> int:
        return sum(c.memory.working_set_bytes for c in self.containers)

    @property
    def memory_working_set_bytes(self) -> int:
        return self.memory.working_set_bytes


@dataclass(frozen=True, slots=True)
class NodeTruth:
    name: str
    start_time: int
    sample_time: int
    cpu_nanocores: int
    cpu_cumulative_nanoseconds: int
    memory: MemoryReading
    system_containers: tuple[ContainerTruth, ...]
    pods: tuple[PodTruth, ...]

    @property
    def memory_working_set_bytes(self) -> int:
        return self.memory.working_set_bytes

    def pod(self, namespace: str, name: str) -> PodTruth:
        for pod in self.pods:
            if pod.namespace == namespace and pod.name == name:
                return pod
        raise KeyError(f"node {self.name} has no pod {namespace}/{name} at {self.sample_time}")


@dataclass(frozen=True, slots=True)
class CgroupUsage:
    """CPU and memory of a group of cgroups at one time (the pods another source adds to a node)."""

    cpu_nanocores: int
    cpu_cumulative_nanoseconds: int
    memory_working_set_bytes: int


_NO_EXTRA_USAGE = CgroupUsage(0, 0, 0)


class PodSource(Protocol):
    """Pods the model does not generate itself (created through a Kubernetes API server, in hollow
    mode), served by the nodes beside the model's own and counted in their node and pods cgroups."""

    def pod_truths(self, node_index: int, now: int) -> tuple[PodTruth, ...]:
        """The pods the node reports at wall second `now`, each at its own sample time."""
        ...

    def cgroup_usage(self, node_index: int, t: int) -> CgroupUsage:
        """Every pod of the source that ever ran on the node, at exactly t: the cumulative counter
        keeps what deleted pods used, so the node's counter never goes back."""
        ...

    def layout_valid_until(self, node_index: int, t: int) -> int:
        """As Model.layout_valid_until, for the source's pods."""
        ...


class Model:
    """The simulated cluster. Node specs are built on first use and cached."""

    def __init__(self, params: SimulationParameters) -> None:
        params.validate()
        self.params = params
        self._nodes: dict[int, NodeSpec] = {}
        self._churning: list[PodSlotSpec] | None = None
        # The latest pod instance built for each slot (names and UIDs cost hashing; a slot's pod
        # changes only when it churns).
        self._pod_instances: dict[tuple[int, int], PodInstance] = {}
        self._template_hashes: dict[tuple[str, str], str] = {}
        # Pods from outside the model (hollow mode), or None.
        self.extra_pods: PodSource | None = None

    # ---- structure ----

    def node_name(self, index: int) -> str:
        return f"{self.params.node_name_prefix}{index}"

    def node_names(self) -> list[str]:
        return [self.node_name(i) for i in range(self.params.nodes)]

    def node_index(self, name: str) -> int:
        prefix = self.params.node_name_prefix
        suffix = name[len(prefix) :]
        if not name.startswith(prefix) or not suffix.isdigit() or str(int(suffix)) != suffix:
            raise KeyError(f"no simulated node named {name!r}")
        index = int(suffix)
        if index >= self.params.nodes:
            raise KeyError(f"no simulated node named {name!r} (the fleet has {self.params.nodes} nodes)")
        return index

    def node(self, node: str | int) -> NodeSpec:
        index = node if isinstance(node, int) else self.node_index(node)
        if not 0 <= index < self.params.nodes:
            raise KeyError(f"no simulated node with index {index}")
        spec = self._nodes.get(index)
        if spec is None:
            spec = self._build_node(index)
            self._nodes[index] = spec
        return spec

    def nodes(self) -> Iterator[NodeSpec]:
        for index in range(self.params.nodes):
            yield self.node(index)

    # ---- pods over time ----

    def generation_at(self, slot: PodSlotSpec, t: int) -> int:
        first_churn = self.params.origin + slot.churn_phase_seconds
        if slot.churn_period_seconds == 0 or t < first_churn:
            return 0
        return (t - first_churn) // slot.churn_period_seconds + 1

    def pod_at(self, slot: PodSlotSpec, t: int) -> PodInstance:
        """The pod occupying `slot` at time t (it may not have started yet if t is before the simulation)."""
        generation = self.generation_at(slot, t)
        cached = self._pod_instances.get((slot.node_index, slot.index))
        if cached is not None and cached.generation == generation:
            return cached
        if generation == 0:
            start = slot.initial_start
        else:
            start = self.params.origin + slot.churn_phase_seconds + (generation - 1) * slot.churn_period_seconds
        instance = self._pod_instance(slot, generation, start)
        self._pod_instances[(slot.node_index, slot.index)] = instance
        return instance

    def pods_at(self, node: str | int, t: int) -> list[PodInstance]:
        return [pod for slot in self.node(node).slots if (pod := self.pod_at(slot, t)).start_time <= t]

    def find_pod(self, node: str | int, namespace: str, name: str, t: int) -> PodInstance:
        for pod in self.pods_at(node, t):
            if pod.namespace == namespace and pod.name == name:
                return pod
        raise KeyError(f"node {self.node(node).name} has no pod {namespace}/{name} at {t}")

    def churning_slots(self) -> list[PodSlotSpec]:
        if self._churning is None:
            self._churning = [slot for node in self.nodes() for slot in node.slots if slot.churn_period_seconds]
        return self._churning

    def next_pod_change_after(self, t: int) -> int | None:
        """The first second after t when some pod is replaced anywhere in the fleet (None: never)."""
        return min((self._next_churn(slot, t) for slot in self.churning_slots()), default=None)

    def _next_churn(self, slot: PodSlotSpec, t: int) -> int:
        return self.params.origin + slot.churn_phase_seconds + self.generation_at(slot, t) * slot.churn_period_seconds

    def layout_valid_until(self, node: str | int, t: int) -> int:
        """The first second after t when the list of pods or containers the node reports can change
        (a pod is replaced, an init container finishes, a container starts). Restarts do not change it."""
        earliest = FOREVER
        for slot in self.node(node).slots:
            if slot.churn_period_seconds:
                earliest = min(earliest, self._next_churn(slot, t))
            pod = self.pod_at(slot, t)
            if pod.start_time > t:
                earliest = min(earliest, pod.start_time)
                continue
            for first_start in pod.first_starts:
                if first_start > t:
                    earliest = min(earliest, first_start)
        if self.extra_pods is not None:
            earliest = min(earliest, self.extra_pods.layout_valid_until(self.node(node).index, t))
        return earliest

    # ---- truth ----

    def truth_for(self, node: str | int, now: int) -> NodeTruth:
        """What the node's kubelet reports at wall second `now`: each object at its own sample time."""
        spec = self.node(node)
        interval = self.params.housekeeping_interval
        pods = tuple(self._pod_truth(pod, now) for pod in self.pods_at(spec.index, now))
        if self.extra_pods is not None:
            pods += self.extra_pods.pod_truths(spec.index, now)
        # The root cgroup and the pods cgroup share a housekeeping tick (as in real 1.35 payloads).
        node_time = max(housekeeping_tick(now, spec.housekeeping_phase, interval), spec.boot_time)
        pods_cgroup_time = max(node_time, spec.pods_cgroup_start)
        pods_memory = self._pods_memory(spec, node_time)
        extra = self._extra_usage(spec, node_time)
        pods_extra = extra if pods_cgroup_time == node_time else self._extra_usage(spec, pods_cgroup_time)
        return NodeTruth(
            name=spec.name,
            start_time=spec.boot_time,
            sample_time=node_time,
            cpu_nanocores=spec.nanocores + extra.cpu_nanocores,
            cpu_cumulative_nanoseconds=spec.nanocores * (node_time - spec.boot_time) + extra.cpu_cumulative_nanoseconds,
            memory=self._node_memory(spec, node_time, pods_memory),
            system_containers=(
                self._system_truth(spec.kubelet, now),
                self._system_truth(spec.runtime, now),
                ContainerTruth(
                    name="pods",
                    start_time=spec.pods_cgroup_start,
                    sample_time=pods_cgroup_time,
                    cpu_nanocores=spec.pods_cgroup_nanocores + pods_extra.cpu_nanocores,
                    cpu_cumulative_nanoseconds=spec.pods_cgroup_nanocores * (pods_cgroup_time - spec.pods_cgroup_start)
                    + pods_extra.cpu_cumulative_nanoseconds,
                    memory=pods_memory if pods_cgroup_time == node_time else self._pods_memory(spec, pods_cgroup_time),
                    restarts=0,
                ),
            ),
            pods=pods,
        )

    def node_usage(self, node: str | int, t: int) -> Usage:
        spec = self.node(node)
        extra = self._extra_usage(spec, t)
        return Usage(
            t=t,
            start_time=spec.boot_time,
            cpu_nanocores=spec.nanocores + extra.cpu_nanocores,
            cpu_cumulative_nanoseconds=spec.nanocores * (t - spec.boot_time) + extra.cpu_cumulative_nanoseconds,
            memory_working_set_bytes=self._node_memory(spec, t, self._pods_memory(spec, t)).working_set_bytes,
        )

    def pod_usage(self, node: str | int, namespace: str, name: str, t: int) -> Usage:
        """The pod cgroup at exactly t (includes the sandbox overhead; metrics-server instead sums the
        containers, see container_usage)."""
        pod = self.find_pod(node, namespace, name, t)
        cumulative, nanocores = self._pod_cpu(pod, t)
        return Usage(
            t=t,
            start_time=pod.start_time,
            cpu_nanocores=nanocores,
            cpu_cumulative_nanoseconds=cumulative,
            memory_working_set_bytes=self._pod_memory(pod, t).working_set_bytes,
        )

    def container_usage(self, node: str | int, namespace: str, pod_name: str, container: str, t: int) -> Usage:
        pod = self.find_pod(node, namespace, pod_name, t)
        init = pod.slot.init
        if init is not None and init.name == container and pod.init_running(t):
            return Usage(
                t, pod.start_time, init.nanocores, init.nanocores * (t - pod.start_time), init.memory.base_bytes
            )
        for spec, first_start in zip(pod.slot.containers, pod.first_starts, strict=True):
            if spec.name != container:
                continue
            if first_start > t:
                break
            start, _ = spec.current_start(first_start, t)
            return Usage(t, start, spec.nanocores, spec.nanocores * (t - start), spec.memory.working_set(t))
        raise KeyError(
            f"pod {namespace}/{pod_name} on {self.node(node).name} has no running container {container!r} at {t}"
        )

    # ---- internals: truth ----

    def _container_truth(self, spec: ContainerSpec, first_start: int, now: int) -> ContainerTruth:
        start, restarts = spec.current_start(first_start, now)
        t = max(housekeeping_tick(now, spec.housekeeping_phase, self.params.housekeeping_interval), start)
        return ContainerTruth(
            name=spec.name,
            start_time=start,
            sample_time=t,
            cpu_nanocores=spec.nanocores,
            cpu_cumulative_nanoseconds=spec.nanocores * (t - start),
            memory=_memory_reading(spec.memory, spec.memory.working_set(t), t - start),
            restarts=restarts,
        )

    def _init_truth(self, pod: PodInstance, init: InitContainerSpec, now: int) -> ContainerTruth:
        start = pod.start_time
        t = max(housekeeping_tick(now, init.housekeeping_phase, self.params.housekeeping_interval), start)
        return ContainerTruth(
            name=init.name,
            start_time=start,
            sample_time=t,
            cpu_nanocores=init.nanocores,
            cpu_cumulative_nanoseconds=init.nanocores * (t - start),
            memory=_memory_reading(init.memory, init.memory.base_bytes, t - start),
            restarts=0,
        )

    def _listed_containers(self, pod: PodInstance, now: int) -> tuple[ContainerTruth, ...]:
        if pod.slot.init is not None and pod.init_running(now):
            return (self._init_truth(pod, pod.slot.init, now),)
        return tuple(
            self._container_truth(spec, first_start, now)
            for spec, first_start in zip(pod.slot.containers, pod.first_starts, strict=True)
            if first_start <= now
        )

    def _pod_truth(self, pod: PodInstance, now: int) -> PodTruth:
        slot = pod.slot
        t = max(housekeeping_tick(now, slot.housekeeping_phase, self.params.housekeeping_interval), pod.start_time)
        cumulative, nanocores = self._pod_cpu(pod, t)
        return PodTruth(
            namespace=pod.namespace,
            name=pod.name,
            uid=pod.uid,
            start_time=pod.start_time,
            sample_time=t,
            cpu_nanocores=nanocores,
            cpu_cumulative_nanoseconds=cumulative,
            memory=self._pod_memory(pod, t),
            containers=self._listed_containers(pod, now),
        )

    def _pod_cpu(self, pod: PodInstance, t: int) -> tuple[int, int]:
        """(cumulative, current rate) of the pod cgroup at t."""
        slot = pod.slot
        alive = max(0, t - pod.start_time)
        cumulative = slot.overhead_nanocores * alive
        nanocores = slot.overhead_nanocores
        if slot.init is not None:
            cumulative += slot.init.nanocores * min(alive, slot.init.duration_seconds)
            if pod.init_running(t):
                nanocores += slot.init.nanocores
        for spec, first_start in zip(slot.containers, pod.first_starts, strict=True):
            running_for = t - first_start
            if running_for >= 0:
                cumulative += spec.nanocores * running_for
                nanocores += spec.nanocores
        return cumulative, nanocores

    def _pod_memory(self, pod: PodInstance, t: int) -> MemoryReading:
        slot = pod.slot
        working_set = slot.overhead_memory_bytes
        usage = slot.overhead_memory_bytes
        rss = slot.overhead_memory_bytes
        page_faults = 0
        limit: int | None = 0
        if pod.init_running(t) and slot.init is not None:
            init_memory = slot.init.memory
            working_set += init_memory.base_bytes
            usage += init_memory.base_bytes + init_memory.cache_bytes
            rss += init_memory.rss(init_memory.base_bytes)
        for spec, first_start in zip(slot.containers, pod.first_starts, strict=True):
            memory = spec.memory
            limit = None if limit is None or memory.limit_bytes is None else limit + memory.limit_bytes
            running_for = t - first_start
            if running_for < 0:
                continue
            container_ws = memory.working_set(t)
            working_set += container_ws
            usage += container_ws + memory.cache_bytes
            rss += memory.rss(container_ws)
            page_faults += memory.page_faults_per_second * running_for
        return MemoryReading(
            working_set_bytes=working_set,
            usage_bytes=usage,
            rss_bytes=rss,
            available_bytes=None if limit is None else limit + slot.overhead_memory_bytes - working_set,
            page_faults=page_faults,
            major_page_faults=0,
        )

    def _extra_usage(self, spec: NodeSpec, t: int) -> CgroupUsage:
        if self.extra_pods is None:
            return _NO_EXTRA_USAGE
        return self.extra_pods.cgroup_usage(spec.index, t)

    def _pods_memory(self, spec: NodeSpec, t: int) -> MemoryReading:
        readings = [self._pod_memory(pod, t) for pod in self.pods_at(spec.index, t)]
        # Pods of another source hold their working set only (no page cache, all resident).
        extra = self._extra_usage(spec, t).memory_working_set_bytes
        working_set = sum(r.working_set_bytes for r in readings) + extra
        return MemoryReading(
            working_set_bytes=working_set,
            usage_bytes=sum(r.usage_bytes for r in readings) + extra,
            rss_bytes=sum(r.rss_bytes for r in readings) + extra,
            available_bytes=spec.memory_allocatable_bytes - working_set,
            page_faults=sum(r.page_faults for r in readings),
            major_page_faults=0,
        )

    def _node_memory(self, spec: NodeSpec, t: int, pods: MemoryReading) -> MemoryReading:
        kubelet_ws = spec.kubelet.memory.working_set(t)
        runtime_ws = spec.runtime.memory.working_set(t)
        working_set = pods.working_set_bytes + kubelet_ws + runtime_ws + spec.other_memory_bytes
        return MemoryReading(
            working_set_bytes=working_set,
            usage_bytes=working_set + spec.page_cache_bytes,
            rss_bytes=pods.rss_bytes
            + spec.kubelet.memory.rss(kubelet_ws)
            + spec.runtime.memory.rss(runtime_ws)
            + page_floor(spec.other_memory_bytes * 0.6),
            available_bytes=spec.memory_capacity_bytes - working_set,
            page_faults=(t - spec.boot_time) * 900,
            major_page_faults=(t - spec.boot_time) // 3600,
        )

    def _system_truth(self, system: SystemContainerSpec, now: int) -> ContainerTruth:
        t = max(housekeeping_tick(now, system.housekeeping_phase, self.params.housekeeping_interval), system.start_time)
        return ContainerTruth(
            name=system.name,
            start_time=system.start_time,
            sample_time=t,
            cpu_nanocores=system.nanocores,
            cpu_cumulative_nanoseconds=system.nanocores * (t - system.start_time),
            memory=_memory_reading(system.memory, system.memory.working_set(t), t - system.start_time),
            restarts=0,
        )

    # ---- internals: building specs ----

    def _pod_instance(self, slot: PodSlotSpec, generation: int, start: int) -> PodInstance:
        workload = slot.workload
        seed = self.params.seed
        uid = _stable_uid(seed, "pod", slot.node_index, slot.index, generation)
        if workload.kind is WorkloadKind.STATEFUL_SET:
            # A StatefulSet recreates a deleted pod under the same name (new UID, new start).
            name = f"{workload.app}-{slot.global_index}"
            labels = {
                "app": workload.app,
                "controller-revision-hash": f"{workload.app}-{slot.template_hash}",
                "statefulset.kubernetes.io/pod-name": name,
            }
        else:
            total_slots = self.params.nodes * self.params.pods_per_node
            number = ((generation * total_slots + slot.global_index) * _SUFFIX_SCRAMBLE + seed) % _SUFFIX_SPACE
            suffix = generated_name(number, 5)
            if workload.kind is WorkloadKind.DAEMON_SET:
                name = f"{workload.app}-{suffix}"
                labels = {
                    "app": workload.app,
                    "controller-revision-hash": slot.template_hash,
                    "pod-template-generation": "1",
                }
            else:
                name = f"{workload.app}-{slot.template_hash}-{suffix}"
                labels = {"app": workload.app, "pod-template-hash": slot.template_hash}
        app_start = start + slot.init_seconds
        first_starts = tuple(app_start + c.start_delay_seconds for c in slot.containers)
        return PodInstance(slot, generation, workload.namespace, name, uid, labels, start, app_start, first_starts)

    def _build_node(self, index: int) -> NodeSpec:
        params = self.params
        rng = Draws(params.seed, "node", index)
        interval = params.housekeeping_interval
        uptime = rng.randint(3 * 3600, 30 * 86400)
        boot = params.origin - uptime
        kubelet = SystemContainerSpec(
            "kubelet",
            boot + rng.randint(5, 30),
            rng.randint(15, 60) * MILLICORE_NANOCORES + rng.randrange(MILLICORE_NANOCORES),
            self._memory_profile(rng, (50, 150), limited=False),
            rng.randrange(interval),
        )
        runtime = SystemContainerSpec(
            "runtime",
            boot + rng.randint(2, 10),
            rng.randint(10, 50) * MILLICORE_NANOCORES + rng.randrange(MILLICORE_NANOCORES),
            self._memory_profile(rng, (40, 200), limited=False),
            rng.randrange(interval),
        )
        pods_cgroup_start = boot + rng.randint(10, 40)
        other_nanocores = rng.randint(20, 100) * MILLICORE_NANOCORES + rng.randrange(MILLICORE_NANOCORES)
        other_memory = page_floor(rng.randint(300, 900) * MIB)
        housekeeping_phase = rng.randrange(interval)
        zone = "abc"[index % 3]
        core_choice = rng.choice((4, 8, 8, 16, 16, 32))
        memory_per_core_gib = rng.choice((2, 4, 4, 8))
        slots = tuple(self._build_slot(index, j, boot) for j in range(params.pods_per_node))

        busy = sum(s.steady_nanocores for s in slots) + kubelet.nanocores + runtime.nanocores + other_nanocores
        cores = core_choice
        while cores * CORE_NANOCORES < busy * 1.25:
            cores *= 2
        peak_memory = sum(
            c.memory.base_bytes + c.memory.swing_bytes + c.memory.cache_bytes for s in slots for c in s.containers
        )
        memory_gib = cores * memory_per_core_gib
        while memory_gib * GIB < peak_memory * 1.5 + 2 * GIB:
            memory_gib *= 2
        # What a node reports: a little under the nominal size (firmware, kernel reservations).
        capacity = (memory_gib * GIB - rng.randint(100_000, 400_000) * 1024) // 1024 * 1024
        return NodeSpec(
            index=index,
            name=self.node_name(index),
            boot_time=boot,
            cpu_cores=cores,
            memory_capacity_bytes=capacity,
            memory_allocatable_bytes=capacity - 200 * MIB,
            max_pods=max(110, params.pods_per_node),
            kubelet=kubelet,
            runtime=runtime,
            pods_cgroup_start=pods_cgroup_start,
            other_nanocores=other_nanocores,
            other_memory_bytes=other_memory,
            page_cache_bytes=page_floor(memory_gib * GIB * rng.uniform(0.05, 0.3)),
            housekeeping_phase=housekeeping_phase,
            instance_type=f"sim.{cores}x{memory_gib}",
            zone=zone,
            slots=slots,
            pods_cgroup_nanocores=sum(s.steady_nanocores for s in slots),
            nanocores=busy,
        )

    def _memory_profile(self, rng: Draws, mib: tuple[int, int], *, limited: bool) -> MemoryProfile:
        # The swing is drawn either way, so steady_memory changes nothing else about the fleet.
        profile = _memory_profile(rng, mib, limited=limited)
        return dataclasses.replace(profile, swing_bytes=0) if self.params.steady_memory else profile

    def _template_hash(self, workload: Workload) -> str:
        """The pod-template-hash of a workload's current template: the same on every node."""
        key = (workload.namespace, workload.app)
        cached = self._template_hashes.get(key)
        if cached is None:
            draws = Draws(self.params.seed, "workload", workload.namespace, workload.app)
            cached = generated_name(draws.randrange(len(_NAME_ALPHABET) ** 10), 10)
            self._template_hashes[key] = cached
        return cached

    def _build_slot(self, node_index: int, index: int, boot: int) -> PodSlotSpec:
        params = self.params
        rng = Draws(params.seed, "slot", node_index, index)
        interval = params.housekeeping_interval
        if index < len(DAEMON_SETS):
            workload = DAEMON_SETS[index]
        else:
            workload = rng.weighted_choice(APPLICATIONS, APPLICATION_WEIGHTS)
        if params.containers_per_pod:
            workload = with_container_count(workload, params.containers_per_pod)
        containers = []
        for position, profile in enumerate(workload.containers):
            nanocores = rng.randint(*profile.millicores) * MILLICORE_NANOCORES + rng.randrange(MILLICORE_NANOCORES)
            memory = self._memory_profile(rng, profile.memory_mib, limited=profile.memory_limited)
            delay = 0 if position == 0 else rng.randint(0, 3)
            restart_period = round(params.restart_interval * rng.uniform(0.8, 1.2))
            restarts = params.restart_interval > 0 and rng.random() < params.restart_fraction
            restart_phase = rng.randint(1, max(1, restart_period - 1))
            containers.append(
                ContainerSpec(
                    name=profile.name,
                    nanocores=nanocores,
                    memory=memory,
                    start_delay_seconds=delay,
                    restart_period_seconds=restart_period if restarts else 0,
                    restart_phase_seconds=restart_phase,
                    housekeeping_phase=rng.randrange(interval),
                )
            )
        init: InitContainerSpec | None = None
        if workload.init is not None:
            init = InitContainerSpec(
                name=workload.init.name,
                nanocores=rng.randint(*workload.init.millicores) * MILLICORE_NANOCORES,
                duration_seconds=rng.randint(*workload.init.seconds),
                memory=_memory_profile(rng, workload.init.memory_mib, limited=True, flat=True),
                housekeeping_phase=rng.randrange(interval),
            )
        if workload.kind is WorkloadKind.DAEMON_SET:
            initial_start = boot + rng.randint(30, 120)
        else:
            age = rng.randint(300, max(301, params.origin - boot - 600))
            initial_start = max(boot + 120, params.origin - age)
        churns = params.churn_interval > 0 and rng.random() < params.churn_fraction
        churn_phase = rng.randint(1, max(1, params.churn_interval))
        return PodSlotSpec(
            node_index=node_index,
            index=index,
            global_index=node_index * params.pods_per_node + index,
            workload=workload,
            template_hash=self._template_hash(workload),
            containers=tuple(containers),
            init=init,
            overhead_nanocores=rng.randint(50_000, 400_000),
            overhead_memory_bytes=page_floor(rng.randint(300, 900) * 1024),
            initial_start=initial_start,
            churn_period_seconds=params.churn_interval if churns else 0,
            churn_phase_seconds=churn_phase,
            housekeeping_phase=rng.randrange(interval),
        )


def _memory_profile(rng: Draws, mib: tuple[int, int], *, limited: bool, flat: bool = False) -> MemoryProfile:
    base = page_floor(rng.randint(*mib) * MIB + rng.randrange(MIB))
    swing = 0 if flat else page_floor(base * rng.uniform(0.02, 0.1))
    period = rng.randint(300, 3600)
    limit = None
    headroom = rng.uniform(1.3, 2.5)
    if limited:
        limit = math.ceil((base + swing) * headroom / MIB) * MIB
    return MemoryProfile(
        base_bytes=base,
        swing_bytes=swing,
        period_seconds=period,
        phase_seconds=rng.randrange(period),
        cache_bytes=page_floor(base * rng.uniform(0.0, 0.3)),
        rss_permille=rng.randint(850, 990),
        page_faults_per_second=rng.randint(0, 40),
        limit_bytes=limit,
    )


def _memory_reading(profile: MemoryProfile, working_set: int, running_seconds: int) -> MemoryReading:
    return MemoryReading(
        working_set_bytes=working_set,
        usage_bytes=working_set + profile.cache_bytes,
        rss_bytes=profile.rss(working_set),
        available_bytes=None if profile.limit_bytes is None else profile.limit_bytes - working_set,
        page_faults=profile.page_faults_per_second * max(0, running_seconds),
        major_page_faults=0,
    )
