"""The test control plane behaves like a real cluster's: the apiserver is ready and versioned, the
aggregation-layer trust is published for extension servers, and kube-controller-manager turns a
Deployment into a ReplicaSet and Pods and runs the HPA controller."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from control_plane import ControlPlane, build_binaries, start_control_plane

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    """Polls `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def kubectl_json(cluster: ControlPlane, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def test_apiserver_is_ready_and_reports_the_built_release(control_plane: ControlPlane) -> None:
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout == "ok"

    version = control_plane.get_json("/version")
    # build.sh puts the binaries in <cache>/control-plane/<release>/bin.
    release = control_plane.binaries.kube_apiserver.parent.parent.name
    assert version["gitVersion"] == release
    assert (version["major"], version["minor"]) == ("1", release.split(".")[1])
    assert version["gitTreeState"] == "clean"


def test_system_namespaces_exist(control_plane: ControlPlane) -> None:
    listed = control_plane.kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()

    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(listed)


def test_aggregation_layer_trust_is_published_for_extension_apiservers(control_plane: ControlPlane) -> None:
    config_map = kubectl_json(
        control_plane, "-n", "kube-system", "get", "configmap", "extension-apiserver-authentication"
    )
    data = config_map["data"]
    pki = control_plane.pki

    assert data["requestheader-client-ca-file"].strip() == pki.front_proxy_ca.cert.read_text().strip()
    assert data["client-ca-file"].strip() == pki.ca.cert.read_text().strip()
    # The two CAs must differ, or every cluster client cert would pass the front-proxy check.
    assert data["requestheader-client-ca-file"] != data["client-ca-file"]
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]


def test_controller_manager_reports_healthy_on_its_secure_port(control_plane: ControlPlane) -> None:
    context = control_plane.pki.client_ssl_context()  # verifies the serving cert against the cluster CA
    with urllib.request.urlopen(control_plane.controller_manager_url + "/healthz", context=context, timeout=10) as r:
        assert (r.status, r.read()) == (200, b"ok")


def deployment_manifest(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "app", "image": "registry.invalid/app:1", "resources": {"requests": {"cpu": "100m"}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def owned_by(obj: dict[str, Any], kind: str, name: str) -> bool:
    return any(ref["kind"] == kind and ref["name"] == name for ref in obj["metadata"].get("ownerReferences", []))


def test_controller_manager_turns_a_deployment_into_a_replicaset_and_pending_pods(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(deployment_manifest("web", namespace, replicas=2)))

    def replica_set() -> dict[str, Any] | None:
        items = kubectl_json(control_plane, "-n", namespace, "get", "replicasets")["items"]
        owned = [rs for rs in items if owned_by(rs, "Deployment", "web")]
        return owned[0] if owned else None

    rs = wait_for("a ReplicaSet owned by Deployment web", replica_set)
    assert rs["spec"]["replicas"] == 2

    def pods() -> list[dict[str, Any]] | None:
        items = kubectl_json(control_plane, "-n", namespace, "get", "pods")["items"]
        owned = [pod for pod in items if owned_by(pod, "ReplicaSet", rs["metadata"]["name"])]
        return owned if len(owned) == 2 else None

    # Pod admission needs the namespace's `default` ServiceAccount, which the serviceaccount controller
    # creates; without a scheduler or nodes the pods then stay Pending.
    created = wait_for("2 pods owned by the ReplicaSet", pods)
    assert [pod["status"]["phase"] for pod in created] == ["Pending", "Pending"]
    assert {pod["spec"]["serviceAccountName"] for pod in created} == {"default"}
    assert all("nodeName" not in pod["spec"] for pod in created)


def test_controller_manager_publishes_the_cluster_ca_into_new_namespaces(
    control_plane: ControlPlane, namespace: str
) -> None:
    def root_ca() -> str | None:
        result = control_plane.kubectl(
            "-n", namespace, "get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}", check=False
        )
        return result.stdout if result.returncode == 0 else None

    assert wait_for("kube-root-ca.crt", root_ca).strip() == control_plane.pki.ca.cert.read_text().strip()


def test_hpa_controller_runs_and_reports_the_missing_metrics_api(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(deployment_manifest("web", namespace, replicas=1)))
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                }
            ],
        },
    }
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(hpa))

    def scaling_active_condition() -> dict[str, Any] | None:
        status = kubectl_json(control_plane, "-n", namespace, "get", "hpa", "web").get("status", {})
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        return conditions.get("ScalingActive")

    # No metrics.k8s.io APIService is registered yet, so the controller (5s sync) can read the scale
    # subresource but gets no CPU metrics.
    condition = wait_for("the HPA's ScalingActive condition", scaling_active_condition)
    assert (condition["status"], condition["reason"]) == ("False", "FailedGetResourceMetric")
    assert condition["message"].endswith("the server could not find the requested resource (get pods.metrics.k8s.io)")


def _connectable(url: str) -> bool:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


def test_stop_leaves_no_process_port_or_etcd_data_behind(control_plane: ControlPlane, tmp_path: Path) -> None:
    # A second, independent control plane (own PKI and ports) next to the session one.
    cluster = start_control_plane(build_binaries(), tmp_path / "second")
    try:
        pids = [process.pid for process in cluster.processes]
        urls = [cluster.etcd_url, cluster.apiserver_url, cluster.controller_manager_url]
        assert len(pids) == 3
        assert all(_connectable(url) for url in urls)
        assert cluster.etcd_data_dir.is_dir()
    finally:
        cluster.stop()

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    assert not any(_connectable(url) for url in urls)
    assert not cluster.etcd_data_dir.exists()
    assert not (tmp_path / "second" / "processes.json").exists()
    # The session's control plane is untouched.
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout == "ok"
