"""Group commit for a MySQL regional store's booking writes: the PENDING inserts and the status
transitions that concurrent requests make are written together, in one transaction per batch,
and each caller is answered only once that transaction has committed.

Every booking attempt makes two writes (its PENDING row, then its outcome), each with its event
in the outbox; one at a time, each is its own round trips and its own durable commit. Batched, a
batch's PENDING rows go in one multi-row INSERT, their events in one more, each transition is
its guarded UPDATE, and one COMMIT (one log flush) covers them all.

A caller sees exactly what the unbatched write would have answered: a taken idempotency key
inserts nothing and reads the stored booking back; a transition whose guard matched no row
returns False. If a batch fails before its commit (a deadlock, one write's error), it is rolled
back and every write of it runs again on its own, so one write's failure is its caller's only.
If the COMMIT's answer is lost, the batch may or may not be stored: each write is then run again
on its own too, which is safe because each is idempotent (the insert finds its row and reads it
back; the transition's guard no longer matches and the caller reads the outcome back), and a
failure there reaches each caller as the store's failure (the outcome unknown, never a false
success).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Sequence

import asyncmy

from roombook.domain.bookings import Booking
from roombook.storage.sql import mysql_outbox
from roombook.storage.sql.regional_schema import MYSQL_COLUMNS, booking_params
from roombook.storage.sql.regional_store import EventRows, Statement
from roombook.storage.sql.write_batches import MAX_BATCH, MAX_FLUSHERS, WriteBatches

Key = tuple[int, str]  # (user id, idempotency key)


class _Insert:
    __slots__ = ("booking", "event_rows")

    def __init__(self, booking: Booking, event_rows: EventRows) -> None:
        self.booking = booking
        self.event_rows = event_rows


class _Transition:
    __slots__ = ("event_rows", "guard", "then")

    def __init__(self, guard: Statement, then: Sequence[Statement], event_rows: EventRows) -> None:
        self.guard = guard
        self.then = then
        self.event_rows = event_rows


Cursor = Callable[[], contextlib.AbstractAsyncContextManager[asyncmy.cursors.Cursor]]


class BookingBatches(WriteBatches[_Insert | _Transition, bool]):
    """Queues booking writes and commits them in batches on the store's pool. `insert` answers
    whether the row was inserted (False: its idempotency key was taken); `transition` whether its
    guard changed the row."""

    def __init__(
        self,
        cursor: Cursor,
        *,
        insert_alone: Callable[[Booking, EventRows], Awaitable[bool]],
        transition_alone: Callable[[Statement, Sequence[Statement], EventRows], Awaitable[bool]],
        insert_sql: str,
    ) -> None:
        """cursor: one transaction on a pooled connection (committed at the block's end);
        *_alone: the same write unbatched, for a batch that failed."""
        super().__init__()
        self._cursor = cursor
        self._insert_alone = insert_alone
        self._transition_alone = transition_alone
        head, _, values = insert_sql.partition(" VALUES ")
        self._insert_head = head + " VALUES "
        self._insert_values = values

    async def insert(self, booking: Booking, event_rows: EventRows) -> bool:
        return await self._submit(_Insert(booking, event_rows))

    async def transition(self, guard: Statement, then: Sequence[Statement], event_rows: EventRows) -> bool:
        return await self._submit(_Transition(guard, then, event_rows))

    async def _write_alone(self, write: _Insert | _Transition) -> bool:
        if isinstance(write, _Insert):
            return await self._insert_alone(write.booking, write.event_rows)
        return await self._transition_alone(write.guard, write.then, write.event_rows)

    async def _write_together(self, batch: Sequence[_Insert | _Transition]) -> list[bool]:
        """One transaction: the inserts (a taken key inserts nothing), then each transition's
        guard and, where it matched, its statements; the events of the writes that happened."""
        inserts = [w for w in batch if isinstance(w, _Insert)]
        results: dict[int, bool] = {}
        events: list[tuple[str, str, str]] = []
        async with self._cursor() as cur:
            if inserts:
                values = [value for w in inserts for value in booking_params(w.booking, MYSQL_COLUMNS)]
                # a taken (user, key) inserts nothing and is not an error (as the single insert
                # answers the stored booking); an id made twice is checked in _ours
                await cur.execute(
                    self._insert_head
                    + ",".join([self._insert_values] * len(inserts))
                    + " ON DUPLICATE KEY UPDATE id = id",
                    values,
                )
                stored = await _ours(cur, inserts)
                for w in inserts:
                    results[id(w)] = w.booking.id in stored
                    if results[id(w)]:
                        events.extend(w.event_rows)
            for t in batch:
                if isinstance(t, _Transition):
                    changed = await cur.execute(*t.guard) == 1
                    results[id(t)] = changed
                    if changed:
                        for sql, params in t.then:
                            await cur.execute(sql, params)
                        events.extend(t.event_rows)
            await mysql_outbox.insert_events(cur, events)
        return [results[id(w)] for w in batch]


class IdTaken(Exception):
    """A booking id is stored already for another booking: a caller's bug, which the write alone reports."""


async def _ours(cur: asyncmy.cursors.Cursor, inserts: Sequence[_Insert]) -> set[str]:
    """The ids among `inserts` whose row this transaction stored (same id, user and key)."""
    ids = [w.booking.id for w in inserts]
    await cur.execute(
        f"SELECT id, user_id, idempotency_key FROM bookings WHERE id IN ({', '.join(['%s'] * len(ids))})", ids
    )
    wanted = {w.booking.id: (w.booking.user_id, w.booking.idempotency_key) for w in inserts}
    ours = set()
    for booking_id, user_id, key in await cur.fetchall():
        if wanted[booking_id] != (user_id, key):
            raise IdTaken(booking_id)
        ours.add(booking_id)
    return ours


class KeyLookups:
    """Concurrent requests' idempotency-key lookups in one SELECT per batch. Most attempts on a
    popular room are refused by the shard's stay check and read nothing but their key, so under
    load this read is most of what the regional store does; batched, it is one round trip and one
    statement for many. A read changes nothing: a batch that fails fails each of its callers,
    exactly as their reads alone would have."""

    def __init__(
        self, read: Callable[[str, tuple], Awaitable[list[tuple]]], *, select: str, key_of: Callable[[tuple], Key]
    ) -> None:
        """read: one statement's rows; select: the SELECT up to its WHERE, whose rows key_of
        gives the (user id, key) of."""
        self._read = read
        self._select = select
        self._key_of = key_of
        self._queue: dict[Key, asyncio.Future[tuple | None]] = {}
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0  # statements run, and the keys they looked up: for tests
        self.lookups = 0

    async def row_of(self, user_id: int, key: str) -> tuple | None:
        wanted = (user_id, key)
        future = self._queue.get(wanted)
        if future is None:
            future = self._queue[wanted] = asyncio.get_running_loop().create_future()
        if len(self._flushers) < MAX_FLUSHERS:
            task = asyncio.get_running_loop().create_task(self._flush_queue())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await asyncio.shield(future)  # a caller that goes away must not cancel the others' read

    async def _flush_queue(self) -> None:
        try:
            while self._queue:
                keys = list(itertools.islice(self._queue, MAX_BATCH))
                batch = {key: self._queue.pop(key) for key in keys}
                await self._flush(batch)
        finally:
            self._flushers.discard(asyncio.current_task())  # as in BookingBatches

    async def _flush(self, batch: dict[Key, asyncio.Future[tuple | None]]) -> None:
        where = " OR ".join(["(user_id = %s AND idempotency_key = %s)"] * len(batch))
        try:
            rows = await self._read(self._select + where, tuple(itertools.chain.from_iterable(batch)))
        except BaseException as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.lookups += len(batch)
        found = {self._key_of(row): row for row in rows}
        for key, future in batch.items():
            if not future.done():
                future.set_result(found.get(key))
