"""A small Kubernetes API client for hollow mode: kubeconfig loading, JSON requests, list + watch.

Only what the hollow kubelets need, on aiohttp and orjson. A kubeconfig is read as JSON (valid
kubeconfig YAML); a YAML one is converted by `kubectl config view --raw --flatten --minify -o json`
when kubectl is installed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message names the file and what is wrong."""


class ApiError(RuntimeError):
    """A request the API server refused or that failed on the way."""

    def __init__(self, method: str, url: str, status: int, message: str) -> None:
        super().__init__(f"{method} {url}: {'HTTP ' + str(status) + ': ' if status else ''}{message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class ApiConnection:
    server: str
    ssl_context: ssl.SSLContext
    headers: Mapping[str, str] = field(default_factory=dict)


def _kubeconfig_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as err:
        raise KubeconfigError(f"kubeconfig {path}: {err.strerror or err}") from err
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        document = _converted_by_kubectl(path)
    if not isinstance(document, dict):
        raise KubeconfigError(f"kubeconfig {path}: expected an object at the top level")
    return document


def _converted_by_kubectl(path: Path) -> object:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise KubeconfigError(
            f"kubeconfig {path} is not JSON and kubectl is not installed to convert it "
            "(`kubectl config view --raw --flatten --minify -o json`)"
        )
    result = subprocess.run(
        [kubectl, "config", "view", "--raw", "--flatten", "--minify", "-o", "json", f"--kubeconfig={path}"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise KubeconfigError(f"kubeconfig {path}: kubectl cannot read it: {result.stderr.decode().strip()}")
    return orjson.loads(result.stdout)


def _named(document: dict[str, Any], kind: str, name: str, path: Path) -> dict[str, Any]:
    for entry in document.get(kind) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(kind[:-1])
            if isinstance(value, dict):
                return value
    raise KubeconfigError(f"kubeconfig {path}: no {kind[:-1]} named {name!r}")


def _pem(section: dict[str, Any], key: str, base_dir: Path) -> bytes | None:
    data = section.get(f"{key}-data")
    if data:
        return base64.b64decode(str(data))
    file = section.get(key)
    if file:
        return (base_dir / str(file)).read_bytes()
    return None


def load_kubeconfig(path: Path) -> ApiConnection:
    """The current context's server, TLS settings and credentials (client certificate or token)."""
    document = _kubeconfig_document(path)
    context_name = document.get("current-context")
    if not context_name:
        raise KubeconfigError(f"kubeconfig {path}: no current-context")
    context = _named(document, "contexts", context_name, path)
    cluster = _named(document, "clusters", context.get("cluster", ""), path)
    user = _named(document, "users", context.get("user", ""), path) if context.get("user") else {}
    server = str(cluster.get("server", "")).rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"kubeconfig {path}: cluster server {server!r} is not an http(s) URL")
    base_dir = path.resolve().parent
    try:
        ca = _pem(cluster, "certificate-authority", base_dir)
        context_ssl = ssl.create_default_context(cadata=ca.decode() if ca else None)
        if cluster.get("insecure-skip-tls-verify"):
            context_ssl.check_hostname = False
            context_ssl.verify_mode = ssl.CERT_NONE
        cert = _pem(user, "client-certificate", base_dir)
        key = _pem(user, "client-key", base_dir)
    except (OSError, ValueError, ssl.SSLError) as err:
        raise KubeconfigError(f"kubeconfig {path}: {err}") from err
    if cert and key:
        _load_client_certificate(context_ssl, cert, key, path)
    headers: dict[str, str] = {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base_dir / user["tokenFile"]).read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return ApiConnection(server=server, ssl_context=context_ssl, headers=headers)


def _load_client_certificate(context: ssl.SSLContext, cert: bytes, key: bytes, path: Path) -> None:
    # ssl only loads a key pair from files: write it to a private temporary file for the moment it takes.
    descriptor, name = tempfile.mkstemp(prefix="kubemetrics-client-", suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(cert.rstrip(b"\n") + b"\n" + key)
        context.load_cert_chain(name)
    except ssl.SSLError as err:
        raise KubeconfigError(f"kubeconfig {path}: client certificate or key unusable: {err}") from err
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


class KubeClient:
    """JSON requests against one API server, on one aiohttp session."""

    def __init__(self, connection: ApiConnection, request_timeout: float = 30.0) -> None:
        self.connection = connection
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=connection.ssl_context, limit=32),
            headers={"Accept": JSON, "User-Agent": "kubemetrics-hollow-kubelet", **connection.headers},
            json_serialize=lambda value: orjson.dumps(value).decode(),
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        content_type: str = JSON,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The decoded response; raises ApiError for any status but 2xx."""
        url = self.connection.server + path
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, params=params, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ApiError(method, url, 0, f"{type(err).__name__}: {err}") from err
        decoded = _decode(raw)
        if not 200 <= status < 300:
            message = decoded.get("message") if isinstance(decoded, dict) else None
            raise ApiError(method, url, status, str(message or raw[:300].decode(errors="replace")))
        return decoded if isinstance(decoded, dict) else {}

    async def list_all(self, path: str, page_size: int = 500) -> tuple[list[dict[str, Any]], str]:
        """Every item of a collection (paged) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        params = {"limit": str(page_size)}
        while True:
            page = await self.request("GET", path, params=params)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                return items, str(metadata.get("resourceVersion", ""))
            params = {"limit": str(page_size), "continue": token}

    async def watch(
        self, path: str, resource_version: str, timeout_seconds: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) until the server ends the watch; an ERROR event is yielded
        as is (a 410 Gone in it means: list again)."""
        url = self.connection.server + path
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_seconds + 60)
        try:
            async with self._session.get(url, params=params, timeout=timeout) as response:
                if response.status != 200:
                    raw = await response.read()
                    raise ApiError("GET", url + "?watch=1", response.status, raw[:300].decode(errors="replace"))
                pending = b""
                async for chunk in response.content.iter_any():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            event = orjson.loads(line)
                            if isinstance(event, dict):
                                yield event
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ApiError("GET", url + "?watch=1", 0, f"{type(err).__name__}: {err}") from err


def _decode(raw: bytes) -> object:
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
