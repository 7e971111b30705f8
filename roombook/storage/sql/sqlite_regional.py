"""RegionalStore on one SQLite file: the embedded default for a region's users and bookings."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import cast

from roombook.domain.accounts import Region, first_user_id
from roombook.domain.bookings import Booking
from roombook.domain.events import Event
from roombook.storage.sql import sqlite_outbox
from roombook.storage.sql.migrations import apply_sqlite
from roombook.storage.sql.regional_queries import SQLITE_INSERT_USER_SEQ, SQLITE_QUERIES, SQLITE_SET_USER_SEQ
from roombook.storage.sql.regional_schema import REGIONAL_MIGRATIONS, SQLITE_COLUMNS, booking_from_row, booking_params
from roombook.storage.sql.regional_store import EventRows, SqlRegionalStore, Statement, check_owner
from roombook.storage.sql.sqlite_db import SqliteDatabase


class SqliteRegionalStore(SqlRegionalStore):
    """One region's store in one SQLite file; every statement runs on the database's one thread."""

    _q = SQLITE_QUERIES
    _enc = SQLITE_COLUMNS

    def __init__(self, path: str, region: Region) -> None:
        self.region = region
        self._db = SqliteDatabase(path)

    async def __aenter__(self) -> SqliteRegionalStore:
        await self._db.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._db.close()

    async def migrate(self) -> list[int]:
        applied = await self._db.run(apply_sqlite, self._db.conn, REGIONAL_MIGRATIONS)
        await self._db.transaction(self._claim_region)
        return applied

    def _claim_region(self, conn: sqlite3.Connection) -> None:
        """Bind the file to this region on first use; refuse a file of another region."""
        claimed = conn.execute(self._q.claim_region, (self.region.value,)).rowcount
        (owner,) = conn.execute(self._q.region_owner).fetchone()
        check_owner(owner, self.region)
        if claimed:  # only then: moving the sequence later could hand out a deleted user's id
            seq = first_user_id(self.region) - 1
            if conn.execute(SQLITE_SET_USER_SEQ, (seq,)).rowcount == 0:
                conn.execute(SQLITE_INSERT_USER_SEQ, (seq,))

    # -- bookings ------------------------------------------------------------------------------

    async def _insert_pending(self, booking: Booking, event_rows: EventRows) -> Booking:
        def insert(conn: sqlite3.Connection) -> Booking:
            # A taken (user_id, idempotency_key) inserts nothing: the user's booking answers.
            if conn.execute(self._q.insert_booking, booking_params(booking, self._enc)).rowcount == 1:
                sqlite_outbox.insert_events(conn, event_rows)
                return booking
            row = conn.execute(self._q.booking_by_key, (booking.user_id, booking.idempotency_key)).fetchone()
            return booking_from_row(row, self._enc)

        return await self._db.transaction(insert)

    # -- the outbox ----------------------------------------------------------------------------

    async def pending_events(self, limit: int) -> list[tuple[int, Event]]:
        return await self._db.run(sqlite_outbox.pending_events, self._db.conn, limit)

    async def mark_published(self, seqs: Sequence[int]) -> None:
        await self._db.transaction(lambda conn: sqlite_outbox.mark_published(conn, seqs))

    # -- plumbing ------------------------------------------------------------------------------

    async def _one(self, sql: str, params: tuple) -> tuple | None:
        return await self._db.run(lambda: self._db.conn.execute(sql, params).fetchone())

    async def _all(self, sql: str, params: tuple) -> list[tuple]:
        return await self._db.run(lambda: self._db.conn.execute(sql, params).fetchall())

    async def _write(self, sql: str, params: tuple) -> int:
        return await self._db.transaction(lambda conn: conn.execute(sql, params).rowcount)

    async def _insert(self, sql: str, params: tuple) -> int:
        # An INSERT that stored its row always sets lastrowid.
        return await self._db.transaction(lambda conn: cast(int, conn.execute(sql, params).lastrowid))

    def _is_duplicate_email(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "users.email" in str(exc)

    async def _read_together(self, statements: Sequence[Statement]) -> list[list[tuple]]:
        def read(conn: sqlite3.Connection) -> list[list[tuple]]:
            return [conn.execute(sql, params).fetchall() for sql, params in statements]

        return await self._db.transaction(read)

    async def _write_if(self, guard: Statement, then: Sequence[Statement], event_rows: EventRows) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(*guard).rowcount != 1:
                return False
            for sql, params in then:
                conn.execute(sql, params)
            sqlite_outbox.insert_events(conn, event_rows)
            return True

        return await self._db.transaction(write)
