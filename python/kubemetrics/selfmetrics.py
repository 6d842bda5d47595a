"""The front's own Prometheus metrics, under metrics-server's names (pkg/server/metrics.go) so that
existing dashboards and alerts keep working, plus kubemetrics' own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

if TYPE_CHECKING:
    from kubemetrics._native import StoreStats

_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SelfMetrics:
    def __init__(self) -> None:
        # metrics-server (Go client) exports no `*_created` series; here they would add one series per
        # node to the per-node histogram for nothing. The switch is process-wide in prometheus_client.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.kubelet_request_total = Counter(
            "metrics_server_kubelet_request",
            "[ALPHA] Number of requests sent to Kubelet API",
            ["success"],
            registry=self.registry,
        )
        self.kubelet_request_duration = Histogram(
            "metrics_server_kubelet_request_duration_seconds",
            "[ALPHA] Duration of requests to Kubelet API in seconds",
            ["node"],
            buckets=_DEFAULT_BUCKETS,
            registry=self.registry,
        )
        self.kubelet_last_request_time = Gauge(
            "metrics_server_kubelet_last_request_time_seconds",
            "[ALPHA] Time of last request performed to Kubelet API since unix epoch in seconds",
            ["node"],
            registry=self.registry,
        )
        self.storage_points = Gauge(
            "metrics_server_storage_points",
            "[ALPHA] Number of metrics points stored.",
            ["type"],
            registry=self.registry,
        )
        self.scrape_errors = Counter(
            "kubemetrics_scrape_errors",
            "Failed kubelet scrapes by cause (timeout, connect, tls, http_status, decode, oversized, other).",
            ["kind"],
            registry=self.registry,
        )
        self.ingested_batches = Counter(
            "kubemetrics_ingest_batches", "Sample batches received from workers.", ["worker"], registry=self.registry
        )
        self.ingested_samples = Counter(
            "kubemetrics_ingest_node_samples", "Node samples received from workers.", ["worker"], registry=self.registry
        )
        self.worker_restarts = Counter(
            "kubemetrics_worker_restarts", "Worker processes restarted after they exited.", registry=self.registry
        )

    def record_scrape(
        self, node: str, success: bool, duration_seconds: float, request_time_unix: float, per_node: bool = True
    ) -> None:
        """`per_node=False` counts the request without per-node series: the node is not (or no longer) in
        the inventory, and a series created for it now would never be removed."""
        self.kubelet_request_total.labels(success="true" if success else "false").inc()
        if per_node:
            self.kubelet_request_duration.labels(node=node).observe(duration_seconds)
            self.kubelet_last_request_time.labels(node=node).set(request_time_unix)

    def forget_node(self, node: str) -> None:
        """Drop a departed node's series so cardinality follows the cluster (metrics-server #1876)."""
        for metric in (self.kubelet_request_duration, self.kubelet_last_request_time):
            try:
                metric.remove(node)
            except KeyError:
                pass

    def update_store(self, stats: StoreStats) -> None:
        self.storage_points.labels(type="node").set(stats.node_points)
        self.storage_points.labels(type="container").set(stats.container_points)

    def render(self) -> bytes:
        return generate_latest(self.registry)
