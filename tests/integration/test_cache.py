"""The Cache contract on the embedded cache and on the real Redis (ROOMBOOK_TEST_REDIS_URL, default
127.0.0.1:6379), each test under its own key prefix, removed afterwards; and ResilientCache in
front of a Redis that refuses connections.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis
import redis.exceptions

from roombook.bootstrap import open_cache
from roombook.domain.errors import CacheUnavailable
from roombook.domain.search import RoomQuery
from roombook.storage.cache.keys import (
    SEARCH_NAMESPACE,
    CacheSettings,
    availability_key,
    room_details_key,
    search_key,
)
from roombook.storage.cache.memory_cache import MemoryCache
from roombook.storage.cache.redis_cache import RedisCache
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.ports import Cache

REDIS_URL = os.environ.get("ROOMBOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_PREFIX = f"roombook-test:{secrets.token_hex(4)}:"  # this test run's keys, all under it


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the test Redis; every key under it is deleted after."""
    prefix = f"{RUN_PREFIX}{secrets.token_hex(3)}:"
    with redis.Redis.from_url(REDIS_URL) as raw:
        try:
            raw.ping()
        except redis.exceptions.ConnectionError as exc:
            pytest.fail(
                f"the test Redis at {REDIS_URL} is unreachable ({exc}). Start it with `redis-server --daemonize yes "
                '--bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no` or set ROOMBOOK_TEST_REDIS_URL.',
                pytrace=False,
            )
        yield prefix
        keys = list(raw.scan_iter(match=prefix + "*"))
        if keys:
            raw.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        async with MemoryCache() as memory:
            yield memory
    else:
        async with RedisCache(REDIS_URL, prefix=request.getfixturevalue("redis_prefix")) as remote:
            yield remote


def refused_url() -> str:
    """A Redis URL on a loopback port nothing listens on: bound, then closed again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


# -- the contract --------------------------------------------------------------------------------


async def test_get_returns_what_set_stored(cache: Cache) -> None:
    assert await cache.get("room:1:details") is None
    await cache.set("room:1:details", b'{"title": "Loft"}', ttl_s=60)
    assert await cache.get("room:1:details") == b'{"title": "Loft"}'
    await cache.set("room:1:details", b"replaced", ttl_s=60)
    assert await cache.get("room:1:details") == b"replaced"


async def test_an_entry_expires_after_its_ttl(cache: Cache) -> None:
    await cache.set("short", b"1", ttl_s=0.15)
    await cache.set("long", b"2", ttl_s=60)
    await asyncio.sleep(0.4)
    assert await cache.get("short") is None
    assert await cache.get_many(["short", "long"]) == [None, b"2"]


async def test_setting_again_restarts_the_ttl(cache: Cache) -> None:
    await cache.set("k", b"1", ttl_s=0.15)
    await cache.set("k", b"2", ttl_s=60)
    await asyncio.sleep(0.4)
    assert await cache.get("k") == b"2"


async def test_get_many_answers_in_the_order_of_the_keys(cache: Cache) -> None:
    await cache.set("a", b"A", ttl_s=60)
    await cache.set("c", b"C", ttl_s=60)
    assert await cache.get_many(["c", "b", "a", "c"]) == [b"C", None, b"A", b"C"]
    assert await cache.get_many([]) == []


async def test_delete_removes_keys_and_ignores_missing_ones(cache: Cache) -> None:
    await cache.set("a", b"A", ttl_s=60)
    await cache.set("b", b"B", ttl_s=60)
    await cache.delete(["a", "never-set"])
    await cache.delete([])
    assert await cache.get_many(["a", "b"]) == [None, b"B"]


async def test_a_ttl_must_be_positive(cache: Cache) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        await cache.set("a", b"A", ttl_s=0)


async def test_bumping_the_generation_invalidates_every_search(cache: Cache) -> None:
    query = RoomQuery(city="Paris")
    before = await cache.generation(SEARCH_NAMESPACE)
    assert await cache.generation(SEARCH_NAMESPACE) == before
    await cache.set(search_key(before, query), b"page", ttl_s=60)
    rooms_generation = await cache.generation("rooms")
    after = await cache.bump_generation(SEARCH_NAMESPACE)
    assert after > before
    assert await cache.generation(SEARCH_NAMESPACE) == after
    assert await cache.get(search_key(after, query)) is None
    assert await cache.generation("rooms") == rooms_generation
    assert await cache.bump_generation(SEARCH_NAMESPACE) > after


# -- adapter specifics ---------------------------------------------------------------------------


async def test_memory_cache_evicts_the_least_recently_used_entry() -> None:
    async with MemoryCache(max_entries=2) as cache:
        await cache.set("a", b"A", ttl_s=60)
        await cache.set("b", b"B", ttl_s=60)
        assert await cache.get("a") == b"A"  # now b is the least recently used
        await cache.set("c", b"C", ttl_s=60)
        assert await cache.get_many(["a", "b", "c"]) == [b"A", None, b"C"]


async def test_memory_cache_keeps_its_values_within_max_bytes() -> None:
    async with MemoryCache(max_bytes=10) as cache:
        await cache.set("a", b"12345", ttl_s=60)
        await cache.set("b", b"12345", ttl_s=60)
        await cache.set("c", b"123", ttl_s=60)
        await cache.set("huge", b"x" * 11, ttl_s=60)
        assert await cache.get_many(["a", "b", "c", "huge"]) == [None, b"12345", b"123", None]


async def test_memory_cache_expires_on_its_clock() -> None:
    now = [100.0]
    async with MemoryCache(clock=lambda: now[0]) as cache:
        await cache.set("a", b"A", ttl_s=30)
        now[0] = 129.9
        assert await cache.get("a") == b"A"
        now[0] = 130.0
        assert await cache.get("a") is None
        assert len(cache) == 0


async def test_redis_prefixes_keep_deployments_apart(redis_prefix: str) -> None:
    async with (
        RedisCache(REDIS_URL, prefix=redis_prefix + "eu:") as eu,
        RedisCache(REDIS_URL, prefix=redis_prefix + "us:") as us,
    ):
        await eu.set("room:1:details", b"eu", ttl_s=60)
        assert await us.get("room:1:details") is None
        us_generation = await us.generation(SEARCH_NAMESPACE)
        await eu.bump_generation(SEARCH_NAMESPACE)
        assert await us.generation(SEARCH_NAMESPACE) == us_generation
        assert await eu.get("room:1:details") == b"eu"


async def test_a_lost_redis_generation_restarts_above_its_old_value(redis_prefix: str) -> None:
    async with RedisCache(REDIS_URL, prefix=redis_prefix) as cache:
        for _ in range(3):
            last = await cache.bump_generation(SEARCH_NAMESPACE)
        await cache.redis.delete(f"{redis_prefix}generation:{SEARCH_NAMESPACE}")  # as maxmemory eviction would
        assert await cache.generation(SEARCH_NAMESPACE) > last


async def test_redis_errors_surface_as_cache_unavailable() -> None:
    async with RedisCache(refused_url(), prefix="unused:") as cache:
        with pytest.raises(CacheUnavailable):
            await cache.get("a")
        with pytest.raises(CacheUnavailable):
            await cache.bump_generation(SEARCH_NAMESPACE)


# -- degrading -----------------------------------------------------------------------------------


async def test_resilient_cache_turns_a_refused_connection_into_misses() -> None:
    async with ResilientCache(RedisCache(refused_url(), prefix="unused:"), retry_after_s=0.0) as cache:
        assert await cache.get("room:1:details") is None
        assert await cache.get_many(["a", "b"]) == [None, None]
        await cache.set("a", b"A", ttl_s=60)
        await cache.delete(["a"])
        assert await cache.generation(SEARCH_NAMESPACE) is None
        assert await cache.bump_generation(SEARCH_NAMESPACE) is None
        assert await cache.get_or_load("a", 60, _load(b"from the source")) == b"from the source"
        assert not cache.available
        assert cache.degraded == {"get": 2, "get_many": 1, "set": 2, "delete": 1, "generation": 1, "bump_generation": 1}


class SwitchableCache(MemoryCache):
    """A memory cache whose backend can be switched off, to watch ResilientCache recover."""

    down = False

    async def get(self, key: str) -> bytes | None:
        if self.down:
            raise CacheUnavailable("switched off")
        return await super().get(key)


async def test_resilient_cache_leaves_a_failed_backend_alone_then_recovers() -> None:
    now = [0.0]
    inner = SwitchableCache()
    async with ResilientCache(inner, retry_after_s=5.0, clock=lambda: now[0]) as cache:
        await cache.set("a", b"A", ttl_s=600)
        inner.down = True
        assert await cache.get("a") is None
        inner.down = False
        now[0] = 4.9
        assert await cache.get("a") is None  # not asked again before retry_after_s
        now[0] = 5.0
        assert await cache.get("a") == b"A"
        assert cache.available
        assert cache.degraded == {"get": 2}


# -- keys and settings ---------------------------------------------------------------------------


def test_keys_name_the_room_the_range_and_the_query() -> None:
    assert availability_key(7, dt.date(2031, 5, 1), dt.date(2031, 5, 4)) == "availability:7:2031-05-01:2031-05-04"
    assert room_details_key(7) == "room:7:details"
    paris = search_key(3, RoomQuery(city="Paris", amenities="wifi,pool"))
    assert paris.startswith("search:3:")
    assert paris == search_key(3, RoomQuery(city=" paris", amenities="pool,wifi,Pool"))
    assert paris != search_key(3, RoomQuery(city="Lyon"))


def test_cache_settings_default_inside_each_keys_ttl_range() -> None:
    settings = CacheSettings()
    assert 30 <= settings.availability_ttl_s <= 120
    assert 300 <= settings.room_details_ttl_s <= 1800
    assert 30 <= settings.search_ttl_s <= 300
    with pytest.raises(ValueError, match="search_ttl_s"):
        CacheSettings(search_ttl_s=0)


async def test_open_cache_is_embedded_without_a_redis_url(redis_prefix: str) -> None:
    async with open_cache(CacheSettings()) as embedded:
        assert isinstance(embedded.cache, MemoryCache)
    async with open_cache(CacheSettings(redis_url=REDIS_URL, key_prefix=redis_prefix)) as remote:
        assert isinstance(remote.cache, RedisCache)
        await remote.set("a", b"A", ttl_s=60)
        assert await remote.get("a") == b"A"


def _load(value: bytes) -> Callable[[], Awaitable[bytes]]:
    async def load() -> bytes:
        return value

    return load
