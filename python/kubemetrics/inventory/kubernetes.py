"""Inventory from kube-apiserver: list+watch of Nodes and of Running pods' metadata, the equivalent of
metrics-server's node informer and metadata-only pod informer (reference §1, §4.6).

Raw HTTP (aiohttp + orjson), no client library: each watched object is reduced at once to the few fields
the front needs (NodeInfo, PodInfo), so 150k pods cost 150k small records, not 150k decoded objects.

- Nodes: GET /api/v1/nodes, chunked (limit=500 + continue), then a watch from the list's resourceVersion
  with bookmarks. `--node-selector` is applied here, client-side, as metrics-server does (trap 21): an
  unselected node is neither scraped nor served, so it is simply not kept. The apiserver's labelSelector
  would also work (a node relabelled out of the selection arrives as DELETED), but metrics-server sends
  no selector and validates the expression at start-up with its own parser; so do we.
- Pods: the same for /api/v1/pods with fieldSelector=status.phase=Running, as PartialObjectMetadata
  (metadata only: namespace, name, labels; the node name is not metadata, so PodInfo.node_name is "").
- A watch resumes from the last resourceVersion seen (event or bookmark). 410 Gone (HTTP status or an
  ERROR event) means that version is no longer available: re-list. Any other failure (connection refused
  while the apiserver restarts, a reset, a 5xx) backs off 0.5 s doubling to 10 s and resumes; nothing here
  ends the generator except cancellation. Each kind of failure is logged once until it clears.
- Snapshots: the first once both initial lists are complete (informer HasSynced), then after changes,
  at most one per `coalesce_seconds`, so an initial flood or a mass rollout costs a handful of snapshots.
  A snapshot holds its own dicts (copied from the live ones, only for the kind that changed: a dict copy
  of 150k entries takes a few milliseconds), so the front may keep it while the watch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp
import orjson

from kubemetrics.api.label_selector import LabelSelector
from kubemetrics.inventory import (
    RESOURCE_METRICS_PATH_ANNOTATION,
    InventorySnapshot,
    NodeAddress,
    NodeInfo,
    PodInfo,
)
from kubemetrics.inventory.kubeconfig import ApiServerConfig

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 500
DEFAULT_COALESCE_SECONDS = 0.5
INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0
# client-go picks a random watch timeout in [5, 10) minutes so watches of many clients do not end together.
WATCH_TIMEOUT_RANGE_SECONDS = (300, 600)
REQUEST_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0
QUICK_WATCH_END_SECONDS = 1.0

NODE_RESOURCES = ("cpu", "memory", "pods")
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

K = TypeVar("K")
V = TypeVar("V")


class ApiRequestError(Exception):
    """A request kube-apiserver answered with an error; `kind` groups failures for logging once."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ResourceVersionGone(ApiRequestError):
    """410: the resourceVersion (or continue token) we hold is compacted away; a re-list is needed."""


# --------------------------------------------------------------------------------------------------
# Object reduction


def node_from_object(item: Mapping[str, Any]) -> NodeInfo:
    """The fields of a v1 Node the front uses; everything else is dropped here."""
    metadata = item.get("metadata") or {}
    status = item.get("status") or {}
    annotations = metadata.get("annotations") or {}
    path = annotations.get(RESOURCE_METRICS_PATH_ANNOTATION)
    endpoint = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port", 0)
    return NodeInfo(
        name=metadata["name"],
        addresses=tuple(
            NodeAddress(type=str(a.get("type", "")), address=str(a.get("address", "")))
            for a in status.get("addresses") or ()
        ),
        kubelet_port=endpoint if isinstance(endpoint, int) and 0 <= endpoint <= 65535 else 0,
        labels=metadata.get("labels") or {},
        annotations={RESOURCE_METRICS_PATH_ANNOTATION: path} if isinstance(path, str) else {},
        capacity=_resources(status.get("capacity")),
        allocatable=_resources(status.get("allocatable")),
    )


def _resources(quantities: Mapping[str, Any] | None) -> dict[str, str]:
    if not quantities:
        return {}
    return {name: str(quantities[name]) for name in NODE_RESOURCES if name in quantities}


def pod_from_metadata(item: Mapping[str, Any]) -> PodInfo:
    metadata = item.get("metadata") or {}
    return PodInfo(
        # Namespaces repeat across many pods; one shared string each.
        namespace=sys.intern(metadata["namespace"]),
        name=metadata["name"],
        labels=metadata.get("labels") or {},
    )


def _resource_version(item: Mapping[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("resourceVersion") or "")


# --------------------------------------------------------------------------------------------------
# One resource: list, then watch, forever


@dataclass(frozen=True, slots=True)
class WatchedResource(Generic[K, V]):
    """What to list+watch and how to reduce each object; `reduce` returns None for objects to drop."""

    name: str  # for messages: "nodes", "running pods"
    path: str
    key: Callable[[Mapping[str, Any]], K]
    reduce: Callable[[Mapping[str, Any]], V | None]
    field_selector: str = ""
    list_accept: str = "application/json"
    watch_accept: str = "application/json"


class Reflector(Generic[K, V]):
    """Keeps `items` equal to the apiserver's view of one resource. `on_change` is called (without
    arguments) after every change to `items`; `synced` is set once the first list is complete."""

    def __init__(
        self,
        client: ApiClient,
        resource: WatchedResource[K, V],
        on_change: Callable[[], None],
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.items: dict[K, V] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.list_count = 0
        self._on_change = on_change
        self._backoff = backoff or Backoff()
        self._failure = _FailureLog(resource.name, client.config.server)

    async def run(self) -> None:
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                    self._failure.cleared()
                started = asyncio.get_running_loop().time()
                await self._watch()
                if asyncio.get_running_loop().time() - started < QUICK_WATCH_END_SECONDS:
                    # A server ending every watch at once must not turn this into a busy loop.
                    raise ApiRequestError("watch ended at once", "the watch ended as soon as it started")
            except ResourceVersionGone as err:
                log.info("%s: %s; re-listing", self.resource.name, err)
                self.resource_version = ""
            except (ApiRequestError, aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as err:
                self._failure.failed(err)
                await asyncio.sleep(self._backoff.next())

    async def _list(self) -> None:
        fresh: dict[K, V] = {}
        token = ""
        while True:
            query = {"limit": str(LIST_PAGE_SIZE)}
            if token:
                query["continue"] = token
            page = await self.client.get_json(self._url(query), accept=self.resource.list_accept)
            for item in page.get("items") or ():
                value = self.resource.reduce(item)
                if value is not None:
                    fresh[self.resource.key(item)] = value
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                break
        self.list_count += 1
        self.resource_version = str(metadata.get("resourceVersion") or "")
        changed = fresh != self.items
        self.items = fresh
        log.debug("%s: listed %d at resourceVersion %s", self.resource.name, len(fresh), self.resource_version)
        if changed or not self.synced.is_set():
            self.synced.set()
            self._on_change()

    async def _watch(self) -> None:
        query = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.resource_version,
            "timeoutSeconds": str(random.randint(*WATCH_TIMEOUT_RANGE_SECONDS)),
        }
        async for event in self.client.watch(self._url(query), self.resource.watch_accept, self._connected):
            self._apply(event)

    def _connected(self) -> None:
        self._failure.cleared()
        self._backoff.reset()

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        item = event.get("object") or {}
        if kind == "ERROR":
            code = item.get("code")
            message = f"watch error {code}: {item.get('message', '')}"
            if code == 410:
                raise ResourceVersionGone("gone", message)
            raise ApiRequestError(f"watch error {code}", message)
        version = _resource_version(item)
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        key = self.resource.key(item)
        value = None if kind == "DELETED" else self.resource.reduce(item)
        if value is None:
            changed = self.items.pop(key, None) is not None
        else:
            changed = self.items.get(key) != value
            self.items[key] = value
        self.resource_version = version or self.resource_version
        if changed:
            self._on_change()

    def _url(self, query: Mapping[str, str]) -> str:
        if self.resource.field_selector:
            query = {**query, "fieldSelector": self.resource.field_selector}
        return f"{self.client.config.server}{self.resource.path}?{urllib.parse.urlencode(query)}"


class Backoff:
    def __init__(self, initial: float = INITIAL_BACKOFF_SECONDS, maximum: float = MAX_BACKOFF_SECONDS) -> None:
        self.initial = initial
        self.maximum = maximum
        self._delay = initial

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._delay = self.initial


class _FailureLog:
    """One warning per kind of failure (connection refused, 403, ...) until a request succeeds again, not
    one per retry every few seconds while the apiserver is down."""

    def __init__(self, resource: str, server: str) -> None:
        self.resource = resource
        self.server = server
        self._kind: str | None = None

    def failed(self, err: BaseException) -> None:
        kind = err.kind if isinstance(err, ApiRequestError) else type(err).__name__
        if kind != self._kind:
            log.warning("%s from %s: %s; retrying with back-off", self.resource, self.server, err or kind)
            self._kind = kind

    def cleared(self) -> None:
        if self._kind is not None:
            log.info("%s from %s: working again", self.resource, self.server)
            self._kind = None


# --------------------------------------------------------------------------------------------------
# HTTP


class ApiClient:
    """GET and watch on kube-apiserver with the configured TLS and credentials."""

    def __init__(self, config: ApiServerConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: ApiServerConfig) -> AsyncGenerator[ApiClient, None]:
        connector = aiohttp.TCPConnector(ssl=config.ssl_context() if config.server.startswith("https") else False)
        async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": "kubemetrics"}) as session:
            yield cls(config, session)

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        authorization = self.config.authorization()
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def _request_args(self) -> dict[str, Any]:
        return {"server_hostname": self.config.tls_server_name} if self.config.tls_server_name else {}

    async def get_json(self, url: str, accept: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS)
        async with self.session.get(url, headers=self._headers(accept), timeout=timeout, **self._request_args()) as r:
            body = await r.read()
            if r.status != 200:
                raise _status_error(url, r.status, body)
        document = orjson.loads(body)
        if not isinstance(document, dict):
            raise ApiRequestError("malformed", f"GET {url}: expected a JSON object")
        return document

    async def watch(
        self, url: str, accept: str, on_connected: Callable[[], None] = lambda: None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The events of one watch request, until the server ends it (its timeoutSeconds). `on_connected`
        is called once the server has accepted the watch."""
        # The server ends the watch at timeoutSeconds; the extra minute catches a connection that died
        # silently (no RST), which would otherwise hang here forever. Bookmarks arrive about once a minute.
        timeout = aiohttp.ClientTimeout(total=WATCH_TIMEOUT_RANGE_SECONDS[1] + 60, sock_connect=CONNECT_TIMEOUT_SECONDS)
        async with self.session.get(url, headers=self._headers(accept), timeout=timeout, **self._request_args()) as r:
            if r.status != 200:
                raise _status_error(url, r.status, await r.read())
            on_connected()
            # Lines are read by hand: a full Node (with its image list) can exceed aiohttp's line limit.
            pending = bytearray()
            async for chunk in r.content.iter_any():
                pending += chunk
                while (end := pending.find(b"\n")) >= 0:
                    line = bytes(pending[:end])
                    del pending[: end + 1]
                    if line.strip():
                        yield orjson.loads(line)
            if pending.strip():
                yield orjson.loads(bytes(pending))


def _status_error(url: str, status: int, body: bytes) -> ApiRequestError:
    message = ""
    with contextlib.suppress(orjson.JSONDecodeError):
        document = orjson.loads(body)
        if isinstance(document, dict):
            message = str(document.get("message") or "")
    text = f"GET {url}: HTTP {status}" + (f": {message}" if message else "")
    if status == 410:
        return ResourceVersionGone("gone", text)
    return ApiRequestError(f"HTTP {status}", text)


# --------------------------------------------------------------------------------------------------
# The source


def nodes_resource() -> WatchedResource[str, NodeInfo]:
    """Every node: --node-selector is applied per snapshot (`select_nodes`), because a node it leaves
    out still exists for the API (metrics-server's node lister sees all nodes)."""
    return WatchedResource(
        name="nodes", path="/api/v1/nodes", key=lambda item: str(item["metadata"]["name"]), reduce=node_from_object
    )


def select_nodes(
    nodes: Mapping[str, NodeInfo], node_selector: LabelSelector | None
) -> tuple[dict[str, NodeInfo], frozenset[str]]:
    """(the nodes --node-selector keeps, the names of those it leaves out)."""
    if node_selector is None:
        return dict(nodes), frozenset()
    selected = {name: node for name, node in nodes.items() if node_selector.matches(node.labels)}
    return selected, frozenset(nodes.keys() - selected.keys())


def running_pods_resource() -> WatchedResource[tuple[str, str], PodInfo]:
    return WatchedResource(
        name="running pods",
        path="/api/v1/pods",
        key=lambda item: (str(item["metadata"]["namespace"]), str(item["metadata"]["name"])),
        reduce=pod_from_metadata,
        field_selector="status.phase=Running",
        list_accept=_METADATA_LIST,
        watch_accept=_METADATA_WATCH,
    )


class KubernetesInventorySource:
    """InventorySource over kube-apiserver. The first snapshot comes when both initial lists are
    complete; until then (apiserver unreachable, forbidden) it waits and retries, as metrics-server does
    not serve before its informers sync."""

    def __init__(
        self,
        config: ApiServerConfig,
        node_selector: LabelSelector | None = None,
        coalesce_seconds: float = DEFAULT_COALESCE_SECONDS,
    ) -> None:
        self.config = config
        self.node_selector = node_selector
        self.coalesce_seconds = coalesce_seconds
        # Set while snapshots() runs; for tests and diagnostics.
        self.nodes: Reflector[str, NodeInfo] | None = None
        self.pods: Reflector[tuple[str, str], PodInfo] | None = None

    async def snapshots(self) -> AsyncGenerator[InventorySnapshot, None]:
        changed = asyncio.Event()
        dirty: set[str] = set()

        def mark(kind: str) -> Callable[[], None]:
            def on_change() -> None:
                dirty.add(kind)
                changed.set()

            return on_change

        async with ApiClient.open(self.config) as client:
            nodes = self.nodes = Reflector(client, nodes_resource(), mark("nodes"))
            pods = self.pods = Reflector(client, running_pods_resource(), mark("pods"))
            tasks = [
                asyncio.create_task(nodes.run(), name="node watch"),
                asyncio.create_task(pods.run(), name="pod watch"),
            ]
            try:
                await asyncio.gather(nodes.synced.wait(), pods.synced.wait())
                selected, unselected = select_nodes(nodes.items, self.node_selector)
                snapshot = InventorySnapshot(nodes=selected, pods=dict(pods.items), unselected_nodes=unselected)
                changed.clear()
                dirty.clear()
                yield snapshot
                while True:
                    await changed.wait()
                    # Let a burst of events (initial flood, rollout, re-list) settle into one snapshot.
                    await asyncio.sleep(self.coalesce_seconds)
                    changed.clear()
                    if "nodes" in dirty:
                        selected, unselected = select_nodes(nodes.items, self.node_selector)
                    snapshot = InventorySnapshot(
                        nodes=selected,
                        pods=dict(pods.items) if "pods" in dirty else snapshot.pods,
                        unselected_nodes=unselected,
                    )
                    dirty.clear()
                    yield snapshot
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
