"""A worker killed with SIGKILL is restarted, its nodes are scraped again at once by the survivors, and
no node is missing from the API for more than two resolutions."""

from __future__ import annotations

import os
import signal
import time

from harness import children_of, wait_until
from pipeline_cluster import RESOLUTION_SECONDS, Cluster, parse_timestamp


def _served_nodes(cluster: Cluster) -> dict[str, int]:
    items = cluster.get_json("/apis/metrics.k8s.io/v1beta1/nodes")["items"]
    return {item["metadata"]["name"]: parse_timestamp(item["timestamp"]) for item in items}


def test_sigkilled_worker_is_restarted_and_no_node_goes_missing(cluster: Cluster) -> None:
    workers = children_of(cluster.front.pid)
    assert len(workers) == 2, workers
    victim = workers[0]
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)

    last_seen = dict.fromkeys(cluster.healthy_nodes, killed_at)
    longest_gap = dict.fromkeys(cluster.healthy_nodes, 0.0)
    newest_timestamp = dict.fromkeys(cluster.healthy_nodes, 0)
    while time.time() < killed_at + 2.5 * RESOLUTION_SECONDS:
        served = _served_nodes(cluster)
        now = time.time()
        for node in cluster.healthy_nodes:
            if node in served:
                last_seen[node] = now
                newest_timestamp[node] = max(newest_timestamp[node], served[node])
            longest_gap[node] = max(longest_gap[node], now - last_seen[node])
        time.sleep(0.5)

    assert max(longest_gap.values()) <= 2 * RESOLUTION_SECONDS, longest_gap
    # Every node was scraped again after the kill (including the victim's share).
    assert all(ts >= killed_at - 1 for ts in newest_timestamp.values()), {
        n: killed_at - ts for n, ts in newest_timestamp.items() if ts < killed_at - 1
    }
    wait_until(lambda: len(children_of(cluster.front.pid)) == 2, 30, what="worker restarted")
    replacement = set(children_of(cluster.front.pid)) - set(workers)
    assert replacement, "the killed worker was not replaced"
    assert "restart" in cluster.front.log_text().lower()
