"""Pods created through a Kubernetes API server and run by the simulated kubelets (hollow mode).

Each container uses what its pod's annotations ask for:

- `kubemetrics.io/usage-cpu` (a quantity such as "400m"; default 10m) and `kubemetrics.io/usage-memory`
  (default 32Mi) for every container of the pod;
- `kubemetrics.io/usage-cpu.<container>` / `kubemetrics.io/usage-memory.<container>` for one container.

Kubelet edge cases, per container (`<annotation>.<container>`) or for every container (`<annotation>`),
shown on `/metrics/resource` (the Summary API is not affected):

- `kubemetrics.io/missing-usage`: `cpu`, `memory` or `cpu,memory` — the series the kubelet leaves out
  for the container, as when the runtime has no stats for its cgroup yet;
- `kubemetrics.io/bad-start-time`: `true` — the container's start is written as Go's zero time with a
  negative sample timestamp (`-6.21355968e+10 -62135596800000`), as kubelets did in kubernetes#109679;
- `kubemetrics.io/restarts`: a count; raising it restarts the container from the next whole second
  (a new start time, its CPU counter from 0; the pod's and node's counters keep counting). The value
  a pod is first seen with is taken as restarts that happened before.

Usage is piecewise constant: a new annotation value takes effect from the whole second after it was
observed, and the cumulative CPU counter integrates the rate over the segments, so it only grows and
the rate between any two samples inside one segment is exact.

Layout changes (a pod appears or goes away) also take effect from the whole second after they are
observed: what a node reports at second s never changes once s has begun, which is what lets the
Summary renderer keep its per-second template.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from kubemetrics.simulator.model import (
    FOREVER,
    CgroupUsage,
    ContainerTruth,
    MemoryReading,
    PodTruth,
    housekeeping_tick,
    stable_hash,
)
from kubemetrics.simulator.quantity import QuantityError, cpu_nanocores, memory_bytes

log = logging.getLogger(__name__)

USAGE_CPU_ANNOTATION = "kubemetrics.io/usage-cpu"
USAGE_MEMORY_ANNOTATION = "kubemetrics.io/usage-memory"
MISSING_USAGE_ANNOTATION = "kubemetrics.io/missing-usage"
BAD_START_TIME_ANNOTATION = "kubemetrics.io/bad-start-time"
RESTARTS_ANNOTATION = "kubemetrics.io/restarts"
_SERIES = frozenset({"cpu", "memory"})
DEFAULT_USAGE_CPU = "10m"
DEFAULT_USAGE_MEMORY = "32Mi"
# A removed pod is kept (for samples that still fall before its end) this long, then only its total
# CPU stays, folded into the node's counter.
_RETIRE_AFTER_SECONDS = 120


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    nanocores: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class UsageSegment:
    """The usage from `since` (a whole second) until the next segment's `since`."""

    since: int
    usage: ContainerUsage


def requested_usage(annotations: Mapping[str, str], container: str) -> tuple[ContainerUsage, list[str]]:
    """The usage the annotations ask of `container`, and a message per unusable annotation (the next
    candidate, in the end the default, is used instead)."""
    problems: list[str] = []

    def pick(annotation: str, default: str, parse: Callable[[str], int]) -> int:
        for key in (f"{annotation}.{container}", annotation):
            text = annotations.get(key)
            if text is None:
                continue
            try:
                return parse(text)
            except QuantityError as err:
                problems.append(f"annotation {key}: {err}")
        return parse(default)

    usage = ContainerUsage(
        nanocores=pick(USAGE_CPU_ANNOTATION, DEFAULT_USAGE_CPU, cpu_nanocores),
        memory_bytes=pick(USAGE_MEMORY_ANNOTATION, DEFAULT_USAGE_MEMORY, memory_bytes),
    )
    return usage, problems


@dataclass(frozen=True, slots=True)
class KubeletQuirks:
    """How the kubelet misreports one container (see the module docstring)."""

    missing_series: frozenset[str] = frozenset()
    bad_start_time: bool = False
    restarts: int = 0


def _annotation(annotations: Mapping[str, str], annotation: str, container: str) -> str | None:
    for key in (f"{annotation}.{container}", annotation):
        if key in annotations:
            return annotations[key]
    return None


def requested_quirks(annotations: Mapping[str, str], container: str) -> tuple[KubeletQuirks, list[str]]:
    """The edge cases the annotations ask of `container`, and a message per unusable annotation."""
    problems: list[str] = []
    missing: frozenset[str] = frozenset()
    text = _annotation(annotations, MISSING_USAGE_ANNOTATION, container)
    if text is not None:
        names = frozenset(part.strip() for part in text.split(",") if part.strip())
        if names <= _SERIES:
            missing = names
        else:
            problems.append(f"annotation {MISSING_USAGE_ANNOTATION}: {text!r} is not a list of cpu, memory")
    bad_start = (_annotation(annotations, BAD_START_TIME_ANNOTATION, container) or "").strip().lower() == "true"
    restarts = 0
    text = _annotation(annotations, RESTARTS_ANNOTATION, container)
    if text is not None:
        try:
            restarts = int(text)
            if restarts < 0:
                raise ValueError(text)
        except ValueError:
            restarts = 0
            problems.append(f"annotation {RESTARTS_ANNOTATION}: {text!r} is not a count")
    return KubeletQuirks(missing, bad_start, restarts), problems


@dataclass(slots=True)
class ApiContainer:
    name: str
    memory_limit_bytes: int | None
    # Ascending `since`; the first starts at the pod's start.
    segments: list[UsageSegment]
    quirks: KubeletQuirks = KubeletQuirks()
    # Whole seconds the container restarted at, ascending (its first start is the pod's).
    restart_times: list[int] = field(default_factory=list)

    def usage_at(self, t: int) -> ContainerUsage:
        current = self.segments[0].usage
        for segment in self.segments:
            if segment.since > t:
                break
            current = segment.usage
        return current

    def cumulative_at(self, t: int) -> int:
        """CPU nanoseconds used from the start until t."""
        total = 0
        for position, segment in enumerate(self.segments):
            if segment.since >= t:
                break
            end = self.segments[position + 1].since if position + 1 < len(self.segments) else t
            total += segment.usage.nanocores * (min(end, t) - segment.since)
        return total

    def instance_start(self, pod_start: int, t: int) -> int:
        """When the instance running at t started."""
        return max((r for r in self.restart_times if r <= t), default=pod_start)

    def restarts_at(self, t: int) -> int:
        return self.quirks.restarts - sum(1 for r in self.restart_times if r > t)

    def set_quirks(self, quirks: KubeletQuirks, since: int) -> bool:
        """Apply new quirks; a higher restart count restarts the container at `since`."""
        if quirks == self.quirks:
            return False
        if quirks.restarts > self.quirks.restarts and (not self.restart_times or self.restart_times[-1] < since):
            self.restart_times.append(since)
        self.quirks = quirks
        return True

    def set_usage(self, usage: ContainerUsage, since: int) -> bool:
        last = self.segments[-1]
        if last.usage == usage:
            return False
        if last.since >= since:
            # A second change within the same second: it replaces the first, which nobody has seen.
            self.segments[-1] = UsageSegment(last.since, usage)
            if len(self.segments) > 1 and self.segments[-2].usage == usage:
                self.segments.pop()
        else:
            self.segments.append(UsageSegment(since, usage))
        return True


@dataclass(slots=True)
class ApiPod:
    uid: str
    namespace: str
    name: str
    labels: dict[str, str]
    node_index: int
    # Whole seconds: containers run from start_time; the node lists the pod in [visible_from, visible_until).
    start_time: int
    visible_from: int
    containers: tuple[ApiContainer, ...]
    housekeeping_phase: int
    visible_until: int = FOREVER
    problems: list[str] = field(default_factory=list)

    @property
    def removed(self) -> bool:
        return self.visible_until != FOREVER

    def cumulative_at(self, t: int) -> int:
        end = min(t, self.visible_until)
        if end <= self.start_time:
            return 0
        return sum(c.cumulative_at(end) for c in self.containers)

    def running_at(self, t: int) -> bool:
        return self.start_time <= t < self.visible_until


def _after(now: float) -> int:
    """The first whole second after `now`: when something observed at `now` takes effect."""
    return math.floor(now) + 1


class ApiPods:
    """Every API pod the fleet runs, by node; the model's PodSource in hollow mode."""

    def __init__(self, housekeeping_interval: int) -> None:
        self._interval = housekeeping_interval
        self._by_uid: dict[str, ApiPod] = {}
        self._by_node: dict[int, dict[str, ApiPod]] = {}
        # CPU of pods removed long ago, per node: keeps the node's counter from going back.
        self._retired_nanoseconds: dict[int, int] = {}
        # Bumped on every change (a pod added with a start in the past moves the node's counters of
        # the current second): rendered bodies cached for a second are keyed by it.
        self.revision = 0

    def get(self, uid: str) -> ApiPod | None:
        """The pod if it runs (not removed)."""
        pod = self._by_uid.get(uid)
        return pod if pod is not None and not pod.removed else None

    def running(self) -> Iterator[ApiPod]:
        return (pod for pod in self._by_uid.values() if not pod.removed)

    def running_uids(self) -> list[str]:
        return [pod.uid for pod in self.running()]

    def count_on(self, node_index: int) -> int:
        return sum(1 for pod in self._by_node.get(node_index, {}).values() if not pod.removed)

    def add(
        self,
        *,
        uid: str,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        node_index: int,
        containers: Sequence[tuple[str, int | None]],
        annotations: Mapping[str, str],
        start_time: int,
        now: float,
    ) -> ApiPod:
        """Run a pod from start_time (a whole second, at most `now`); `containers` are (name, memory
        limit in bytes or None)."""
        existing = self._by_uid.get(uid)
        if existing is not None and not existing.removed:
            return existing
        problems: list[str] = []
        built = []
        for container_name, limit in containers:
            usage, container_problems = requested_usage(annotations, container_name)
            quirks, quirk_problems = requested_quirks(annotations, container_name)
            problems.extend(p for p in (*container_problems, *quirk_problems) if p not in problems)
            built.append(ApiContainer(container_name, limit, [UsageSegment(start_time, usage)], quirks))
        pod = ApiPod(
            uid=uid,
            namespace=namespace,
            name=name,
            labels=dict(labels),
            node_index=node_index,
            start_time=start_time,
            visible_from=max(start_time, _after(now)),
            containers=tuple(built),
            housekeeping_phase=int.from_bytes(stable_hash("api-pod", uid)[:4], "little") % self._interval,
            problems=problems,
        )
        self._by_uid[uid] = pod
        self._by_node.setdefault(node_index, {})[uid] = pod
        self.revision += 1
        return pod

    def update_usage(self, uid: str, annotations: Mapping[str, str], now: float) -> bool:
        """Apply the pod's current annotations from the next whole second; True if any usage (or quirk)
        changed."""
        pod = self.get(uid)
        if pod is None:
            return False
        since = max(_after(now), pod.start_time)
        changed = False
        problems: list[str] = []
        for container in pod.containers:
            usage, container_problems = requested_usage(annotations, container.name)
            quirks, quirk_problems = requested_quirks(annotations, container.name)
            problems.extend(p for p in (*container_problems, *quirk_problems) if p not in problems)
            changed |= container.set_usage(usage, since)
            changed |= container.set_quirks(quirks, since)
        pod.problems = problems
        if changed:
            self.revision += 1
        return changed

    def remove(self, uid: str, now: float) -> bool:
        """The pod's containers stop and the node stops listing it from the next whole second."""
        pod = self.get(uid)
        if pod is None:
            return False
        pod.visible_until = max(_after(now), pod.visible_from)
        self._retire_before(math.floor(now) - _RETIRE_AFTER_SECONDS)
        self.revision += 1
        return True

    def _retire_before(self, horizon: int) -> None:
        for uid in [uid for uid, pod in self._by_uid.items() if pod.removed and pod.visible_until < horizon]:
            pod = self._by_uid.pop(uid)
            del self._by_node[pod.node_index][uid]
            total = pod.cumulative_at(pod.visible_until)
            self._retired_nanoseconds[pod.node_index] = self._retired_nanoseconds.get(pod.node_index, 0) + total

    # ---- PodSource ----

    def pod_truths(self, node_index: int, now: int) -> tuple[PodTruth, ...]:
        pods = self._by_node.get(node_index)
        if not pods:
            return ()
        return tuple(
            self._pod_truth(pod, now)
            for pod in sorted(pods.values(), key=lambda p: (p.visible_from, p.namespace, p.name))
            if pod.visible_from <= now < pod.visible_until
        )

    def cgroup_usage(self, node_index: int, t: int) -> CgroupUsage:
        cumulative = self._retired_nanoseconds.get(node_index, 0)
        nanocores = working_set = 0
        for pod in self._by_node.get(node_index, {}).values():
            cumulative += pod.cumulative_at(t)
            if pod.running_at(t):
                for container in pod.containers:
                    usage = container.usage_at(t)
                    nanocores += usage.nanocores
                    working_set += usage.memory_bytes
        return CgroupUsage(nanocores, cumulative, working_set)

    def layout_valid_until(self, node_index: int, t: int) -> int:
        # A pod may be added or removed at any later second, which nothing here can foresee.
        return t + 1

    def _pod_truth(self, pod: ApiPod, now: int) -> PodTruth:
        t = max(housekeeping_tick(now, pod.housekeeping_phase, self._interval), pod.start_time)
        containers = tuple(self._container_truth(pod, c, t) for c in pod.containers)
        working_set = sum(c.memory.working_set_bytes for c in containers)
        limits = [c.memory_limit_bytes for c in pod.containers]
        return PodTruth(
            namespace=pod.namespace,
            name=pod.name,
            uid=pod.uid,
            start_time=pod.start_time,
            sample_time=t,
            cpu_nanocores=sum(c.cpu_nanocores for c in containers),
            # The pod cgroup keeps counting across container restarts.
            cpu_cumulative_nanoseconds=sum(c.cumulative_at(t) for c in pod.containers),
            memory=_reading(working_set, None if None in limits else sum(x for x in limits if x is not None)),
            containers=containers,
        )

    def _container_truth(self, pod: ApiPod, container: ApiContainer, t: int) -> ContainerTruth:
        usage = container.usage_at(t)
        start = container.instance_start(pod.start_time, t)
        # A restarted container's counter starts again from 0; the pod's keeps the earlier instances'.
        cumulative = container.cumulative_at(t) - container.cumulative_at(start)
        return ContainerTruth(
            name=container.name,
            start_time=start,
            sample_time=t,
            cpu_nanocores=usage.nanocores,
            cpu_cumulative_nanoseconds=cumulative,
            memory=_reading(usage.memory_bytes, container.memory_limit_bytes),
            restarts=container.restarts_at(t),
            missing_series=tuple(sorted(container.quirks.missing_series)),
            start_time_unset=container.quirks.bad_start_time,
        )


def _reading(working_set: int, limit: int | None) -> MemoryReading:
    return MemoryReading(
        working_set_bytes=working_set,
        usage_bytes=working_set,
        rss_bytes=working_set,
        available_bytes=None if limit is None else max(0, limit - working_set),
        page_faults=0,
        major_page_faults=0,
    )
