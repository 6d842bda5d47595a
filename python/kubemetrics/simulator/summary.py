"""`/stats/summary` bodies, shaped exactly like a real kubelet's (1.35, containerd, KubeletPSI).

go-restful writes the Summary with `json.MarshalIndent(v, "", " ")`: one space per level, `"key": value`,
no trailing newline. Keys come in the Go struct's field order and optional (omitempty) fields appear
only when set — see the minikube-v1.35 fixture in shared/fixtures/kubelet/summary/.

Rendering a body from scratch for every request would cost far more than the numbers that change, so
each node keeps a *template*: the pretty-printed text of its current layout (pods, containers, names,
static filesystem figures) cut at every value that moves with time. A request computes the model's
values and fills them in. The template is rebuilt only when the layout changes (a pod is replaced, an
init container finishes, a container starts); a container restart only moves values.

`only_cpu_and_memory=true` gets the reduced shape `GetCPUAndMemoryStats` produces: node {nodeName,
systemContainers, startTime, cpu, memory, swap}, system containers and containers {name, startTime,
cpu, memory, swap}, pods {podRef, startTime, containers, cpu, memory, swap}.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubemetrics.simulator.model import (
    GIB,
    ContainerTruth,
    MemoryReading,
    Model,
    NodeTruth,
    PodTruth,
    generated_name,
    housekeeping_tick,
    stable_hash,
)

_TIME_CACHE: dict[int, str] = {}


def format_time(unix_seconds: int) -> str:
    """A metav1.Time as JSON: RFC 3339 in UTC at second precision, quoted."""
    text = _TIME_CACHE.get(unix_seconds)
    if text is None:
        if len(_TIME_CACHE) > 4096:
            _TIME_CACHE.clear()
        text = time.strftime('"%Y-%m-%dT%H:%M:%SZ"', time.gmtime(unix_seconds))
        _TIME_CACHE[unix_seconds] = text
    return text


@dataclass(frozen=True, slots=True)
class _Slot:
    """A value filled in at request time: field `key` of the object at `index` in the walk order."""

    index: int
    key: str


@dataclass(frozen=True, slots=True)
class SummaryTemplate:
    parts: tuple[str, ...]
    slots: tuple[tuple[int, str], ...]
    # The layout it was cut from holds for now in [valid_from, valid_until).
    valid_from: int
    valid_until: int


@dataclass(frozen=True, slots=True)
class _FsStatics:
    """Filesystem figures that do not move in the simulation (they do not matter to a metrics collector,
    but belong to the shape)."""

    capacity: int
    available: int
    inodes: int
    inodes_free: int
    image_used: int
    image_inodes_used: int
    max_pids: int
    processes: int
    swap_available: int


def _hashed(limit: int, *parts: object) -> int:
    return int.from_bytes(stable_hash(*parts)[:8], "little") % limit


def _fs_statics(model: Model, node_index: int) -> _FsStatics:
    seed = model.params.seed
    capacity = (100 + _hashed(400, seed, "fs", node_index)) * GIB
    inodes = capacity // 16384
    return _FsStatics(
        capacity=capacity,
        available=capacity * (50 + _hashed(45, seed, "fs-free", node_index)) // 100,
        inodes=inodes,
        inodes_free=inodes * (80 + _hashed(19, seed, "inodes-free", node_index)) // 100,
        image_used=(2 + _hashed(30, seed, "images", node_index)) * GIB,
        image_inodes_used=40_000 + _hashed(60_000, seed, "image-inodes", node_index),
        max_pids=4_194_304,
        processes=300 + _hashed(900, seed, "procs", node_index),
        swap_available=0,
    )


# Full-form templates are several times larger than the reduced ones, and collectors scrape the reduced
# form: keep full templates for the most recently asked nodes only.
FULL_TEMPLATES_KEPT = 256
_full_template_holders: collections.OrderedDict[int, SummaryRenderer] = collections.OrderedDict()


def _remember_full_template(renderer: SummaryRenderer) -> None:
    key = id(renderer)
    if key in _full_template_holders:
        _full_template_holders.move_to_end(key)
        return
    _full_template_holders[key] = renderer
    while len(_full_template_holders) > FULL_TEMPLATES_KEPT:
        _, oldest = _full_template_holders.popitem(last=False)
        oldest.forget_full_template()


class SummaryRenderer:
    """Renders one node's `/stats/summary` bodies from the model."""

    def __init__(self, model: Model, node_index: int) -> None:
        self._model = model
        self._node_index = node_index
        self._psi = model.params.psi
        self._fs = _fs_statics(model, node_index)
        self._templates: dict[bool, SummaryTemplate] = {}

    def render(self, now: int, *, full: bool) -> bytes:
        truth = self._model.truth_for(self._node_index, now)
        template = self._templates.get(full)
        if template is None or not template.valid_from <= now < template.valid_until:
            template = self._build(truth, now, full)
            self._templates[full] = template
        if full:
            _remember_full_template(self)
        return fill(template, self._values(truth, now, full))

    def forget_full_template(self) -> None:
        self._templates.pop(True, None)

    # ---- values ----

    def _values(self, truth: NodeTruth, now: int, full: bool) -> list[dict[str, str]]:
        values: list[dict[str, str]] = []
        for system in truth.system_containers:
            values.append(self._container_values(system, now, full, fs=False))
        values.append(self._node_values(truth, now, full))
        for pod in truth.pods:
            for container in pod.containers:
                values.append(self._container_values(container, now, full, fs=True))
            values.append(self._pod_values(pod, now, full))
        return values

    def _cpu_memory_values(
        self, t: int, start: int, nanocores: int, cumulative: int, memory: MemoryReading
    ) -> dict[str, str]:
        values = {
            "t": format_time(t),
            # A cgroup's first sample has no rate yet; cAdvisor reports 0.
            "nano": str(nanocores if cumulative else 0),
            "cum": str(cumulative),
            "mem.usage": str(memory.usage_bytes),
            "mem.ws": str(memory.working_set_bytes),
            "mem.rss": str(memory.rss_bytes),
            "mem.pf": str(memory.page_faults),
            "mem.majpf": str(memory.major_page_faults),
        }
        if memory.available_bytes is not None:
            values["mem.avail"] = str(memory.available_bytes)
        if self._psi:
            some = cumulative // 25_000
            values["cpu.psi.some"] = str(some)
            values["cpu.psi.full"] = str(some * 9 // 10)
            io_some = max(0, t - start) * 7
            values["io.psi.some"] = str(io_some)
            values["io.psi.full"] = str(io_some * 9 // 10)
        return values

    def _container_values(self, container: ContainerTruth, now: int, full: bool, *, fs: bool) -> dict[str, str]:
        values = self._cpu_memory_values(
            container.sample_time,
            container.start_time,
            container.cpu_nanocores,
            container.cpu_cumulative_nanoseconds,
            container.memory,
        )
        values["start"] = format_time(container.start_time)
        if full and fs:
            values["fs.t"] = format_time(self._fs_time(now))
            values["logs.t"] = format_time(now)
            values["logs.used"] = str(4096 * (1 + (now - container.start_time) // 600))
        return values

    def _pod_values(self, pod: PodTruth, now: int, full: bool) -> dict[str, str]:
        values = self._cpu_memory_values(
            pod.sample_time, pod.start_time, pod.cpu_nanocores, pod.cpu_cumulative_nanoseconds, pod.memory
        )
        if full:
            alive = pod.sample_time - pod.start_time
            values["net.rx"] = str(alive * 1733)
            values["net.tx"] = str(alive * 912)
            fs_time = format_time(self._fs_time(now))
            values["vol.t"] = fs_time
            values["eph.t"] = fs_time
            values["eph.used"] = str(4096 * (12 + (now - pod.start_time) // 600))
        return values

    def _node_values(self, truth: NodeTruth, now: int, full: bool) -> dict[str, str]:
        values = self._cpu_memory_values(
            truth.sample_time, truth.start_time, truth.cpu_nanocores, truth.cpu_cumulative_nanoseconds, truth.memory
        )
        if full:
            up = truth.sample_time - truth.start_time
            values["net.rx"] = str(up * 52_411)
            values["net.tx"] = str(up * 21_077)
            values["fs.t"] = format_time(self._fs_time(now))
            values["rlimit.t"] = format_time(now)
        return values

    def _fs_time(self, now: int) -> int:
        # Filesystem stats are refreshed on their own, slower loop.
        return housekeeping_tick(now, self._node_index % 60, 60) if now >= 60 else now

    # ---- template ----

    def _build(self, truth: NodeTruth, now: int, full: bool) -> SummaryTemplate:
        shape = _SummaryShape(self._model, self._node_index, self._fs, self._psi, full)
        document = shape.document(truth)
        parts, slots = flatten(document)
        valid_until = self._model.layout_valid_until(self._node_index, now)
        return SummaryTemplate(parts=parts, slots=slots, valid_from=now, valid_until=valid_until)


def fill(template: SummaryTemplate, values: list[dict[str, str]]) -> bytes:
    pieces: list[str] = [""] * (2 * len(template.slots) + 1)
    pieces[0::2] = template.parts
    pieces[1::2] = [values[index][key] for index, key in template.slots]
    return "".join(pieces).encode()


class _SummaryShape:
    """Builds the Summary document with `_Slot` placeholders where values move with time."""

    def __init__(self, model: Model, node_index: int, fs: _FsStatics, psi: bool, full: bool) -> None:
        self._model = model
        self._node_index = node_index
        self._fs = fs
        self._psi = psi
        self._full = full
        self._next_index = 0

    def _object(self) -> Callable[[str], _Slot]:
        index = self._next_index
        self._next_index += 1
        return lambda key: _Slot(index, key)

    def document(self, truth: NodeTruth) -> dict[str, object]:
        # Object indices are handed out in SummaryRenderer._values' order: system containers, node,
        # then per pod its containers and the pod itself.
        system_containers = [self._system_container(c) for c in truth.system_containers]
        node = self._node(truth, system_containers)
        pods = [self._pod(pod) for pod in truth.pods]
        return {"node": node, "pods": pods}

    def _psi_block(self, v: Callable[[str], _Slot] | None, prefix: str) -> dict[str, object]:
        def pressure(key: str) -> dict[str, object]:
            total: object = v(f"{prefix}.{key}") if v is not None else 0
            return {"total": total, "avg10": 0, "avg60": 0, "avg300": 0}

        return {"full": pressure("full"), "some": pressure("some")}

    def _cpu(self, v: Callable[[str], _Slot]) -> dict[str, object]:
        cpu: dict[str, object] = {"time": v("t"), "usageNanoCores": v("nano"), "usageCoreNanoSeconds": v("cum")}
        if self._psi:
            cpu["psi"] = self._psi_block(v, "cpu.psi")
        return cpu

    def _memory(self, v: Callable[[str], _Slot], memory: MemoryReading) -> dict[str, object]:
        section: dict[str, object] = {"time": v("t")}
        if memory.available_bytes is not None:
            section["availableBytes"] = v("mem.avail")
        section.update(
            usageBytes=v("mem.usage"),
            workingSetBytes=v("mem.ws"),
            rssBytes=v("mem.rss"),
            pageFaults=v("mem.pf"),
            majorPageFaults=v("mem.majpf"),
        )
        if self._psi:
            section["psi"] = self._psi_block(None, "mem.psi")
        return section

    def _io(self, v: Callable[[str], _Slot]) -> dict[str, object]:
        return {"time": v("t"), "psi": self._psi_block(v, "io.psi")}

    def _fs_section(self, time_value: object, used: object, inodes_used: int) -> dict[str, object]:
        fs = self._fs
        return {
            "time": time_value,
            "availableBytes": fs.available,
            "capacityBytes": fs.capacity,
            "usedBytes": used,
            "inodesFree": fs.inodes_free,
            "inodes": fs.inodes,
            "inodesUsed": inodes_used,
        }

    def _network(self, v: Callable[[str], _Slot]) -> dict[str, object]:
        counters = {"rxBytes": v("net.rx"), "rxErrors": 0, "txBytes": v("net.tx"), "txErrors": 0}
        return {"time": v("t"), "name": "eth0", **counters, "interfaces": [{"name": "eth0", **counters}]}

    def _system_container(self, container: ContainerTruth) -> dict[str, object]:
        v = self._object()
        section: dict[str, object] = {
            "name": container.name,
            "startTime": v("start"),
            "cpu": self._cpu(v),
            "memory": self._memory(v, container.memory),
        }
        if self._full and self._psi:
            section["io"] = self._io(v)
        section["swap"] = {"time": v("t"), "swapUsageBytes": 0}
        return section

    def _node(self, truth: NodeTruth, system_containers: list[dict[str, object]]) -> dict[str, object]:
        v = self._object()
        node: dict[str, object] = {
            "nodeName": truth.name,
            "systemContainers": system_containers,
            "startTime": format_time_value(truth.start_time),
            "cpu": self._cpu(v),
            "memory": self._memory(v, truth.memory),
        }
        fs = self._fs
        if self._full:
            if self._psi:
                node["io"] = self._io(v)
            node["network"] = self._network(v)
            node["fs"] = self._fs_section(v("fs.t"), fs.capacity - fs.available, fs.inodes - fs.inodes_free)
            image_fs = self._fs_section(v("fs.t"), fs.image_used, fs.image_inodes_used)
            node["runtime"] = {"imageFs": image_fs, "containerFs": dict(image_fs)}
            node["rlimit"] = {"time": v("rlimit.t"), "maxpid": fs.max_pids, "curproc": fs.processes}
        node["swap"] = {"time": v("t"), "swapAvailableBytes": fs.swap_available, "swapUsageBytes": 0}
        return node

    def _container(self, container: ContainerTruth, pod: PodTruth) -> dict[str, object]:
        v = self._object()
        section: dict[str, object] = {
            "name": container.name,
            "startTime": v("start"),
            "cpu": self._cpu(v),
            "memory": self._memory(v, container.memory),
        }
        if self._full:
            if self._psi:
                section["io"] = self._io(v)
            seed = self._model.params.seed
            rootfs_used = 4096 * (2 + _hashed(5000, seed, "rootfs", pod.uid, container.name))
            section["rootfs"] = self._fs_section(
                v("fs.t"), rootfs_used, 5 + _hashed(200, seed, "rootfs-inodes", pod.uid)
            )
            section["logs"] = self._fs_section(v("logs.t"), v("logs.used"), 1)
        section["swap"] = {"time": v("t"), "swapAvailableBytes": 0, "swapUsageBytes": 0}
        return section

    def _pod(self, pod: PodTruth) -> dict[str, object]:
        containers = [self._container(c, pod) for c in pod.containers]
        v = self._object()
        section: dict[str, object] = {
            "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "startTime": format_time_value(pod.start_time),
            "containers": containers,
            "cpu": self._cpu(v),
            "memory": self._memory(v, pod.memory),
        }
        if self._full:
            seed = self._model.params.seed
            if self._psi:
                section["io"] = self._io(v)
            section["network"] = self._network(v)
            volume = self._fs_section(v("vol.t"), 4096 * (3 + _hashed(4, seed, "volume", pod.uid)), 9)
            volume["name"] = f"kube-api-access-{generated_name(_hashed(1 << 30, seed, 'volume-name', pod.uid), 5)}"
            section["volume"] = [volume]
            section["ephemeral-storage"] = self._fs_section(v("eph.t"), v("eph.used"), 12 + len(containers))
            section["process_stats"] = {"process_count": 1 + _hashed(12, seed, "processes", pod.uid) + len(containers)}
        section["swap"] = {"time": v("t"), "swapUsageBytes": 0}
        return section


class _Raw(str):
    """Text already encoded as JSON (a formatted time)."""


def format_time_value(unix_seconds: int) -> _Raw:
    return _Raw(format_time(unix_seconds))


def flatten(document: object) -> tuple[tuple[str, ...], tuple[tuple[int, str], ...]]:
    """Pretty-print `document` as Go's json.MarshalIndent(v, "", " ") does, split at every `_Slot`."""
    pieces: list[str | _Slot] = []
    _emit(document, 0, pieces)
    parts: list[str] = []
    slots: list[tuple[int, str]] = []
    current: list[str] = []
    for piece in pieces:
        if isinstance(piece, _Slot):
            # Most parts (indentation, keys) and slots recur in every node's template: share them, or
            # thousands of nodes' templates would take half a megabyte each.
            parts.append(sys.intern("".join(current)))
            current = []
            slot = (piece.index, piece.key)
            slots.append(_SHARED_SLOTS.setdefault(slot, slot))
        else:
            current.append(piece)
    parts.append(sys.intern("".join(current)))
    return tuple(parts), tuple(slots)


_SHARED_SLOTS: dict[tuple[int, str], tuple[int, str]] = {}


def _emit(value: object, depth: int, out: list[str | _Slot]) -> None:
    if isinstance(value, _Slot):
        out.append(value)
    elif isinstance(value, _Raw):
        out.append(str.__str__(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = " " * (depth + 1)
        out.append("{\n")
        last = len(value) - 1
        for position, (key, item) in enumerate(value.items()):
            out.append(f"{inner}{json.dumps(key)}: ")
            _emit(item, depth + 1, out)
            out.append(",\n" if position < last else "\n")
        out.append(" " * depth + "}")
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        inner = " " * (depth + 1)
        out.append("[\n")
        last = len(value) - 1
        for position, item in enumerate(value):
            out.append(inner)
            _emit(item, depth + 1, out)
            out.append(",\n" if position < last else "\n")
        out.append(" " * depth + "]")
    else:
        # Go escapes <, > and & in strings; the simulator's names never contain them.
        out.append(json.dumps(value, ensure_ascii=False))
