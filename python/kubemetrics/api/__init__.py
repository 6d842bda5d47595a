"""The HTTPS API of the front: metrics.k8s.io/v1beta1, discovery, health, /metrics, and in
standalone mode a demo-only read-only subset of the core API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubemetrics._native import MetricsStore
from kubemetrics.health import HealthState
from kubemetrics.inventory import InventorySnapshot
from kubemetrics.options import ServeOptions
from kubemetrics.selfmetrics import SelfMetrics


@dataclass(slots=True)
class ApiContext:
    """Everything a request handler may read. The front owns and updates these objects."""

    options: ServeOptions
    store: MetricsStore
    health: HealthState
    self_metrics: SelfMetrics
    # Returns the latest inventory snapshot (cheap; called per request).
    inventory: Callable[[], InventorySnapshot]
