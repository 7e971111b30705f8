"""What roombook caches, under which keys and for how long (HLD §7), and a cache wrapper whose
outages look like misses, so a request falls back to the source instead of failing.

    availability:{room_id}:g{gen}:{from}:{to}   30-120 s   calendar of one room over [from, to)
    room:{room_id}:details               5-30 min   a room's details for pages
    search:{generation}:{query_hash}     30-300 s   one page of search results

Search keys carry the `search` namespace's generation: bumping it (on room.updated, say)
invalidates every cached search at once; the old entries are never read again and expire.
Availability keys carry their room's generation (namespace `availability:{room_id}`) the same
way, since a room's entries cover many ranges that no one could list to delete them: bumping it
on availability.updated drops them all. A reader takes the generation before reading the source,
so a value read before a change can only land under a generation already left behind.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec

from roombook.domain.errors import CacheUnavailable
from roombook.domain.search import RoomQuery
from roombook.storage.cache.memory_cache import MemoryCache
from roombook.storage.cache.redis_cache import RedisCache
from roombook.storage.ports import Cache

T = TypeVar("T")
log = logging.getLogger(__name__)

SEARCH_NAMESPACE = "search"


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """TTLs default to the middle of the HLD's ranges. No redis_url: the embedded MemoryCache."""

    availability_ttl_s: float = 60.0  # HLD: 30-120 s
    room_details_ttl_s: float = 600.0  # HLD: 5-30 min
    search_ttl_s: float = 120.0  # HLD: 30-300 s
    redis_url: str | None = None
    key_prefix: str = "roombook:"  # one per deployment sharing a Redis
    memory_max_entries: int = 100_000
    memory_max_bytes: int = 64 * 2**20
    outage_retry_after_s: float = 1.0  # how long ResilientCache leaves a failed backend alone

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, int | float) and value <= 0:
                raise ValueError(f"{name} must be positive")


def availability_namespace(room_id: int) -> str:
    return f"availability:{room_id}"


def availability_key(room_id: int, start: dt.date, end: dt.date, *, generation: int | None = None) -> str:
    """With the room's generation (see availability_namespace), as every cached calendar is stored."""
    range_ = f"{start.isoformat()}:{end.isoformat()}"
    if generation is None:
        return f"availability:{room_id}:{range_}"
    return f"availability:{room_id}:g{generation}:{range_}"


def room_details_key(room_id: int) -> str:
    return f"room:{room_id}:details"


_query_encoder = msgspec.json.Encoder()


def query_hash(query: RoomQuery) -> str:
    """The same for equal queries (a normalised RoomQuery encodes its fields in a fixed order)."""
    return hashlib.blake2b(_query_encoder.encode(query), digest_size=16).hexdigest()


def search_key(generation: int, query: RoomQuery) -> str:
    return f"search:{generation}:{query_hash(query)}"


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


def open_cache(settings: CacheSettings) -> ResilientCache:
    """The configured cache, wrapped; use it with `async with`. Connects on first use, not here."""
    inner: Cache
    if settings.redis_url is None:
        inner = MemoryCache(max_entries=settings.memory_max_entries, max_bytes=settings.memory_max_bytes)
    else:
        inner = RedisCache(settings.redis_url, prefix=settings.key_prefix)
    return ResilientCache(inner, retry_after_s=settings.outage_retry_after_s)
