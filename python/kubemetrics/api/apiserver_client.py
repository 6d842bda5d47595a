"""The front's connection to kube-apiserver for delegated authentication and authorization.

As the generic apiserver's `--authentication-kubeconfig`/`--authorization-kubeconfig`: a kubeconfig
file when given, else the in-cluster configuration, else nothing (standalone mode). Reading the
kubeconfig is inventory/kubeconfig.py's job; this module adds the one aiohttp session that
TokenReview, SubjectAccessReview and the ConfigMap read share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp

from kubemetrics.inventory.kubeconfig import SERVICE_ACCOUNT_DIR, ApiServerConfig, load_api_server_config

# The delegating clients of k8s.io/apiserver time out after 10 s.
REQUEST_TIMEOUT_SECONDS: Final = 10.0


class ApiServerRequestError(RuntimeError):
    """A request to kube-apiserver failed (network, or a non-2xx answer); the message names the URL.
    `status` is the HTTP status, 0 when there was no answer."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def resolve_connection(
    kubeconfig: str, environ: Mapping[str, str] | None = None, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ApiServerConfig | None:
    """The kubeconfig file if given, else the in-cluster configuration, else None (not in a cluster).
    Raises KubeconfigError for a kubeconfig that cannot be used."""
    env = os.environ if environ is None else environ
    if not kubeconfig and not (env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT")):
        return None
    return load_api_server_config(kubeconfig, env, service_account_dir)


class ApiServerClient:
    """One aiohttp session to kube-apiserver. JSON in, JSON out."""

    def __init__(self, config: ApiServerConfig) -> None:
        self.config = config
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=config.ssl_context(), limit=32),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
        )

    async def close(self) -> None:
        await self._session.close()

    async def get_json(self, path: str) -> dict[str, Any]:
        return await self._request("GET", path, None)

    async def post_json(self, path: str, body: Mapping[str, object]) -> dict[str, Any]:
        return await self._request("POST", path, body)

    async def _request(self, method: str, path: str, body: Mapping[str, object] | None) -> dict[str, Any]:
        url = self.config.server + path
        headers = {"Accept": "application/json", "User-Agent": "kubemetrics"}
        authorization = self.config.authorization()
        if authorization:
            headers["Authorization"] = authorization
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, server_hostname=self.config.tls_server_name or None
            ) as response:
                payload = await response.read()
                if response.status >= 300:
                    raise ApiServerRequestError(
                        f"{method} {url}: HTTP {response.status}: {_status_message(payload)}", response.status
                    )
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ApiServerRequestError(f"{method} {url}: {type(err).__name__}: {err}") from err
        try:
            document = json.loads(payload)
        except ValueError as err:
            raise ApiServerRequestError(f"{method} {url}: the answer is not JSON: {err}") from err
        if not isinstance(document, dict):
            raise ApiServerRequestError(f"{method} {url}: the answer is not a JSON object")
        return document


def _status_message(payload: bytes) -> str:
    """A Status answer's message, else the start of the body."""
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if isinstance(document, dict) and "message" in document:
        return str(document["message"])
    return payload[:200].decode("utf-8", "replace")
