"""The RegionalStore logic both SQL engines share: which statements each call runs, in which
transaction, and how rows map back to the domain. An adapter supplies how a statement or a
transaction runs on its engine, how its driver reports a duplicate email, and what differs
outright (claiming the database, inserting a booking, the outbox, opening and closing)."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence

from roombook.domain.accounts import Account, NewUser, RefreshToken, Region, Role, User
from roombook.domain.bookings import Booking, BookingPage, BookingStatus, Refusal, check_transition, page_offset
from roombook.domain.errors import DuplicateEmail
from roombook.domain.events import BookingEvent
from roombook.storage.sql.outbox_schema import outbox_rows
from roombook.storage.sql.regional_queries import RegionalQueries
from roombook.storage.sql.regional_schema import (
    ColumnEncoding,
    account_from_row,
    booking_from_row,
    refusal_params,
    token_from_row,
    token_params,
    user_from_row,
)

Statement = tuple[str, tuple[object, ...]]
EventRows = Sequence[tuple[str, str, str]]


def check_owner(owner: str, region: Region) -> None:
    """Refuse a database that store_region binds to another region."""
    if owner != region.value:
        raise ValueError(f"this database belongs to region {owner!r}, not {region.value!r}")


class SqlRegionalStore(abc.ABC):
    """One region's store on a SQL engine; it holds rows of `region` only. Every conditional
    change is a single statement whose WHERE clause is the condition, so the changed-row count
    says whether it happened."""

    region: Region
    _q: RegionalQueries
    _enc: ColumnEncoding

    # -- what an engine supplies ------------------------------------------------------------------

    @abc.abstractmethod
    async def _one(self, sql: str, params: tuple) -> tuple | None:
        """The first row of one query."""

    @abc.abstractmethod
    async def _all(self, sql: str, params: tuple) -> list[tuple]:
        """Every row of one query."""

    @abc.abstractmethod
    async def _write(self, sql: str, params: tuple) -> int:
        """One statement in its own transaction; the number of rows it changed."""

    @abc.abstractmethod
    async def _insert(self, sql: str, params: tuple) -> int:
        """One INSERT in its own transaction; the id it generated."""

    @abc.abstractmethod
    def _is_duplicate_email(self, exc: Exception) -> bool:
        """Whether an error of _insert into users is its email's unique key."""

    @abc.abstractmethod
    async def _read_together(self, statements: Sequence[Statement]) -> list[list[tuple]]:
        """The rows of each query, all in one transaction."""

    @abc.abstractmethod
    async def _write_if(self, guard: Statement, then: Sequence[Statement], event_rows: EventRows) -> bool:
        """In one transaction: run `guard`; only if it changed exactly one row, run `then` and
        insert the events into the outbox. Returns whether the guard changed its row."""

    @abc.abstractmethod
    async def _insert_pending(self, booking: Booking, event_rows: EventRows) -> Booking:
        """insert_booking once its booking is checked: the stored booking, or the one the user
        already has under that idempotency key."""

    # -- users ------------------------------------------------------------------------------------

    async def create_user(self, new: NewUser) -> User:
        if new.region != self.region:
            raise ValueError(f"a {new.region} user cannot be stored in region {self.region}")
        created_at = self._enc.time(new.created_at)
        params = (new.email, new.password_hash, new.first_name, new.last_name, new.region.value, new.role.value)
        try:
            user_id = await self._insert(self._q.insert_user, (*params, created_at, created_at))
        except Exception as e:
            if self._is_duplicate_email(e):
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
        row = await self._one(self._q.user, (user_id,))
        return None if row is None else user_from_row(row, self._enc)

    async def account_by_email(self, email: str) -> Account | None:
        row = await self._one(self._q.account_by_email, (email,))
        return None if row is None else account_from_row(row, self._enc)

    async def emails_registered_since(self, since: dt.datetime) -> list[str]:
        return [row[0] for row in await self._all(self._q.emails_registered_since, (self._enc.time(since),))]

    async def set_role(self, user_id: int, role: Role, now: dt.datetime) -> bool:
        return await self._write(self._q.set_role, (role.value, self._enc.time(now), user_id)) == 1

    async def set_password_hash(self, user_id: int, password_hash: str, now: dt.datetime) -> bool:
        return await self._write(self._q.set_password_hash, (password_hash, self._enc.time(now), user_id)) == 1

    async def delete_user(self, user_id: int) -> bool:
        return await self._write(self._q.delete_user, (user_id,)) == 1

    # -- refresh tokens ---------------------------------------------------------------------------

    async def insert_refresh_token(self, token: RefreshToken) -> None:
        await self._write(self._q.insert_token, token_params(token, self._enc))

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._one(self._q.token, (token_hash,))
        return None if row is None else token_from_row(row, self._enc)

    async def rotate_refresh_token(self, token_hash: str, successor: RefreshToken, now: dt.datetime) -> bool:
        rotate = (self._q.rotate_token, (self._enc.time(now), token_hash))
        return await self._write_if(rotate, [(self._q.insert_token, token_params(successor, self._enc))], [])

    async def revoke_refresh_token(self, token_hash: str, now: dt.datetime) -> bool:
        return await self._write(self._q.revoke_token, (self._enc.time(now), token_hash)) == 1

    async def revoke_token_family(self, family_id: str, now: dt.datetime) -> int:
        return await self._write(self._q.revoke_family, (self._enc.time(now), family_id))

    async def revoke_user_tokens(self, user_id: int, now: dt.datetime) -> int:
        return await self._write(self._q.revoke_user_tokens, (self._enc.time(now), user_id))

    # -- bookings ---------------------------------------------------------------------------------

    async def insert_booking(self, booking: Booking, event: BookingEvent | None = None) -> Booking:
        if booking.status is not BookingStatus.PENDING:
            raise ValueError("a booking is stored PENDING first")
        return await self._insert_pending(booking, outbox_rows([event] if event is not None else []))

    async def booking(self, booking_id: str, user_id: int) -> Booking | None:
        row = await self._one(self._q.booking, (booking_id, user_id))
        return None if row is None else booking_from_row(row, self._enc)

    async def booking_by_key(self, user_id: int, idempotency_key: str) -> Booking | None:
        row = await self._one(self._q.booking_by_key, (user_id, idempotency_key))
        return None if row is None else booking_from_row(row, self._enc)

    async def bookings_of(self, user_id: int, *, page: int, per_page: int) -> BookingPage:
        offset = page_offset(page, per_page)
        counted, rows = await self._read_together(  # the count and the page in one transaction
            [
                (self._q.count_bookings_of, (user_id,)),
                (self._q.bookings_of, (user_id, per_page, offset)),
            ]
        )
        items = [booking_from_row(row, self._enc) for row in rows]
        return BookingPage(items=items, total=counted[0][0], page=page, per_page=per_page)

    async def transition_booking(
        self,
        booking_id: str,
        *,
        expected: BookingStatus,
        to: BookingStatus,
        now: dt.datetime,
        payment_intent_id: str | None = None,
        refusal: Refusal | None = None,
        event: BookingEvent | None = None,
    ) -> bool:
        check_transition(expected, to)
        at = self._enc.time(now)
        change = (
            self._q.transition_booking,
            (to.value, at, payment_intent_id, *refusal_params(refusal), booking_id, expected.value),
        )
        event_rows = outbox_rows([event] if event is not None else [])
        then: list[Statement] = []
        if expected is BookingStatus.CONFIRMED and to is BookingStatus.CANCELLED:
            then.append((self._q.record_release, (booking_id, at)))  # its nights are freed later
        return await self._write_if(change, then, event_rows)

    async def pending_bookings_before(self, cutoff: dt.datetime, *, limit: int = 100) -> list[Booking]:
        rows = await self._all(self._q.pending_bookings_before, (self._enc.time(cutoff), limit))
        return [booking_from_row(row, self._enc) for row in rows]

    async def pending_releases(self, *, limit: int = 100) -> list[Booking]:
        return [booking_from_row(row, self._enc) for row in await self._all(self._q.pending_releases, (limit,))]

    async def record_release(self, booking_id: str, now: dt.datetime) -> None:
        await self._write(self._q.record_release_again, (booking_id, self._enc.time(now)))

    async def release_done(self, booking_id: str) -> None:
        await self._write(self._q.release_done, (booking_id,))
