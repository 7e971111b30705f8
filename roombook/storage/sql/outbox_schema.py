"""Tables of the transactional outbox and of the consumers' processed events, for both engines.

`outbox`: the global store and each regional store have one. A writer inserts its events in the
transaction that changes the rows they describe, so an event exists if and only if its change
was committed; the relay publishes them in `seq` order and sets `published_at`. The pending
ones are found through the index on (published_at, seq): NULL first, oldest first.

`processed_events` (global store only): one row per (consumer, event id), a claim with a lease
while the consumer works on the event, `done` once its effect is made.
"""

from __future__ import annotations

from collections.abc import Sequence

from roombook.domain.events import Event, encode_event
from roombook.storage.sql.migrations import Migration

_MYSQL_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_ASCII = "CHARACTER SET ascii COLLATE ascii_bin"
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"

OUTBOX_MYSQL = [
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    f" event_id VARCHAR(40) {_ASCII} NOT NULL,"
    f" type VARCHAR(64) {_ASCII} NOT NULL,"
    " payload JSON NOT NULL CHECK (json_valid(payload)),"
    " created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " published_at DATETIME(6) NULL,"
    " UNIQUE KEY uq_outbox_event (event_id),"
    " INDEX idx_outbox_pending (published_at, seq)"
    f") {_MYSQL_TABLE_OPTIONS}",
]

OUTBOX_SQLITE = [
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE CHECK (length(event_id) <= 40),"
    " type TEXT NOT NULL,"
    " payload TEXT NOT NULL CHECK (json_valid(payload)),"
    f" created_at TEXT NOT NULL DEFAULT {_SQLITE_NOW},"
    " published_at TEXT)",
    "CREATE INDEX IF NOT EXISTS idx_outbox_pending ON outbox (published_at, seq)",
]

PROCESSED_EVENTS_MYSQL = [
    "CREATE TABLE IF NOT EXISTS processed_events ("
    f" consumer VARCHAR(64) {_ASCII} NOT NULL,"
    f" event_id VARCHAR(40) {_ASCII} NOT NULL,"
    " state ENUM('claimed', 'done') NOT NULL,"
    " lease_until DATETIME(6) NOT NULL,"
    " PRIMARY KEY (consumer, event_id)"
    f") {_MYSQL_TABLE_OPTIONS}",
]

PROCESSED_EVENTS_SQLITE = [
    "CREATE TABLE IF NOT EXISTS processed_events ("
    " consumer TEXT NOT NULL,"
    " event_id TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('claimed', 'done')),"
    " lease_until TEXT NOT NULL,"
    " PRIMARY KEY (consumer, event_id)) WITHOUT ROWID",
]


def outbox_migration(version: int) -> Migration:
    return Migration(version=version, name="outbox", mysql=OUTBOX_MYSQL, sqlite=OUTBOX_SQLITE)


def processed_events_migration(version: int) -> Migration:
    return Migration(
        version=version, name="processed_events", mysql=PROCESSED_EVENTS_MYSQL, sqlite=PROCESSED_EVENTS_SQLITE
    )


def outbox_rows(events: Sequence[Event]) -> list[tuple[str, str, str]]:
    """(event_id, type, payload) per event, encoded before the transaction starts."""
    return [(event.id, event.type, encode_event(event).decode()) for event in events]
