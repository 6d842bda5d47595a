"""The installed kubectl against the server (standalone core API), over HTTPS with the generated
certificate as its only authority and no credentials. The server runs on uvloop, as in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from pathlib import Path

import orjson
import pytest
import uvloop
from test_api_support import RunningApiServer, api_context, running_api_server, write_kubeconfig

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
KUBECTL_TIMEOUT_SECONDS = 60


async def run_kubectl(server: RunningApiServer, home: Path, *args: str) -> tuple[int, str, str]:
    """kubectl in its own process group (stopped by group on timeout), with a private HOME and cache."""
    assert KUBECTL is not None
    kubeconfig = write_kubeconfig(home / "kubeconfig", server.base_url, server.ca_file)
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        f"--kubeconfig={kubeconfig}",
        f"--cache-dir={home / 'cache'}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), KUBECTL_TIMEOUT_SECONDS)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def kubectl_session(tmp_path: Path, *commands: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Start the server on uvloop, run each kubectl command in turn, stop the server."""

    async def scenario() -> list[tuple[int, str, str]]:
        ctx = api_context(tmp_path / "certs", standalone_core_api=True)
        async with running_api_server(ctx) as server:
            return [await run_kubectl(server, tmp_path, *command) for command in commands]

    return uvloop.run(scenario())


def test_kubectl_top_nodes_prints_usage_and_percent_of_allocatable(tmp_path: Path) -> None:
    [(code, stdout, stderr)] = kubectl_session(tmp_path, ("top", "nodes"))

    assert code == 0, stderr
    # 500m of 4 cores = 12%, 1024Mi of 16Gi = 6%; node-c is in the inventory without metrics.
    assert stdout == (
        "NAME     CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   \n"
        "node-a   500m         12%         1024Mi          6%          \n"
        "node-b   250m         12%         2048Mi          12%         \n"
        "node-c   <unknown>    <unknown>   <unknown>       <unknown>   \n"
    )


def test_kubectl_top_pods_in_all_namespaces(tmp_path: Path) -> None:
    [(code, stdout, stderr)] = kubectl_session(tmp_path, ("top", "pods", "-A"))

    assert code == 0, stderr
    # coredns-0 sums its containers: 20m + 5m, 12240Ki + 5Mi = 16.9Mi printed as 16Mi.
    assert stdout.splitlines() == [
        "NAMESPACE     NAME        CPU(cores)   MEMORY(bytes)   ",
        "default       web-0       100m         64Mi            ",
        "default       web-1       120m         80Mi            ",
        "kube-system   coredns-0   25m          16Mi            ",
    ]


def test_kubectl_raw_get_and_not_found_errors(tmp_path: Path) -> None:
    raw, top_silent_node, top_silent_pod = kubectl_session(
        tmp_path,
        ("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"),
        ("top", "node", "node-c"),
        ("top", "pod", "web-2", "-n", "default"),
    )

    assert raw[0] == 0, raw[2]
    document = orjson.loads(raw[1])
    assert [item["metadata"]["name"] for item in document["items"]] == ["node-a", "node-b"]
    assert document["items"][0]["usage"] == {"cpu": "500m", "memory": "1Gi"}

    assert top_silent_node[0] == 1
    assert 'Error from server (NotFound): nodemetrics.metrics.k8s.io "node-c" not found' in top_silent_node[2]
    assert top_silent_pod[0] == 1
    assert 'Error from server (NotFound): podmetrics.metrics.k8s.io "default/web-2" not found' in top_silent_pod[2]


def test_kubectl_get_prints_the_metrics_tables(tmp_path: Path) -> None:
    nodes, pods = kubectl_session(tmp_path, ("get", "nodes.metrics.k8s.io"), ("get", "pods.metrics.k8s.io", "-A"))

    # The columns and cells of metrics-server's Table; NAMESPACE comes from each row's metadata.
    assert nodes[0] == 0, nodes[2]
    assert nodes[1] == ("NAME     CPU    MEMORY   WINDOW\nnode-a   500m   1Gi      15s\nnode-b   250m   2Gi      15s\n")
    assert pods[0] == 0, pods[2]
    assert pods[1] == (
        "NAMESPACE     NAME        CPU    MEMORY    WINDOW\n"
        "default       web-0       100m   64Mi      15s\n"
        "default       web-1       120m   80Mi      15s\n"
        "kube-system   coredns-0   25m    17360Ki   15s\n"
    )


def test_kubectl_top_reads_protobuf_with_and_without_use_protocol_buffers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="kubemetrics.api.server"):
        with_protobuf, without = kubectl_session(
            tmp_path,
            ("top", "nodes", "--use-protocol-buffers=true"),
            ("top", "nodes", "--use-protocol-buffers=false"),
        )

    assert with_protobuf[0] == 0, with_protobuf[2]
    assert without[0] == 0, without[2]
    assert with_protobuf[1] == without[1]
    assert with_protobuf[1].splitlines()[1].split() == ["node-a", "500m", "12%", "1024Mi", "6%"]
    metrics_requests = [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("GET /apis/metrics.k8s.io/v1beta1/nodes ")
    ]
    # kubectl 1.32's metrics client prefers protobuf either way; the flag only changes the fallback.
    assert len(metrics_requests) == 2, metrics_requests
    assert "[protobuf] (Accept: application/vnd.kubernetes.protobuf, */*;" in metrics_requests[0]
    assert "[protobuf] (Accept: application/vnd.kubernetes.protobuf,application/json;" in metrics_requests[1]


def test_kubectl_explain_reads_the_openapi_v3_document(tmp_path: Path) -> None:
    [(code, stdout, stderr)] = kubectl_session(tmp_path, ("explain", "podmetrics.containers"))

    assert code == 0, stderr
    assert "GROUP:      metrics.k8s.io" in stdout
    assert "KIND:       PodMetrics" in stdout
    assert "FIELD: containers <[]ContainerMetrics>" in stdout
    assert "usage\t<map[string]Quantity> -required-" in stdout
