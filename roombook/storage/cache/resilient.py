"""A cache whose outages look like misses, so a request falls back to the source instead of failing."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from roombook.domain.errors import CacheUnavailable
from roombook.storage.ports import Cache

T = TypeVar("T")
log = logging.getLogger(__name__)


class ResilientCache:
    """Never raises CacheUnavailable: a failed call is a miss (reads) or does nothing (writes),
    counted in `degraded` per operation. After a failure the backend is left alone for
    `retry_after_s`, so an outage costs a timeout once per period rather than once per call.

    A delete lost to an outage leaves the old value until its TTL: TTLs bound how stale a cache
    can get. Generations read as None while the cache is down: do not cache searches then.
    """

    def __init__(self, cache: Cache, *, retry_after_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.cache = cache
        self.degraded: collections.Counter[str] = collections.Counter()
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._down_until: float | None = None  # None: the last call succeeded

    async def __aenter__(self) -> ResilientCache:
        await self.cache.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cache.__aexit__(*exc)

    @property
    def available(self) -> bool:
        return self._down_until is None

    async def get(self, key: str) -> bytes | None:
        return await self._call("get", None, lambda: self.cache.get(key))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._call("get_many", [None] * len(keys), lambda: self.cache.get_many(keys))

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._call("set", None, lambda: self.cache.set(key, value, ttl_s))

    async def delete(self, keys: Sequence[str]) -> None:
        await self._call("delete", None, lambda: self.cache.delete(keys))

    async def bump_generation(self, namespace: str) -> int | None:
        return await self._call("bump_generation", None, lambda: self.cache.bump_generation(namespace))

    async def generation(self, namespace: str) -> int | None:
        return await self._call("generation", None, lambda: self.cache.generation(namespace))

    async def get_or_load(self, key: str, ttl_s: float, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached value, or load()'s, cached for ttl_s (the cache being down only costs the load)."""
        value = await self.get(key)
        if value is None:
            value = await load()
            await self.set(key, value, ttl_s)
        return value

    async def _call(self, operation: str, fallback: T, command: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        if self._down_until is not None and now < self._down_until:
            self.degraded[operation] += 1
            return fallback
        try:
            result = await command()
        except CacheUnavailable as exc:
            self.degraded[operation] += 1
            if self._down_until is None:
                log.warning("cache unavailable, falling back to the source: %s", exc)
            self._down_until = now + self._retry_after_s
            return fallback
        if self._down_until is not None:
            log.info("cache available again after %d degraded calls", self.degraded.total())
            self._down_until = None
        return result
