"""Group commit for the consumers' writes to a MySQL global store: the processed-events claims and
completions and the analytics counts that concurrent event deliveries make share one
transaction per batch (write_batches), each caller answered after its commit.

One booking's events make several such writes (its two counts, its email's claim and completion,
a claim and a completion for each availability update the cache drops), each alone a transaction
and a durable commit of its own. Batched: the claims are one multi-row INSERT, the counted
events' ids one more and their counts, summed per day, room and region, one upsert; the
completions one UPDATE per consumer; one COMMIT.

The batch answers only what it knows: when every claim inserted its row each is NEW, when every
event id was new each is counted. Otherwise (a redelivered event, two copies of one in a batch)
it is rolled back (its locks released before any write runs again) and each write runs alone,
whose statement tells them apart. So does a lost COMMIT answer: alone, a count finds its event
id and adds nothing, a completion is the same UPDATE again, and a claim finds its own row and
answers BUSY, so its event comes back once the lease has run out, as after a lost answer of a
claim made alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import asyncmy

from roombook.domain.analytics import BookingCountKind
from roombook.storage.ports import ClaimOutcome
from roombook.storage.sql.mysql_outbox import utc_now
from roombook.storage.sql.write_batches import BatchUndecided, WriteBatches


class _Claim(NamedTuple):
    consumer: str
    event_id: str
    lease_s: float


class _Completion(NamedTuple):
    consumer: str
    event_id: str


class _Count(NamedTuple):
    event_id: str
    kind: BookingCountKind
    day: dt.date
    room_id: int
    region: str


_Write = _Claim | _Completion | _Count
_Answer = ClaimOutcome | bool | None
Cursor = Callable[[], contextlib.AbstractAsyncContextManager[asyncmy.cursors.Cursor]]
_KINDS = tuple(BookingCountKind)


class EventWrites(WriteBatches[_Write, _Answer]):
    """Queues the consumers' claims, completions and counts and commits them in batches; each
    answers as the same write alone would (ProcessedEvents, BookingAnalytics)."""

    def __init__(
        self,
        cursor: Cursor,
        *,
        claim_alone: Callable[[str, str, float], Awaitable[ClaimOutcome]],
        complete_alone: Callable[[str, str], Awaitable[None]],
        count_alone: Callable[[str, BookingCountKind, dt.date, int, str], Awaitable[bool]],
    ) -> None:
        """cursor: one transaction on a pooled connection (committed at the block's end);
        *_alone: the same write unbatched, for a batch that failed."""
        super().__init__()
        self._cursor = cursor
        self._claim_alone = claim_alone
        self._complete_alone = complete_alone
        self._count_alone = count_alone

    async def claim(self, consumer: str, event_id: str, *, lease_s: float) -> ClaimOutcome:
        outcome = await self._submit(_Claim(consumer, event_id, lease_s))
        assert isinstance(outcome, ClaimOutcome)
        return outcome

    async def complete(self, consumer: str, event_id: str) -> None:
        await self._submit(_Completion(consumer, event_id))

    async def count(self, event_id: str, kind: BookingCountKind, *, day: dt.date, room_id: int, region: str) -> bool:
        return bool(await self._submit(_Count(event_id, kind, day, room_id, region)))

    async def _write_alone(self, write: _Write) -> _Answer:
        match write:
            case _Claim():
                return await self._claim_alone(*write)
            case _Completion():
                await self._complete_alone(*write)
                return None
            case _Count():
                return await self._count_alone(*write)

    async def _write_together(self, batch: Sequence[_Write]) -> list[_Answer]:
        claims = [w for w in batch if isinstance(w, _Claim)]
        counts = [w for w in batch if isinstance(w, _Count)]
        completions: defaultdict[str, list[str]] = defaultdict(list)
        for w in batch:
            if isinstance(w, _Completion):
                completions[w.consumer].append(w.event_id)
        async with self._cursor() as cur:
            # rows in key order: two batches lock the rows they share in the same order
            if claims:
                now = utc_now()
                rows = sorted((c.consumer, c.event_id, now + dt.timedelta(seconds=c.lease_s)) for c in claims)
                sql = "INSERT IGNORE INTO processed_events (consumer, event_id, state, lease_until) VALUES "
                if await cur.execute(
                    sql + ",".join(["(%s, %s, 'claimed', %s)"] * len(rows)), [v for r in rows for v in r]
                ) != len(claims):
                    raise BatchUndecided
            if counts:
                sql = "INSERT IGNORE INTO booking_counts_events (event_id) VALUES "
                if await cur.execute(sql + ",".join(["(%s)"] * len(counts)), sorted(c.event_id for c in counts)) != len(
                    counts
                ):
                    raise BatchUndecided
                await cur.execute(*_add_counts(counts))
            for consumer in sorted(completions):  # one order of locks for every batch
                ids = sorted(completions[consumer])
                await cur.execute(
                    "UPDATE processed_events SET state = 'done'"
                    f" WHERE consumer = %s AND event_id IN ({', '.join(['%s'] * len(ids))})",
                    [consumer, *ids],
                )
        return [ClaimOutcome.NEW if isinstance(w, _Claim) else True if isinstance(w, _Count) else None for w in batch]


def _add_counts(counts: Sequence[_Count]) -> tuple[str, list[object]]:
    """One upsert adding the batch's counts to their (day, room, region) rows, in key order (so
    that two batches lock shared rows in the same order)."""
    sums: defaultdict[tuple[dt.date, int, str], list[int]] = defaultdict(lambda: [0] * len(_KINDS))
    for c in counts:
        sums[(c.day, c.room_id, c.region)][_KINDS.index(c.kind)] += 1
    columns = ", ".join(kind.value for kind in _KINDS)
    added = ", ".join(f"{kind.value} = {kind.value} + VALUES({kind.value})" for kind in _KINDS)
    row = "(" + ", ".join(["%s"] * (3 + len(_KINDS))) + ")"
    sql = (
        f"INSERT INTO booking_counts (day, room_id, region, {columns}) VALUES {','.join([row] * len(sums))}"
        f" ON DUPLICATE KEY UPDATE {added}"
    )
    return sql, [v for key in sorted(sums) for v in (*key, *sums[key])]
