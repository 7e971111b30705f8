"""RegionalStore on MySQL / MariaDB / Aurora: one database (one DSN) per region."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence

import asyncmy
from asyncmy.errors import IntegrityError

from roombook.domain.accounts import Account, NewUser, RefreshToken, Region, Role, User, first_user_id
from roombook.domain.bookings import Booking, BookingPage, BookingStatus, check_transition, page_offset
from roombook.domain.errors import DuplicateEmail
from roombook.domain.events import BookingEvent, Event
from roombook.storage.sql import mysql_outbox
from roombook.storage.sql.migrations import apply_mysql
from roombook.storage.sql.mysql_db import MysqlTarget, create_pool, mysql_target, store_failures
from roombook.storage.sql.outbox_schema import outbox_rows
from roombook.storage.sql.regional_schema import (
    ACCOUNT_COLUMNS,
    BOOKING_COLUMNS,
    MYSQL_COLUMNS,
    PENDING_RELEASES,
    RECORD_RELEASE,
    REGIONAL_MIGRATIONS,
    RELEASE_DONE,
    TOKEN_COLUMNS,
    USER_COLUMNS,
    account_from_row,
    booking_from_row,
    booking_params,
    token_from_row,
    token_params,
    user_from_row,
)

_ENC = MYSQL_COLUMNS

_DUPLICATE_KEY = 1062
_INSERT_TOKEN = f"INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
_RECORD_RELEASE = RECORD_RELEASE.format(p="%s")
_RELEASE_DONE = RELEASE_DONE.format(p="%s")
_PENDING_RELEASES = PENDING_RELEASES.format(p="%s")
_INSERT_BOOKING = f"INSERT INTO bookings ({BOOKING_COLUMNS}) VALUES ({', '.join(['%s'] * 16)})"


class MysqlRegionalStore:
    """One region's store in one MySQL database; it holds rows of `region` only.

    Every conditional change is a single UPDATE whose WHERE clause is the condition, so the
    affected-row count says whether it happened (the driver counts changed rows, not matched).
    """

    def __init__(self, target: MysqlTarget | str, region: Region, *, pool_size: int = 10) -> None:
        self.region = region
        self._target = mysql_target(target) if isinstance(target, str) else target
        self._pool_size = pool_size
        self._pool: asyncmy.Pool | None = None

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
            claimed = await cur.execute(
                "INSERT IGNORE INTO store_region (id, region) VALUES (1, %s)", (self.region.value,)
            )
            await cur.execute("SELECT region FROM store_region WHERE id = 1")
            (owner,) = await cur.fetchone()
            if owner != self.region.value:
                raise ValueError(f"this database belongs to region {owner!r}, not {self.region.value!r}")
            if claimed:  # only then: moving the counter later could hand out a deleted user's id
                # DDL commits the claim with it: a crash before this line leaves nothing claimed.
                await cur.execute(f"ALTER TABLE users AUTO_INCREMENT = {first_user_id(self.region):d}")
        return applied

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, new: NewUser) -> User:
        if new.region != self.region:
            raise ValueError(f"a {new.region} user cannot be stored in region {self.region}")
        try:
            async with self._cursor() as cur:
                await cur.execute(
                    "INSERT INTO users (email, password_hash, first_name, last_name, region, role,"
                    " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        new.email,
                        new.password_hash,
                        new.first_name,
                        new.last_name,
                        new.region.value,
                        new.role.value,
                        _ENC.time(new.created_at),
                        _ENC.time(new.created_at),
                    ),
                )
                user_id = cur.lastrowid
        except IntegrityError as e:
            if e.args[0] == _DUPLICATE_KEY:
                raise DuplicateEmail("this email is registered already") from None
            raise
        return User(
            id=user_id,
            email=new.email,
            first_name=new.first_name,
            last_name=new.last_name,
            region=new.region,
            role=new.role,
            created_at=new.created_at,
        )

    async def user(self, user_id: int) -> User | None:
        row = await self._one(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
        return None if row is None else user_from_row(row, _ENC)

    async def account_by_email(self, email: str) -> Account | None:
        row = await self._one(f"SELECT {ACCOUNT_COLUMNS} FROM users WHERE email = %s", (email,))
        return None if row is None else account_from_row(row, _ENC)

    async def set_role(self, user_id: int, role: Role, now: dt.datetime) -> bool:
        sql = "UPDATE users SET role = %s, updated_at = %s WHERE id = %s"
        return await self._write(sql, (role.value, _ENC.time(now), user_id)) == 1

    async def set_password_hash(self, user_id: int, password_hash: str, now: dt.datetime) -> bool:
        sql = "UPDATE users SET password_hash = %s, updated_at = %s WHERE id = %s"
        return await self._write(sql, (password_hash, _ENC.time(now), user_id)) == 1

    async def delete_user(self, user_id: int) -> bool:
        return await self._write("DELETE FROM users WHERE id = %s", (user_id,)) == 1

    # -- refresh tokens ------------------------------------------------------------------------

    async def insert_refresh_token(self, token: RefreshToken) -> None:
        await self._write(_INSERT_TOKEN, token_params(token, _ENC))

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._one(f"SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = %s", (token_hash,))
        return None if row is None else token_from_row(row, _ENC)

    async def rotate_refresh_token(self, token_hash: str, successor: RefreshToken, now: dt.datetime) -> bool:
        async with self._cursor() as cur:
            rotated = await cur.execute(
                "UPDATE refresh_tokens SET rotated_at = %s"
                " WHERE token_hash = %s AND rotated_at IS NULL AND revoked_at IS NULL",
                (_ENC.time(now), token_hash),
            )
            if rotated != 1:
                return False
            await cur.execute(_INSERT_TOKEN, token_params(successor, _ENC))
            return True

    async def revoke_refresh_token(self, token_hash: str, now: dt.datetime) -> bool:
        sql = "UPDATE refresh_tokens SET revoked_at = %s WHERE token_hash = %s AND revoked_at IS NULL"
        return await self._write(sql, (_ENC.time(now), token_hash)) == 1

    async def revoke_token_family(self, family_id: str, now: dt.datetime) -> int:
        sql = "UPDATE refresh_tokens SET revoked_at = %s WHERE family_id = %s AND revoked_at IS NULL"
        return await self._write(sql, (_ENC.time(now), family_id))

    async def revoke_user_tokens(self, user_id: int, now: dt.datetime) -> int:
        sql = "UPDATE refresh_tokens SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL"
        return await self._write(sql, (_ENC.time(now), user_id))

    # -- bookings ------------------------------------------------------------------------------

    async def insert_booking(self, booking: Booking, event: BookingEvent | None = None) -> Booking:
        if booking.status is not BookingStatus.PENDING:
            raise ValueError("a booking is stored PENDING first")
        event_rows = outbox_rows([event] if event is not None else [])
        try:
            async with self._cursor() as cur:  # a duplicate key rolls the event back with the row
                await cur.execute(_INSERT_BOOKING, booking_params(booking, _ENC))
                await mysql_outbox.insert_events(cur, event_rows)
            return booking
        except IntegrityError as e:
            if e.args[0] != _DUPLICATE_KEY:
                raise
            duplicate = e
        # The INSERT waited for any concurrent holder of the key to finish, so the row it
        # collided with is committed and visible now (READ COMMITTED).
        row = await self._one(
            f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE user_id = %s AND idempotency_key = %s",
            (booking.user_id, booking.idempotency_key),
        )
        if row is None:  # the collision was on the id, not on the key: a caller's bug
            raise duplicate
        return booking_from_row(row, _ENC)

    async def booking(self, booking_id: str, user_id: int) -> Booking | None:
        sql = f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = %s AND user_id = %s"
        row = await self._one(sql, (booking_id, user_id))
        return None if row is None else booking_from_row(row, _ENC)

    async def bookings_of(self, user_id: int, *, page: int, per_page: int) -> BookingPage:
        offset = page_offset(page, per_page)
        async with self._cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM bookings WHERE user_id = %s", (user_id,))
            (total,) = await cur.fetchone()
            await cur.execute(
                f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE user_id = %s"
                " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
                (user_id, per_page, offset),
            )
            items = [booking_from_row(row, _ENC) for row in await cur.fetchall()]
        return BookingPage(items=items, total=total, page=page, per_page=per_page)

    async def transition_booking(
        self,
        booking_id: str,
        *,
        expected: BookingStatus,
        to: BookingStatus,
        now: dt.datetime,
        payment_intent_id: str | None = None,
        failure_reason: str | None = None,
        event: BookingEvent | None = None,
    ) -> bool:
        check_transition(expected, to)
        sql = (
            "UPDATE bookings SET status = %s, updated_at = %s,"
            " payment_intent_id = COALESCE(%s, payment_intent_id),"
            " failure_reason = COALESCE(%s, failure_reason)"
            " WHERE id = %s AND status = %s"
        )
        params = (to.value, _ENC.time(now), payment_intent_id, failure_reason, booking_id, expected.value)
        event_rows = outbox_rows([event] if event is not None else [])
        async with self._cursor() as cur:
            if await cur.execute(sql, params) != 1:
                return False
            if expected is BookingStatus.CONFIRMED and to is BookingStatus.CANCELLED:
                await cur.execute(_RECORD_RELEASE, (booking_id, _ENC.time(now)))
            await mysql_outbox.insert_events(cur, event_rows)
            return True

    async def pending_bookings_before(self, cutoff: dt.datetime, *, limit: int = 100) -> list[Booking]:
        async with self._cursor() as cur:
            await cur.execute(
                f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE status = 'PENDING' AND created_at < %s"
                " ORDER BY created_at, id LIMIT %s",
                (_ENC.time(cutoff), limit),
            )
            return [booking_from_row(row, _ENC) for row in await cur.fetchall()]

    async def pending_releases(self, *, limit: int = 100) -> list[Booking]:
        async with self._cursor() as cur:
            await cur.execute(_PENDING_RELEASES, (limit,))
            return [booking_from_row(row, _ENC) for row in await cur.fetchall()]

    async def release_done(self, booking_id: str) -> None:
        await self._write(_RELEASE_DONE, (booking_id,))

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

    async def _write(self, sql: str, params: tuple) -> int:
        async with self._cursor() as cur:
            return await cur.execute(sql, params)
