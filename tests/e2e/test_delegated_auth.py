"""Delegated authentication and authorization against a real kube-apiserver.

`kubemetrics serve` runs with --authentication-kubeconfig/--authorization-kubeconfig = the fixture's
admin kubeconfig and no --client-ca-file/--requestheader-* flags, so the CAs, allowed names and
header names come from kube-system/extension-apiserver-authentication as kube-apiserver published
them. The front's inventory is a one-node file; nothing needs to be scraped to answer with an empty
node list. Review caches are set to 1 s so RBAC changes show within the test. Requests without any
credential are system:anonymous on the probe paths and a 401 everywhere else.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
from control_plane import CertAndKey, ControlPlane, free_port

NODES = "/apis/metrics.k8s.io/v1beta1/nodes"
PODS = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
FRONT_START_TIMEOUT_SECONDS = 30.0
T = TypeVar("T")


@dataclass
class Reply:
    status: int
    body: Any


@dataclass
class RunningFront:
    url: str
    serving_ca: Path
    log_path: Path

    def get(
        self,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        cert: CertAndKey | None = None,
        tls_version: ssl.TLSVersion | None = None,
    ) -> Reply:
        context = ssl.create_default_context(cafile=str(self.serving_ca))
        if tls_version is not None:
            context.minimum_version = context.maximum_version = tls_version
        if cert is not None:
            context.load_cert_chain(str(cert.cert), str(cert.key))
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return Reply(response.status, _decode(response.read()))
        except urllib.error.HTTPError as err:
            return Reply(err.code, _decode(err.read()))


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def front(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFront]:
    work = tmp_path_factory.mktemp("front")
    inventory = work / "inventory.json"
    inventory.write_text(
        json.dumps({"nodes": [{"name": "e2e-node", "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}]})
    )
    port = free_port()
    log_path = work / "front.log"
    argv = [
        sys.executable,
        "-m",
        "kubemetrics",
        "serve",
        f"--inventory-file={inventory}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={work / 'certs'}",
        "--metric-resolution=15s",
        "--workers=1",
        f"--kubelet-port={free_port()}",
        f"--authentication-kubeconfig={control_plane.admin_kubeconfig}",
        f"--authorization-kubeconfig={control_plane.admin_kubeconfig}",
        "--authentication-token-webhook-cache-ttl=1s",
        "--authorization-webhook-cache-authorized-ttl=1s",
        "--authorization-webhook-cache-unauthorized-ttl=1s",
        "-v=1",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningFront(f"https://127.0.0.1:{port}", work / "certs" / "apiserver.crt", log_path)
    try:

        def serving() -> bool | None:
            if process.poll() is not None:
                raise AssertionError(f"kubemetrics serve exited {process.returncode}:\n{log_path.read_text()}")
            try:
                return True if running.get("/healthz").status == 200 else None
            except (OSError, ssl.SSLError):
                return None

        wait_for("the front to serve /healthz", serving, timeout=FRONT_START_TIMEOUT_SECONDS)
        yield running
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"auth-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


MASTERS = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}


def test_front_proxy_client_with_masters_headers_is_served(front: RunningFront, control_plane: ControlPlane) -> None:
    reply = front.get(NODES, headers=MASTERS, cert=control_plane.pki.front_proxy_client)

    assert reply.status == 200
    assert reply.body["kind"] == "NodeMetricsList"
    log = front.log_path.read_text()
    assert f"delegated authentication via kubeconfig {control_plane.admin_kubeconfig}" in log
    # From the ConfigMap, as kube-apiserver published it.
    assert "request-header CA from configmap kube-system/extension-apiserver-authentication" in log
    assert "allowed names front-proxy-client; user headers X-Remote-User" in log


def test_front_proxy_ca_certificate_with_another_name_is_unauthorized(
    front: RunningFront, control_plane: ControlPlane
) -> None:
    intruder = control_plane.pki.issue_client_cert("auth-intruder", common_name="intruder", front_proxy=True)

    reply = front.get(NODES, headers=MASTERS, cert=intruder)
    probe = front.get("/healthz", headers=MASTERS, cert=intruder)

    # Neither system:admin from the headers nor anonymous: a bad credential is refused everywhere.
    assert (reply.status, reply.body) == (401, UNAUTHORIZED)
    assert (probe.status, probe.body) == (401, UNAUTHORIZED)
    assert "x509: subject with cn=intruder is not in the allowed list" in front.log_path.read_text()


def test_certificate_from_a_foreign_ca_is_refused(
    front: RunningFront, control_plane: ControlPlane, tmp_path: Path
) -> None:
    foreign = trustme.CA().issue_cert(common_name="front-proxy-client", organization_name="x")
    cert, key = tmp_path / "foreign.crt", tmp_path / "foreign.key"
    foreign.cert_chain_pems[0].write_to_path(str(cert))
    foreign.private_key_pem.write_to_path(str(key))

    # Each request tagged with a label selector of its own (it selects nothing), to find it in the log.
    refused_path, served_path = (f"{NODES}?labelSelector=attempt%3D{uuid.uuid4().hex}" for _ in range(2))

    # Python's ssl verifies a requested client certificate in the handshake, so the server ends the
    # connection instead of answering 401: the call raises instead of returning a Reply (an HTTP error
    # status would be a Reply). With TLS 1.2 that happens within the client's handshake; with TLS 1.3
    # the client's handshake is over first, and its request finds the connection closed.
    with pytest.raises(urllib.error.URLError) as refused_tls12:
        front.get(refused_path, headers=MASTERS, cert=CertAndKey(cert, key), tls_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(http.client.RemoteDisconnected):
        front.get(refused_path, headers=MASTERS, cert=CertAndKey(cert, key), tls_version=ssl.TLSVersion.TLSv1_3)
    still_serving = front.get(served_path, headers=MASTERS, cert=control_plane.pki.front_proxy_client)
    wait_for("the front to log the last request", lambda: True if f"GET {served_path} -> 200" in _log(front) else None)

    assert isinstance(refused_tls12.value.reason, ssl.SSLError), refused_tls12.value
    assert (still_serving.status, still_serving.body["items"]) == (200, [])
    # The refused requests never got past TLS: the request log, which has the later one, has neither.
    assert refused_path not in _log(front)


def _log(front: RunningFront) -> str:
    return front.log_path.read_text()


def test_cluster_ca_certificate_authenticates_as_its_cn_and_headers_are_ignored(
    front: RunningFront, control_plane: ControlPlane
) -> None:
    impostor = control_plane.pki.issue_client_cert("auth-impostor", common_name="front-proxy-client")

    reply = front.get(NODES, headers=MASTERS, cert=impostor)

    assert reply.status == 403
    assert reply.body["message"] == (
        'nodes.metrics.k8s.io is forbidden: User "front-proxy-client" cannot list resource "nodes" '
        'in API group "metrics.k8s.io" at the cluster scope'
    )


def test_no_client_certificate_is_unauthorized_except_on_the_probes(front: RunningFront) -> None:
    refused = [front.get(path, headers=MASTERS) for path in (NODES, PODS, "/apis/metrics.k8s.io/v1beta1")]
    healthz, livez, readyz = (front.get(path) for path in ("/healthz", "/livez", "/readyz"))

    assert [(reply.status, reply.body) for reply in refused] == [(401, UNAUTHORIZED)] * 3
    assert [(reply.status, reply.body) for reply in (healthz, livez)] == [(200, "ok")] * 2
    # Past authentication and authorization: not ready only because this front has no kubelet to scrape.
    assert readyz.status == 500
    assert "[-]metric-storage-ready failed: reason withheld" in readyz.body
    log = front.log_path.read_text()
    assert f"unable to authenticate GET {NODES} from 127.0.0.1: no credentials" in log
    assert 'SubjectAccessReview: user "system:anonymous"' not in log


def test_service_account_token_is_authorized_by_rbac(
    front: RunningFront, control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("-n", namespace, "create", "serviceaccount", "reader")
    token = control_plane.kubectl("-n", namespace, "create", "token", "reader").stdout.strip()
    user = f"system:serviceaccount:{namespace}:reader"
    bearer = {"Authorization": f"Bearer {token}"}

    denied = front.get(NODES, headers=bearer)
    role = f"{namespace}-metrics-nodes"
    # A manifest, not `kubectl create clusterrole`: that checks the resource against discovery, and no
    # APIService serves metrics.k8s.io in this cluster.
    cluster_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": role},
        "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["nodes"], "verbs": ["get", "list"]}],
    }
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(cluster_role))
    try:
        control_plane.kubectl(
            "create", "clusterrolebinding", role, f"--clusterrole={role}", f"--serviceaccount={namespace}:reader"
        )
        allowed = wait_for(
            "RBAC to allow the service account",
            lambda: reply if (reply := front.get(NODES, headers=bearer)).status == 200 else None,
        )
    finally:
        control_plane.kubectl("delete", "clusterrolebinding", role, "--ignore-not-found")
        control_plane.kubectl("delete", "clusterrole", role, "--ignore-not-found")

    assert denied.status == 403
    assert denied.body["message"] == (
        f'nodes.metrics.k8s.io is forbidden: User "{user}" cannot list resource "nodes" '
        'in API group "metrics.k8s.io" at the cluster scope'
    )
    assert allowed.body["kind"] == "NodeMetricsList"
    log = front.log_path.read_text()
    assert f'SubjectAccessReview: user "{user}"' in log
    assert "list nodes.metrics.k8s.io (cluster scope) -> allowed" in log
