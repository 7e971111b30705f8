"""The booking analytics tables of the global store, and their statements on both engines.

`booking_counts`: the daily counters, one row per (day, room, region). `booking_counts_events`:
the id of every event counted. A count is one transaction that inserts the event's id unless it
is there and, only if it was not, adds one to its counter: a redelivered event, or one whose
first delivery committed and then lost its answer, changes nothing.
"""

from __future__ import annotations

from roombook.domain.analytics import BookingCountKind
from roombook.storage.sql.migrations import Migration

_MYSQL_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_ASCII = "CHARACTER SET ascii COLLATE ascii_bin"
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


def booking_counts_migration(version: int) -> Migration:
    return Migration(
        version=version,
        name="booking_counts, booking_counts_events",
        mysql=[
            "CREATE TABLE IF NOT EXISTS booking_counts ("
            " day DATE NOT NULL,"
            " room_id BIGINT NOT NULL,"
            f" region VARCHAR(8) {_ASCII} NOT NULL,"
            " created INT NOT NULL DEFAULT 0,"
            " confirmed INT NOT NULL DEFAULT 0,"
            " cancelled INT NOT NULL DEFAULT 0,"
            " PRIMARY KEY (day, room_id, region)"
            f") {_MYSQL_TABLE_OPTIONS}",
            "CREATE TABLE IF NOT EXISTS booking_counts_events ("
            f" event_id VARCHAR(40) {_ASCII} NOT NULL PRIMARY KEY,"
            " counted_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
            f") {_MYSQL_TABLE_OPTIONS}",
        ],
        sqlite=[
            "CREATE TABLE IF NOT EXISTS booking_counts ("
            " day TEXT NOT NULL,"
            " room_id INTEGER NOT NULL,"
            " region TEXT NOT NULL,"
            " created INTEGER NOT NULL DEFAULT 0,"
            " confirmed INTEGER NOT NULL DEFAULT 0,"
            " cancelled INTEGER NOT NULL DEFAULT 0,"
            " PRIMARY KEY (day, room_id, region)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS booking_counts_events ("
            " event_id TEXT NOT NULL PRIMARY KEY,"
            f" counted_at TEXT NOT NULL DEFAULT {_SQLITE_NOW}) WITHOUT ROWID",
        ],
    )


def count_statement(kind: BookingCountKind, param: str, *, mysql: bool) -> str:
    """Add one to a counter: (day, room_id, region) as parameters; the column from the enum only."""
    column = BookingCountKind(kind).value
    insert = f"INSERT INTO booking_counts (day, room_id, region, {column}) VALUES ({param}, {param}, {param}, 1)"
    if mysql:
        return f"{insert} ON DUPLICATE KEY UPDATE {column} = {column} + 1"
    return f"{insert} ON CONFLICT (day, room_id, region) DO UPDATE SET {column} = {column} + 1"


def counts_query(param: str, *, room: bool, region: bool) -> str:
    """Rows of [start, end), optionally of one room and one region, in (day, room, region) order."""
    where = [f"day >= {param}", f"day < {param}"]
    if room:
        where.append(f"room_id = {param}")
    if region:
        where.append(f"region = {param}")
    return (
        "SELECT day, room_id, region, created, confirmed, cancelled FROM booking_counts"
        f" WHERE {' AND '.join(where)} ORDER BY day, room_id, region"
    )
