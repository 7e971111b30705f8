"""Changing confirmed bookings over the real parts: in-process shards on SQLite, a SQLite regional
store, the simulated payments. Faults are injected in front of the shards: a command that fails
before it runs, or runs and loses its answer (a crash or a cut connection mid-saga)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import random
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from roombook.actors.client import AvailabilityClient
from roombook.actors.local_runtime import LocalShards
from roombook.domain.accounts import NewUser, Region
from roombook.domain.bookings import Booking, BookingRequest, BookingStatus
from roombook.domain.calendar import HoldView
from roombook.domain.errors import (
    BookingInProgress,
    BookingNotModifiable,
    HoldExpired,
    IdempotencyKeyReused,
    InvalidBooking,
    NightsUnavailable,
    OutcomeUnknown,
    PaymentDeclined,
    ShardUnavailable,
)
from roombook.domain.events import BookingModified, BookingRefunded
from roombook.domain.modifications import BookingChange, ModificationStatus
from roombook.domain.nights import NightStatus
from roombook.domain.rates import RatePlan, Weekday
from roombook.domain.rooms import Location, Room, RoomPatch
from roombook.domain.stay_rules import StayRefused, StayRule, StayRules
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.services.bookings import BookingService
from roombook.services.payments import SimulatedPayments
from roombook.storage.sql.connect import availability_store
from roombook.storage.sql.sqlite_regional import SqliteRegionalStore

RING = ShardRing(2)
START = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=60)
PRICE = decimal.Decimal("100.00")
HOLD_TTL_S = 30.0


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


@dataclasses.dataclass
class Fault:
    error: Exception
    after_applying: bool
    times: int = 1


class FaultyShards:
    """The shard client, with faults to inject per method: raise before the command is sent, or
    once it has run (its answer lost)."""

    def __init__(self, client: AvailabilityClient) -> None:
        self._client = client
        self.faults: dict[str, Fault] = {}

    def fail(self, method: str, error: Exception, *, after_applying: bool = False, times: int = 1) -> None:
        self.faults[method] = Fault(error, after_applying, times)

    async def _run(self, method: str, **kwargs: object) -> HoldView:
        fault = self.faults.get(method)
        if fault is not None and fault.times > 0:
            fault.times -= 1
            if not fault.after_applying:
                raise fault.error
            await getattr(self._client, method)(**kwargs)
            raise fault.error
        return await getattr(self._client, method)(**kwargs)

    async def place_hold(self, **kwargs: object) -> HoldView:
        return await self._run("place_hold", **kwargs)

    async def check_stay(self, **kwargs: object) -> None:
        await self._run("check_stay", **kwargs)

    async def confirm(self, **kwargs: object) -> HoldView:
        return await self._run("confirm", **kwargs)

    async def release(self, **kwargs: object) -> HoldView:
        return await self._run("release", **kwargs)

    async def cancel(self, **kwargs: object) -> HoldView:
        return await self._run("cancel", **kwargs)

    async def move_booking(self, **kwargs: object) -> HoldView:
        return await self._run("move_booking", **kwargs)

    def shares_shard(self, room_id: int, other_room_id: int) -> bool:
        return self._client.shares_shard(room_id, other_room_id)


class World:
    def __init__(self, store, regional, client: AvailabilityClient, rooms: list[int]) -> None:
        self.store, self.regional, self.client = store, regional, client
        self.shards = FaultyShards(client)
        self.payments = SimulatedPayments()
        self.offset_s = 0.0  # how far the services' clock is ahead (the reconciler's cutoff)
        self.rooms = rooms
        self.service = self.process()
        self.users: list[int] = []

    def process(self) -> BookingService:
        """A booking service over the same parts: another process."""
        return BookingService(
            availability=self.shards,
            catalogue=self.store,
            regions={Region.EU: self.regional},
            payments=self.payments,
            hold_ttl_s=HOLD_TTL_S,
            clock=lambda: time.time() + self.offset_s,
        )

    def rooms_on(self, *, same_shard: bool) -> tuple[int, int]:
        first = self.rooms[0]
        other = next(r for r in self.rooms[1:] if (RING.shard_of(r) == RING.shard_of(first)) == same_shard)
        return first, other

    async def guest(self) -> int:
        n = len(self.users)
        user = await self.regional.create_user(
            NewUser(email=f"guest{n}@example.org", password_hash="x", region=Region.EU, created_at=_now())
        )
        self.users.append(user.id)
        return user.id

    async def book(self, user_id: int, room_id: int, first: int, last: int) -> Booking:
        request = BookingRequest(room_id=room_id, check_in=day(first), check_out=day(last), guests=1)
        return await self.service.book(
            user_id=user_id, region=Region.EU, idempotency_key=str(uuid.uuid4()), request=request
        )

    async def change(self, booking: Booking, key: str | None = None, **fields: object) -> Booking:
        return await self.service.modify(
            user_id=booking.user_id,
            region=Region.EU,
            booking_id=booking.id,
            idempotency_key=key or str(uuid.uuid4()),
            change=BookingChange(**fields),  # type: ignore[arg-type]
        )

    async def holders(self, room_id: int, first: int, last: int) -> list[str | None]:
        rows = {n.date: n for n in await self.store.nights(room_id, day(first), day(last))}
        return [
            rows[day(n)].holder if day(n) in rows and rows[day(n)].status is NightStatus.BOOKED else None
            for n in range(first, last)
        ]

    async def row(self, booking: Booking) -> Booking:
        found = await self.regional.booking(booking.id, booking.user_id)
        assert found is not None
        return found

    async def events(self) -> list:
        return [event for _, event in await self.regional.pending_events(1000)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
async def world(tmp_path) -> AsyncIterator[World]:
    async with (
        availability_store(f"sqlite:///{tmp_path / 'global.db'}") as store,
        SqliteRegionalStore(str(tmp_path / "eu.db"), Region.EU) as regional,
    ):
        await store.migrate()
        await regional.migrate()
        room = Room(title="Double", location=Location(city="Porto", country="PT"), price_per_night=PRICE, capacity=3)
        rooms = await store.add_rooms([room] * 6)
        shards = LocalShards(store, RING)
        await shards.start()
        try:
            yield World(store, regional, AvailabilityClient(shards, RING), rooms)
        finally:
            await shards.stop()


# -- one shard: the new nights taken and the old ones freed in one step -----------------------------


async def test_a_later_check_out_holds_the_new_nights_charges_the_difference_and_keeps_the_booking(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)

    changed = await world.change(booking, check_out=day(4))

    assert (changed.id, changed.check_out, changed.nights, changed.total_price) == (booking.id, day(4), 4, 4 * PRICE)
    assert changed.status is BookingStatus.CONFIRMED and changed.modified_at is not None
    assert await world.row(booking) == changed
    assert await world.holders(room, 0, 5) == [booking.id] * 4 + [None]
    [modified] = [e for e in await world.events() if isinstance(e, BookingModified)]
    assert (modified.booking_id, modified.difference, modified.check_out) == (booking.id, 2 * PRICE, day(4))


async def test_an_early_check_out_frees_the_remaining_nights_and_refunds_them(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 5)

    changed = await world.change(booking, check_out=day(2))

    assert (changed.nights, changed.total_price) == (2, 2 * PRICE)
    assert await world.holders(room, 0, 5) == [booking.id, booking.id, None, None, None]
    [refunded] = [e for e in await world.events() if isinstance(e, BookingRefunded)]
    assert (refunded.booking_id, refunded.refund) == (booking.id, 3 * PRICE)
    theirs = await world.book(await world.guest(), room, 2, 5)
    assert theirs.status is BookingStatus.CONFIRMED


async def test_moving_onto_taken_nights_is_a_409_that_leaves_the_booking_and_refunds_the_charge(world):
    room, _ = world.rooms_on(same_shard=True)
    mine = await world.book(await world.guest(), room, 0, 2)
    theirs = await world.book(await world.guest(), room, 3, 4)

    with pytest.raises(NightsUnavailable) as refused:
        await world.change(mine, check_out=day(5))

    assert refused.value.nights == [day(3)]
    assert await world.row(mine) == mine
    assert await world.holders(room, 0, 5) == [mine.id, mine.id, None, theirs.id, None]
    [refunded] = [e for e in await world.events() if isinstance(e, BookingRefunded)]
    assert refunded.refund == 3 * PRICE  # the charge made for the change came back


async def test_a_declined_payment_is_a_402_and_moves_nothing(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)

    with pytest.raises(PaymentDeclined):
        await world.change(booking, check_out=day(3), card_token="tok_decline")

    assert await world.row(booking) == booking
    assert await world.holders(room, 0, 3) == [booking.id, booking.id, None]


async def test_a_move_to_another_room_of_the_same_shard_happens_in_one_step(world):
    room, other = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)

    changed = await world.change(booking, room_id=other, guests=2)

    assert (changed.room_id, changed.guests, changed.total_price) == (other, 2, booking.total_price)
    assert await world.holders(room, 0, 2) == [None, None]
    assert await world.holders(other, 0, 2) == [booking.id, booking.id]


async def test_a_change_replayed_with_its_key_answers_the_same_and_runs_once(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)
    key = str(uuid.uuid4())

    first = await world.change(booking, key, check_out=day(3))
    again = await world.change(booking, key, check_out=day(3))

    assert again == first
    assert len([e for e in await world.events() if isinstance(e, BookingModified)]) == 1
    with pytest.raises(IdempotencyKeyReused):
        await world.change(booking, key, check_out=day(4))


async def test_a_change_that_changes_nothing_answers_the_booking_and_records_nothing(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)

    assert await world.change(booking, check_out=day(2), room_id=room) == booking
    assert not [e for e in await world.events() if isinstance(e, BookingModified)]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"check_in": day(-100)}, InvalidBooking),  # in the past
        ({"check_out": day(40)}, InvalidBooking),  # more than 30 nights
        ({"guests": 4}, InvalidBooking),  # the room sleeps 3
    ],
)
async def test_a_change_the_rules_refuse_changes_nothing(world, fields, error):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)
    with pytest.raises(error):
        await world.change(booking, **fields)
    assert await world.row(booking) == booking


async def test_a_cancelled_booking_cannot_be_changed(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)
    await world.service.cancel(user_id=booking.user_id, region=Region.EU, booking_id=booking.id)
    with pytest.raises(BookingNotModifiable):
        await world.change(booking, check_out=day(3))


WEEKEND = decimal.Decimal("150.00")


def _nightly(date: dt.date) -> decimal.Decimal:
    return WEEKEND if date.weekday() >= 5 else PRICE


async def test_a_change_across_weekend_rates_is_priced_night_by_night_and_keeps_the_breakdown(world):
    room, other = world.rooms_on(same_shard=False)
    weekends = RatePlan(weekdays={Weekday.SAT: WEEKEND, Weekday.SUN: WEEKEND})
    for room_id in (room, other):
        await world.store.update_room(room_id, RoomPatch(rates=weekends))
    first = next(n for n in range(7) if day(n).weekday() == 3)  # a Thursday: Fri at the flat price, then the weekend
    booking = await world.book(await world.guest(), room, first, first + 2)
    assert booking.total_price == 2 * PRICE

    longer = await world.change(booking, check_out=day(first + 4))  # one shard: Thu, Fri, Sat, Sun
    moved = await world.change(longer, room_id=other, check_in=day(first + 1))  # another shard: Fri, Sat, Sun

    assert [(n.date, n.price) for n in longer.night_prices] == [
        (day(first + i), _nightly(day(first + i))) for i in range(4)
    ]
    assert longer.total_price == 2 * PRICE + 2 * WEEKEND
    assert [(n.date, n.price) for n in moved.night_prices] == [
        (day(first + i), _nightly(day(first + i))) for i in range(1, 4)
    ]
    assert moved.total_price == PRICE + 2 * WEEKEND
    assert await world.row(booking) == moved
    changes = [e for e in await world.events() if isinstance(e, BookingModified)]
    assert [e.difference for e in changes] == [2 * WEEKEND, -PRICE]
    [refunded] = [e for e in await world.events() if isinstance(e, BookingRefunded)]
    assert refunded.refund == PRICE  # the Thursday given up


async def test_the_nights_a_booking_keeps_cost_what_was_paid_for_them_whatever_the_rates_now(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 5)  # 5 nights at the flat price
    dearer = RatePlan(weekdays={weekday: WEEKEND for weekday in Weekday})  # then every night dearer
    await world.store.update_room(room, RoomPatch(rates=dearer))

    shorter = await world.change(booking, check_out=day(2))  # an early check-out: 3 nights given up
    longer = await world.change(shorter, check_out=day(3))  # then one night more, at today's rate

    assert [n.price for n in shorter.night_prices] == [PRICE, PRICE] and shorter.total_price == 2 * PRICE
    assert [n.price for n in longer.night_prices] == [PRICE, PRICE, WEEKEND]
    assert longer.total_price == 2 * PRICE + WEEKEND
    [refunded] = [e for e in await world.events() if isinstance(e, BookingRefunded)]
    assert refunded.refund == 3 * PRICE  # what those nights cost, not what they would cost now
    changes = [e for e in await world.events() if isinstance(e, BookingModified)]
    assert [e.difference for e in changes] == [-3 * PRICE, WEEKEND]


@pytest.mark.parametrize(
    ("rules", "fields", "rule"),
    [
        (StayRules(min_nights=3), {"check_out": day(2)}, StayRule.MIN_STAY),  # an early check-out too short
        (StayRules(closed_to_departure=[day(5)]), {"check_out": day(5)}, StayRule.CLOSED_TO_DEPARTURE),
        (StayRules(closed_to_arrival=[day(1)]), {"check_in": day(1)}, StayRule.CLOSED_TO_ARRIVAL),
        (StayRules(horizon_days=61), {"check_in": day(5), "check_out": day(7)}, StayRule.HORIZON),
        (StayRules(), {"guests": 4}, StayRule.CAPACITY),
    ],
)
async def test_a_changed_stay_the_rooms_rules_refuse_is_refused_naming_the_rule_and_changes_nothing(
    world, rules, fields, rule
):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 4)
    await world.store.update_room(room, RoomPatch(stay_rules=rules))  # made stricter since it was booked

    with pytest.raises(StayRefused) as refused:
        await world.change(booking, **fields)

    assert refused.value.rule is rule and refused.value.status == 422
    assert await world.row(booking) == booking
    assert await world.holders(room, 0, 8) == [booking.id] * 4 + [None] * 4
    assert not [e for e in await world.events() if isinstance(e, (BookingModified, BookingRefunded))]
    assert await world.regional.pending_modifications_before(_now() + dt.timedelta(days=1)) == []  # none begun


async def test_a_guests_only_change_is_not_judged_by_length_rules_made_since(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)
    await world.store.update_room(room, RoomPatch(stay_rules=StayRules(min_nights=5)))

    changed = await world.change(booking, guests=3)

    assert (changed.guests, changed.check_in, changed.check_out) == (3, booking.check_in, booking.check_out)


async def test_a_stay_under_way_checks_out_early_by_the_propertys_today_not_utcs(world):
    room, _ = world.rooms_on(same_shard=True)
    far_east = Location(city="London", country="KI", timezone="Pacific/Kiritimati")  # UTC+14
    await world.store.update_room(room, RoomPatch(location=far_east))
    booking = await world.book(await world.guest(), room, 0, 5)
    # noon UTC on the stay's second day: already the third day, 02:00, at the property
    world.offset_s = dt.datetime.combine(day(1), dt.time(12), dt.UTC).timestamp() - time.time()

    with pytest.raises(InvalidBooking):  # the property's yesterday, though still today in UTC
        await world.change(booking, check_out=day(1))
    with pytest.raises(InvalidBooking):  # nights already slept do not move
        await world.change(booking, check_in=day(3))
    changed = await world.change(booking, check_out=day(2))  # its arrival, past now, is not judged again

    assert (changed.check_in, changed.check_out, changed.total_price) == (day(0), day(2), 2 * PRICE)
    assert await world.holders(room, 0, 5) == [booking.id, booking.id, None, None, None]


# -- two shards: a compensating saga --------------------------------------------------------------


async def test_a_move_to_a_room_of_another_shard_books_the_new_nights_then_frees_the_old_ones(world):
    room, other = world.rooms_on(same_shard=False)
    booking = await world.book(await world.guest(), room, 0, 2)

    changed = await world.change(booking, room_id=other, check_out=day(3))

    assert (changed.room_id, changed.nights, changed.total_price) == (other, 3, 3 * PRICE)
    assert await world.holders(room, 0, 3) == [None, None, None]
    assert await world.holders(other, 0, 3) == [booking.id] * 3
    cancelled = await world.service.cancel(user_id=booking.user_id, region=Region.EU, booking_id=booking.id)
    assert cancelled.status is BookingStatus.CANCELLED
    assert await world.holders(other, 0, 3) == [None, None, None]  # freed on the room it moved to


async def test_a_move_to_taken_nights_of_another_shard_is_refused_and_the_old_stay_kept(world):
    room, other = world.rooms_on(same_shard=False)
    booking = await world.book(await world.guest(), room, 0, 2)
    theirs = await world.book(await world.guest(), other, 1, 2)

    with pytest.raises(NightsUnavailable):
        await world.change(booking, room_id=other)

    assert await world.row(booking) == booking
    assert await world.holders(room, 0, 2) == [booking.id, booking.id]
    assert await world.holders(other, 0, 2) == [None, theirs.id]


async def test_a_declined_payment_for_another_shard_releases_the_new_hold(world):
    room, other = world.rooms_on(same_shard=False)
    booking = await world.book(await world.guest(), room, 0, 2)

    with pytest.raises(PaymentDeclined):
        await world.change(booking, room_id=other, check_out=day(3), card_token="tok_decline")

    assert await world.row(booking) == booking
    calendar = await world.client.calendar(room_id=other, start=day(0), end=day(3))
    assert {n.status for n in calendar} == {NightStatus.AVAILABLE}
    assert (await world.book(await world.guest(), other, 0, 3)).status is BookingStatus.CONFIRMED


async def test_a_saga_whose_old_nights_are_not_freed_is_finished_by_the_reconciler(world):
    """The answer of the step that frees the old nights is lost (the process then dies): the
    guest holds both stays for a while, never neither; the reconciler finishes the change."""
    room, other = world.rooms_on(same_shard=False)
    booking = await world.book(await world.guest(), room, 0, 2)
    world.shards.fail("cancel", ShardUnavailable("connection cut"), after_applying=False)

    with pytest.raises(OutcomeUnknown):
        await world.change(booking, room_id=other, check_out=day(3))

    assert await world.row(booking) == msgspec.structs.replace(booking, modifying=(await world.row(booking)).modifying)
    assert await world.holders(room, 0, 2) == [booking.id] * 2  # still the guest's
    assert await world.holders(other, 0, 3) == [booking.id] * 3
    with pytest.raises(BookingInProgress):
        await world.service.cancel(user_id=booking.user_id, region=Region.EU, booking_id=booking.id)

    world.offset_s = HOLD_TTL_S + 5  # long after: the process that began it is gone
    assert await world.process().reconcile() >= 1

    changed = await world.row(booking)
    assert (changed.room_id, changed.check_out, changed.modifying) == (other, day(3), None)
    assert await world.holders(room, 0, 2) == [None, None]
    assert await world.holders(other, 0, 3) == [booking.id] * 3
    assert len([e for e in await world.events() if isinstance(e, BookingModified)]) == 1


async def test_a_lost_answer_of_the_one_step_move_is_settled_by_a_replay_charged_once(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 2)
    key = str(uuid.uuid4())
    world.shards.fail("move_booking", ShardUnavailable("answer lost"), after_applying=True)

    with pytest.raises(OutcomeUnknown):
        await world.change(booking, key, check_out=day(4))
    assert (await world.row(booking)).check_out == day(2)  # not applied yet, as far as the store knows

    changed = await world.change(booking, key, check_out=day(4))

    assert (changed.check_out, changed.total_price) == (day(4), 4 * PRICE)
    assert await world.holders(room, 0, 4) == [booking.id] * 4
    modification = await world.regional.modification_by_key(booking.id, key)
    assert modification is not None and modification.status is ModificationStatus.APPLIED
    replayed_charge = await world.payments.authorize(2 * PRICE, "EUR", "tok_visa", modification.id)
    assert replayed_charge.id == modification.charge_id  # the retry's charge was the first one


async def test_a_refund_the_payments_could_not_make_is_made_by_the_reconciler(world):
    room, _ = world.rooms_on(same_shard=True)
    booking = await world.book(await world.guest(), room, 0, 4)
    original = world.payments.refund

    async def down(*args, **kwargs):
        raise ConnectionError("payments down")

    world.payments.refund = down  # type: ignore[method-assign]
    changed = await world.change(booking, check_out=day(1))
    assert changed.nights == 1 and not [e for e in await world.events() if isinstance(e, BookingRefunded)]

    world.payments.refund = original  # type: ignore[method-assign]
    await world.service.reconcile()
    await world.service.reconcile()
    [refunded] = [e for e in await world.events() if isinstance(e, BookingRefunded)]
    assert refunded.refund == 3 * PRICE


# -- under contention ---------------------------------------------------------------------------------


async def test_changes_racing_new_bookings_on_a_hot_room_never_share_a_night_nor_lose_a_booking(world):
    room, _ = world.rooms_on(same_shard=True)
    rng = random.Random(7)
    movers = [await world.book(await world.guest(), room, 3 * i, 3 * i + 1) for i in range(6)]
    guests = [await world.guest() for _ in range(20)]

    async def change(booking: Booking) -> None:
        for _ in range(4):
            first = rng.randrange(0, 18)
            with _refused():
                booking = await world.change(booking, check_in=day(first), check_out=day(first + rng.randint(1, 3)))

    async def book(user_id: int) -> Booking | None:
        first = rng.randrange(0, 18)
        with _refused():
            return await world.book(user_id, room, first, first + 1)
        return None

    _, made = await asyncio.gather(
        asyncio.gather(*(change(b) for b in movers)), asyncio.gather(*(book(g) for g in guests))
    )

    owners: dict[dt.date, str] = {}
    for user_id in world.users:
        page = await world.regional.bookings_of(user_id, page=1, per_page=100)
        for b in page.items:
            if b.status is BookingStatus.CONFIRMED:
                for night in Stay(check_in=b.check_in, check_out=b.check_out).nights():
                    assert night not in owners, f"{night} is {owners[night]}'s and {b.id}'s"
                    owners[night] = b.id
    stored = {day(n): h for n, h in enumerate(await world.holders(room, 0, 25)) if h is not None}
    assert stored == owners  # the shard's nights are exactly the confirmed bookings' nights
    assert all(b.id in owners.values() for b in made if b is not None)  # no acknowledged booking lost
    assert all(b.id in owners.values() for b in movers)  # every booking kept a stay
    changes = [e for e in await world.events() if isinstance(e, BookingModified)]
    assert changes and any(b is None for b in made)  # the race had both outcomes


class _refused:
    """Swallows the refusals a race is expected to produce."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        return kind is not None and issubclass(kind, NightsUnavailable)


async def test_a_lost_answer_of_the_new_hold_on_another_shard_is_finished_by_the_reconciler_once(world):
    room, other = world.rooms_on(same_shard=False)
    booking = await world.book(await world.guest(), room, 0, 2)
    world.shards.fail("place_hold", ShardUnavailable("answer lost"), after_applying=True)

    with pytest.raises(OutcomeUnknown):
        await world.change(booking, room_id=other)
    assert await world.holders(room, 0, 2) == [booking.id] * 2  # the old stay is still the guest's

    world.offset_s = HOLD_TTL_S + 5
    await world.process().reconcile()

    changed = await world.row(booking)
    assert (changed.room_id, changed.modifying) == (other, None)
    assert await world.holders(room, 0, 2) == [None, None]
    assert await world.holders(other, 0, 2) == [booking.id] * 2


async def test_a_new_hold_that_runs_out_before_it_is_confirmed_refuses_the_change_and_refunds_the_charge(world):
    room, other = world.rooms_on(same_shard=False)
    booking = await world.book(await world.guest(), room, 0, 2)
    world.shards.fail("confirm", HoldExpired("ran out while the payment was made"))

    with pytest.raises(HoldExpired):
        await world.change(booking, room_id=other, check_out=day(3))

    assert await world.row(booking) == booking
    assert await world.holders(room, 0, 2) == [booking.id] * 2
    [refunded] = [e for e in await world.events() if isinstance(e, BookingRefunded)]
    assert refunded.refund == PRICE  # the night more that was charged came back
    calendar = await world.client.calendar(room_id=other, start=day(0), end=day(3))
    assert {n.status for n in calendar} == {NightStatus.AVAILABLE}  # its hold released
