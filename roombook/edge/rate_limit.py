"""A token bucket per client address, with the clock passed in.

Each address may send `burst` requests at once and `rate_per_s` a second after that. Memory is
bounded: past `max_clients` buckets, the ones that have refilled (they hold nothing worth
remembering) are forgotten first.
"""

from __future__ import annotations


class TokenBuckets:
    """Invariant: a bucket holds between 0 and `burst` tokens as of its `last` time."""

    def __init__(self, *, rate_per_s: float, burst: int, max_clients: int = 100_000) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, last)

    def take(self, client: str, now: float) -> float:
        """Spend one token of `client`'s bucket: 0.0 if it had one, else the seconds until it will."""
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate_per_s
        if client not in self._buckets and len(self._buckets) >= self._max_clients:
            self._forget_full(now)
        self._buckets[client] = (tokens - 1.0, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        full = [c for c, (t, last) in self._buckets.items() if t + (now - last) * self.rate_per_s >= self.burst]
        for client in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[client]

    def __len__(self) -> int:
        return len(self._buckets)
