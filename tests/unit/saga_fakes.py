"""Fakes of the booking saga's ports: a few lines of real behaviour each, plus faults to inject.

FakeShards keeps room-nights by hold id as a room shard does (every command idempotent by hold
id), FakeBookingStore keeps rows unique on (user, key) and changes them by compare-and-set,
FakePayments decides once per key. Every call crosses an `await` (other tasks run meanwhile), and
each fake's `faults` can make its n-th call of a method raise before applying, apply and then raise
(the answer lost on its way back), or wait until the test lets it go.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TypeVar

import msgspec

from roombook.domain.accounts import Region
from roombook.domain.bookings import Booking, BookingPage, BookingStatus, Refusal, check_transition
from roombook.domain.calendar import HoldStatus, HoldView
from roombook.domain.cancellation import CancellationPolicy, CancellationTerms
from roombook.domain.errors import HoldExpired, NightsUnavailable, UnknownHold
from roombook.domain.events import BookingEvent
from roombook.domain.modifications import Modification
from roombook.domain.rooms import Room
from roombook.domain.stays import Stay
from roombook.services.payments import PaymentIntent, PaymentRefund, PaymentStatus

T = TypeVar("T")


class FakeClock:
    """Unix seconds that move only when told to, or when someone sleeps."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def now(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    async def sleep(self, seconds: float) -> None:
        self.now_s += seconds
        await asyncio.sleep(0)


class Stall:
    """A call held up on its way: `reached` is set once it gets there, and it goes on at `go`."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()


class Faults:
    """What the n-th call of a method from now on (counting from 1) does besides its work."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._errors: dict[tuple[str, int], tuple[Exception, bool]] = {}
        self._stalls: dict[tuple[str, int], Stall] = {}

    def fail(self, method: str, error: Exception, *, call: int = 1, after_applying: bool = False) -> None:
        """Raise `error` instead of applying the call, or (after_applying) once it is applied."""
        self._errors[method, self.calls[method] + call] = (error, after_applying)

    def stall(self, method: str, *, call: int = 1) -> Stall:
        self._stalls[method, self.calls[method] + call] = stall = Stall()
        return stall

    async def run(self, method: str, apply: Callable[[], T]) -> T:
        self.calls[method] += 1
        key = (method, self.calls[method])
        await asyncio.sleep(0)
        if (stall := self._stalls.pop(key, None)) is not None:
            stall.reached.set()
            await stall.go.wait()
        error, after_applying = self._errors.pop(key, (None, False))
        if error is not None and not after_applying:
            raise error
        result = apply()
        if error is not None:
            raise error
        return result


@dataclasses.dataclass
class _Hold:
    room_id: int
    nights: list[dt.date]
    status: HoldStatus  # HELD or BOOKED
    expires_at_s: float | None

    def view(self, hold_id: str, status: HoldStatus | None = None) -> HoldView:
        return HoldView(hold_id=hold_id, room_id=self.room_id, status=status or self.status, nights=list(self.nights))


class FakeShards:
    """Room-nights and the hold (or booking, same id) owning each; a hold past its TTL owns nothing."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.holds: dict[str, _Hold] = {}
        self.night_holders: dict[tuple[int, dt.date], str] = {}
        self.ran_out: set[str] = set()  # holds ended by their TTL: confirm says HoldExpired, not UnknownHold
        self.confirmations: Counter[str] = Counter()  # times each hold became a booking
        self.faults = Faults()

    def status(self, hold_id: str) -> HoldStatus | None:
        """What the shard has under this id now (None: nothing, or a hold past its TTL)."""
        hold = self.holds.get(hold_id)
        return hold.status if hold is not None and self._live(hold) else None

    def taken(self, room_id: int, stay: Stay) -> list[dt.date]:
        return [night for night in stay.nights() if self._owner(room_id, night) is not None]

    async def place_hold(
        self, *, room_id: int, hold_id: str, stay: Stay, ttl_s: float, not_after_s: float | None = None
    ) -> HoldView:
        return await self.faults.run("place_hold", lambda: self._place(room_id, hold_id, stay, ttl_s, not_after_s))

    async def check_stay(self, *, room_id: int, stay: Stay, claim: str | None = None, claim_ttl_s: float = 0.0) -> None:
        """Claims are advisory (they only refuse early): this fake keeps none."""

        def check() -> None:
            if taken := self.taken(room_id, stay):
                raise NightsUnavailable(room_id, taken)

        await self.faults.run("check_stay", check)

    async def confirm(self, *, room_id: int, hold_id: str) -> HoldView:
        return await self.faults.run("confirm", lambda: self._confirm(room_id, hold_id))

    async def release(self, *, room_id: int, hold_id: str) -> HoldView:
        return await self.faults.run("release", lambda: self._end(room_id, hold_id, HoldStatus.RELEASED))

    async def cancel(self, *, room_id: int, booking_id: str) -> HoldView:
        return await self.faults.run("cancel", lambda: self._end(room_id, booking_id, HoldStatus.CANCELLED))

    def _live(self, hold: _Hold) -> bool:
        return hold.status is HoldStatus.BOOKED or (hold.expires_at_s or 0.0) > self._clock.now()

    def _owner(self, room_id: int, night: dt.date) -> str | None:
        owner = self.night_holders.get((room_id, night))
        return owner if owner is not None and self._live(self.holds[owner]) else None

    def _place(self, room_id: int, hold_id: str, stay: Stay, ttl_s: float, not_after_s: float | None) -> HoldView:
        now_s = self._clock.now()
        hold = self.holds.get(hold_id)
        if hold is not None and self._live(hold):
            return hold.view(hold_id)
        if not_after_s is not None and now_s > not_after_s:
            raise HoldExpired(f"hold {hold_id!r} came after its deadline")
        taken = [night for night in stay.nights() if self._owner(room_id, night) not in (None, hold_id)]
        if taken:
            raise NightsUnavailable(room_id, taken)
        for night in stay.nights():  # holds past their TTL on these nights end whole
            if (stale := self.night_holders.get((room_id, night))) is not None:
                self._free(stale)
                self.ran_out.add(stale)
        self.holds[hold_id] = _Hold(room_id, stay.nights(), HoldStatus.HELD, now_s + ttl_s)
        self.night_holders.update(((room_id, night), hold_id) for night in stay.nights())
        return self.holds[hold_id].view(hold_id)

    def _confirm(self, room_id: int, hold_id: str) -> HoldView:
        hold = self.holds.get(hold_id)
        if hold is None or hold.room_id != room_id:
            if hold_id in self.ran_out:
                raise HoldExpired(f"hold {hold_id!r} expired")
            raise UnknownHold(f"no hold {hold_id!r} on room {room_id}")
        if not self._live(hold):
            raise HoldExpired(f"hold {hold_id!r} expired")
        if hold.status is HoldStatus.HELD:
            hold.status, hold.expires_at_s = HoldStatus.BOOKED, None
            self.confirmations[hold_id] += 1
        return hold.view(hold_id)

    def _end(self, room_id: int, hold_id: str, how: HoldStatus) -> HoldView:
        """release (how RELEASED) frees a hold but never a booking; cancel frees either."""
        hold = self.holds.get(hold_id)
        if hold is None or hold.room_id != room_id:
            return HoldView(hold_id=hold_id, room_id=room_id, status=how, nights=[])
        if how is HoldStatus.RELEASED and hold.status is HoldStatus.BOOKED:
            return hold.view(hold_id)
        if not self._live(hold):
            self.ran_out.add(hold_id)
        self._free(hold_id)
        return hold.view(hold_id, how)

    def _free(self, hold_id: str) -> None:
        hold = self.holds.pop(hold_id)
        for night in hold.nights:
            del self.night_holders[hold.room_id, night]


class FakePayments:
    """Authorizes every card token but the ones it was told to decline (token -> decline code);
    one decision per idempotency key, which a retry gets back."""

    def __init__(self, declines: Mapping[str, str] | None = None) -> None:
        self._declines = dict(declines or {})
        self.intents: dict[str, PaymentIntent] = {}  # by idempotency key
        self.refunds: dict[str, PaymentRefund] = {}  # by idempotency key
        self.faults = Faults()

    async def authorize(
        self, amount: decimal.Decimal, currency: str, card_token: str, idempotency_key: str
    ) -> PaymentIntent:
        return await self.faults.run("authorize", lambda: self._decide(amount, currency, card_token, idempotency_key))

    async def refund(
        self, payment_intent_id: str, amount: decimal.Decimal, currency: str, idempotency_key: str
    ) -> PaymentRefund:
        def decide() -> PaymentRefund:
            return self.refunds.setdefault(
                idempotency_key,
                PaymentRefund(
                    id=f"re_{len(self.refunds) + 1}",
                    payment_intent_id=payment_intent_id,
                    amount=amount,
                    currency=currency,
                ),
            )

        return await self.faults.run("refund", decide)

    def _decide(self, amount: decimal.Decimal, currency: str, card_token: str, key: str) -> PaymentIntent:
        if key not in self.intents:
            code = self._declines.get(card_token)
            self.intents[key] = PaymentIntent(
                id=f"pi_{len(self.intents) + 1}",
                amount=amount,
                currency=currency,
                status=PaymentStatus.DECLINED if code else PaymentStatus.AUTHORIZED,
                decline_code=code,
            )
        return self.intents[key]


class FakeCatalogue:
    def __init__(self, *rooms: Room, policies: Mapping[int, CancellationPolicy] | None = None) -> None:
        self._rooms = {room.id: room for room in rooms}
        self.policies = dict(policies or {})

    async def room(self, room_id: int) -> Room | None:
        return self._rooms.get(room_id)

    async def cancellation_policy(self, room_id: int) -> CancellationPolicy | None:
        return self.policies.get(room_id)


class FakeBookingStore:
    """One region's booking rows. Each change and the event given with it land together (`outbox`);
    a CONFIRMED booking becoming CANCELLED records its pending release in the same change."""

    def __init__(self, region: Region = Region.EU) -> None:
        self.region = region
        self.rows: dict[str, Booking] = {}
        self._by_key: dict[tuple[int, str], str] = {}
        self.outbox: list[BookingEvent] = []
        self.releases: dict[str, dt.datetime] = {}  # booking id -> cancelled at, in cancellation order
        self.faults = Faults()

    async def insert_booking(self, booking: Booking, event: BookingEvent | None = None) -> Booking:
        return await self.faults.run("insert_booking", lambda: self._insert(booking, event))

    async def booking(self, booking_id: str, user_id: int) -> Booking | None:
        return await self.faults.run("booking", lambda: self._row_of(booking_id, user_id))

    async def booking_by_key(self, user_id: int, idempotency_key: str) -> Booking | None:
        def read() -> Booking | None:
            booking_id = self._by_key.get((user_id, idempotency_key))
            return None if booking_id is None else self.rows[booking_id]

        return await self.faults.run("booking_by_key", read)

    async def bookings_of(self, user_id: int, *, page: int, per_page: int) -> BookingPage:
        def read() -> BookingPage:
            mine = sorted((b for b in self.rows.values() if b.user_id == user_id), key=_age, reverse=True)
            items = mine[(page - 1) * per_page : page * per_page]
            return BookingPage(items=items, total=len(mine), page=page, per_page=per_page)

        return await self.faults.run("bookings_of", read)

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

        def change() -> bool:
            row = self.rows.get(booking_id)
            if row is None or row.status is not expected:
                return False
            self.rows[booking_id] = msgspec.structs.replace(
                row,
                status=to,
                updated_at=now,
                payment_intent_id=payment_intent_id or row.payment_intent_id,
                refusal=refusal or row.refusal,
            )
            if event is not None:
                self.outbox.append(event)
            if (expected, to) == (BookingStatus.CONFIRMED, BookingStatus.CANCELLED):
                self.releases[booking_id] = now
            return True

        return await self.faults.run("transition_booking", change)

    async def cancel_booking(
        self, booking_id: str, *, now: dt.datetime, terms: CancellationTerms, event: BookingEvent | None = None
    ) -> bool:
        def change() -> bool:
            row = self.rows.get(booking_id)
            if row is None or row.status is not BookingStatus.CONFIRMED:
                return False
            self.rows[booking_id] = msgspec.structs.replace(
                row,
                status=BookingStatus.CANCELLED,
                updated_at=now,
                cancellation_fee=terms.fee,
                refund_amount=terms.refund,
            )
            if event is not None:
                self.outbox.append(event)
            self.releases[booking_id] = now
            return True

        return await self.faults.run("cancel_booking", change)

    async def record_refund(
        self, booking_id: str, refund_id: str, *, now: dt.datetime, event: BookingEvent | None = None
    ) -> bool:
        def change() -> bool:
            row = self.rows.get(booking_id)
            if row is None or row.status is not BookingStatus.CANCELLED or row.refund_id is not None:
                return False
            if not row.refund_amount:
                return False
            self.rows[booking_id] = msgspec.structs.replace(row, refund_id=refund_id, updated_at=now)
            if event is not None:
                self.outbox.append(event)
            return True

        return await self.faults.run("record_refund", change)

    async def refunds_due(self, *, limit: int = 100) -> list[Booking]:
        def read() -> list[Booking]:
            due = [
                b
                for b in self.rows.values()
                if b.status is BookingStatus.CANCELLED and b.refund_amount and b.refund_id is None
            ]
            return sorted(due, key=_age)[:limit]

        return await self.faults.run("refunds_due", read)

    # Changes of bookings run over the real stores (tests/integration/test_booking_changes.py):
    # this fake records none.
    async def modification_refunds_due(self, *, limit: int = 100) -> list[Modification]:
        return []

    async def pending_modifications_before(self, cutoff: dt.datetime, *, limit: int = 100) -> list[Modification]:
        return []

    async def pending_bookings_before(self, cutoff: dt.datetime, *, limit: int = 100) -> list[Booking]:
        def read() -> list[Booking]:
            stale = [b for b in self.rows.values() if b.status is BookingStatus.PENDING and b.created_at < cutoff]
            return sorted(stale, key=_age)[:limit]

        return await self.faults.run("pending_bookings_before", read)

    async def pending_releases(self, *, limit: int = 100) -> list[Booking]:
        return await self.faults.run("pending_releases", lambda: [self.rows[i] for i in self.releases][:limit])

    async def record_release(self, booking_id: str, now: dt.datetime) -> None:
        await self.faults.run("record_release", lambda: self.releases.setdefault(booking_id, now))

    async def release_done(self, booking_id: str) -> None:
        await self.faults.run("release_done", lambda: self.releases.pop(booking_id, None))

    def _insert(self, booking: Booking, event: BookingEvent | None) -> Booking:
        key = (booking.user_id, booking.idempotency_key)
        if key in self._by_key:
            return self.rows[self._by_key[key]]
        self.rows[booking.id] = booking
        self._by_key[key] = booking.id
        if event is not None:
            self.outbox.append(event)
        return booking

    def _row_of(self, booking_id: str, user_id: int) -> Booking | None:
        row = self.rows.get(booking_id)
        return row if row is not None and row.user_id == user_id else None


def _age(booking: Booking) -> tuple[dt.datetime, str]:
    return booking.created_at, booking.id
