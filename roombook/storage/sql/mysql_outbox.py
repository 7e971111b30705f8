"""Statements on the outbox and processed_events tables of a MySQL store (see outbox_schema).

Each function takes a cursor inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from asyncmy.cursors import Cursor

from roombook.domain.events import Event, decode_event
from roombook.storage.ports import ClaimOutcome

_INSERT = "INSERT INTO outbox (event_id, type, payload) VALUES "
_EVENTS_PER_STATEMENT = 1_000  # a few hundred bytes each: far below max_allowed_packet


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)  # sessions run at time_zone '+00:00'


def insert_statements(rows: Sequence[tuple[str, str, str]], escape_string: Callable[[str], str]) -> list[str]:
    """The multi-row INSERTs of rows from outbox_schema.outbox_rows, written directly (a shard
    writes one event per room per commit). The payload goes as a hex literal, which needs no
    escaping and is stored as the UTF-8 text it encodes; ids and types are escaped by the
    connection's `escape_string`."""
    return [
        _INSERT
        + ",".join(
            [
                f"('{escape_string(event_id)}','{escape_string(kind)}',X'{payload.encode().hex()}')"
                for event_id, kind, payload in rows[i : i + _EVENTS_PER_STATEMENT]
            ]
        )
        for i in range(0, len(rows), _EVENTS_PER_STATEMENT)
    ]


async def insert_events(cur: Cursor, rows: Sequence[tuple[str, str, str]]) -> None:
    """insert_statements' INSERTs, run in the caller's transaction."""
    for statement in insert_statements(rows, cur.connection.escape_string):
        await cur.execute(statement)


async def pending_events(cur: Cursor, limit: int) -> list[tuple[int, Event]]:
    await cur.execute("SELECT seq, payload FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT %s", (limit,))
    return [(seq, decode_event(payload)) for seq, payload in await cur.fetchall()]


async def mark_published(cur: Cursor, seqs: Sequence[int]) -> None:
    if seqs:
        placeholders = ", ".join(["%s"] * len(seqs))
        await cur.execute(f"UPDATE outbox SET published_at = %s WHERE seq IN ({placeholders})", [utc_now(), *seqs])


async def claim_event(cur: Cursor, consumer: str, event_id: str, lease_s: float) -> ClaimOutcome:
    now = utc_now()
    until = now + dt.timedelta(seconds=lease_s)
    # One statement that takes the row's exclusive lock at once: an INSERT IGNORE followed by an
    # UPDATE would take a shared lock on the duplicate first, and two claimers upgrading their
    # shared locks deadlock. Affected rows: 1 inserted, 2 an expired claim taken over, 0 neither.
    affected = await cur.execute(
        "INSERT INTO processed_events (consumer, event_id, state, lease_until) VALUES (%s, %s, 'claimed', %s)"
        " ON DUPLICATE KEY UPDATE lease_until ="
        " IF(state = 'claimed' AND lease_until <= %s, VALUES(lease_until), lease_until)",
        (consumer, event_id, until, now),
    )
    if affected in (1, 2):
        return ClaimOutcome.NEW
    await cur.execute("SELECT state FROM processed_events WHERE consumer = %s AND event_id = %s", (consumer, event_id))
    row = await cur.fetchone()  # None: released between our statements; busy, try again later
    return ClaimOutcome.DONE if row is not None and row[0] == "done" else ClaimOutcome.BUSY


async def complete_event(cur: Cursor, consumer: str, event_id: str) -> None:
    await cur.execute(
        "UPDATE processed_events SET state = 'done' WHERE consumer = %s AND event_id = %s", (consumer, event_id)
    )


async def release_event(cur: Cursor, consumer: str, event_id: str) -> None:
    await cur.execute(
        "DELETE FROM processed_events WHERE consumer = %s AND event_id = %s AND state = 'claimed'",
        (consumer, event_id),
    )
