"""The embedded cache, the default: values in this process's memory, bounded, least recently used
out first, each with its TTL on an injectable monotonic clock.

The methods never await, so each runs whole on the event loop. Generations live apart from the
entries and are never evicted: a counter that went back could bring old keys back to life.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence


class MemoryCache:
    """At most `max_entries` entries holding at most `max_bytes` of values; never returns an expired one."""

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        max_bytes: int = 64 * 2**20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._bytes = 0  # the sum of the stored values' lengths
        self._generations: dict[str, int] = {}

    async def __aenter__(self) -> MemoryCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._entries.clear()
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        return self._get(key, self._clock())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        return [self._get(key, now) for key in keys]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        value = bytes(value)  # a bytearray or memoryview could change after it is stored
        self._drop(key)
        if len(value) > self.max_bytes:
            return  # larger than the whole cache: not cached, like an immediate eviction
        self._entries[key] = (self._clock() + ttl_s, value)
        self._bytes += len(value)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= len(evicted)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._drop(key)

    async def bump_generation(self, namespace: str) -> int:
        self._generations[namespace] = self._generations.get(namespace, 0) + 1
        return self._generations[namespace]

    async def generation(self, namespace: str) -> int:
        return self._generations.get(namespace, 0)

    def __len__(self) -> int:
        """Entries held, expired ones included until they are touched or evicted."""
        return len(self._entries)

    def _get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])
