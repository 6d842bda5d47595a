"""A kubelet that hangs, returns 500, garbage or a truncated body costs only that node's sample: every
other node keeps fresh metrics, and the error is counted and logged once per node with node, URL and cause."""

from __future__ import annotations

import re
import time

from pipeline_cluster import FAULTS, RESOLUTION_SECONDS, Cluster, parse_timestamp

EXPECTED_KIND = {"hang": "timeout", "http500": "http_status", "garbage": "decode", "truncated": "decode"}


def test_other_nodes_keep_fresh_metrics(cluster: Cluster) -> None:
    # Watch across two more resolutions so that every faulty node has failed at least twice meanwhile.
    deadline = time.time() + 2 * RESOLUTION_SECONDS
    while time.time() < deadline:
        items = cluster.get_json("/apis/metrics.k8s.io/v1beta1/nodes")["items"]
        served = {item["metadata"]["name"]: parse_timestamp(item["timestamp"]) for item in items}
        assert set(served) == set(cluster.healthy_nodes), sorted(set(served) ^ set(cluster.healthy_nodes))
        now = time.time()
        stale = {node: now - ts for node, ts in served.items() if now - ts > 2 * RESOLUTION_SECONDS + 1}
        assert not stale, stale
        time.sleep(1.0)


def test_each_failure_is_counted_by_kind(cluster: Cluster) -> None:
    status, body = cluster.get("/metrics")
    assert status == 200
    text = body.decode()
    counts = {
        match.group(1): float(match.group(2))
        for match in re.finditer(r'^kubemetrics_scrape_errors_total\{kind="([a-z_]+)"\} (\S+)$', text, re.M)
    }
    assert counts.get("timeout", 0) >= 1, counts
    assert counts.get("http_status", 0) >= 1, counts
    assert counts.get("decode", 0) >= 2, counts
    failed = re.search(r'^metrics_server_kubelet_request_total\{success="false"\} (\S+)$', text, re.M)
    succeeded = re.search(r'^metrics_server_kubelet_request_total\{success="true"\} (\S+)$', text, re.M)
    assert failed and float(failed.group(1)) >= len(FAULTS)
    assert succeeded and float(succeeded.group(1)) >= 2 * len(cluster.healthy_nodes)


def test_each_failure_is_logged_once_per_node_with_url_and_cause(cluster: Cluster) -> None:
    log = cluster.front.log_text()
    for node, fault in FAULTS.items():
        lines = [line for line in log.splitlines() if "Failed to scrape node" in line and f'node="{node}"' in line]
        # Every faulty node failed on every scrape, but the cause is logged once (the log must not flood).
        assert len(lines) == 1, (node, lines)
        line = lines[0]
        assert f"kind={EXPECTED_KIND[fault]}" in line, line
        assert re.search(r'url="https://127\.42\.\d+\.\d+:10250/(metrics/resource|stats/summary)', line), line
        assert "err=" in line
    for node in cluster.healthy_nodes:
        assert f'node="{node}"' not in "\n".join(line for line in log.splitlines() if "Failed to scrape" in line)
