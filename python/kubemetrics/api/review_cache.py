"""A time-limited cache of review answers (TokenReview, SubjectAccessReview) that coalesces
concurrent misses: N requests with the same token arriving together cause one review, as the
generic apiserver's cached token authenticator and webhook authorizer do (single-flight)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Expired entries are swept when the cache grows past this many, so one-off keys (a client trying
# many tokens) cannot grow it without bound between sweeps.
_SWEEP_THRESHOLD = 4096


class ReviewCache(Generic[K, V]):
    def __init__(self, ttl_of: Callable[[V], float], clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_of = ttl_of
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._in_flight: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: K, review: Callable[[], Awaitable[V]]) -> V:
        """The cached answer for `key`, or the answer of `review()` (cached for its TTL). An exception
        from `review` is not cached; every waiter of that review gets it."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await review()
        except BaseException as err:
            if isinstance(err, Exception):
                future.set_exception(err)
                # Retrieved here so that a review nobody else waited for does not log "never retrieved".
                future.exception()
            else:
                future.cancel()
            raise
        else:
            future.set_result(value)
            ttl = self._ttl_of(value)
            if ttl > 0:
                self._store(key, now + ttl, value)
            return value
        finally:
            del self._in_flight[key]

    def _store(self, key: K, expires: float, value: V) -> None:
        if len(self._entries) >= _SWEEP_THRESHOLD:
            now = self._clock()
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= _SWEEP_THRESHOLD:
                self._entries.clear()
        self._entries[key] = (expires, value)
