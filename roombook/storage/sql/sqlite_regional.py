"""RegionalStore on one SQLite file: the embedded default for a region's users and bookings."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence

from roombook.domain.accounts import Account, NewUser, RefreshToken, Region, Role, User, first_user_id
from roombook.domain.bookings import Booking, BookingPage, BookingStatus, check_transition, page_offset
from roombook.domain.errors import DuplicateEmail
from roombook.domain.events import BookingEvent, Event
from roombook.storage.sql import sqlite_outbox
from roombook.storage.sql.migrations import apply_sqlite
from roombook.storage.sql.outbox_schema import outbox_rows
from roombook.storage.sql.regional_schema import (
    ACCOUNT_COLUMNS,
    BOOKING_COLUMNS,
    PENDING_RELEASES,
    RECORD_RELEASE,
    REGIONAL_MIGRATIONS,
    RELEASE_DONE,
    SQLITE_COLUMNS,
    TOKEN_COLUMNS,
    USER_COLUMNS,
    account_from_row,
    booking_from_row,
    booking_params,
    token_from_row,
    token_params,
    user_from_row,
)
from roombook.storage.sql.sqlite_db import SqliteDatabase

_ENC = SQLITE_COLUMNS
_RECORD_RELEASE = RECORD_RELEASE.format(p="?")
_RELEASE_DONE = RELEASE_DONE.format(p="?")
_PENDING_RELEASES = PENDING_RELEASES.format(p="?")

_INSERT_TOKEN = f"INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"


class SqliteRegionalStore:
    """One region's store in one SQLite file; it holds rows of `region` only."""

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
        claimed = conn.execute(
            "INSERT OR IGNORE INTO store_region (id, region) VALUES (1, ?)", (self.region.value,)
        ).rowcount
        (owner,) = conn.execute("SELECT region FROM store_region WHERE id = 1").fetchone()
        if owner != self.region.value:
            raise ValueError(f"this database belongs to region {owner!r}, not {self.region.value!r}")
        if claimed:  # only then: moving the sequence later could hand out a deleted user's id
            # The next AUTOINCREMENT id is seq + 1; sqlite_sequence has a row once users had one.
            seq = first_user_id(self.region) - 1
            if conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'users'", (seq,)).rowcount == 0:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('users', ?)", (seq,))

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, new: NewUser) -> User:
        if new.region != self.region:
            raise ValueError(f"a {new.region} user cannot be stored in region {self.region}")

        def insert(conn: sqlite3.Connection) -> int:
            try:
                return conn.execute(
                    "INSERT INTO users (email, password_hash, first_name, last_name, region, role,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
                ).lastrowid
            except sqlite3.IntegrityError as e:
                if "users.email" in str(e):
                    raise DuplicateEmail("this email is registered already") from None
                raise

        user_id = await self._db.transaction(insert)
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
        row = await self._one(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return None if row is None else user_from_row(row, _ENC)

    async def account_by_email(self, email: str) -> Account | None:
        row = await self._one(f"SELECT {ACCOUNT_COLUMNS} FROM users WHERE email = ?", (email,))
        return None if row is None else account_from_row(row, _ENC)

    async def set_role(self, user_id: int, role: Role, now: dt.datetime) -> bool:
        sql = "UPDATE users SET role = ?, updated_at = ? WHERE id = ?"
        return await self._write(sql, (role.value, _ENC.time(now), user_id)) == 1

    async def set_password_hash(self, user_id: int, password_hash: str, now: dt.datetime) -> bool:
        sql = "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?"
        return await self._write(sql, (password_hash, _ENC.time(now), user_id)) == 1

    async def delete_user(self, user_id: int) -> bool:
        return await self._write("DELETE FROM users WHERE id = ?", (user_id,)) == 1

    # -- refresh tokens ------------------------------------------------------------------------

    async def insert_refresh_token(self, token: RefreshToken) -> None:
        await self._write(_INSERT_TOKEN, token_params(token, _ENC))

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._one(f"SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
        return None if row is None else token_from_row(row, _ENC)

    async def rotate_refresh_token(self, token_hash: str, successor: RefreshToken, now: dt.datetime) -> bool:
        def rotate(conn: sqlite3.Connection) -> bool:
            rotated = conn.execute(
                "UPDATE refresh_tokens SET rotated_at = ?"
                " WHERE token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL",
                (_ENC.time(now), token_hash),
            ).rowcount
            if rotated != 1:
                return False
            conn.execute(_INSERT_TOKEN, token_params(successor, _ENC))
            return True

        return await self._db.transaction(rotate)

    async def revoke_refresh_token(self, token_hash: str, now: dt.datetime) -> bool:
        sql = "UPDATE refresh_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL"
        return await self._write(sql, (_ENC.time(now), token_hash)) == 1

    async def revoke_token_family(self, family_id: str, now: dt.datetime) -> int:
        sql = "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
        return await self._write(sql, (_ENC.time(now), family_id))

    async def revoke_user_tokens(self, user_id: int, now: dt.datetime) -> int:
        sql = "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
        return await self._write(sql, (_ENC.time(now), user_id))

    # -- bookings ------------------------------------------------------------------------------

    async def insert_booking(self, booking: Booking, event: BookingEvent | None = None) -> Booking:
        if booking.status is not BookingStatus.PENDING:
            raise ValueError("a booking is stored PENDING first")
        event_rows = outbox_rows([event] if event is not None else [])

        def insert(conn: sqlite3.Connection) -> Booking:
            placeholders = ", ".join("?" * 16)
            inserted = conn.execute(
                f"INSERT INTO bookings ({BOOKING_COLUMNS}) VALUES ({placeholders})"
                " ON CONFLICT (user_id, idempotency_key) DO NOTHING",
                booking_params(booking, _ENC),
            ).rowcount
            if inserted == 1:
                sqlite_outbox.insert_events(conn, event_rows)
                return booking
            row = conn.execute(
                f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE user_id = ? AND idempotency_key = ?",
                (booking.user_id, booking.idempotency_key),
            ).fetchone()
            return booking_from_row(row, _ENC)

        return await self._db.transaction(insert)

    async def booking(self, booking_id: str, user_id: int) -> Booking | None:
        sql = f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = ? AND user_id = ?"
        row = await self._one(sql, (booking_id, user_id))
        return None if row is None else booking_from_row(row, _ENC)

    async def bookings_of(self, user_id: int, *, page: int, per_page: int) -> BookingPage:
        offset = page_offset(page, per_page)

        def read(conn: sqlite3.Connection) -> BookingPage:
            (total,) = conn.execute("SELECT COUNT(*) FROM bookings WHERE user_id = ?", (user_id,)).fetchone()
            rows = conn.execute(
                f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE user_id = ?"
                " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (user_id, per_page, offset),
            ).fetchall()
            items = [booking_from_row(row, _ENC) for row in rows]
            return BookingPage(items=items, total=total, page=page, per_page=per_page)

        return await self._db.transaction(read)  # one snapshot for the count and the page

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
            "UPDATE bookings SET status = ?, updated_at = ?,"
            " payment_intent_id = COALESCE(?, payment_intent_id),"
            " failure_reason = COALESCE(?, failure_reason)"
            " WHERE id = ? AND status = ?"
        )
        params = (to.value, _ENC.time(now), payment_intent_id, failure_reason, booking_id, expected.value)
        event_rows = outbox_rows([event] if event is not None else [])

        def transition(conn: sqlite3.Connection) -> bool:
            if conn.execute(sql, params).rowcount != 1:
                return False
            if expected is BookingStatus.CONFIRMED and to is BookingStatus.CANCELLED:
                conn.execute(_RECORD_RELEASE, (booking_id, _ENC.time(now)))
            sqlite_outbox.insert_events(conn, event_rows)
            return True

        return await self._db.transaction(transition)

    async def pending_bookings_before(self, cutoff: dt.datetime, *, limit: int = 100) -> list[Booking]:
        def read(conn: sqlite3.Connection) -> list[Booking]:
            rows = conn.execute(
                f"SELECT {BOOKING_COLUMNS} FROM bookings WHERE status = 'PENDING' AND created_at < ?"
                " ORDER BY created_at, id LIMIT ?",
                (_ENC.time(cutoff), limit),
            ).fetchall()
            return [booking_from_row(row, _ENC) for row in rows]

        return await self._db.run(read, self._db.conn)

    async def pending_releases(self, *, limit: int = 100) -> list[Booking]:
        def read(conn: sqlite3.Connection) -> list[Booking]:
            return [booking_from_row(row, _ENC) for row in conn.execute(_PENDING_RELEASES, (limit,))]

        return await self._db.run(read, self._db.conn)

    async def release_done(self, booking_id: str) -> None:
        await self._write(_RELEASE_DONE, (booking_id,))

    # -- the outbox ----------------------------------------------------------------------------

    async def pending_events(self, limit: int) -> list[tuple[int, Event]]:
        return await self._db.run(sqlite_outbox.pending_events, self._db.conn, limit)

    async def mark_published(self, seqs: Sequence[int]) -> None:
        await self._db.transaction(lambda conn: sqlite_outbox.mark_published(conn, seqs))

    # -- plumbing ------------------------------------------------------------------------------

    async def _one(self, sql: str, params: tuple) -> tuple | None:
        return await self._db.run(lambda: self._db.conn.execute(sql, params).fetchone())

    async def _write(self, sql: str, params: tuple) -> int:
        """One statement in its own transaction; returns the number of rows it changed."""
        return await self._db.transaction(lambda conn: conn.execute(sql, params).rowcount)
