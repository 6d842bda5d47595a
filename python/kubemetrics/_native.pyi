"""Type stub for the Rust extension (rust/kubemetrics-python). Checked against the built module by
`python -m mypy.stubtest kubemetrics._native` in `make lint`."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Self, final

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "FRESHNESS_BUCKETS",
    "DecodeError",
    "LabelSelectorError",
    "MetricsStore",
    "ResponseView",
    "StoreStats",
    "decode_resource_metrics",
    "decode_summary",
    "describe_sample",
    "encode_sample",
    "format_cpu_quantity",
    "format_duration",
    "format_memory_quantity",
]

DEFAULT_MAX_BODY_BYTES: int
"""Default cap on one kubelet body (bytes) before decoding is refused as oversized."""

FRESHNESS_BUCKETS: list[float]
"""The 20 finite upper bounds (seconds) of metrics_server_api_metric_freshness_seconds: prometheus
ExponentialBuckets(1, 1.364, 20), i.e. 1 … 364.3, computed as Go computes them."""

class DecodeError(ValueError):
    """A kubelet payload could not be decoded.

    `kind` is one of "malformed", "truncated", "wrong_type", "oversized", "encoding" (invalid UTF-8),
    "missing_field", "kubelet_error" (the kubelet reported a scrape error and sent no data).
    `offset` is the byte offset in the body where the problem was found (the body length for
    truncation, 0 for oversized), `field` what was being decoded or "" when unknown: the JSON path
    for /stats/summary (e.g. "pods[3].containers[0].cpu.usageCoreNanoSeconds"), the series as
    written for /metrics/resource (e.g. 'container_cpu_usage_seconds_total{container="c",...}').
    The message names all three plus the cause.
    """

    kind: str
    offset: int
    field: str

class LabelSelectorError(ValueError):
    """A labelSelector string that Kubernetes would reject (message as the apiserver words it)."""

def decode_summary(
    body: bytes,
    node: str,
    scrape_time_unix_nanos: int,
    max_body_bytes: int = ...,
) -> bytes:
    """Decode a kubelet `/stats/summary` body (with or without `only_cpu_and_memory=true`) into an
    encoded `kubemetrics.v1.NodeSample` for `node`. Raises DecodeError; never panics."""

def decode_resource_metrics(
    body: bytes,
    node: str,
    scrape_time_unix_nanos: int,
    max_body_bytes: int = ...,
) -> bytes:
    """Decode a kubelet `/metrics/resource` body (Prometheus text format 0.0.4) into an encoded
    `kubemetrics.v1.NodeSample` for `node`. Raises DecodeError; never panics.

    Reads node/container cpu and working set and container start times; a series without a
    timestamp (or with one <= 0) is timed at `scrape_time_unix_nanos`, and a container's point takes
    the timestamp of its last cpu/memory line. An impossible start time (negative, as kubelets
    before kubernetes#110880 wrote) is reported as 0 instead of failing the node. Zero and absent
    usage are kept (0 / None) for the store to judge. `resource_scrape_error 1` with no data raises
    DecodeError with kind "kubelet_error"."""

def describe_sample(sample: bytes) -> dict[str, object]:
    """The encoded NodeSample as plain Python data, for tests and debugging (not the hot path):
    {"node": str, "scrape_time_unix_nanos": int, "node_point": point | None,
     "pods": [{"namespace", "name", "containers": [{"name", "point": point | None}]}]} where point is
    {"timestamp_unix_nanos", "cumulative_cpu_nanos" (int | None), "memory_working_set_bytes" (int | None),
     "start_time_unix_nanos"}. Raises ValueError on bytes that are not a NodeSample."""

def encode_sample(sample: Mapping[str, object]) -> bytes:
    """Inverse of describe_sample (tests and the simulator's self-checks)."""

@final
class StoreStats:
    nodes: int
    """Nodes with a last point."""
    node_points: int
    """Nodes with both points (servable), as metrics_server_storage_points{type="node"}."""
    pods: int
    containers: int
    container_points: int
    """Containers with both points, as metrics_server_storage_points{type="container"}."""

@final
class ResponseView:
    """How a metrics response represents what it selected, from the negotiated media type.

    `shape`: "object" (NodeMetrics/PodMetrics and their lists), "table" (a meta.k8s.io Table, JSON
    only), or "metadata" (PartialObjectMetadata for a GET, PartialObjectMetadataList for a list).
    `encoding`: "json" or "protobuf" (the `k8s\\x00` + runtime.Unknown envelope). `meta_version`
    ("v1" or "v1beta1") is the meta.k8s.io version of a table or metadata view; `include_object`
    ("Metadata" or "", "None", "Object") is what each table row carries. Raises ValueError for any
    other value."""

    def __new__(
        cls, shape: str, *, encoding: str = "json", meta_version: str = "v1", include_object: str = "Metadata"
    ) -> Self: ...

@final
class MetricsStore:
    """Two points per node and container; CPU = Δcumulative/Δtime, memory = latest working set,
    with metrics-server's storage semantics (pkg/storage)."""

    def __new__(
        cls,
        metric_resolution_seconds: float,
        *,
        require_pod_metadata: bool = False,
        keep_zero_memory_containers: bool = False,
    ) -> Self:
        """`require_pod_metadata`: when True, only pods given to set_pod_metadata are served (the
        Kubernetes inventory's Running pods); when False every pod with metrics is served.

        `keep_zero_memory_containers`: when True, a container whose working set is reported as
        exactly 0 no longer drops its pod; the pod is served with that container at memory "0". A
        missing working set, zero or missing CPU and node points are judged as metrics-server does."""

    def ingest(self, samples: Sequence[bytes]) -> int:
        """Store encoded NodeSamples. A node's sample replaces all of that node's pods. Returns how
        many were stored; raises ValueError naming the first sample that is not a NodeSample (the
        others are still stored), TypeError for an item that is not bytes (nothing stored)."""

    def forget_node(self, node: str) -> None:
        """Drop a node's points and its pods' points (a failed scrape, as metrics-server has it)."""

    def retain_nodes(self, nodes: Iterable[str]) -> int:
        """Drop points of nodes not in `nodes` (and their pods); returns how many were dropped."""

    def set_node_metadata(self, node: str, labels: Mapping[str, str]) -> None:
        """The node exists (inventory) with these labels. Only nodes with metadata are served."""

    def remove_node_metadata(self, node: str) -> None: ...
    def set_pod_metadata(self, namespace: str, name: str, labels: Mapping[str, str]) -> None: ...
    def remove_pod_metadata(self, namespace: str, name: str) -> None: ...
    def has_node_metadata(self, node: str) -> bool: ...
    def has_pod_metadata(self, namespace: str, name: str) -> bool: ...
    def render_node_list(
        self, now_unix_seconds: float, label_selector: str | None = None, name: str | None = None
    ) -> bytes:
        """`NodeMetricsList` JSON, sorted by name; `name` restricts to one node (fieldSelector
        metadata.name). Raises LabelSelectorError.

        Every render returns the whole response body as the apiserver writes it: compact JSON
        followed by one newline; `creationTimestamp` is `now_unix_seconds` truncated to seconds."""

    def render_node(self, now_unix_seconds: float, node: str) -> bytes | None:
        """`NodeMetrics` JSON, or None when the node has no servable metrics."""

    def render_pod_list(
        self,
        now_unix_seconds: float,
        namespace: str | None = None,
        label_selector: str | None = None,
        name: str | None = None,
    ) -> bytes:
        """`PodMetricsList` JSON sorted by (namespace, name); namespace None = all namespaces."""

    def render_pod(self, now_unix_seconds: float, namespace: str, name: str) -> bytes | None:
        """`PodMetrics` JSON, or None when the pod has no servable metrics."""

    def render_node_list_view(
        self,
        view: ResponseView,
        now_unix_seconds: float,
        label_selector: str | None = None,
        name: str | None = None,
        excluded_names: Iterable[str] | None = None,
    ) -> bytes:
        """The node list response in `view`'s representation; `excluded_names` are names a `!=`
        field selector drops. Same selection and errors as render_node_list."""

    def render_node_view(self, view: ResponseView, now_unix_seconds: float, node: str) -> bytes | None:
        """One node in `view`'s representation (a one-row table for "table"), or None."""

    def render_pod_list_view(
        self,
        view: ResponseView,
        now_unix_seconds: float,
        namespace: str | None = None,
        label_selector: str | None = None,
        name: str | None = None,
        excluded_names: Iterable[str] | None = None,
        excluded_namespaces: Iterable[str] | None = None,
    ) -> bytes:
        """The pod list response in `view`'s representation (table cells sum the containers)."""

    def render_pod_view(self, view: ResponseView, now_unix_seconds: float, namespace: str, name: str) -> bytes | None:
        """One pod in `view`'s representation, or None."""

    def freshness_histogram(self) -> tuple[list[int], float]:
        """Per-bucket (non-cumulative) counts for the 20 upper bounds then +Inf (21 entries), and the sum of
        observed seconds, since the store was created.

        This is metrics_server_api_metric_freshness_seconds: every render_* call observes, once per item it
        returns (node or pod; lists and single gets; any view), request time − item timestamp. An item whose
        timestamp is null counts as Go's maximum duration (≈9.2e9 s, in +Inf)."""

    def stats(self) -> StoreStats: ...
    def ready(self) -> bool:
        """At least one servable node point and one servable pod (metrics-server v0.9 readiness)."""

def format_cpu_quantity(nanocores: int) -> str:
    """DecimalSI canonical form as Kubernetes prints it: 272000000 → "272m"."""

def format_memory_quantity(num_bytes: int) -> str:
    """BinarySI canonical form: 12533760 → "12240Ki"; < 1024 printed as DecimalSI ("1k")."""

def format_duration(nanos: int) -> str:
    """Go time.Duration.String(): 15004000000 → "15.004s", 60513000000 → "1m0.513s"."""
