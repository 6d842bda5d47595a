"""Results on disk: `result.json` (everything), `result.md` (the side-by-side table with ratios) and PNG
plots per scenario in benchmarks/results/<scenario>/, and `summary.md` plus plots across every scenario
found there (CPU-ms per node-scrape and memory per pod against cluster size, both collectors)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.runner.analysis import KINDS, MIB, TABLE_ROWS, lookup
from benchmarks.runner.collectors import KUBEMETRICS, METRICS_SERVER

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULT_JSON = "result.json"
RESULT_MD = "result.md"
COLLECTORS = (KUBEMETRICS, METRICS_SERVER)
COLORS = {KUBEMETRICS: "tab:blue", METRICS_SERVER: "tab:orange"}


def _read_first_line(path: Path) -> str:
    try:
        return path.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


def source_commit(repo: Path = REPO_ROOT) -> str:
    """The checked-out commit, read from .git without running git (the results name the code they measured)."""
    git = repo / ".git"
    head = _read_first_line(git / "HEAD")
    if not head.startswith("ref: "):
        return head
    ref = head[5:]
    direct = _read_first_line(git / ref)
    if direct:
        return direct
    try:
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        "commit": source_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _format(value: float | None, style: str) -> str:
    if value is None:
        return "—"
    if style == "mib":
        return f"{value / MIB:.1f}"
    if style == "ms":
        return f"{value * 1000:.2f} ms"
    return style.format(value)


def markdown(document: dict[str, Any]) -> str:
    scenario = document["scenario"]
    settings = document["settings"]
    collectors: dict[str, Any] = document["collectors"]
    lines = [
        f"# Scenario {scenario['name']}: {scenario['nodes']:,} nodes × {scenario['pods_per_node']} pods "
        f"({scenario['pods']:,} pods)",
        "",
        f"{scenario.get('description') or ''}",
        "",
        f"- resolution {settings['resolution_seconds']:g} s, {settings['resolutions']} resolutions measured after "
        f"warm-up; cluster: {settings['cluster']}; kubelet delay {settings['kubelet_delay_seconds']:g} s; "
        f"API load: {'HPA-like + kubectl-top-like' if settings.get('api_load', True) else 'none'}",
        f"- CPUs: collector {settings['cpus']['collector']}, simulator + load + control plane "
        f"{settings['cpus']['harness']}",
        f"- machine: {document['machine']['cpu_model']} ×{document['machine']['cpus']}, commit "
        f"{document['machine']['commit'][:12] or 'unknown'}, {document['machine']['date']}",
        "",
    ]
    present = [name for name in COLLECTORS if name in collectors]
    header = "| figure | " + " | ".join(present) + (" | ratio km/ms |" if len(present) == 2 else " |")
    lines += [header, "|---" * (len(present) + 1 + (len(present) == 2)) + "|"]
    ratio_values: dict[str, float | None] = document.get("ratios") or {}
    for label, path, style in TABLE_ROWS:
        cells = [_format(lookup(collectors[name], path), style) for name in present]
        if all(cell == "—" for cell in cells):
            continue
        row = f"| {label} | " + " | ".join(cells)
        if len(present) == 2:
            ratio = ratio_values.get(".".join(path))
            row += f" | {ratio:.3g}" if ratio is not None else " | —"
        lines.append(row + " |")
    lines.append("")
    for name in present:
        figures = collectors[name]
        if figures.get("status") != "ok":
            lines.append(f"**{name} failed**: {figures.get('failure')}")
            lines.append("")
    harness = document.get("harness") or {}
    for name, entry in (harness.get("per_collector") or {}).items():
        parts = [f"{part} {values['core_share']:.1%} of a core" for part, values in entry.items()]
        sim = entry.get("simulator") or {}
        per_request = sim.get("cpu_ms_per_kubelet_request")
        if per_request is not None:
            parts.append(f"simulator {per_request:.2f} ms CPU per kubelet request")
        if sim.get("saturated"):
            parts.append("**simulator saturated: the kubelets, not the collector, set the pace**")
        lines.append(f"- harness during {name}: " + "; ".join(parts))
    payload = harness.get("payload_bytes") or {}
    if payload:
        sizes = ", ".join(f"{size:,}" for size in payload.values())
        lines.append(f"- /metrics/resource body (uncompressed) of sampled nodes: {sizes} bytes")
    lines.append("")
    found = document.get("targets") or []
    if found:
        lines += ["## Targets", "", "| target | value | status |", "|---|---|---|"]
        for entry in found:
            value = entry["value"]
            shown = "—" if value is None else f"{value:.4g} {entry['unit']}".strip()
            lines.append(f"| {entry['target']} | {shown} | {entry['status']} |")
        lines.append("")
    for note in document.get("notes") or []:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def write_scenario(document: dict[str, Any], results_dir: Path) -> Path:
    directory = results_dir / str(document["scenario"]["name"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RESULT_JSON).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    (directory / RESULT_MD).write_text(markdown(document))
    _scenario_plots(document, directory)
    return directory


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _scenario_plots(document: dict[str, Any], directory: Path) -> None:
    plt = _pyplot()
    collectors: dict[str, Any] = document["collectors"]
    present = [name for name in COLLECTORS if name in collectors and collectors[name].get("timeline")]
    if present:
        figure, (cpu_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4))
        for name in present:
            timeline = collectors[name]["timeline"]
            seconds = [row[0] for row in timeline]
            cpu_axis.plot(seconds, [row[1] for row in timeline], label=name, color=COLORS[name])
            memory_axis.plot(seconds, [row[3] / MIB for row in timeline], label=name, color=COLORS[name])
        cpu_axis.set(title="collector CPU seconds (cumulative)", xlabel="seconds into the window", ylabel="CPU s")
        memory_axis.set(title="collector PSS", xlabel="seconds into the window", ylabel="MiB")
        for axis in (cpu_axis, memory_axis):
            axis.legend()
            axis.grid(alpha=0.3)
        figure.suptitle(f"{document['scenario']['name']}: CPU and memory over the window")
        figure.tight_layout()
        figure.savefig(directory / "timeline.png", dpi=100)
        plt.close(figure)
    with_api = [name for name in COLLECTORS if name in collectors and collectors[name].get("api")]
    if with_api:
        figure, axis = plt.subplots(figsize=(10, 4))
        width = 0.8 / (len(with_api) * 2)
        for position, name in enumerate(with_api):
            for shade, quantile in enumerate(("p50", "p99")):
                values = [
                    (lookup(collectors[name], ("api", kind, "latency_seconds", quantile)) or 0.0) * 1000
                    for kind in KINDS
                ]
                offset = (position * 2 + shade) * width
                axis.bar(
                    [i + offset for i in range(len(KINDS))],
                    values,
                    width,
                    label=f"{name} {quantile}",
                    color=COLORS[name],
                    alpha=1.0 if quantile == "p50" else 0.45,
                )
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(KINDS))], list(KINDS))
        axis.set(title=f"{document['scenario']['name']}: API latency per request kind", ylabel="ms (log)")
        axis.set_yscale("log")
        axis.legend()
        axis.grid(alpha=0.3, axis="y")
        figure.tight_layout()
        figure.savefig(directory / "api_latency.png", dpi=100)
        plt.close(figure)


def load_all(results_dir: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(results_dir.glob(f"*/{RESULT_JSON}")):
        try:
            documents.append(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue
    return sorted(documents, key=lambda d: (d["scenario"]["pods"], d["scenario"]["nodes"]))


def write_summary(results_dir: Path) -> Path | None:
    """summary.md and the cross-scenario plots, from every result.json under `results_dir`."""
    documents = load_all(results_dir)
    if not documents:
        return None
    lines = [
        "# Benchmark results across scenarios",
        "",
        "Ratios are kubemetrics / metrics-server from the same run (below 1: kubemetrics needs less).",
        "",
        "| scenario | collector | CPU-ms / node-scrape | cores | PSS MiB | PSS B / pod | req / node / res | "
        "pods-all p99 | hpa-list p99 | freshness p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for document in documents:
        for name in COLLECTORS:
            figures = (document.get("collectors") or {}).get(name)
            if not figures:
                continue
            cells = [
                _format(lookup(figures, ("cpu", "ms_per_node_scrape")), "{:.3f}"),
                _format(lookup(figures, ("cpu", "cores")), "{:.3f}"),
                _format(lookup(figures, ("memory", "pss_bytes_mean")), "mib"),
                _format(lookup(figures, ("memory", "pss_bytes_per_pod")), "{:.0f}"),
                _format(lookup(figures, ("kubelet", "requests_per_node_per_resolution", "mean")), "{:.3f}"),
                _format(lookup(figures, ("api", "pods-all", "latency_seconds", "p99")), "ms"),
                _format(lookup(figures, ("api", "hpa-list", "latency_seconds", "p99")), "ms"),
                _format(lookup(figures, ("freshness_seconds", "p99")), "{:.1f} s"),
            ]
            status = "" if figures.get("status") == "ok" else " (failed)"
            lines.append(f"| {document['scenario']['name']} | {name}{status} | " + " | ".join(cells) + " |")
    summary = results_dir / "summary.md"
    summary.write_text("\n".join(lines) + "\n")
    _summary_plots(documents, results_dir)
    return summary


def _summary_plots(documents: list[dict[str, Any]], results_dir: Path) -> None:
    plt = _pyplot()
    for filename, path, scale, title, unit in (
        ("cpu_per_node_scrape.png", ("cpu", "ms_per_node_scrape"), 1.0, "CPU-ms per node-scrape", "ms"),
        ("memory_per_pod.png", ("memory", "pss_bytes_per_pod"), 1.0, "collector PSS per pod", "bytes"),
    ):
        figure, axis = plt.subplots(figsize=(7, 4))
        plotted = False
        for name, marker in zip(COLLECTORS, ("o", "s"), strict=True):
            points = []
            for document in documents:
                figures = (document.get("collectors") or {}).get(name) or {}
                value = lookup(figures, path)
                if value is not None:
                    points.append((document["scenario"]["pods"], value * scale, document["scenario"]["name"]))
            if points:
                plotted = True
                axis.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=name, color=COLORS[name])
                for x, y, label in points:
                    axis.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if plotted:
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set(title=f"{title} vs cluster size", xlabel="pods in the cluster", ylabel=unit)
            axis.legend()
            axis.grid(alpha=0.3, which="both")
            figure.tight_layout()
            figure.savefig(results_dir / filename, dpi=100)
        plt.close(figure)
