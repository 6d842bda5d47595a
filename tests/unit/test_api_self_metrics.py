"""GET /metrics writes the self-metrics in a worker thread: the same text as rendering on the loop, while
the loop keeps answering other requests."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from kubemetrics._native import FRESHNESS_BUCKETS
from kubemetrics.selfmetrics import SelfMetricsSnapshot
from test_api_support import api_context, running_api_server


async def test_the_metrics_endpoint_serves_exactly_what_render_writes(tmp_path: Path) -> None:
    ctx = api_context(tmp_path / "certs")
    ctx.self_metrics.set_node_count(2)
    ctx.self_metrics.update_store(ctx.store.stats())
    ctx.self_metrics.record_scrape("node-a", True, 0.02, 1_700_000_000.0)
    ctx.self_metrics.record_scrape("node-b", False, 10.5, 1_700_000_001.0)
    ctx.self_metrics.observe_scrape_cycle(1.25)
    ctx.self_metrics.attach_freshness(ctx.store, FRESHNESS_BUCKETS)
    async with running_api_server(ctx) as server:
        listed = await server.get("/apis/metrics.k8s.io/v1beta1/nodes")
        reply = await server.get("/metrics")

    assert reply.status == 200
    assert reply.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert reply.body == ctx.self_metrics.render()
    lines = reply.text.splitlines()
    assert 'metrics_server_kubelet_request_duration_seconds_count{node="node-b"} 1' in lines
    assert "kubemetrics_scrape_cycle_seconds 1.25" in lines
    assert listed.status == 200
    # The node list returned two nodes: two freshness observations.
    assert "metrics_server_api_metric_freshness_seconds_count 2" in lines


async def test_the_metrics_text_is_written_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered_on: list[int] = []
    render = SelfMetricsSnapshot.render

    def slow_render(snapshot: SelfMetricsSnapshot) -> bytes:
        rendered_on.append(threading.get_ident())
        time.sleep(0.6)  # what 5,000 nodes' per-node series cost, and more
        return render(snapshot)

    monkeypatch.setattr(SelfMetricsSnapshot, "render", slow_render)
    async with running_api_server(api_context(tmp_path / "certs")) as server:
        scrape = asyncio.create_task(server.get("/metrics"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        probe = await server.get("/livez")
        probe_seconds = time.monotonic() - started
        metrics = await scrape

    assert (probe.status, probe.body) == (200, b"ok")
    assert probe_seconds < 0.3
    assert metrics.status == 200
    assert b"# TYPE metrics_server_manager_tick_duration_seconds histogram" in metrics.body
    assert rendered_on != [] and threading.get_ident() not in rendered_on
