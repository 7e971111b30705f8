"""Group commit for a store's small writes: the writes that concurrent callers make are queued and
written together, one transaction per batch, and each caller is answered only once that
transaction has committed.

A batch that fails (rolled back, or its COMMIT's answer lost) runs every write of it again on its
own, so one write's failure is its caller's only, and a lost answer is settled by the write
itself: a subclass's writes must be safe to run again after their batch may have committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

MAX_BATCH = 256  # writes per transaction
MAX_FLUSHERS = 2  # batches in flight at once: one fills while the other commits

W = TypeVar("W")
R = TypeVar("R")


class BatchUndecided(Exception):
    """A batch's statements found that it cannot answer each write (a row already stored, say):
    its transaction is rolled back on a connection still in step, and each write runs alone."""


class WriteBatches(Generic[W, R]):
    """Queues writes of type W and answers each with its R once its batch has committed.
    Subclasses write a batch (`_write_together`) and one write (`_write_alone`)."""

    def __init__(self) -> None:
        self._queue: list[tuple[W, asyncio.Future[R]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0  # committed batches, and the writes in them: for tests and metrics
        self.writes = 0

    async def _write_together(self, batch: Sequence[W]) -> list[R]:
        """One transaction for the whole batch, its answers in the batch's order."""
        raise NotImplementedError

    async def _write_alone(self, write: W) -> R:
        """The write in a transaction of its own, after its batch failed."""
        raise NotImplementedError

    async def _submit(self, write: W) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if len(self._flushers) < MAX_FLUSHERS:
            task = asyncio.get_running_loop().create_task(self._flush_queue())
            self._flushers.add(task)  # referenced until done: the loop holds tasks weakly
            task.add_done_callback(self._flushers.discard)
        # Each write has a future of its own, awaited by its caller only, and the batch runs in
        # a flusher task: a caller that goes away cancels its future alone, never the batch (its
        # write is still made, as a cancelled unbatched write may have been), so no shield.
        return await future

    async def _flush_queue(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._flush(batch)
        finally:
            # Out of the count the moment it finds the queue empty, not a loop turn later (a
            # done callback): a write queued in between would otherwise start no flusher.
            self._flushers.discard(asyncio.current_task())

    async def _flush(self, batch: list[tuple[W, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write_together([write for write, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.cancel()
            raise
        except Exception as exc:  # rolled back, or its commit's answer lost: each write again, alone
            log.debug("%s: a batch of %d failed (%r); writing each alone", type(self).__name__, len(batch), exc)
            await asyncio.gather(*(self._alone(write, future) for write, future in batch))
            return
        self.batches += 1
        self.writes += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _alone(self, write: W, future: asyncio.Future[R]) -> None:
        try:
            result = await self._write_alone(write)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not future.done():
                future.set_result(result)
