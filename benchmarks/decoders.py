"""Micro-benchmark of the kubelet payload decoders on the real fixtures.

For each fixture: the Rust decoder (`kubemetrics._native`, body → encoded NodeSample) against a
baseline measured in the same run — orjson plus the Python walk that extracts the same fields for
the Summary API, prometheus_client's text parser for /metrics/resource. Prints MB/s, µs per body and
the ratio baseline / Rust (how many times faster the decoder is). Run: `.venv/bin/python -m
benchmarks.decoders [--seconds S]` or `make bench-decoders`.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from kubemetrics import _native
from prometheus_client.parser import text_string_to_metric_families

SHARED = Path(os.environ.get("KUBEMETRICS_SHARED_DIR", Path(__file__).resolve().parent.parent.parent / "shared"))


def _summary_in_python(body: bytes) -> int:
    """What the Rust summary decoder extracts, done with orjson + Python (the obvious alternative)."""
    doc = orjson.loads(body)
    node = doc["node"]
    extracted: list[tuple[object, ...]] = [
        (node.get("cpu", {}).get("usageCoreNanoSeconds"), node.get("memory", {}).get("workingSetBytes"))
    ]
    for pod in doc.get("pods") or []:
        ref = pod["podRef"]
        for container in pod.get("containers") or []:
            cpu = container.get("cpu") or {}
            memory = container.get("memory") or {}
            extracted.append(
                (
                    ref["namespace"],
                    ref["name"],
                    container["name"],
                    container.get("startTime"),
                    cpu.get("time"),
                    cpu.get("usageCoreNanoSeconds"),
                    memory.get("workingSetBytes"),
                )
            )
    return len(extracted)


def _resource_in_python(body: bytes) -> int:
    count = 0
    for family in text_string_to_metric_families(body.decode()):
        count += len(family.samples)
    return count


def _per_call_seconds(function: Callable[[], object], budget_seconds: float) -> float:
    """Median of repeated timed batches (robust against a noisy shared machine)."""
    function()
    calls = 1
    while True:
        started = time.perf_counter()
        for _ in range(calls):
            function()
        elapsed = time.perf_counter() - started
        if elapsed > 0.02:
            break
        calls *= 2
    samples: list[float] = []
    deadline = time.perf_counter() + budget_seconds
    while time.perf_counter() < deadline or len(samples) < 3:
        started = time.perf_counter()
        for _ in range(calls):
            function()
        samples.append((time.perf_counter() - started) / calls)
    return statistics.median(samples)


def run(seconds_per_case: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    cases: list[tuple[str, Path, Callable[[bytes], object], Callable[[bytes], object]]] = []
    for path in sorted((SHARED / "fixtures/kubelet/summary").glob("*.json")):
        cases.append(("summary", path, lambda b: _native.decode_summary(b, "n", 0), _summary_in_python))
    for path in sorted((SHARED / "fixtures/kubelet/resource").glob("*.prom")):
        cases.append(("resource", path, lambda b: _native.decode_resource_metrics(b, "n", 0), _resource_in_python))
    for endpoint, path, rust, baseline in cases:
        body = path.read_bytes()
        try:
            rust(body)
        except ValueError:
            continue  # an edge-case fixture the decoder rejects on purpose
        rust_seconds = _per_call_seconds(functools.partial(rust, body), seconds_per_case)
        baseline_seconds = _per_call_seconds(functools.partial(baseline, body), seconds_per_case)
        rows.append(
            {
                "endpoint": endpoint,
                "fixture": path.name,
                "bytes": len(body),
                "rust_us": rust_seconds * 1e6,
                "rust_mb_s": len(body) / rust_seconds / 1e6,
                "baseline_us": baseline_seconds * 1e6,
                "speedup": baseline_seconds / rust_seconds,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="Measuring time per decoder and fixture.")
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    args = parser.parse_args(argv)
    rows = run(args.seconds)
    print(f"{'endpoint':9} {'fixture':48} {'bytes':>7} {'rust µs':>9} {'MB/s':>7} {'baseline µs':>12} {'×':>6}")
    for row in rows:
        print(
            f"{row['endpoint']:9} {row['fixture']:48} {row['bytes']:>7} {row['rust_us']:>9.1f} "
            f"{row['rust_mb_s']:>7.0f} {row['baseline_us']:>12.1f} {row['speedup']:>6.1f}"
        )
    if args.json:
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
