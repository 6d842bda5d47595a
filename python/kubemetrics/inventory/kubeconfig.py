"""How to reach kube-apiserver: from a kubeconfig file (`--kubeconfig`, its current context) or from the
in-cluster environment (KUBERNETES_SERVICE_HOST/PORT and the mounted service-account token and CA), the
two sources metrics-server's rest config comes from.

Supported kubeconfig fields: cluster `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`,
`tls-server-name`; user `client-certificate(-data)` + `client-key(-data)`, `token`, `tokenFile`. Relative
paths are relative to the kubeconfig's directory, as kubectl resolves them. Exec plugins and auth
providers are not supported and are reported as such rather than silently sending no credentials.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(ValueError):
    """The API server configuration cannot be used; the message names the file or variable and the field."""


@dataclass(frozen=True, slots=True)
class PemSource:
    """PEM material given either inline (kubeconfig `*-data`, base64-decoded) or as a file path."""

    data: bytes = b""
    path: str = ""

    def __bool__(self) -> bool:
        return bool(self.data or self.path)

    def read(self) -> bytes:
        return self.data or Path(self.path).read_bytes()


class TokenSource:
    """A bearer token, fixed or read from a file that is re-read whenever it changes (projected
    service-account tokens are rotated in place by the kubelet, roughly hourly)."""

    def __init__(self, token: str = "", path: str = "") -> None:
        self.path = path
        self._token = token.strip()
        self._version: tuple[int, int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self._token or self.path)

    def current(self) -> str:
        """The token now (a file that became unreadable keeps its last good value)."""
        if not self.path:
            return self._token
        try:
            stat = os.stat(self.path)
            version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if version != self._version:
                self._token = Path(self.path).read_text().strip()
                self._version = version
        except OSError:
            pass
        return self._token


@dataclass(frozen=True, slots=True)
class ApiServerConfig:
    server: str  # "https://host:port", no trailing slash
    certificate_authority: PemSource = PemSource()
    client_certificate: PemSource = PemSource()
    client_key: PemSource = PemSource()
    token: TokenSource | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""
    origin: str = ""  # where this came from, for messages: "kubeconfig /x (context c)" or "in-cluster"

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server against the configured CA (the system roots without one) unless
        insecure-skip-tls-verify, and presents the client certificate when there is one."""
        if self.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.certificate_authority:
            # The configured CA only, as client-go does: the system roots must not vouch for an apiserver.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(cadata=self._pem(self.certificate_authority, "certificate authority"))
        else:
            context = ssl.create_default_context()
        if self.client_certificate:
            self._load_client_certificate(context)
        return context

    def authorization(self) -> str | None:
        """The Authorization header value, read fresh for each request (the token file may rotate)."""
        if self.token is None:
            return None
        token = self.token.current()
        return f"Bearer {token}" if token else None

    def _pem(self, source: PemSource, what: str) -> str:
        try:
            return source.read().decode()
        except (OSError, UnicodeDecodeError) as err:
            raise KubeconfigError(
                f"{self.origin}: cannot read the {what} {source.path or '(inline data)'}: {err}"
            ) from err

    def _load_client_certificate(self, context: ssl.SSLContext) -> None:
        if not self.client_key:
            raise KubeconfigError(f"{self.origin}: a client certificate is configured without a client key")
        certificate = self._pem(self.client_certificate, "client certificate")
        key = self._pem(self.client_key, "client key")
        # ssl only loads a certificate chain from files: inline data goes through a private temporary
        # directory that is removed as soon as it has been read.
        with tempfile.TemporaryDirectory(prefix="kubemetrics-client-") as directory:
            cert_path, key_path = Path(directory, "client.crt"), Path(directory, "client.key")
            cert_path.write_text(certificate)
            key_path.touch(mode=0o600)
            key_path.write_text(key)
            try:
                context.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as err:
                raise KubeconfigError(f"{self.origin}: client certificate and key do not load: {err}") from err


def load_api_server_config(
    kubeconfig: str = "",
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> ApiServerConfig:
    """From `kubeconfig` when given, else in-cluster (metrics-server's order: --kubeconfig wins)."""
    if kubeconfig:
        return load_kubeconfig(kubeconfig)
    return in_cluster_config(os.environ if environ is None else environ, service_account_dir)


def in_cluster_config(environ: Mapping[str, str], service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> ApiServerConfig:
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeconfigError(
            "no API server configured: pass --kubeconfig, or run in a pod (KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT are not set)"
        )
    token_path = service_account_dir / "token"
    if not token_path.is_file():
        raise KubeconfigError(f"in-cluster: no service-account token at {token_path}")
    ca_path = service_account_dir / "ca.crt"
    bracketed = f"[{host}]" if ":" in host else host
    return ApiServerConfig(
        server=f"https://{bracketed}:{port}",
        certificate_authority=PemSource(path=str(ca_path)) if ca_path.is_file() else PemSource(),
        token=TokenSource(path=str(token_path)),
        origin="in-cluster",
    )


def load_kubeconfig(path: str | os.PathLike[str]) -> ApiServerConfig:
    """The current context of a kubeconfig file."""
    location = Path(path)
    try:
        document = yaml.safe_load(location.read_text())
    except OSError as err:
        raise KubeconfigError(f"kubeconfig {location}: cannot read: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise KubeconfigError(f"kubeconfig {location}: not valid YAML: {err}") from err
    return _KubeconfigReader(location, document).current()


class _KubeconfigReader:
    def __init__(self, path: Path, document: object) -> None:
        self.path = path
        self.base = path.parent
        if not isinstance(document, dict):
            raise self._error("top level", "expected a mapping")
        self.document = document

    def _error(self, where: str, problem: str) -> KubeconfigError:
        return KubeconfigError(f"kubeconfig {self.path}: {where}: {problem}")

    def current(self) -> ApiServerConfig:
        context_name = self.document.get("current-context")
        if not isinstance(context_name, str) or not context_name:
            raise self._error("current-context", "not set")
        context = self._named("contexts", context_name, "context")
        cluster_name, user_name = context.get("cluster"), context.get("user")
        if not isinstance(cluster_name, str) or not cluster_name:
            raise self._error(f"context {context_name!r}", "names no cluster")
        cluster = self._named("clusters", cluster_name, "cluster")
        user = self._named("users", user_name, "user") if isinstance(user_name, str) and user_name else {}
        where = f"cluster {cluster_name!r}"
        server = cluster.get("server")
        if not isinstance(server, str) or not server:
            raise self._error(where, "no server")
        if "exec" in user or "auth-provider" in user:
            raise self._error(f"user {user_name!r}", "exec plugins and auth providers are not supported")
        token_file = self._path(user.get("tokenFile"))
        return ApiServerConfig(
            server=server.rstrip("/"),
            certificate_authority=self._pem(cluster, "certificate-authority", where),
            client_certificate=self._pem(user, "client-certificate", f"user {user_name!r}"),
            client_key=self._pem(user, "client-key", f"user {user_name!r}"),
            token=TokenSource(token=str(user.get("token") or ""), path=token_file)
            if user.get("token") or token_file
            else None,
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
            tls_server_name=str(cluster.get("tls-server-name") or ""),
            origin=f"kubeconfig {self.path} (context {context_name})",
        )

    def _named(self, section: str, name: object, kind: str) -> dict[str, object]:
        entries = self.document.get(section) or []
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, dict) and entry.get("name") == name:
                    body = entry.get(kind) or {}
                    if not isinstance(body, dict):
                        raise self._error(f"{kind} {name!r}", "expected a mapping")
                    return body
        raise self._error(section, f"no {kind} named {name!r}")

    def _pem(self, fields: dict[str, object], key: str, where: str) -> PemSource:
        inline = fields.get(f"{key}-data")
        if inline:
            try:
                return PemSource(data=base64.b64decode(str(inline), validate=True))
            except (binascii.Error, ValueError) as err:
                raise self._error(f"{where}: {key}-data", f"not valid base64: {err}") from err
        return PemSource(path=self._path(fields.get(key)))

    def _path(self, value: object) -> str:
        if not value:
            return ""
        return str(self.base / os.path.expanduser(str(value)))
