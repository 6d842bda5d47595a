"""A CI-sized run of the benchmark runner (20 nodes × 5 pods, 2 resolutions of 10 s — the shortest
resolution either collector accepts — no baseline), so the suite cannot rot. It asserts the result's
structure and sanity — every node scraped about once per resolution, CPU and memory measured, every
request kind answered — and never a speed."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.runner import report
from benchmarks.runner.children import CpuPlan
from benchmarks.runner.progress import Progress
from benchmarks.runner.run import RunSettings, run_scenario
from benchmarks.runner.scenarios import SMOKE, WindowSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RESOLUTIONS = 2


def _free_address_base() -> str:
    """A /16 of loopback nobody else's simulator is likely to use (tests run side by side)."""
    return str(ipaddress.IPv4Address(f"127.{random.randint(100, 190)}.{random.randint(0, 200)}.0"))


@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    results_dir = tmp_path_factory.mktemp("bench-results")
    settings = RunSettings(
        window=WindowSettings(resolution_seconds=10.0, resolutions=RESOLUTIONS, warmup_seconds=0.0),
        baseline="none",
        results_dir=results_dir,
        address_base=_free_address_base(),
        cpus=CpuPlan.default(),
    )
    document = asyncio.run(run_scenario(SMOKE, settings, Progress(quiet=True)))
    return document, results_dir


def test_every_node_is_scraped_about_once_per_resolution(smoke_result: tuple[dict[str, Any], Path]) -> None:
    document, _ = smoke_result
    ours = document["collectors"]["kubemetrics"]
    assert ours["status"] == "ok", ours["failure"]
    kubelet = ours["kubelet"]
    assert kubelet["nodes_scraped"] == SMOKE.nodes
    assert set(kubelet["requests_by_path"]) == {"/metrics/resource"}
    per_node = kubelet["requests_per_node_per_resolution"]
    assert 0.75 <= per_node["mean"] <= 1.25
    assert per_node["min"] > 0
    assert kubelet["nodes_off_by_more_than_one"] == 0
    assert kubelet["bytes_per_node_per_resolution"] > 0


def test_cpu_and_memory_of_the_collector_are_measured(smoke_result: tuple[dict[str, Any], Path]) -> None:
    ours = smoke_result[0]["collectors"]["kubemetrics"]
    assert ours["window"]["resolutions"] == pytest.approx(RESOLUTIONS, abs=0.2)
    assert ours["cpu"]["seconds"] > 0
    # The front and at least one worker.
    assert ours["cpu"]["processes"] >= 2
    assert ours["cpu"]["ms_per_node_scrape"] > 0
    memory = ours["memory"]
    assert 0 < memory["pss_bytes_mean"] <= memory["rss_bytes_max"] * ours["cpu"]["processes"]
    assert memory["pss_bytes_per_pod"] == pytest.approx(memory["pss_bytes_mean"] / SMOKE.pods)
    assert ours["startup"]["seconds_to_all_nodes_served"] > 0


def test_every_request_kind_is_answered_and_samples_are_fresh(smoke_result: tuple[dict[str, Any], Path]) -> None:
    document = smoke_result[0]
    ours = document["collectors"]["kubemetrics"]
    api = ours["api"]
    for kind in ("hpa-list", "pods-all", "nodes-all", "pod-get"):
        assert api[kind]["requests"] > 0, kind
        # A sampled pod may be between two points of a restarted container (the simulator restarts 1% of
        # them): one 404 of a single-pod GET is the API being right, not broken.
        assert api[kind]["errors"] <= (1 if kind == "pod-get" else 0), (kind, ours["load_errors"])
        latency = api[kind]["latency_seconds"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
        assert 0 < api[kind]["first_byte_seconds"]["p50"] <= latency["max"]
    # 100 HPA-like listers every 15 s over a 20 s window.
    assert api["hpa-list"]["requests"] >= 100
    assert api["pods-all"]["items_mean"] == SMOKE.pods
    freshness = ours["freshness_seconds"]
    assert freshness["items"] >= SMOKE.pods
    # A sample is at most a resolution plus a housekeeping interval (plus slack) old when read.
    assert 0 <= freshness["p50"] <= freshness["p99"] <= 10 + 10 + 5
    simulator = document["harness"]["per_collector"]["kubemetrics"]["simulator"]
    assert simulator["cpu_seconds"] > 0


def test_results_are_written_as_json_markdown_and_plots(smoke_result: tuple[dict[str, Any], Path]) -> None:
    document, results_dir = smoke_result
    directory = results_dir / SMOKE.name
    assert orjson.loads((directory / "result.json").read_bytes()) == orjson.loads(orjson.dumps(document))
    table = (directory / "result.md").read_text()
    assert "| CPU-ms per node-scrape (incl. API serving) |" in table
    assert "exactly one kubelet request" in table
    for plot in ("timeline.png", "api_latency.png"):
        assert (directory / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
    summary = (results_dir / "summary.md").read_text()
    assert f"| {SMOKE.name} | kubemetrics |" in summary
    assert (results_dir / "cpu_per_node_scrape.png").exists()
    assert [d["scenario"]["name"] for d in report.load_all(results_dir)] == [SMOKE.name]
