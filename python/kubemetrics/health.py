"""State behind /livez, /readyz and /healthz (metrics-server pkg/server RegisterProbes).

The front updates it; the API serves it. Check names match metrics-server's so that probes and
dashboards written for it keep working.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class HealthState:
    metric_resolution_seconds: float
    # Monotonic time the collection loop last made progress (a batch ingested or a plan pushed);
    # None until collection starts. livez fails when it is older than 1.5 × resolution.
    last_collection_progress: float | None = None
    inventory_synced: bool = False
    shutting_down: bool = False
    started_at: float = field(default_factory=time.monotonic)

    def note_collection_progress(self) -> None:
        self.last_collection_progress = time.monotonic()

    def collection_timely(self, now: float | None = None) -> bool:
        """metrics-server's metric-collection-timely: fails only when collection is stuck."""
        if self.last_collection_progress is None:
            return True
        current = time.monotonic() if now is None else now
        return current - self.last_collection_progress <= 1.5 * self.metric_resolution_seconds
