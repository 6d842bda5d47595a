"""Reading and comparing metrics.k8s.io answers of two collectors, field by field.

Pure functions only (no processes, no network), so the comparison itself is unit-tested
(test_compare.py) and the differential tests state only *what* they compare.

Each served object is checked against the scrapes its own collector made (the simulator logs every
scrape: who, when, and the wall second the payload was computed for), and the two collectors' objects
are checked against each other:

- identity: the same set of nodes and pods, the same namespaces, labels and container names;
- usage: CPU within `CPU_TOLERANCE_NANOCORES`, memory equal to the byte;
- timing: `timestamp` is the sample time of one of that collector's own two latest scrapes of the
  node, and `window` reaches back exactly to the scrape before it;
- shape: the same JSON keys everywhere (`kind`, `apiVersion`, list `metadata`, item keys, metadata keys).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

# Every simulated CPU rate is constant and every sample is taken at a whole second, so any two samples
# give the exact rate — up to float64 rounding. The kubelet writes cumulative CPU as seconds with up to
# ~16 significant digits; a collector multiplies by 1e9 (about ±1 ns on a counter of a month-old node)
# and divides the difference of two by a window of ≥ 9 s, then truncates to whole nanocores. That is
# below 1 nanocore per collector, so two correct collectors differ by at most 2; a real difference (a
# window off by one second at 10 s, the wrong counter, a pod counted with its sandbox) is millions.
CPU_TOLERANCE_NANOCORES = 2

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_QUANTITY = re.compile(
    r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": Fraction(1, 10**9),
    "us": Fraction(1, 10**6),
    "µs": Fraction(1, 10**6),
    "μs": Fraction(1, 10**6),
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}


def quantity(text: str) -> Fraction:
    """A Kubernetes resource.Quantity string as an exact number ("272m" → 0.272, "12240Ki" → 12533760)."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        return value * Fraction(10) ** int(exponent[1:])
    suffix = suffix or ""
    if suffix in _BINARY_SUFFIXES:
        return value * (1 << _BINARY_SUFFIXES[suffix])
    return value * Fraction(10) ** _DECIMAL_SUFFIXES[suffix]


def nanocores(text: str) -> int:
    value = quantity(text) * 10**9
    if value.denominator != 1:
        raise ValueError(f"CPU {text!r} is not a whole number of nanocores")
    return int(value)


def byte_count(text: str) -> int:
    value = quantity(text)
    if value.denominator != 1:
        raise ValueError(f"memory {text!r} is not a whole number of bytes")
    return int(value)


def go_duration(text: str) -> Fraction:
    """A Go time.Duration string ("10s", "1m0.5s", "1.5µs", "0s") in seconds, exactly."""
    if text == "0s":
        return Fraction(0)
    position, total = 0, Fraction(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += Fraction(match[1]) * _DURATION_UNITS[match[2]]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"not a Go duration: {text!r}")
    return total


def rfc3339_seconds(text: str) -> int:
    """A metav1.Time ("2026-08-04T10:15:21Z") as Unix seconds; it carries whole seconds only."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text):
        raise ValueError(f"not a whole-second RFC 3339 UTC time: {text!r}")
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())


# ---------------------------------------------------------------------------------------------------
# Served objects


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    cpu_nanocores: int
    memory_bytes: int
    # As served ("272m", "12240Ki"): the values must also be spelled alike.
    cpu_text: str = ""
    memory_text: str = ""


@dataclass(frozen=True)
class Served:
    """One NodeMetrics or PodMetrics item, read; `containers` is empty for nodes."""

    key: str  # node name, or namespace/name
    labels: Mapping[str, str]
    timestamp: int
    window: Fraction
    creation_timestamp: int
    cpu_nanocores: int
    memory_bytes: int
    containers: tuple[ContainerUsage, ...] = ()
    keys: frozenset[str] = frozenset()
    metadata_keys: frozenset[str] = frozenset()
    window_text: str = ""
    cpu_text: str = ""
    memory_text: str = ""


def _usage(usage: Mapping[str, str]) -> tuple[int, int, str, str]:
    if set(usage) != {"cpu", "memory"}:
        raise ValueError(f"usage should have exactly cpu and memory, got {sorted(usage)}")
    return nanocores(usage["cpu"]), byte_count(usage["memory"]), usage["cpu"], usage["memory"]


def read_item(item: Mapping[str, Any]) -> Served:
    metadata = item["metadata"]
    namespace = metadata.get("namespace")
    key = f"{namespace}/{metadata['name']}" if namespace is not None else str(metadata["name"])
    containers: tuple[ContainerUsage, ...] = ()
    cpu_text = memory_text = ""
    if "containers" in item:
        containers = tuple(ContainerUsage(c["name"], *_usage(c["usage"])) for c in item["containers"])
        cpu = sum(c.cpu_nanocores for c in containers)
        memory = sum(c.memory_bytes for c in containers)
    else:
        cpu, memory, cpu_text, memory_text = _usage(item["usage"])
    return Served(
        key=key,
        labels=dict(metadata.get("labels") or {}),
        timestamp=rfc3339_seconds(item["timestamp"]),
        window=go_duration(item["window"]),
        creation_timestamp=rfc3339_seconds(metadata["creationTimestamp"]),
        cpu_nanocores=cpu,
        memory_bytes=memory,
        containers=containers,
        keys=frozenset(item),
        metadata_keys=frozenset(metadata),
        window_text=item["window"],
        cpu_text=cpu_text,
        memory_text=memory_text,
    )


@dataclass(frozen=True)
class ServedList:
    kind: str
    api_version: str
    list_keys: frozenset[str]
    list_metadata: Mapping[str, Any]
    items: tuple[Served, ...]

    def by_key(self) -> dict[str, Served]:
        return {item.key: item for item in self.items}

    @property
    def order(self) -> list[str]:
        return [item.key for item in self.items]


def read_list(document: Mapping[str, Any]) -> ServedList:
    return ServedList(
        kind=str(document.get("kind")),
        api_version=str(document.get("apiVersion")),
        list_keys=frozenset(document),
        list_metadata=dict(document.get("metadata") or {}),
        items=tuple(read_item(item) for item in document["items"]),
    )


# ---------------------------------------------------------------------------------------------------
# Scrapes (the simulator's /scrapes log)


@dataclass(frozen=True)
class Scrape:
    time: float
    path: str
    user_agent: str
    status: int
    sample_time: int | None


def read_scrapes(document: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Scrape]]:
    return {
        node: [
            Scrape(float(r["time"]), str(r["path"]), str(r["user_agent"]), int(r["status"]), r["sample_time"])
            for r in records
        ]
        for node, records in document.items()
    }


def scrapes_by(scrapes: Mapping[str, list[Scrape]], user_agent_prefix: str) -> dict[str, list[Scrape]]:
    return {
        node: [s for s in records if s.user_agent.startswith(user_agent_prefix)] for node, records in scrapes.items()
    }


def timing_problems(served: Served, node: str, own_scrapes: Sequence[Scrape], answered_at: float) -> list[str]:
    """Why `served` (an item about `node`, or a pod on it) does not line up with its collector's own scrapes
    of the node: its timestamp must be the sample time of one of the two latest successful scrapes answered
    before the answer came (the latest may not be stored yet), and its window must reach back exactly to
    the successful scrape before that one (metrics-server's `last.ts − prev.ts`)."""
    good = [s for s in own_scrapes if s.status == 200 and s.sample_time is not None and s.time <= answered_at]
    samples = sorted({s.sample_time for s in good if s.sample_time is not None})
    if served.timestamp not in samples[-2:]:
        return [
            f"{served.key}: timestamp {served.timestamp} is not the sample time of one of its collector's two "
            f"latest scrapes of {node} before {answered_at:.3f} (latest: {samples[-3:]})"
        ]
    earlier = [t for t in samples if t < served.timestamp]
    if not earlier:
        return [f"{served.key}: served after a single scrape of {node} (no earlier sample to take a window from)"]
    expected = served.timestamp - earlier[-1]
    if served.window != expected:
        return [
            f"{served.key}: window {float(served.window)}s, but the scrape before the one at "
            f"{served.timestamp} was at {earlier[-1]} ({expected}s earlier)"
        ]
    return []


# ---------------------------------------------------------------------------------------------------
# Differences between two collectors


@dataclass
class Comparison:
    """What two collectors served for the same question; `differences` is empty when they agree."""

    compared: int = 0
    differences: list[str] = field(default_factory=list)
    only_left: set[str] = field(default_factory=set)
    only_right: set[str] = field(default_factory=set)


def compare_lists(
    left: ServedList,
    right: ServedList,
    *,
    left_name: str = "metrics-server",
    right_name: str = "kubemetrics",
    asked_between: tuple[float, float] | None = None,
    cpu_tolerance: int = CPU_TOLERANCE_NANOCORES,
) -> Comparison:
    """Field-by-field comparison of two lists of the same kind. Presence differences are reported in
    only_left/only_right (and as differences); the caller removes the ones it expects."""
    result = Comparison()
    for attribute in ("kind", "api_version", "list_keys"):
        a, b = getattr(left, attribute), getattr(right, attribute)
        if a != b:
            result.differences.append(f"list {attribute}: {left_name} {a!r}, {right_name} {b!r}")
    if left.list_metadata != right.list_metadata:
        result.differences.append(
            f"list metadata: {left_name} {left.list_metadata}, {right_name} {right.list_metadata}"
        )
    for name, served in ((left_name, left), (right_name, right)):
        if served.order != sorted(served.order, key=_sort_key):
            result.differences.append(f"{name}: items are not sorted by (namespace, name)")
    left_items, right_items = left.by_key(), right.by_key()
    result.only_left = set(left_items) - set(right_items)
    result.only_right = set(right_items) - set(left_items)
    for key in sorted(result.only_left):
        result.differences.append(f"{key}: served by {left_name} only")
    for key in sorted(result.only_right):
        result.differences.append(f"{key}: served by {right_name} only")
    for key in sorted(set(left_items) & set(right_items)):
        result.compared += 1
        result.differences.extend(
            compare_items(left_items[key], right_items[key], left_name, right_name, asked_between, cpu_tolerance)
        )
    return result


def _sort_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.rpartition("/")
    return namespace, name


def compare_items(
    a: Served,
    b: Served,
    a_name: str,
    b_name: str,
    asked_between: tuple[float, float] | None,
    cpu_tolerance: int,
) -> list[str]:
    key = a.key
    found: list[str] = []

    def differ(what: str, x: object, y: object) -> None:
        found.append(f"{key}: {what}: {a_name} {x!r}, {b_name} {y!r}")

    if a.keys != b.keys:
        differ("item keys", sorted(a.keys), sorted(b.keys))
    if a.metadata_keys != b.metadata_keys:
        differ("metadata keys", sorted(a.metadata_keys), sorted(b.metadata_keys))
    if dict(a.labels) != dict(b.labels):
        differ("labels", dict(a.labels), dict(b.labels))
    if asked_between is not None:
        # creationTimestamp is the time of the request (metrics-server sets time.Now()).
        low, high = int(asked_between[0]), int(asked_between[1]) + 1
        for name, item in ((a_name, a), (b_name, b)):
            if not low <= item.creation_timestamp <= high:
                found.append(f"{key}: {name} creationTimestamp {item.creation_timestamp} is not the request time")
    a_containers = {c.name: c for c in a.containers}
    b_containers = {c.name: c for c in b.containers}
    if len(a_containers) != len(a.containers) or len(b_containers) != len(b.containers):
        differ("duplicate container names", [c.name for c in a.containers], [c.name for c in b.containers])
    if set(a_containers) != set(b_containers):
        differ("containers", sorted(a_containers), sorted(b_containers))
    for name in sorted(set(a_containers) & set(b_containers)):
        x, y = a_containers[name], b_containers[name]
        _compare_usage(
            differ,
            f"container {name} ",
            (x.cpu_nanocores, x.cpu_text),
            (y.cpu_nanocores, y.cpu_text),
            (x.memory_bytes, x.memory_text),
            (y.memory_bytes, y.memory_text),
            cpu_tolerance,
        )
    if not a.containers and not b.containers:
        _compare_usage(
            differ,
            "",
            (a.cpu_nanocores, a.cpu_text),
            (b.cpu_nanocores, b.cpu_text),
            (a.memory_bytes, a.memory_text),
            (b.memory_bytes, b.memory_text),
            cpu_tolerance,
        )
    # Same window, same spelling (Go's Duration.String()).
    if a.window == b.window and a.window_text != b.window_text:
        differ("window spelling", a.window_text, b.window_text)
    return found


def _compare_usage(
    differ: Callable[[str, object, object], None],
    prefix: str,
    cpu_a: tuple[int, str],
    cpu_b: tuple[int, str],
    memory_a: tuple[int, str],
    memory_b: tuple[int, str],
    cpu_tolerance: int,
) -> None:
    if abs(cpu_a[0] - cpu_b[0]) > cpu_tolerance:
        differ(f"{prefix}cpu (nanocores)", cpu_a[0], cpu_b[0])
    elif cpu_a[0] == cpu_b[0] and cpu_a[1] != cpu_b[1]:
        differ(f"{prefix}cpu spelling", cpu_a[1], cpu_b[1])
    if memory_a[0] != memory_b[0]:
        differ(f"{prefix}memory (bytes)", memory_a[0], memory_b[0])
    elif memory_a[1] != memory_b[1]:
        differ(f"{prefix}memory spelling", memory_a[1], memory_b[1])


# ---------------------------------------------------------------------------------------------------
# Health and self-metrics


_CHECK_LINE = re.compile(r"^\[([+-])\](\S+) (ok|failed.*|excluded.*)$")


def health_checks(body: str) -> list[tuple[str, bool]]:
    """`/readyz?verbose` (or livez/healthz) → [(check name, passed), …] in the served order."""
    checks: list[tuple[str, bool]] = []
    for line in body.splitlines():
        match = _CHECK_LINE.match(line.strip())
        if match:
            checks.append((match[2], match[1] == "+"))
    return checks


_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


def series_label_names(exposition: str, prefix: str = "metrics_server_") -> dict[str, frozenset[str]]:
    """Every sample name starting with `prefix` in a Prometheus text exposition → the label names its
    samples carry (the union over its samples)."""
    found: dict[str, set[str]] = {}
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE_LINE.match(line)
        if match is None or not match[1].startswith(prefix):
            continue
        found.setdefault(match[1], set()).update(_LABEL.findall(match[2] or ""))
    return {name: frozenset(labels) for name, labels in found.items()}


def family_names(series: Iterable[str]) -> set[str]:
    """Sample names → metric family names (histogram _bucket/_sum/_count folded)."""
    names = set()
    for name in series:
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name != suffix:
                name = name[: -len(suffix)]
                break
        names.add(name)
    return names
