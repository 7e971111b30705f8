"""Login throttling: at most N failed attempts per (email, client) in a sliding window.

`LoginThrottle` keeps them in this process's memory: the embedded default. With several
processes each would count on its own (N processes, N times the attempts), so a deployment with
`ROOMBOOK_CACHE=redis` counts in Redis instead (storage/cache/redis_limits.RedisLoginThrottle,
the same rule), and falls back to this one only while Redis does not answer.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import Protocol

from roombook.domain.errors import TooManyAttempts


def throttle_key(email: str, client_key: str) -> str:
    """One counter per email (as typed, normalized loosely) and client (e.g. its IP address)."""
    return f"{email.strip().lower()}\x00{client_key}"


class Throttle(Protocol):
    async def begin(self, key: str, now_s: float) -> None:
        """Record an attempt, or raise TooManyAttempts (with the seconds until one is allowed)."""

    async def succeeded(self, key: str) -> None:
        """A correct password clears the key's failures."""


class LoginThrottle:
    """Counts login attempts per key within `window_s`; an attempt counts as failed until the
    caller reports success, so a burst of concurrent guesses cannot slip past the limit.

    Memory is bounded by `max_keys`: the least recently used key is forgotten first.
    """

    def __init__(self, *, max_failures: int = 5, window_s: float = 300.0, max_keys: int = 100_000) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self._max_failures = max_failures
        self._window_s = window_s
        self._max_keys = max_keys
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    async def begin(self, key: str, now_s: float) -> None:
        """Record an attempt, or raise TooManyAttempts (with the seconds until one is allowed).
        Decided without an await: concurrent attempts are counted one by one."""
        attempts = self._attempts.get(key)
        if attempts is None:
            attempts = self._attempts[key] = deque()
            if len(self._attempts) > self._max_keys:
                self._attempts.popitem(last=False)
        self._attempts.move_to_end(key)
        while attempts and attempts[0] <= now_s - self._window_s:
            attempts.popleft()
        if len(attempts) >= self._max_failures:
            raise TooManyAttempts(max(1, math.ceil(attempts[0] + self._window_s - now_s)))
        attempts.append(now_s)

    async def succeeded(self, key: str) -> None:
        """A correct password clears the key's failures."""
        self._attempts.pop(key, None)
