"""RegionalStore on MySQL / MariaDB / Aurora: one database (one DSN) per region."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncmy
from asyncmy.errors import IntegrityError

from roombook.domain.accounts import Region, first_user_id
from roombook.domain.bookings import Booking
from roombook.domain.errors import StoreUnavailable
from roombook.domain.events import Event
from roombook.storage.sql import mysql_outbox
from roombook.storage.sql.migrations import apply_mysql
from roombook.storage.sql.mysql_booking_batches import BookingBatches, KeyLookups
from roombook.storage.sql.mysql_db import (
    FairPool,
    MysqlTarget,
    create_pool,
    deadlocks_retried,
    mysql_target,
    store_failures,
)
from roombook.storage.sql.regional_queries import MYSQL_FIRST_USER_ID, MYSQL_QUERIES
from roombook.storage.sql.regional_schema import (
    BOOKING_COLUMNS,
    MYSQL_COLUMNS,
    REGIONAL_MIGRATIONS,
    booking_from_row,
    booking_params,
)
from roombook.storage.sql.regional_store import EventRows, SqlRegionalStore, Statement, check_owner

_DUPLICATE_KEY = 1062
_COLUMNS = [column.strip() for column in BOOKING_COLUMNS.split(",")]
_USER, _KEY = _COLUMNS.index("user_id"), _COLUMNS.index("idempotency_key")


def _key_of(row: tuple) -> tuple[int, str]:
    return row[_USER], row[_KEY]


class MysqlRegionalStore(SqlRegionalStore):
    """One region's store in one MySQL database; every call is one transaction on a pooled
    connection. A conditional change's affected-row count is the rows it changed (the driver
    counts changed rows, not matched)."""

    _q = MYSQL_QUERIES
    _enc = MYSQL_COLUMNS

    def __init__(
        self, target: MysqlTarget | str, region: Region, *, pool_size: int = 10, group_commit: bool = True
    ) -> None:
        """group_commit: concurrent bookings' PENDING inserts and transitions share transactions
        (mysql_booking_batches); off, each is its own."""
        self.region = region
        self._target = mysql_target(target) if isinstance(target, str) else target
        self._pool_size = pool_size
        self._pool: FairPool | None = None
        self._batches = (
            BookingBatches(
                self._cursor,
                insert_alone=self._insert_alone,
                transition_alone=self._write_if,
                insert_sql=self._q.insert_booking,
            )
            if group_commit
            else None
        )
        self._lookups = (
            KeyLookups(self._all, select=self._q.booking_by_key_head, key_of=_key_of) if group_commit else None
        )

    async def __aenter__(self) -> MysqlRegionalStore:
        self._pool = await create_pool(self._target, minsize=1, maxsize=self._pool_size)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    async def migrate(self) -> list[int]:
        applied = await apply_mysql(self._pool, REGIONAL_MIGRATIONS)
        async with self._cursor() as cur:
            claimed = await cur.execute(self._q.claim_region, (self.region.value,))
            await cur.execute(self._q.region_owner)
            (owner,) = await cur.fetchone()
            check_owner(owner, self.region)
            if claimed:  # only then: moving the counter later could hand out a deleted user's id
                # DDL commits the claim with it: a crash before this line leaves nothing claimed.
                await cur.execute(MYSQL_FIRST_USER_ID.format(first_user_id(self.region)))
        return applied

    # -- bookings ------------------------------------------------------------------------------

    async def booking_by_key(self, user_id: int, idempotency_key: str) -> Booking | None:
        if self._lookups is None:
            return await super().booking_by_key(user_id, idempotency_key)
        row = await self._lookups.row_of(user_id, idempotency_key)
        return None if row is None else booking_from_row(row, self._enc)

    async def _insert_pending(self, booking: Booking, event_rows: EventRows) -> Booking:
        inserted = await (
            self._insert_alone(booking, event_rows)
            if self._batches is None
            else self._batches.insert(booking, event_rows)
        )
        if inserted:
            return booking
        # The INSERT waited for any concurrent holder of the key to finish, so the row it
        # collided with is committed and visible now (READ COMMITTED).
        row = await self._one(self._q.booking_by_key, (booking.user_id, booking.idempotency_key))
        if row is None:  # the collision was on the id, not on the key: a caller's bug
            raise StoreUnavailable(f"booking id {booking.id} is taken by another booking")
        return booking_from_row(row, self._enc)

    @deadlocks_retried  # requests retried with one key meet on its row
    async def _insert_alone(self, booking: Booking, event_rows: EventRows) -> bool:
        """The PENDING row and its events in a transaction of their own; False: its key is taken."""
        try:
            async with self._cursor() as cur:  # a duplicate key rolls the event back with the row
                await cur.execute(self._q.insert_booking, booking_params(booking, self._enc))
                await mysql_outbox.insert_events(cur, event_rows)
            return True
        except IntegrityError as e:
            if e.args[0] != _DUPLICATE_KEY:
                raise
            return False

    async def _write_booking_if(self, guard: Statement, then: Sequence[Statement], event_rows: EventRows) -> bool:
        if self._batches is None:
            return await self._write_if(guard, then, event_rows)
        return await self._batches.transition(guard, then, event_rows)

    # -- the outbox ----------------------------------------------------------------------------

    async def pending_events(self, limit: int) -> list[tuple[int, Event]]:
        async with self._cursor() as cur:
            return await mysql_outbox.pending_events(cur, limit)

    async def mark_published(self, seqs: Sequence[int]) -> None:
        async with self._cursor() as cur:
            await mysql_outbox.mark_published(cur, seqs)

    # -- plumbing ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _cursor(self) -> AsyncIterator[asyncmy.cursors.Cursor]:
        """A cursor in one transaction: committed on success, rolled back on any error (the pool
        would otherwise drop a connection returned with a transaction still open)."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        with store_failures(f"the {self.region} store"):
            async with self._pool.acquire() as conn:
                try:
                    async with conn.cursor() as cur:
                        yield cur
                except BaseException:
                    with contextlib.suppress(Exception):  # a dead connection: keep the first error
                        await conn.rollback()
                    raise
                try:
                    await conn.commit()
                except BaseException:
                    conn.close()  # the COMMIT's answer is lost: the protocol state is unknown
                    raise

    async def _one(self, sql: str, params: tuple) -> tuple | None:
        async with self._cursor() as cur:
            await cur.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: tuple) -> list[tuple]:
        async with self._cursor() as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def _write(self, sql: str, params: tuple) -> int:
        async with self._cursor() as cur:
            return await cur.execute(sql, params)

    async def _insert(self, sql: str, params: tuple) -> int:
        async with self._cursor() as cur:
            await cur.execute(sql, params)
            return cur.lastrowid

    def _is_duplicate_email(self, exc: Exception) -> bool:
        # users' id is generated: the email is the one key an insert can collide on
        return isinstance(exc, IntegrityError) and exc.args[0] == _DUPLICATE_KEY

    async def _read_together(self, statements: Sequence[Statement]) -> list[list[tuple]]:
        async with self._cursor() as cur:
            results = []
            for sql, params in statements:
                await cur.execute(sql, params)
                results.append(await cur.fetchall())
            return results

    @deadlocks_retried
    async def _write_if(self, guard: Statement, then: Sequence[Statement], event_rows: EventRows) -> bool:
        async with self._cursor() as cur:
            if await cur.execute(*guard) != 1:
                return False
            for sql, params in then:
                await cur.execute(sql, params)
            await mysql_outbox.insert_events(cur, event_rows)
            return True
