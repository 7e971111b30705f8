"""Limits that must hold across every process of a deployment, kept in Redis: failed logins per
(email, client) in a sliding window, and the outcome of each payment idempotency key.

Each process counting for itself would multiply the login limit by the process count, and let a
payment retried on another worker be decided anew. One Redis client (a BlockingConnectionPool,
created on first use like the cache's) serves both.

Redis being down must not stop logins or payments: each limit then falls back to this process's
own in-memory version (per process, as without Redis) and says so once in the log, until Redis
answers again.
"""

from __future__ import annotations

import logging
import math
import secrets
import urllib.parse
from typing import Protocol, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from roombook.domain.errors import TooManyAttempts

log = logging.getLogger(__name__)
_FAILURES = (RedisError, OSError, TimeoutError)


class LocalThrottle(Protocol):
    """This process's own throttle (services/login_throttle.LoginThrottle), used while Redis is down."""

    async def begin(self, key: str, now_s: float) -> None: ...

    async def succeeded(self, key: str) -> None: ...


class LocalPaymentKeys(Protocol):
    """This process's own record of payment keys (services/payments.MemoryPaymentKeys)."""

    async def remember(self, key: str, record: bytes) -> bytes: ...


# KEYS[1]: the attempts of one key, a sorted set scored by time. ARGV: now, window, max, member.
# Prunes what left the window, then refuses with the seconds until the oldest leaves it, or
# records this attempt; in one step, so concurrent attempts on any process cannot slip past.
_BEGIN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + tonumber(ARGV[2]) - tonumber(ARGV[1]))
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return false
"""


class RedisLimits:
    """The shared limits of one deployment under `<prefix>login:` and `<prefix>payment:`."""

    def __init__(self, url: str, *, prefix: str = "roombook:", max_connections: int = 32) -> None:
        self.url = url
        self.prefix = prefix
        parts = urllib.parse.urlsplit(url)
        self.where = f"redis at {parts.hostname}:{parts.port or 6379}" if parts.hostname else "redis"  # no password
        self._max_connections = max_connections
        self._redis: aioredis.Redis | None = None

    async def __aenter__(self) -> RedisLimits:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self._max_connections, timeout=1.0, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        self._redis = aioredis.Redis.from_pool(pool)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the shared limits are not open")
        return self._redis

    def login_throttle(self, *, max_failures: int, window_s: float, fallback: LocalThrottle) -> RedisLoginThrottle:
        return RedisLoginThrottle(self, max_failures=max_failures, window_s=window_s, fallback=fallback)

    def payment_keys(self, *, fallback: LocalPaymentKeys, ttl_s: float = 24 * 3600) -> RedisPaymentKeys:
        return RedisPaymentKeys(self, ttl_s=ttl_s, fallback=fallback)


class _Fallback:
    """Logs the first failure of a run of them and the recovery, not every call."""

    def __init__(self, what: str, where: str) -> None:
        self._what, self._where, self.failing = what, where, False

    def failed(self, exc: BaseException) -> None:
        if not self.failing:
            log.warning("%s: %s unavailable (%s); counting in this process", self._what, self._where, exc)
        self.failing = True

    def answered(self) -> None:
        if self.failing:
            log.warning("%s: %s answers again", self._what, self._where)
        self.failing = False


class RedisLoginThrottle:
    """The LoginThrottle's rule (see services/login_throttle.py) on one sorted set per key."""

    def __init__(self, limits: RedisLimits, *, max_failures: int, window_s: float, fallback: LocalThrottle) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self._limits = limits
        self._max_failures = max_failures
        self._window_s = window_s
        self._script = limits.redis.register_script(_BEGIN)
        self._local = fallback
        self._fallback = _Fallback("login throttle", limits.where)

    def _key(self, key: str) -> str:
        return f"{self._limits.prefix}login:{key}"

    async def begin(self, key: str, now_s: float) -> None:
        member = f"{now_s:.6f}:{secrets.token_hex(4)}"  # attempts at the same instant all count
        try:
            wait = await self._script(keys=[self._key(key)], args=[now_s, self._window_s, self._max_failures, member])
        except _FAILURES as exc:
            self._fallback.failed(exc)
            await self._local.begin(key, now_s)
            return
        self._fallback.answered()
        if wait is not None:
            raise TooManyAttempts(max(1, math.ceil(float(wait))))

    async def succeeded(self, key: str) -> None:
        await self._local.succeeded(key)
        try:
            await self._limits.redis.delete(self._key(key))
        except _FAILURES as exc:
            self._fallback.failed(exc)


class RedisPaymentKeys:
    """The first outcome recorded for each idempotency key, kept `ttl_s`: SET NX decides which of
    concurrent first attempts (on any process) wins; the others read the winner's."""

    def __init__(self, limits: RedisLimits, *, ttl_s: float, fallback: LocalPaymentKeys) -> None:
        self._limits = limits
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._local = fallback
        self._fallback = _Fallback("payment idempotency keys", limits.where)

    async def remember(self, key: str, record: bytes) -> bytes:
        name = f"{self._limits.prefix}payment:{key}"
        try:
            async with self._limits.redis.pipeline(transaction=True) as tx:
                tx.set(name, record, nx=True, px=self._ttl_ms)
                tx.get(name)
                _, stored = await tx.execute()
        except _FAILURES as exc:
            self._fallback.failed(exc)
            return await self._local.remember(key, record)
        self._fallback.answered()
        return record if stored is None else cast("bytes", stored)  # None: expired between the two
