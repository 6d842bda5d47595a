"""`/metrics/resource` bodies (Prometheus text 0.0.4), from the same values as `/stats/summary`.

The kubelet's resource collector projects the cpu-and-memory summary: cumulative CPU in seconds,
working set, start time and swap, for the node, pods and containers. Shape of a current (1.29+)
kubelet: families sorted by name, samples sorted by label values, labels in alphabetical order,
values in Go's shortest `%g` form (`1.7391616e+07`, `40.384910049`), explicit millisecond timestamps
except on `container_start_time_seconds`, STABLE/ALPHA markers in HELP.
"""

from __future__ import annotations

from kubemetrics.simulator.model import NodeTruth

# Go's zero time.Time{} in Unix seconds (0001-01-01T00:00:00Z).
GO_ZERO_TIME_UNIX_SECONDS = -62135596800


def go_float(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64): shortest digits, exponent form when the decimal
    exponent is < -4 or >= 6 (as client_golang's text encoder writes sample values)."""
    if value == 0:
        return "0"
    if type(value) is float and 1e-4 <= abs(value) < 1e6:
        # Python's shortest repr has the same digits, and is positional in this range as Go's is:
        # only an integral value differs ("5.0" for Go's "5").
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, int) and abs(value) < 2**53:
        # Integers (bytes, seconds) are exact as float64 up to 2**53: skip the float round trip.
        text = str(abs(value))
        digits, point = text.rstrip("0"), len(text)
        sign = "-" if value < 0 else ""
    else:
        text = repr(float(value))
        sign = ""
        if text.startswith("-"):
            sign, text = "-", text[1:]
        mantissa, _, exponent = text.partition("e")
        whole, _, fraction = mantissa.partition(".")
        digits = whole + fraction
        point = len(whole) + (int(exponent) if exponent else 0)
        stripped = digits.lstrip("0")
        point -= len(digits) - len(stripped)
        digits = stripped.rstrip("0") or "0"
    decimal_exponent = point - 1
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa_text = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa_text}e{'-' if decimal_exponent < 0 else '+'}{abs(decimal_exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _seconds(nanoseconds: int) -> str:
    return go_float(nanoseconds / 1e9)


_FAMILIES = (
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    ),
    ("container_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the container in bytes"),
    ("container_start_time_seconds", "gauge", "[STABLE] Start time of the container since unix epoch in seconds"),
    (
        "container_swap_limit_bytes",
        "gauge",
        "[ALPHA] Current amount of the container swap limit in bytes. Reported only on non-windows systems",
    ),
    (
        "container_swap_usage_bytes",
        "gauge",
        "[ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems",
    ),
    ("node_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the node in core-seconds"),
    ("node_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the node in bytes"),
    (
        "node_swap_usage_bytes",
        "gauge",
        "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems",
    ),
    ("pod_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds"),
    ("pod_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the pod in bytes"),
    (
        "pod_swap_usage_bytes",
        "gauge",
        "[ALPHA] Current amount of the pod swap usage in bytes. Reported only on non-windows systems",
    ),
    ("resource_scrape_error", "gauge", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise"),
)


def render_resource_metrics(truth: NodeTruth) -> bytes:
    samples: dict[str, list[str]] = {name: [] for name, _, _ in _FAMILIES}
    containers = sorted(
        ((c.name, pod.namespace, pod.name, c) for pod in truth.pods for c in pod.containers),
        key=lambda item: item[:3],
    )
    for name, namespace, pod_name, container in containers:
        labels = f'{{container="{name}",namespace="{namespace}",pod="{pod_name}"}}'
        ms = f" {container.sample_time * 1000}"
        if "cpu" not in container.missing_series:
            samples["container_cpu_usage_seconds_total"].append(
                f"container_cpu_usage_seconds_total{labels} {_seconds(container.cpu_cumulative_nanoseconds)}{ms}"
            )
        if "memory" not in container.missing_series:
            samples["container_memory_working_set_bytes"].append(
                f"container_memory_working_set_bytes{labels} {go_float(container.memory.working_set_bytes)}{ms}"
            )
        if container.start_time_unset:
            # What kubelets wrote for a container whose start the runtime did not know (kubernetes#109679):
            # time.Time{} as Unix seconds, and as the sample's millisecond timestamp.
            start = f"{go_float(GO_ZERO_TIME_UNIX_SECONDS)} {GO_ZERO_TIME_UNIX_SECONDS * 1000}"
        else:
            start = go_float(container.start_time)
        samples["container_start_time_seconds"].append(f"container_start_time_seconds{labels} {start}")
        samples["container_swap_limit_bytes"].append(f"container_swap_limit_bytes{labels} 0{ms}")
        samples["container_swap_usage_bytes"].append(f"container_swap_usage_bytes{labels} 0{ms}")
    node_ms = f" {truth.sample_time * 1000}"
    samples["node_cpu_usage_seconds_total"].append(
        f"node_cpu_usage_seconds_total {_seconds(truth.cpu_cumulative_nanoseconds)}{node_ms}"
    )
    samples["node_memory_working_set_bytes"].append(
        f"node_memory_working_set_bytes {go_float(truth.memory.working_set_bytes)}{node_ms}"
    )
    samples["node_swap_usage_bytes"].append(f"node_swap_usage_bytes 0{node_ms}")
    for pod in sorted(truth.pods, key=lambda p: (p.namespace, p.name)):
        labels = f'{{namespace="{pod.namespace}",pod="{pod.name}"}}'
        ms = f" {pod.sample_time * 1000}"
        samples["pod_cpu_usage_seconds_total"].append(
            f"pod_cpu_usage_seconds_total{labels} {_seconds(pod.cpu_cumulative_nanoseconds)}{ms}"
        )
        samples["pod_memory_working_set_bytes"].append(
            f"pod_memory_working_set_bytes{labels} {go_float(pod.memory.working_set_bytes)}{ms}"
        )
        samples["pod_swap_usage_bytes"].append(f"pod_swap_usage_bytes{labels} 0{ms}")
    samples["resource_scrape_error"].append("resource_scrape_error 0")
    lines: list[str] = []
    for name, kind, help_text in _FAMILIES:
        if samples[name]:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples[name])
    lines.append("")
    return "\n".join(lines).encode()
