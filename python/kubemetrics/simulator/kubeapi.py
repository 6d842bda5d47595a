"""A small Kubernetes API client for hollow mode: JSON requests, list + watch.

Only what the hollow kubelets need, on aiohttp and orjson. The connection settings come from the
same kubeconfig loader as the front's inventory (kubemetrics.inventory.kubeconfig).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from kubemetrics.inventory.kubeconfig import ApiServerConfig

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(RuntimeError):
    """A request the API server refused or that failed on the way."""

    def __init__(self, method: str, url: str, status: int, message: str) -> None:
        super().__init__(f"{method} {url}: {'HTTP ' + str(status) + ': ' if status else ''}{message}")
        self.status = status


class KubeClient:
    """JSON requests against one API server, on one aiohttp session."""

    def __init__(self, connection: ApiServerConfig, request_timeout: float = 30.0) -> None:
        self.connection = connection
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=connection.ssl_context(), limit=32),
            headers={"Accept": JSON, "User-Agent": "kubemetrics-hollow-kubelet"},
            json_serialize=lambda value: orjson.dumps(value).decode(),
        )

    def _auth_headers(self) -> dict[str, str]:
        # Read per request: a token file may rotate.
        authorization = self.connection.authorization()
        return {"Authorization": authorization} if authorization else {}

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
        headers = self._auth_headers()
        if data is not None:
            headers["Content-Type"] = content_type
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

    async def list_all(
        self, path: str, page_size: int = 500, keep: Callable[[dict[str, Any]], bool] | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item of a collection (paged) and the list's resourceVersion. With `keep`, only the items
        it accepts: the others are dropped with their page, so a caller that wants a small part of a big
        collection never holds more than one page of the rest."""
        items: list[dict[str, Any]] = []
        params = {"limit": str(page_size)}
        while True:
            page = await self.request("GET", path, params=params)
            batch: list[dict[str, Any]] = page.pop("items", None) or []
            items.extend(batch if keep is None else [item for item in batch if keep(item)])
            # The dropped items go now, not once the next page has arrived beside them.
            del batch
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
            async with self._session.get(url, params=params, timeout=timeout, headers=self._auth_headers()) as response:
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
