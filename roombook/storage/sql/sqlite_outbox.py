"""Statements on the outbox and processed_events tables of a SQLite store (see outbox_schema).

Each function runs on the database thread, inside the caller's transaction where it writes.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence

from roombook.domain.events import Event, decode_event
from roombook.storage.ports import ClaimOutcome

_INSERT = "INSERT INTO outbox (event_id, type, payload) VALUES (?, ?, ?)"


def _text_time(utc: dt.datetime) -> str:
    return utc.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def insert_events(conn: sqlite3.Connection, rows: Sequence[tuple[str, str, str]]) -> None:
    """rows from outbox_schema.outbox_rows; one executemany, in the caller's transaction."""
    if rows:
        conn.executemany(_INSERT, rows)


def pending_events(conn: sqlite3.Connection, limit: int) -> list[tuple[int, Event]]:
    rows = conn.execute(
        "SELECT seq, payload FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?", (limit,)
    ).fetchall()
    return [(seq, decode_event(payload)) for seq, payload in rows]


def mark_published(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    now = _text_time(dt.datetime.now(dt.UTC))
    conn.executemany("UPDATE outbox SET published_at = ? WHERE seq = ?", [(now, seq) for seq in seqs])


def claim_event(conn: sqlite3.Connection, consumer: str, event_id: str, lease_s: float) -> ClaimOutcome:
    now = dt.datetime.now(dt.UTC)
    until = _text_time(now + dt.timedelta(seconds=lease_s))
    inserted = conn.execute(
        "INSERT INTO processed_events (consumer, event_id, state, lease_until) VALUES (?, ?, 'claimed', ?)"
        " ON CONFLICT (consumer, event_id) DO NOTHING",
        (consumer, event_id, until),
    ).rowcount
    if inserted:
        return ClaimOutcome.NEW
    taken_over = conn.execute(  # a claim whose holder died: its lease ran out
        "UPDATE processed_events SET lease_until = ?"
        " WHERE consumer = ? AND event_id = ? AND state = 'claimed' AND lease_until <= ?",
        (until, consumer, event_id, _text_time(now)),
    ).rowcount
    if taken_over:
        return ClaimOutcome.NEW
    row = conn.execute(
        "SELECT state FROM processed_events WHERE consumer = ? AND event_id = ?", (consumer, event_id)
    ).fetchone()
    return ClaimOutcome.DONE if row is not None and row[0] == "done" else ClaimOutcome.BUSY


def complete_event(conn: sqlite3.Connection, consumer: str, event_id: str) -> None:
    conn.execute("UPDATE processed_events SET state = 'done' WHERE consumer = ? AND event_id = ?", (consumer, event_id))


def release_event(conn: sqlite3.Connection, consumer: str, event_id: str) -> None:
    conn.execute(
        "DELETE FROM processed_events WHERE consumer = ? AND event_id = ? AND state = 'claimed'", (consumer, event_id)
    )
