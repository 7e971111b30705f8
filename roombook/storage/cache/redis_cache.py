"""The cache on Redis, through redis.asyncio.

Every key is stored under `prefix` (one per deployment, or per test run), so several can share a
server. Nothing connects before the first command: a cache that is down when the process starts
must not stop it. Any driver or socket error is raised as CacheUnavailable.

A BlockingConnectionPool bounds the connections; a command waits up to `pool_timeout_s` for one
(the default pool would raise MaxConnectionsError under a burst instead).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from roombook.domain.errors import CacheUnavailable

T = TypeVar("T")


class RedisCache:
    """Values under `<prefix><key>`, generations under `<prefix>generation:<namespace>`."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "roombook:",
        max_connections: int = 64,
        pool_timeout_s: float = 1.0,
        socket_timeout_s: float = 0.5,
    ) -> None:
        self.url = url
        self.prefix = prefix
        parts = urllib.parse.urlsplit(url)
        address = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path  # or a socket
        self._where = f"redis at {address}"  # never the URL: it may hold a password
        self._max_connections = max_connections
        self._pool_timeout_s = pool_timeout_s
        self._socket_timeout_s = socket_timeout_s
        self._redis: aioredis.Redis | None = None

    async def __aenter__(self) -> RedisCache:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=self._pool_timeout_s,
            socket_connect_timeout=self._socket_timeout_s,
            socket_timeout=self._socket_timeout_s,
            retry=Retry(NoBackoff(), 1),  # once more on a dropped connection; a cache must fail fast
        )
        self._redis = aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose closes both
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the cache is not open")
        return self._redis

    # redis-py types a reply as bytes or str; it is bytes, as the client is made without decode_responses

    async def get(self, key: str) -> bytes | None:
        return cast("bytes | None", await self._call(lambda: self.redis.get(self.prefix + key)))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._call(lambda: self.redis.mget([self.prefix + key for key in keys]))
        return cast("list[bytes | None]", values)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        ttl_ms = max(1, round(ttl_s * 1000))
        await self._call(lambda: self.redis.set(self.prefix + key, bytes(value), px=ttl_ms))

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self._call(lambda: self.redis.delete(*(self.prefix + key for key in keys)))

    async def bump_generation(self, namespace: str) -> int:
        key = self._generation_key(namespace)

        async def bump() -> int:
            async with self.redis.pipeline(transaction=True) as tx:
                tx.set(key, _generation_seed(), nx=True)
                tx.incr(key)
                _, generation = await tx.execute()
            return int(generation)

        return await self._call(bump)

    async def generation(self, namespace: str) -> int:
        key = self._generation_key(namespace)

        async def read() -> int:
            value = await self.redis.get(key)
            if value is None:  # never set, or evicted: start above any value it can have had
                async with self.redis.pipeline(transaction=True) as tx:
                    tx.set(key, _generation_seed(), nx=True)
                    tx.get(key)
                    _, value = await tx.execute()
            return int(value)

        return await self._call(read)

    def _generation_key(self, namespace: str) -> str:
        return f"{self.prefix}generation:{namespace}"

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except (RedisError, OSError, TimeoutError) as exc:
            raise CacheUnavailable(f"{self._where}: {exc}") from exc


def _generation_seed() -> int:
    """Where a missing generation counter starts: microseconds since the epoch.

    A counter evicted (maxmemory) or lost (restart without persistence) restarts from here, which
    is above its old value as long as it was bumped fewer than a million times a second on
    average, so keys built from old generations stay unreachable.
    """
    return time.time_ns() // 1_000
