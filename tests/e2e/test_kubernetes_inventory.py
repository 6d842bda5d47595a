"""The Kubernetes inventory source against a real kube-apiserver: the first snapshot holds the nodes'
scrape fields and the Running pods; later changes (nodes added, relabelled, removed; pods becoming Running,
finishing, deleted) show up; --node-selector filters nodes; a cut connection resumes the watch without a
re-list; an apiserver restart over a compacted etcd (410 Gone) re-lists and catches up."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from control_plane import ControlPlane, ControlPlaneError
from kubemetrics.api.label_selector import parse_label_selector
from kubemetrics.inventory import RESOURCE_METRICS_PATH_ANNOTATION, InventorySnapshot, NodeAddress, PodInfo
from kubemetrics.inventory.kubeconfig import ApiServerConfig, PemSource, load_kubeconfig
from kubemetrics.inventory.kubernetes import KubernetesInventorySource

SNAPSHOT_TIMEOUT = 30.0


# --------------------------------------------------------------------------------------------------
# Cluster objects


@dataclass
class ClusterObjects:
    """Creates nodes and pods tagged with a per-test label, and removes them afterwards."""

    cluster: ControlPlane
    tag: str
    namespace: str
    nodes: set[str] = field(default_factory=set)
    pods: set[str] = field(default_factory=set)

    def name(self, what: str) -> str:
        return f"{what}-{self.tag}"

    async def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = await asyncio.to_thread(self.cluster.kubectl, *args, stdin=stdin)
        return str(result.stdout)

    async def create_node(
        self, name: str, ip: str, port: int = 10250, labels: dict[str, str] | None = None, path: str | None = None
    ) -> None:
        metadata: dict[str, Any] = {"name": name, "labels": {"kubemetrics-test": self.tag, **(labels or {})}}
        if path is not None:
            metadata["annotations"] = {RESOURCE_METRICS_PATH_ANNOTATION: path, "unrelated": "dropped"}
        await self.kubectl(
            "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": metadata})
        )
        self.nodes.add(name)
        status = {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "3500m", "memory": "15Gi", "pods": "110"},
        }
        await self.kubectl(
            "patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
        )

    async def delete_node(self, name: str) -> None:
        await self.kubectl("delete", "node", name, "--wait=false")
        self.nodes.discard(name)

    async def label_node(self, name: str, *labels: str) -> None:
        await self.kubectl("label", "node", name, "--overwrite", *labels)

    async def create_pod(self, name: str, labels: dict[str, str], running: bool = True) -> None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            # A node name at creation: there is no scheduler.
            "spec": {"nodeName": "nowhere", "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
        }
        # The serviceaccount controller creates the namespace's default account shortly after the namespace.
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT
        while True:
            try:
                await self.kubectl("create", "-f", "-", stdin=json.dumps(pod))
                break
            except ControlPlaneError as err:
                if "serviceaccount" not in str(err) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        self.pods.add(name)
        if running:
            await self.set_pod_phase(name, "Running")

    async def set_pod_phase(self, name: str, phase: str) -> None:
        await self.kubectl(
            "-n", self.namespace, "patch", "pod", name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": phase}}),
        )  # fmt: skip

    async def delete_pod(self, name: str) -> None:
        # No kubelet confirms a graceful deletion: force it.
        await self.kubectl("-n", self.namespace, "delete", "pod", name, "--grace-period=0", "--force")
        self.pods.discard(name)

    def cleanup(self) -> None:
        for node in self.nodes:
            self.cluster.kubectl("delete", "node", node, "--wait=false", "--ignore-not-found", check=False)
        for pod in self.pods:
            self.cluster.kubectl(
                "-n", self.namespace, "delete", "pod", pod, "--grace-period=0", "--force", "--ignore-not-found",
                check=False,
            )  # fmt: skip
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)


@pytest.fixture
def objects(control_plane: ControlPlane) -> Iterator[ClusterObjects]:
    tag = uuid.uuid4().hex[:8]
    created = ClusterObjects(control_plane, tag, namespace=f"inventory-{tag}")
    control_plane.kubectl("create", "namespace", created.namespace)
    try:
        yield created
    finally:
        created.cleanup()


# --------------------------------------------------------------------------------------------------
# Following the source


class Follower:
    """Consumes a source's snapshots in the background; tests wait for one that satisfies a condition."""

    def __init__(self, source: KubernetesInventorySource) -> None:
        self.source = source
        self.snapshots: list[InventorySnapshot] = []
        self._arrived = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Follower:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self) -> None:
        async for snapshot in self.source.snapshots():
            async with self._arrived:
                self.snapshots.append(snapshot)
                self._arrived.notify_all()

    async def until(self, what: str, condition: Callable[[InventorySnapshot], bool]) -> InventorySnapshot:
        async def matching() -> InventorySnapshot:
            async with self._arrived:
                while True:
                    if self.snapshots and condition(self.snapshots[-1]):
                        return self.snapshots[-1]
                    await self._arrived.wait()

        try:
            return await asyncio.wait_for(matching(), SNAPSHOT_TIMEOUT)
        except TimeoutError:
            latest = self.snapshots[-1] if self.snapshots else None
            raise AssertionError(f"no snapshot with {what} within {SNAPSHOT_TIMEOUT:.0f}s; latest: {latest}") from None


def tagged_nodes(snapshot: InventorySnapshot, objects: ClusterObjects) -> set[str]:
    return {name for name, node in snapshot.nodes.items() if node.labels.get("kubemetrics-test") == objects.tag}


def pods_in(snapshot: InventorySnapshot, namespace: str) -> dict[str, PodInfo]:
    assert snapshot.pods is not None
    return {name: pod for (ns, name), pod in snapshot.pods.items() if ns == namespace}


def admin_source(control_plane: ControlPlane, **kwargs: Any) -> KubernetesInventorySource:
    return KubernetesInventorySource(load_kubeconfig(control_plane.admin_kubeconfig), coalesce_seconds=0.1, **kwargs)


# --------------------------------------------------------------------------------------------------
# Behaviours


async def test_first_snapshot_holds_node_scrape_fields_and_only_running_pods(
    control_plane: ControlPlane, objects: ClusterObjects
) -> None:
    node = objects.name("node-a")
    await objects.create_node(node, "10.1.0.7", port=10999, labels={"pool": "blue"}, path="/custom/resource")
    await objects.create_pod("web-0", {"app": "web"})
    await objects.create_pod("pending-0", {"app": "web"}, running=False)

    source = admin_source(control_plane)
    snapshot = await anext(aiter(source.snapshots()))

    info = snapshot.nodes[node]
    assert info.addresses == (NodeAddress("InternalIP", "10.1.0.7"), NodeAddress("Hostname", node))
    assert info.kubelet_port == 10999
    assert info.labels == {"kubemetrics-test": objects.tag, "pool": "blue"}
    assert info.annotations == {RESOURCE_METRICS_PATH_ANNOTATION: "/custom/resource"}
    assert info.capacity == {"cpu": "4", "memory": "16Gi", "pods": "110"}
    assert info.allocatable == {"cpu": "3500m", "memory": "15Gi", "pods": "110"}
    assert pods_in(snapshot, objects.namespace) == {
        "web-0": PodInfo(namespace=objects.namespace, name="web-0", labels={"app": "web"}, node_name="")
    }


async def test_nodes_added_relabelled_and_removed_show_up(control_plane: ControlPlane, objects: ClusterObjects) -> None:
    first, second = objects.name("node-1"), objects.name("node-2")
    await objects.create_node(first, "10.1.1.1")
    async with Follower(admin_source(control_plane)) as follower:
        await follower.until(f"node {first}", lambda s: tagged_nodes(s, objects) == {first})

        await objects.create_node(second, "10.1.1.2")
        # Created, then given its status: the snapshot follows both steps.
        added = await follower.until(
            f"node {second} with its status",
            lambda s: tagged_nodes(s, objects) == {first, second} and bool(s.nodes[second].addresses),
        )
        assert added.nodes[second].addresses == (NodeAddress("InternalIP", "10.1.1.2"), NodeAddress("Hostname", second))
        assert added.nodes[second].kubelet_port == 10250

        await objects.label_node(first, "pool=green")
        relabelled = await follower.until("pool=green", lambda s: s.nodes[first].labels.get("pool") == "green")
        assert relabelled.nodes[first].labels == {"kubemetrics-test": objects.tag, "pool": "green"}

        await objects.delete_node(first)
        await follower.until(f"{first} gone", lambda s: tagged_nodes(s, objects) == {second})


async def test_pods_appear_when_running_and_disappear_when_finished_or_deleted(
    control_plane: ControlPlane, objects: ClusterObjects
) -> None:
    ns = objects.namespace
    async with Follower(admin_source(control_plane)) as follower:
        await follower.until("the first snapshot", lambda s: True)

        await objects.create_pod("api-0", {"app": "api"}, running=False)
        await objects.create_pod("job-0", {"app": "job"})
        await follower.until("job-0", lambda s: set(pods_in(s, ns)) == {"job-0"})

        await objects.set_pod_phase("api-0", "Running")
        running = await follower.until("api-0 running", lambda s: set(pods_in(s, ns)) == {"api-0", "job-0"})
        assert pods_in(running, ns)["api-0"].labels == {"app": "api"}

        await objects.set_pod_phase("job-0", "Succeeded")
        await follower.until("job-0 finished", lambda s: set(pods_in(s, ns)) == {"api-0"})

        await objects.delete_pod("api-0")
        await follower.until("api-0 deleted", lambda s: pods_in(s, ns) == {})


async def test_node_selector_keeps_only_matching_nodes(control_plane: ControlPlane, objects: ClusterObjects) -> None:
    blue, red = objects.name("blue"), objects.name("red")
    await objects.create_node(blue, "10.1.2.1", labels={"pool": "blue"})
    await objects.create_node(red, "10.1.2.2", labels={"pool": "red"})
    selector = parse_label_selector(f"kubemetrics-test={objects.tag},pool in (blue)")
    async with Follower(admin_source(control_plane, node_selector=selector)) as follower:
        first = await follower.until("the first snapshot", lambda s: True)
        # Only the selected node at all: nodes of other tests and the red node are filtered out too.
        assert set(first.nodes) == {blue}
        # The red node still exists for the API: a GET of it is "no metrics", not "no such node".
        assert red in first.unselected_nodes and blue not in first.unselected_nodes

        await objects.label_node(red, "pool=blue")
        await follower.until("red selected", lambda s: set(s.nodes) == {blue, red} and red not in s.unselected_nodes)

        await objects.label_node(blue, "pool=green")
        await follower.until("blue deselected", lambda s: set(s.nodes) == {red} and blue in s.unselected_nodes)


async def test_watch_resumes_after_a_cut_connection_without_relisting(
    control_plane: ControlPlane, objects: ClusterObjects
) -> None:
    stays, goes, arrives = objects.name("stays"), objects.name("goes"), objects.name("arrives")
    await objects.create_node(stays, "10.1.3.1")
    await objects.create_node(goes, "10.1.3.2")
    async with TcpProxy(control_plane.apiserver_url) as proxy:
        source = KubernetesInventorySource(proxied_config(control_plane, proxy), coalesce_seconds=0.1)
        async with Follower(source) as follower:
            await follower.until("both nodes", lambda s: tagged_nodes(s, objects) == {stays, goes})

            proxy.cut()
            await objects.delete_node(goes)
            await objects.create_node(arrives, "10.1.3.3")
            await asyncio.sleep(1.0)
            assert tagged_nodes(follower.snapshots[-1], objects) == {stays, goes}

            proxy.restore()
            await follower.until("the changes made while cut", lambda s: tagged_nodes(s, objects) == {stays, arrives})
            assert source.nodes is not None and source.pods is not None
            assert (source.nodes.list_count, source.pods.list_count) == (1, 1)
            assert proxy.refused > 0


async def test_apiserver_restart_over_compacted_etcd_relists_and_catches_up(
    control_plane: ControlPlane, objects: ClusterObjects
) -> None:
    stays, goes, later = objects.name("stays"), objects.name("goes"), objects.name("later")
    await objects.create_node(stays, "10.1.4.1")
    await objects.create_node(goes, "10.1.4.2")
    await objects.create_pod("web-0", {"app": "web"})
    async with TcpProxy(control_plane.apiserver_url) as proxy:
        source = KubernetesInventorySource(proxied_config(control_plane, proxy), coalesce_seconds=0.1)
        async with Follower(source) as follower:
            await follower.until("both nodes", lambda s: tagged_nodes(s, objects) == {stays, goes})
            assert source.nodes is not None and source.pods is not None

            # Changes this source cannot watch, and whose history is then compacted away: only a re-list
            # can learn that `goes` and web-0 are gone.
            proxy.cut()
            await objects.delete_node(goes)
            await objects.delete_pod("web-0")
            await asyncio.to_thread(control_plane.restart_apiserver, lambda: compact_etcd(control_plane))
            proxy.restore()

            caught_up = await follower.until("the deletions", lambda s: tagged_nodes(s, objects) == {stays})
            assert pods_in(caught_up, objects.namespace) == {}
            assert source.nodes.list_count >= 2 and source.pods.list_count >= 2

            await objects.create_node(later, "10.1.4.3")
            await follower.until(
                "a node created after the restart", lambda s: tagged_nodes(s, objects) == {stays, later}
            )


async def test_unreachable_apiserver_never_ends_the_source_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = ApiServerConfig(server="https://127.0.0.1:9", origin="test")
    source = KubernetesInventorySource(config)
    snapshots = source.snapshots()
    pending = asyncio.ensure_future(anext(snapshots))
    # Back-off 0.5 + 1 + 2 s: three attempts per resource in this time, one warning each.
    await asyncio.sleep(2.5)
    assert not pending.done()
    assert source.nodes is not None and source.nodes.list_count == 0
    warnings = sorted(r.getMessage().split(" from ")[0] for r in caplog.records if r.levelname == "WARNING")
    assert warnings == ["nodes", "running pods"]
    pending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pending
    await snapshots.aclose()


# --------------------------------------------------------------------------------------------------
# Helpers: a TCP proxy that can cut connections, etcd compaction


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the apiserver. `cut()` resets every open connection and refuses new
    ones (as an apiserver that went away), `restore()` accepts again. TLS passes through untouched."""

    def __init__(self, upstream_url: str) -> None:
        host_port = upstream_url.removeprefix("https://")
        self.upstream_host, port = host_port.rsplit(":", 1)
        self.upstream_port = int(port)
        self.port = 0
        self.refused = 0
        self._up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._up = True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        self._writers.difference_update((writer, upstream_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.transport.abort()


def proxied_config(control_plane: ControlPlane, proxy: TcpProxy) -> ApiServerConfig:
    pki = control_plane.pki
    return ApiServerConfig(
        server=proxy.url,
        certificate_authority=PemSource(path=str(pki.ca.cert)),
        client_certificate=PemSource(path=str(pki.admin.cert)),
        client_key=PemSource(path=str(pki.admin.key)),
        origin="test proxy",
    )


def compact_etcd(control_plane: ControlPlane) -> None:
    """Compacts etcd at its current revision (etcd's JSON gateway), so no older resourceVersion is watchable."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            control_plane.etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    revision = post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
    post("/v3/kv/compaction", {"revision": revision, "physical": True})
