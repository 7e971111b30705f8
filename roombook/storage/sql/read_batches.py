"""Concurrent reads of one row each, by key, in one statement per batch: under load the same point
read (an idempotency key, a room, its cancellation policy) is made by many requests at once, and
alone each is a transaction with its own round trips. A read changes nothing: a batch that fails
fails each of its callers, exactly as their reads alone would have, and a key asked for twice
while queued is read once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from roombook.storage.sql.write_batches import MAX_BATCH, MAX_FLUSHERS

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class PointReads(Generic[K, V]):
    """`get(key)`: the value stored under key, or None, read in a batch with the others queued."""

    def __init__(self, read_many: Callable[[Sequence[K]], Awaitable[dict[K, V]]]) -> None:
        """read_many: one statement's values of the keys it was given (a missing key: no row)."""
        self._read_many = read_many
        self._queue: dict[K, asyncio.Future[V | None]] = {}
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0  # statements run, and the keys they looked up: for tests
        self.lookups = 0

    async def get(self, key: K) -> V | None:
        future = self._queue.get(key)
        if future is None:
            future = self._queue[key] = asyncio.get_running_loop().create_future()
        if len(self._flushers) < MAX_FLUSHERS:
            task = asyncio.get_running_loop().create_task(self._flush_queue())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await asyncio.shield(future)  # shared by the callers of one key: one going away must not cancel it

    async def _flush_queue(self) -> None:
        try:
            while self._queue:
                keys = list(itertools.islice(self._queue, MAX_BATCH))
                batch = {key: self._queue.pop(key) for key in keys}
                await self._flush(batch)
        finally:
            self._flushers.discard(asyncio.current_task())  # as in WriteBatches

    async def _flush(self, batch: dict[K, asyncio.Future[V | None]]) -> None:
        try:
            found = await self._read_many(list(batch))
        except BaseException as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.lookups += len(batch)
        for key, future in batch.items():
            if not future.done():
                future.set_result(found.get(key))
