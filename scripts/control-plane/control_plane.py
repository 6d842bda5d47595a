"""A test Kubernetes control plane — etcd, kube-apiserver and kube-controller-manager — run as plain
processes on loopback, with its own PKI generated per run.

Used two ways:
- imported by path from tests/e2e/conftest.py (`start_control_plane`, `ControlPlane.stop`);
- as a command for manual runs:
      python scripts/control-plane/control_plane.py up --run-dir /tmp/kc    # prints the kubeconfig path
      python scripts/control-plane/control_plane.py down --run-dir /tmp/kc

Every process gets its own process group and is stopped by PID/group (SIGTERM, then SIGKILL); the etcd
data directory is created fresh by `start_control_plane` and wiped by `stop`, because kube-apiserver
merges CA bundles into the stored `extension-apiserver-authentication` ConfigMap and a reused data
directory would keep trusting the previous run's CAs.

Needs the Python standard library, `cryptography` and the kubemetrics package (run it with the project venv).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubemetrics.certificates import self_signed_ca

SCRIPT_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = SCRIPT_DIR / "build.sh"

LOOPBACK = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# First address of the service range: the ClusterIP of default/kubernetes, which in-cluster clients dial.
KUBERNETES_SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FRONT_PROXY_CLIENT_NAME = "front-proxy-client"
ADMIN_USER = "kubemetrics-admin"

# Only what Deployments, ReplicaSets, the HPA and service accounts need, plus the aggregation of
# ClusterRoles (metrics-server's `system:aggregated-metrics-reader` relies on it). No node, volume or
# endpoint controllers: there are no nodes or kube-proxy in this cluster.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "horizontal-pod-autoscaler-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "garbage-collector-controller",
    "namespace-controller",
)

CERT_VALIDITY = dt.timedelta(days=7)
# Backdating covers small clock differences between the certificate's issuer and its verifiers.
CERT_BACKDATE = dt.timedelta(minutes=5)

STOP_GRACE_SECONDS = 10.0
START_TIMEOUT_SECONDS = 120.0
PROCESSES_FILE = "processes.json"
ETCD_DATA_DIR = "etcd-data"


class ControlPlaneError(RuntimeError):
    """A component failed to build, start or stop; the message names it and quotes its log."""


# ---------------------------------------------------------------------------------------------------
# Binaries


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path

    @classmethod
    def in_dir(cls, bin_dir: Path) -> Binaries:
        binaries = cls(bin_dir / "etcd", bin_dir / "kube-apiserver", bin_dir / "kube-controller-manager")
        missing = [
            str(path)
            for path in (binaries.etcd, binaries.kube_apiserver, binaries.kube_controller_manager)
            if not os.access(path, os.X_OK)
        ]
        if missing:
            raise ControlPlaneError(f"control-plane binaries missing: {', '.join(missing)} (run {BUILD_SCRIPT})")
        return binaries


def build_binaries(timeout: float | None = None) -> Binaries:
    """Runs build.sh (a no-op taking about a second when the binaries are cached) and returns its binaries.

    The build's progress goes to our stderr so a cold build (about a quarter of an hour) is visibly alive.
    build.sh runs in its own process group so that a timeout or an interrupt also stops the `go build`
    and compiler processes under it, not just the shell."""
    build = subprocess.Popen(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, _ = build.communicate(timeout=timeout)
    except BaseException as exc:
        _stop_group(build)
        if build.stdout is not None:
            build.stdout.close()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise ControlPlaneError(f"{BUILD_SCRIPT} did not finish within {timeout}s") from exc
        raise
    if build.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {build.returncode} (its output is above)")
    lines = stdout.strip().splitlines()
    if not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no bin directory")
    return Binaries.in_dir(Path(lines[-1]))


# ---------------------------------------------------------------------------------------------------
# PKI


@dataclass(frozen=True)
class CertAndKey:
    cert: Path
    key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 keeps generation instant; kube-apiserver, etcd and Python's ssl all accept it.
    return ec.generate_private_key(ec.SECP256R1())


def _write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _validity() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - CERT_BACKDATE, now + CERT_VALIDITY


def _create_ca(directory: Path, name: str, common_name: str) -> CertAndKey:
    key = _new_key()
    not_before, not_after = _validity()
    subject = _name(common_name)
    cert = self_signed_ca(key, subject, not_before, not_after)
    pair = CertAndKey(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private_key(pair.key, key)
    return pair


def _issue(
    directory: Path,
    name: str,
    ca: CertAndKey,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    usage: x509.ObjectIdentifier,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> CertAndKey:
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ControlPlaneError(f"{ca.key}: expected an EC private key")
    key = _new_key()
    not_before, not_after = _validity()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = CertAndKey(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private_key(pair.key, key)
    return pair


@dataclass(frozen=True)
class Pki:
    """Certificates and keys of one run. The front-proxy CA is deliberately separate from the cluster CA:
    with one CA every client certificate would pass the request-header check and then fail the
    allowed-names check, so ordinary clients could not authenticate to aggregated servers."""

    directory: Path
    ca: CertAndKey
    front_proxy_ca: CertAndKey
    apiserver: CertAndKey
    front_proxy_client: CertAndKey
    admin: CertAndKey
    controller_manager: CertAndKey
    controller_manager_serving: CertAndKey
    service_account_key: Path
    service_account_public_key: Path

    @classmethod
    def generate(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca = _create_ca(directory, "ca", "kubemetrics-test-ca")
        front_proxy_ca = _create_ca(directory, "front-proxy-ca", "kubemetrics-test-front-proxy-ca")
        client = ExtendedKeyUsageOID.CLIENT_AUTH
        server = ExtendedKeyUsageOID.SERVER_AUTH
        apiserver = _issue(
            directory,
            "apiserver",
            ca,
            common_name="kube-apiserver",
            usage=server,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=(LOOPBACK, KUBERNETES_SERVICE_IP),
        )
        front_proxy_client = _issue(
            directory, "front-proxy-client", front_proxy_ca, common_name=FRONT_PROXY_CLIENT_NAME, usage=client
        )
        # O=system:masters is bound to cluster-admin by the bootstrap RBAC policy.
        admin = _issue(directory, "admin", ca, common_name=ADMIN_USER, organizations=("system:masters",), usage=client)
        # This user name gets the bootstrap `system:kube-controller-manager` ClusterRole.
        controller_manager = _issue(
            directory, "kube-controller-manager", ca, common_name="system:kube-controller-manager", usage=client
        )
        controller_manager_serving = _issue(
            directory,
            "kube-controller-manager-serving",
            ca,
            common_name="kube-controller-manager",
            usage=server,
            dns_names=("localhost",),
            ip_addresses=(LOOPBACK,),
        )
        sa_key = _new_key()
        service_account_key = directory / "service-account.key"
        _write_private_key(service_account_key, sa_key)
        service_account_public_key = directory / "service-account.pub"
        service_account_public_key.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(
            directory,
            ca,
            front_proxy_ca,
            apiserver,
            front_proxy_client,
            admin,
            controller_manager,
            controller_manager_serving,
            service_account_key,
            service_account_public_key,
        )

    def issue_serving_cert(
        self, name: str, *, dns_names: Sequence[str] = ("localhost",), ip_addresses: Sequence[str] = (LOOPBACK,)
    ) -> CertAndKey:
        """A serving certificate signed by the cluster CA (e.g. for an aggregated API server)."""
        return _issue(
            self.directory,
            name,
            self.ca,
            common_name=name,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )

    def issue_client_cert(
        self, name: str, *, common_name: str, organizations: Sequence[str] = (), front_proxy: bool = False
    ) -> CertAndKey:
        """A client certificate signed by the cluster CA, or by the front-proxy CA if `front_proxy`."""
        return _issue(
            self.directory,
            name,
            self.front_proxy_ca if front_proxy else self.ca,
            common_name=common_name,
            organizations=organizations,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )

    def client_ssl_context(self, client: CertAndKey | None = None) -> ssl.SSLContext:
        """Verifies servers against the cluster CA and presents `client` (default: the admin cert)."""
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        identity = client or self.admin
        context.load_cert_chain(str(identity.cert), str(identity.key))
        return context


def write_kubeconfig(path: Path, *, server: str, ca_cert: Path, client: CertAndKey, user: str) -> Path:
    """A self-contained kubeconfig (certificates embedded). JSON is valid kubeconfig YAML."""

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode("ascii")

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubemetrics-test", "cluster": {"server": server, "certificate-authority-data": b64(ca_cert)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)}}
        ],
        "contexts": [{"name": "kubemetrics-test", "context": {"cluster": "kubemetrics-test", "user": user}}],
        "current-context": "kubemetrics-test",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------------------
# Processes


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs. Zombies do not count: an orphaned child (after
    `up` exited) is reaped by whatever init the machine has, which may take seconds."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_file.read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


class ManagedProcess:
    """A child in its own session (so its process group id is its PID), output appended to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log: TextIO = log_path.open("a")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def failure(self, what: str) -> ControlPlaneError:
        state = "running" if self.running() else f"exited with code {self.process.returncode}"
        return ControlPlaneError(
            f"{self.name} (pid {self.pid}, {state}) {what}; last lines of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def release(self) -> None:
        """Closes our handle on the log without stopping the process (it keeps writing to the file)."""
        self._log.close()

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to the group, SIGKILL to whatever is left after `grace` seconds, then reap."""
        try:
            _stop_group(self.process, grace)
        finally:
            self._log.close()
        if _group_alive(self.pid):
            raise ControlPlaneError(f"{self.name}: process group {self.pid} survived SIGKILL")


def _stop_group(process: subprocess.Popen[Any], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stops a child started with start_new_session=True (its group id is its PID) and reaps it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # The leader may be gone while members of its group live on; they get no second chance.
    if _group_alive(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace)


def _stop_recorded_process(name: str, pid: int, executable: str, grace: float = STOP_GRACE_SECONDS) -> None:
    """Stops a process recorded by another invocation (the `down` command), by PID and group only.

    The PID is only signalled if /proc still shows our executable under it: after a reboot or a crash
    the number may belong to an unrelated process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return  # already gone
    if cmdline != executable:
        print(f"{name}: pid {pid} now runs {cmdline!r}, not {executable!r}; leaving it alone", file=sys.stderr)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.1)
    if _group_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------------
# Readiness


def _https_get(url: str, context: ssl.SSLContext, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode(errors="replace")


def _wait_until(process: ManagedProcess, what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "not checked yet"
    while time.monotonic() < deadline:
        if not process.running():
            raise process.failure(f"exited before {what}")
        try:
            if ready():
                return
            last_error = "not ready"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, TLS not up yet, bad reply
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    raise process.failure(f"did not get {what} within {timeout:.0f}s (last check: {last_error})")


# ---------------------------------------------------------------------------------------------------
# The control plane


@dataclass
class ControlPlane:
    run_dir: Path
    binaries: Binaries
    pki: Pki
    etcd_url: str
    apiserver_url: str
    controller_manager_url: str
    admin_kubeconfig: Path
    controller_manager_kubeconfig: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def etcd_data_dir(self) -> Path:
        return self.run_dir / ETCD_DATA_DIR

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl as the cluster admin; with `check`, a non-zero exit raises with kubectl's stderr."""
        argv = ["kubectl", f"--kubeconfig={self.admin_kubeconfig}", *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise ControlPlaneError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def get_json(self, path: str) -> Any:
        """GET on kube-apiserver as the cluster admin, decoded from JSON."""
        status, body = _https_get(self.apiserver_url + path, self.pki.client_ssl_context())
        if status != 200:
            raise ControlPlaneError(f"GET {self.apiserver_url}{path}: HTTP {status}: {body[:500]}")
        return json.loads(body)

    def stop(self) -> None:
        """Stops the processes in reverse start order and wipes the etcd data; logs and PKI stay."""
        errors: list[str] = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except (ControlPlaneError, OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"{process.name}: {exc}")
        self.processes.clear()
        shutil.rmtree(self.etcd_data_dir, ignore_errors=True)
        (self.run_dir / PROCESSES_FILE).unlink(missing_ok=True)
        if errors:
            raise ControlPlaneError("stopping the control plane: " + "; ".join(errors))

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def launch(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.run_dir / f"{name}.log")
        self.processes.append(process)
        self._record_processes()
        return process

    def restart_apiserver(
        self,
        while_stopped: Callable[[], None] | None = None,
        timeout: float = START_TIMEOUT_SECONDS,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        """Stops kube-apiserver, runs `while_stopped` (e.g. to compact etcd), starts it again with the same
        flags and port and waits for /readyz: what clients see when the apiserver is upgraded or crashes.

        kube-apiserver stops listening as soon as it gets SIGTERM, but while clients hold watches it waits
        for them (up to its one-minute shutdown timeout) before exiting; it gets SIGKILL after `stop_grace`
        seconds, and only then are those watches cut."""
        index = next(i for i, p in enumerate(self.processes) if p.name == "kube-apiserver")
        old = self.processes[index]
        old.stop(stop_grace)
        if while_stopped is not None:
            while_stopped()
        apiserver = ManagedProcess(old.name, old.argv, old.log_path)
        self.processes[index] = apiserver
        self._record_processes()
        context = self.pki.client_ssl_context()
        _wait_until(
            apiserver,
            f"ready again at {self.apiserver_url}/readyz",
            lambda: _https_get(self.apiserver_url + "/readyz", context) == (200, "ok"),
            timeout,
        )

    def _record_processes(self) -> None:
        records = [{"name": p.name, "pid": p.pid, "executable": p.argv[0]} for p in self.processes]
        (self.run_dir / PROCESSES_FILE).write_text(json.dumps(records, indent=2) + "\n")


def _etcd_argv(binaries: Binaries, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client_url = f"http://{LOOPBACK}:{client_port}"
    peer_url = f"http://{LOOPBACK}:{peer_port}"
    return [
        str(binaries.etcd),
        "--name=kubemetrics-test",
        f"--data-dir={data_dir}",
        # The data is thrown away after the run; fsync only costs time on a shared disk.
        "--unsafe-no-fsync",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=kubemetrics-test={peer_url}",
        "--initial-cluster-state=new",
        "--log-level=warn",
    ]


def _apiserver_argv(binaries: Binaries, pki: Pki, etcd_url: str, port: int, extra: Sequence[str]) -> list[str]:
    return [
        str(binaries.kube_apiserver),
        f"--etcd-servers={etcd_url}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={port}",
        # The default lease reconciler would publish the loopback advertise address as the endpoint of
        # default/kubernetes, which endpoint validation rejects; nothing here dials that Service.
        "--endpoint-reconciler-type=none",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        # Front-proxy (aggregation layer) trust: what an aggregated API server reads from the
        # kube-system/extension-apiserver-authentication ConfigMap to authenticate proxied requests.
        f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT_NAME}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-uid-headers=X-Remote-Uid",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
        "--profiling=false",
        "--v=1",
        *extra,
    ]


def _default_controllers(extra: Sequence[str]) -> list[str]:
    """--controllers is a list flag: given twice, the two lists add up, so a caller's own replaces ours."""
    if any(argument.startswith("--controllers=") for argument in extra):
        return []
    return [f"--controllers={','.join(CONTROLLERS)}"]


def _controller_manager_argv(
    binaries: Binaries, pki: Pki, kubeconfig: Path, port: int, extra: Sequence[str]
) -> list[str]:
    return [
        str(binaries.kube_controller_manager),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.controller_manager_serving.cert}",
        f"--tls-private-key-file={pki.controller_manager_serving.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--leader-elect=false",
        # Each controller then acts as its own service account, e.g. the HPA as
        # system:serviceaccount:kube-system:horizontal-pod-autoscaler — the identity an aggregated
        # metrics server sees and authorizes.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        *_default_controllers(extra),
        # Test-friendly HPA timing (defaults: 15s sync, 5m downscale stabilization).
        "--horizontal-pod-autoscaler-sync-period=5s",
        "--horizontal-pod-autoscaler-downscale-stabilization=15s",
        "--profiling=false",
        "--v=1",
        *extra,
    ]


def start_control_plane(
    binaries: Binaries,
    run_dir: Path,
    *,
    apiserver_args: Sequence[str] = (),
    controller_manager_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT_SECONDS,
) -> ControlPlane:
    """Generates PKI and kubeconfigs in `run_dir`, then starts etcd, kube-apiserver (waits for /readyz)
    and kube-controller-manager (waits for /healthz). Whatever started is stopped again on failure.
    Extra arguments are appended, so they override the defaults above."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = run_dir / ETCD_DATA_DIR
    shutil.rmtree(data_dir, ignore_errors=True)
    pki = Pki.generate(run_dir / "pki")

    etcd_client_port, etcd_peer_port, apiserver_port, kcm_port = (free_port() for _ in range(4))
    apiserver_url = f"https://{LOOPBACK}:{apiserver_port}"
    cluster = ControlPlane(
        run_dir=run_dir,
        binaries=binaries,
        pki=pki,
        etcd_url=f"http://{LOOPBACK}:{etcd_client_port}",
        apiserver_url=apiserver_url,
        controller_manager_url=f"https://{LOOPBACK}:{kcm_port}",
        admin_kubeconfig=write_kubeconfig(
            run_dir / "admin.kubeconfig", server=apiserver_url, ca_cert=pki.ca.cert, client=pki.admin, user=ADMIN_USER
        ),
        controller_manager_kubeconfig=write_kubeconfig(
            run_dir / "kube-controller-manager.kubeconfig",
            server=apiserver_url,
            ca_cert=pki.ca.cert,
            client=pki.controller_manager,
            user="system:kube-controller-manager",
        ),
    )
    try:
        _start_etcd(cluster, etcd_client_port, etcd_peer_port, timeout)
        _start_apiserver(cluster, apiserver_port, apiserver_args, timeout)
        _start_controller_manager(cluster, kcm_port, controller_manager_args, timeout)
    except BaseException:
        with contextlib.suppress(ControlPlaneError):
            cluster.stop()
        raise
    return cluster


def _start_etcd(cluster: ControlPlane, client_port: int, peer_port: int, timeout: float) -> None:
    etcd = cluster.launch("etcd", _etcd_argv(cluster.binaries, cluster.etcd_data_dir, client_port, peer_port))

    def healthy() -> bool:
        with urllib.request.urlopen(cluster.etcd_url + "/health", timeout=5) as response:
            return bool(json.loads(response.read()).get("health") == "true")

    _wait_until(etcd, f"healthy at {cluster.etcd_url}/health", healthy, timeout)


def _start_apiserver(cluster: ControlPlane, port: int, extra: Sequence[str], timeout: float) -> None:
    argv = _apiserver_argv(cluster.binaries, cluster.pki, cluster.etcd_url, port, extra)
    apiserver = cluster.launch("kube-apiserver", argv)
    context = cluster.pki.client_ssl_context()
    _wait_until(
        apiserver,
        f"ready at {cluster.apiserver_url}/readyz",
        lambda: _https_get(cluster.apiserver_url + "/readyz", context) == (200, "ok"),
        timeout,
    )


def _start_controller_manager(cluster: ControlPlane, port: int, extra: Sequence[str], timeout: float) -> None:
    argv = _controller_manager_argv(cluster.binaries, cluster.pki, cluster.controller_manager_kubeconfig, port, extra)
    kcm = cluster.launch("kube-controller-manager", argv)
    context = cluster.pki.client_ssl_context()
    _wait_until(
        kcm,
        f"healthy at {cluster.controller_manager_url}/healthz",
        lambda: _https_get(cluster.controller_manager_url + "/healthz", context) == (200, "ok"),
        timeout,
    )


# ---------------------------------------------------------------------------------------------------
# Command line (manual runs)


def stop_recorded(run_dir: Path) -> list[str]:
    """Stops the processes an `up` recorded in `run_dir`, newest first; returns their names."""
    records_path = run_dir / PROCESSES_FILE
    if not records_path.exists():
        return []
    records = json.loads(records_path.read_text())
    for record in reversed(records):
        _stop_recorded_process(str(record["name"]), int(record["pid"]), str(record["executable"]))
    shutil.rmtree(run_dir / ETCD_DATA_DIR, ignore_errors=True)
    records_path.unlink()
    return [str(record["name"]) for record in records]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build if needed, start, print the admin kubeconfig path")
    up.add_argument("--run-dir", type=Path, help="default: a new directory under $TMPDIR")
    down = commands.add_parser("down", help="stop what `up` started in --run-dir")
    down.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "down":
        stopped = stop_recorded(args.run_dir)
        print(f"stopped: {', '.join(stopped) or 'nothing recorded'}", file=sys.stderr)
        return 0

    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="kubemetrics-control-plane-"))
    if (run_dir / PROCESSES_FILE).exists():
        parser.error(f"{run_dir} has a running control plane; run `down --run-dir {run_dir}` first")
    binaries = build_binaries()
    started = time.monotonic()
    cluster = start_control_plane(binaries, run_dir.resolve())
    # The children keep running after we exit (own sessions); `down` stops them from processes.json.
    for process in cluster.processes:
        process.release()
    print(f"control plane up in {time.monotonic() - started:.1f}s at {cluster.apiserver_url}", file=sys.stderr)
    print(f"stop with: {sys.executable} {Path(__file__)} down --run-dir {run_dir}", file=sys.stderr)
    print(cluster.admin_kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
