"""The booking saga, the reconciler and cancellation, over fakes of the shards, store and payments.

Time is a FakeClock: a test moves it, and the service's own waits move it, so hours pass in an
instant. A second BookingService over the same fakes is another process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal

import msgspec
import pytest
from saga_fakes import FakeBookingStore, FakeCatalogue, FakeClock, FakePayments, FakeShards

from roombook.domain.accounts import Region
from roombook.domain.bookings import (
    Booking,
    BookingIds,
    BookingRequest,
    BookingStatus,
    Refusal,
    pending_booking,
    stay_quote,
)
from roombook.domain.calendar import HoldStatus
from roombook.domain.cancellation import CancellationFee, CancellationPolicy
from roombook.domain.errors import (
    BookingInProgress,
    HoldExpired,
    HoldMismatch,
    IdempotencyKeyReused,
    InvalidBooking,
    InvalidCardToken,
    NightsUnavailable,
    OutcomeUnknown,
    PaymentDeclined,
    ShardUnavailable,
    StoreUnavailable,
    UnknownBooking,
    UnknownHold,
    UnknownRoom,
)
from roombook.domain.events import BookingCancelled, BookingConfirmed, BookingCreated, BookingRefunded
from roombook.domain.rooms import Location, Room
from roombook.domain.stay_rules import StayRefused, StayRule, StayRules
from roombook.services.bookings import CLOCK_SKEW_S, BookingService

START_S = dt.datetime(2031, 3, 1, 12, tzinfo=dt.UTC).timestamp()
HOLD_TTL_S = 60.0
DUPLICATE_WAIT_S = 2.0
RECONCILE_EVERY_S = 30.0
GUEST, OTHER_GUEST = 1, 2
ROOM = Room(
    id=7,
    title="Garden room",
    location=Location(city="Lyon", country="FR"),
    price_per_night=decimal.Decimal("80.00"),
    currency="EUR",
    capacity=2,
)
REQUEST = BookingRequest(
    room_id=ROOM.id, check_in=dt.date(2031, 3, 10), check_out=dt.date(2031, 3, 12), guests=2, card_token="tok_visa"
)
NIGHTS = [dt.date(2031, 3, 10), dt.date(2031, 3, 11)]
EXPIRED = Refusal(kind=HoldExpired.kind)


class World:
    """A booking service over fakes, and the fakes to look into."""

    def __init__(
        self, *, declines: dict[str, str] | None = None, policies: dict[int, CancellationPolicy] | None = None
    ) -> None:
        self.clock = FakeClock(START_S)
        self.shards = FakeShards(self.clock)
        self.store = FakeBookingStore(Region.EU)
        self.payments = FakePayments(declines)
        self.catalogue = FakeCatalogue(ROOM, policies=policies)
        self.service = self.process()

    def process(self, room: Room = ROOM, **options: object) -> BookingService:
        """A booking service over the same shards, store and payments: another process."""
        return BookingService(
            availability=self.shards,
            catalogue=self.catalogue if room is ROOM else FakeCatalogue(room, policies=self.catalogue.policies),
            regions={Region.EU: self.store},
            payments=self.payments,
            hold_ttl_s=HOLD_TTL_S,
            clock=self.clock.now,
            sleep=self.clock.sleep,
            reconcile_every_s=RECONCILE_EVERY_S,
            duplicate_wait_s=DUPLICATE_WAIT_S,
            **options,
        )

    async def book(
        self,
        key: str = "key-1",
        request: BookingRequest = REQUEST,
        *,
        user_id: int = GUEST,
        service: BookingService | None = None,
    ) -> Booking:
        return await (service or self.service).book(
            user_id=user_id, region=Region.EU, idempotency_key=key, request=request
        )

    async def cancel(self, booking_id: str, *, user_id: int = GUEST) -> Booking:
        return await self.service.cancel(user_id=user_id, region=Region.EU, booking_id=booking_id)

    def only_row(self) -> Booking:
        [row] = self.store.rows.values()
        return row

    def calls(self) -> dict[str, int]:
        """Every call made so far to the shards that may change nights, and to the payments."""
        changing = {method: n for method, n in self.shards.faults.calls.items() if method != "check_stay"}
        return {**changing, **self.payments.faults.calls}

    async def abandoned(self, key: str = "gone") -> Booking:
        """The PENDING row a process leaves that dies right after writing it."""
        booking = pending_booking(
            booking_id=BookingIds().next(int(self.clock.now() * 1000)),
            user_id=GUEST,
            request=REQUEST,
            quote=stay_quote(REQUEST, price_per_night=ROOM.price_per_night, currency=ROOM.currency),
            idempotency_key=key,
            now=dt.datetime.fromtimestamp(self.clock.now(), dt.UTC),
        )
        return await self.store.insert_booking(booking)

    async def hold(self, booking: Booking) -> None:
        await self.shards.place_hold(room_id=ROOM.id, hold_id=booking.id, stay=REQUEST.stay, ttl_s=HOLD_TTL_S)


def past_the_hold_ttl(world: World) -> None:
    """Move to the first moment the reconciler gives up a booking created at START_S."""
    world.clock.now_s = START_S + HOLD_TTL_S + CLOCK_SKEW_S + 0.001


async def turns_until(condition, *, turns: int = 1000) -> None:
    """Let the other tasks run until condition() holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


# -- the saga ------------------------------------------------------------------------------------


async def test_a_booking_is_confirmed_with_its_nights_booked_and_its_payment_authorized_once():
    world = World()

    booking = await world.book()

    assert booking.status is BookingStatus.CONFIRMED
    assert (booking.room_id, booking.nights, booking.total_price) == (ROOM.id, 2, decimal.Decimal("160.00"))
    assert world.only_row() == booking
    assert world.shards.status(booking.id) is HoldStatus.BOOKED
    assert world.shards.taken(ROOM.id, REQUEST.stay) == NIGHTS
    assert world.shards.confirmations[booking.id] == 1
    [intent] = world.payments.intents.values()
    assert intent.authorized and intent.amount == booking.total_price
    assert booking.payment_intent_id == intent.id
    assert world.calls() == {"place_hold": 1, "authorize": 1, "confirm": 1}


async def test_a_request_naming_no_card_pays_with_the_default_token():
    world = World(declines={"tok_visa": "do_not_honor"})

    with pytest.raises(PaymentDeclined):
        await world.book(request=msgspec.structs.replace(REQUEST, card_token=None))


async def test_a_stay_already_taken_is_refused_at_once_with_nothing_stored_and_its_key_stays_free():
    world = World()
    other = await world.book(
        "theirs",
        msgspec.structs.replace(REQUEST, check_in=dt.date(2031, 3, 11), check_out=dt.date(2031, 3, 13)),
        user_id=OTHER_GUEST,
    )
    calls_before, outbox_before = world.calls(), list(world.store.outbox)

    with pytest.raises(NightsUnavailable) as refused:
        await world.book()

    assert (refused.value.status, refused.value.nights) == (409, [dt.date(2031, 3, 11)])
    assert list(world.store.rows) == [other.id] and world.store.outbox == outbox_before
    assert world.calls() == calls_before  # no hold, no payment: the check alone refused it
    assert world.shards.faults.calls["check_stay"] == 2
    # Nothing was stored under the key, so once the nights are free the same key books them.
    await world.service.cancel(user_id=OTHER_GUEST, region=Region.EU, booking_id=other.id)
    booking = await world.book()
    assert booking.status is BookingStatus.CONFIRMED and booking.idempotency_key == "key-1"


async def test_a_hold_refused_after_the_check_is_stored_refused_and_a_replay_answers_it_without_the_shard():
    world = World()
    stalled = world.shards.faults.stall("place_hold")  # our check has passed; our hold waits
    ours = asyncio.ensure_future(world.book())
    await stalled.reached.wait()
    their_hold = world.shards.faults.stall("place_hold")
    theirs = asyncio.ensure_future(world.book("theirs", user_id=OTHER_GUEST))
    await their_hold.reached.wait()  # theirs checked (our claim is only advisory) and stored PENDING
    their_hold.go.set()  # its hold goes first, then ours
    stalled.go.set()
    with pytest.raises(NightsUnavailable) as refused:
        await ours
    other = await theirs

    assert other.status is BookingStatus.CONFIRMED and refused.value.nights == NIGHTS
    [row] = (b for b in world.store.rows.values() if b.id != other.id)
    assert row.status is BookingStatus.CANCELLED and row.refusal == Refusal(kind="nights_unavailable", nights=NIGHTS)
    assert row.id not in world.payments.intents
    calls = world.calls()
    with pytest.raises(NightsUnavailable) as replayed:
        await world.book()
    assert replayed.value.nights == refused.value.nights
    assert world.calls() == calls  # read back from its row: no hold, no payment


async def test_a_replay_refused_by_its_own_booking_s_nights_answers_the_booking():
    world = World()
    booking = await world.book()
    checks = world.shards.faults.calls["check_stay"]

    assert await world.book() == booking  # its nights are taken by itself: the key is looked up
    assert world.shards.faults.calls["check_stay"] == checks + 1
    assert list(world.store.rows) == [booking.id]


async def test_a_key_in_flight_in_another_process_is_answered_its_outcome_not_a_refusal():
    world = World()
    paying = world.payments.faults.stall("authorize")  # the first process holds the nights, then waits
    first = asyncio.ensure_future(world.book())
    await paying.reached.wait()
    checking = world.shards.faults.stall("check_stay")
    second = asyncio.ensure_future(world.book(service=world.process()))  # same key, another process
    await checking.reached.wait()
    checking.go.set()  # its check finds the nights held
    paying.go.set()

    booking = await first
    assert await second == booking and booking.status is BookingStatus.CONFIRMED
    assert list(world.store.rows) == [booking.id]


async def test_checks_at_once_bounds_the_attempts_being_checked_but_not_the_bookings_past_their_check():
    world = World()
    service = world.process(checks_at_once=1)
    paying = world.payments.faults.stall("authorize")  # the first attempt is past its check
    first = asyncio.ensure_future(world.book("k-1", service=service))
    await paying.reached.wait()
    checking = world.shards.faults.stall("check_stay")  # the second is being checked
    later = msgspec.structs.replace(REQUEST, check_in=dt.date(2031, 3, 20), check_out=dt.date(2031, 3, 22))
    second = asyncio.ensure_future(world.book("k-2", later, service=service))
    await checking.reached.wait()
    third = asyncio.ensure_future(world.book("k-3", later, user_id=OTHER_GUEST, service=service))
    for _ in range(20):
        await asyncio.sleep(0)
    assert world.shards.faults.calls["check_stay"] == 2  # the third waits for the second's check

    checking.go.set()
    paying.go.set()
    booked = await first, await second
    with pytest.raises(NightsUnavailable):
        await third  # checked only once the second was: the nights went to the second
    assert [b.status for b in booked] == [BookingStatus.CONFIRMED] * 2
    assert world.shards.faults.calls["check_stay"] == 3


async def test_a_refused_attempt_gives_its_place_back_before_it_looks_up_its_key():
    world = World()
    service = world.process(checks_at_once=1)
    await world.book("theirs", user_id=OTHER_GUEST, service=service)
    looking_up = world.store.faults.stall("booking_by_key")  # the refused attempt's key lookup hangs
    refused = asyncio.ensure_future(world.book("k-1", service=service))
    await looking_up.reached.wait()
    later = msgspec.structs.replace(REQUEST, check_in=dt.date(2031, 3, 20), check_out=dt.date(2031, 3, 22))

    booked = await asyncio.wait_for(world.book("k-2", later, service=service), timeout=5)

    assert booked.status is BookingStatus.CONFIRMED
    looking_up.go.set()
    with pytest.raises(NightsUnavailable):
        await refused


async def test_a_check_that_fails_leaves_the_attempt_to_the_saga_which_stores_its_refusal():
    world = World()
    other = await world.book("theirs", user_id=OTHER_GUEST)
    world.shards.faults.fail("check_stay", ShardUnavailable("no answer"))

    with pytest.raises(NightsUnavailable):
        await world.book()
    [row] = (b for b in world.store.rows.values() if b.id != other.id)
    assert row.refusal == Refusal(kind="nights_unavailable", nights=NIGHTS)


async def test_a_declined_payment_releases_the_hold_cancels_the_booking_and_a_replay_is_declined_the_same():
    world = World(declines={"tok_empty": "insufficient_funds"})
    request = msgspec.structs.replace(REQUEST, card_token="tok_empty")

    with pytest.raises(PaymentDeclined) as declined:
        await world.book(request=request)

    assert (declined.value.status, declined.value.decline_code) == (402, "insufficient_funds")
    row = world.only_row()
    assert row.status is BookingStatus.CANCELLED
    assert row.refusal == Refusal(kind="payment_declined", decline_code="insufficient_funds")
    assert row.payment_intent_id == world.payments.intents[row.id].id
    assert world.shards.faults.calls["release"] == 1
    assert world.shards.status(row.id) is None and world.shards.taken(ROOM.id, REQUEST.stay) == []
    calls = world.calls()
    with pytest.raises(PaymentDeclined) as replayed:
        await world.book(request=request)
    assert replayed.value.decline_code == "insufficient_funds"
    assert world.calls() == calls


@pytest.mark.parametrize("lost", [HoldExpired, UnknownHold])
async def test_a_hold_lost_at_confirm_expires_the_booking_and_answers_hold_expired(lost):
    world = World()
    world.shards.faults.fail("confirm", lost("gone before the payment came back"))

    with pytest.raises(HoldExpired) as expired:
        await world.book()

    assert expired.value.status == 409
    row = world.only_row()
    assert (row.status, row.refusal) == (BookingStatus.EXPIRED, EXPIRED)
    assert row.payment_intent_id == world.payments.intents[row.id].id
    with pytest.raises(HoldExpired):
        await world.book()


async def test_a_hold_that_runs_out_while_the_payment_is_slow_expires_the_booking():
    world = World()
    slow = world.payments.faults.stall("authorize")
    saga = asyncio.create_task(world.book())
    await slow.reached.wait()

    world.clock.advance(HOLD_TTL_S + 1)
    slow.go.set()

    with pytest.raises(HoldExpired):
        await saga
    assert world.only_row().status is BookingStatus.EXPIRED
    assert world.shards.taken(ROOM.id, REQUEST.stay) == []


@pytest.mark.parametrize("hold_placed", [False, True], ids=["refused", "answer-lost"])
async def test_a_shard_failing_at_place_hold_has_the_hold_released_and_the_booking_cancelled(hold_placed):
    world = World()
    world.shards.faults.fail("place_hold", ShardUnavailable("restarting"), after_applying=hold_placed)

    with pytest.raises(ShardUnavailable) as failed:
        await world.book()

    assert type(failed.value) is ShardUnavailable and failed.value.status == 503
    row = world.only_row()
    assert (row.status, row.refusal) == (BookingStatus.CANCELLED, Refusal(kind="shard_unavailable"))
    assert world.shards.faults.calls["release"] == 1
    assert world.shards.status(row.id) is None and world.shards.taken(ROOM.id, REQUEST.stay) == []
    assert world.payments.intents == {}
    calls = world.calls()
    with pytest.raises(ShardUnavailable):
        await world.book()
    assert world.calls() == calls


async def test_a_shard_failing_at_place_hold_and_at_its_release_leaves_the_booking_pending_and_the_outcome_unknown():
    world = World()
    world.shards.faults.fail("place_hold", ShardUnavailable("cut"), after_applying=True)
    world.shards.faults.fail("release", ShardUnavailable("still down"))

    with pytest.raises(OutcomeUnknown) as unknown:
        await world.book()

    assert unknown.value.status == 503
    row = world.only_row()
    assert row.status is BookingStatus.PENDING
    assert world.shards.status(row.id) is HoldStatus.HELD
    past_the_hold_ttl(world)
    assert await world.service.reconcile() == 1
    assert world.only_row().status is BookingStatus.EXPIRED
    assert world.shards.status(row.id) is None


@pytest.mark.parametrize("confirmed", [False, True], ids=["refused", "answer-lost"])
async def test_a_shard_failing_at_confirm_leaves_the_outcome_unknown_until_a_replay_confirms_the_booking(confirmed):
    world = World()
    world.shards.faults.fail("confirm", ShardUnavailable("cut"), after_applying=confirmed)

    with pytest.raises(OutcomeUnknown):
        await world.book()
    row = world.only_row()
    assert row.status is BookingStatus.PENDING

    world.clock.advance(DUPLICATE_WAIT_S)
    booking = await world.book()

    assert (booking.id, booking.status) == (row.id, BookingStatus.CONFIRMED)
    assert world.only_row() == booking
    assert world.shards.status(row.id) is HoldStatus.BOOKED
    assert world.shards.confirmations[row.id] == 1
    assert list(world.payments.intents) == [row.id]
    assert booking.payment_intent_id == world.payments.intents[row.id].id


async def test_a_hold_that_reaches_the_shard_after_the_hold_ttl_is_refused_and_the_booking_expires():
    world = World()
    stalled = world.shards.faults.stall("place_hold")
    saga = asyncio.create_task(world.book())
    await stalled.reached.wait()

    world.clock.advance(HOLD_TTL_S + 1)
    stalled.go.set()

    with pytest.raises(HoldExpired):
        await saga
    row = world.only_row()
    assert (row.status, row.refusal) == (BookingStatus.EXPIRED, EXPIRED)
    assert world.shards.status(row.id) is None
    assert world.payments.intents == {}


async def _given_up_while_stalled_before_its_hold(world: World) -> asyncio.Task[Booking]:
    """A saga stalled right before its hold while a reconciler gives its booking up. That
    reconciler's clock runs ahead of the shard's by more than CLOCK_SKEW_S, so the hold that
    arrives afterwards is still within its deadline by the shard's clock and is placed."""
    stalled = world.shards.faults.stall("place_hold")
    saga = asyncio.create_task(world.book())
    await stalled.reached.wait()
    assert await world.service.reconcile(now_s=world.clock.now() + HOLD_TTL_S + 2 * CLOCK_SKEW_S) == 1
    assert world.only_row().status is BookingStatus.EXPIRED
    stalled.go.set()
    return saga


async def test_a_saga_the_reconciler_gave_up_while_stalled_before_its_hold_frees_the_nights_it_went_on_to_book():
    world = World()
    saga = await _given_up_while_stalled_before_its_hold(world)

    with pytest.raises(HoldExpired):
        await saga

    row = world.only_row()
    assert (row.status, row.refusal) == (BookingStatus.EXPIRED, EXPIRED)
    assert world.shards.confirmations[row.id] == 1  # it did book them...
    assert world.shards.faults.calls["cancel"] == 1  # ...and freed them again
    assert world.shards.status(row.id) is None and world.shards.taken(ROOM.id, REQUEST.stay) == []


async def test_nights_a_given_up_saga_booked_are_freed_later_when_the_shard_fails_to_cancel_them():
    world = World()
    world.shards.faults.fail("cancel", ShardUnavailable("restarting"))
    saga = await _given_up_while_stalled_before_its_hold(world)

    with pytest.raises(HoldExpired):  # the guest's outcome is known: nothing is booked for them
        await saga
    with pytest.raises(HoldExpired):
        await world.book()  # the replay
    assert world.shards.taken(ROOM.id, REQUEST.stay) != []  # booked still, by nobody...
    past_the_hold_ttl(world)
    world.clock.advance(RECONCILE_EVERY_S)
    await world.service.reconcile()  # the next round

    assert world.only_row().status is BookingStatus.EXPIRED
    assert world.shards.taken(ROOM.id, REQUEST.stay) == []  # nobody owns these nights: they must be free


async def test_a_key_replayed_with_another_body_is_refused_as_reused():
    world = World()
    booking = await world.book()

    with pytest.raises(IdempotencyKeyReused) as reused:
        await world.book(request=msgspec.structs.replace(REQUEST, guests=1))

    assert reused.value.status == 422
    assert world.only_row() == booking
    assert world.shards.faults.calls["place_hold"] == 1


async def test_the_same_key_of_another_guest_is_another_booking():
    world = World()

    mine = await world.book()
    theirs = await world.book(
        request=msgspec.structs.replace(REQUEST, check_in=dt.date(2031, 4, 1), check_out=dt.date(2031, 4, 2)),
        user_id=OTHER_GUEST,
    )

    assert mine.id != theirs.id and len(world.store.rows) == 2


async def test_two_concurrent_requests_with_one_key_in_one_process_run_one_saga_and_get_the_same_booking():
    world = World()
    stalled = world.shards.faults.stall("place_hold")
    first = asyncio.create_task(world.book())
    await stalled.reached.wait()
    second = asyncio.create_task(world.book())
    for _ in range(10):
        await asyncio.sleep(0)

    assert not second.done()
    assert world.store.faults.calls["insert_booking"] == 1  # the second waits for the first to finish
    stalled.go.set()

    one, other = await asyncio.gather(first, second)
    assert one == other and one.status is BookingStatus.CONFIRMED
    assert world.calls() == {"place_hold": 1, "authorize": 1, "confirm": 1}


async def test_a_replay_while_another_process_is_still_booking_waits_for_its_outcome():
    world = World()
    stalled = world.shards.faults.stall("confirm")
    elsewhere = asyncio.create_task(world.book(service=world.process()))
    await stalled.reached.wait()
    created_s = world.clock.now()

    replay = asyncio.create_task(world.book())
    await turns_until(lambda: world.clock.now() >= created_s + 0.1)  # the replay is waiting
    assert not replay.done() and world.only_row().status is BookingStatus.PENDING
    stalled.go.set()

    there, here = await asyncio.gather(elsewhere, replay)
    assert here == there and here.status is BookingStatus.CONFIRMED
    assert world.clock.now() < created_s + DUPLICATE_WAIT_S
    assert world.calls() == {"place_hold": 1, "authorize": 1, "confirm": 1}


async def test_a_replay_finishes_a_saga_still_pending_once_it_is_older_than_the_duplicate_wait():
    world = World()
    stalled = world.shards.faults.stall("confirm")
    elsewhere = asyncio.create_task(world.book(service=world.process()))
    await stalled.reached.wait()
    created_s = world.clock.now()

    booking = await world.book()

    assert booking.status is BookingStatus.CONFIRMED
    assert world.clock.now() >= created_s + DUPLICATE_WAIT_S
    stalled.go.set()
    assert await elsewhere == booking
    assert world.shards.confirmations[booking.id] == 1
    assert list(world.payments.intents) == [booking.id]


@pytest.mark.parametrize("stored", [False, True], ids=["refused", "ack-lost"])
async def test_a_store_failing_at_insert_answers_outcome_unknown_and_a_replay_books_once(stored):
    world = World()
    world.store.faults.fail("insert_booking", StoreUnavailable("connection cut"), after_applying=stored)

    with pytest.raises(OutcomeUnknown):
        await world.book()

    assert [row.status for row in world.store.rows.values()] == ([BookingStatus.PENDING] if stored else [])
    assert world.calls() == {}
    booking = await world.book()
    assert booking.status is BookingStatus.CONFIRMED and world.only_row() == booking
    assert world.calls() == {"place_hold": 1, "authorize": 1, "confirm": 1}


async def test_a_lost_acknowledgement_of_the_confirmation_answers_outcome_unknown_and_a_replay_answers_confirmed():
    world = World()
    world.store.faults.fail("transition_booking", StoreUnavailable("connection cut"), after_applying=True)

    with pytest.raises(OutcomeUnknown):
        await world.book()

    row = world.only_row()
    assert row.status is BookingStatus.CONFIRMED
    calls = world.calls()
    assert await world.book() == row
    assert world.calls() == calls


async def test_a_store_refusing_the_confirmation_leaves_the_booking_pending_for_a_replay_to_confirm():
    world = World()
    world.store.faults.fail("transition_booking", StoreUnavailable("deadlock", outcome_unknown=False))

    with pytest.raises(OutcomeUnknown):
        await world.book()

    assert world.only_row().status is BookingStatus.PENDING
    booking = await world.book()  # waits out duplicate_wait_s, then finishes the saga
    assert booking.status is BookingStatus.CONFIRMED
    assert world.shards.confirmations[booking.id] == 1


async def test_an_unexpected_failure_mid_saga_is_answered_outcome_unknown_never_as_failed():
    world = World()
    world.payments.faults.fail("authorize", RuntimeError("a bug"))

    with pytest.raises(OutcomeUnknown):
        await world.book()

    assert world.only_row().status is BookingStatus.PENDING


async def test_a_refusal_the_saga_does_not_expect_is_answered_as_itself_and_the_reconciler_settles_the_booking():
    world = World()
    world.shards.faults.fail("place_hold", HoldMismatch("id reused for other nights"))

    with pytest.raises(HoldMismatch):
        await world.book()

    assert world.only_row().status is BookingStatus.PENDING
    past_the_hold_ttl(world)
    assert await world.service.reconcile() == 1
    assert world.only_row().status is BookingStatus.EXPIRED


async def test_a_store_failing_while_a_replay_waits_for_another_process_is_answered_outcome_unknown():
    world = World()
    stalled = world.shards.faults.stall("confirm")
    elsewhere = asyncio.create_task(world.book(service=world.process()))
    await stalled.reached.wait()
    world.store.faults.fail("booking", StoreUnavailable("connection cut"))

    try:
        with pytest.raises(OutcomeUnknown):
            await world.book()
    finally:
        stalled.go.set()
        await elsewhere


async def test_a_client_that_hangs_up_mid_saga_does_not_stop_it():
    world = World()
    stalled = world.shards.faults.stall("confirm")
    request = asyncio.create_task(world.book())
    await stalled.reached.wait()

    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    stalled.go.set()

    await turns_until(lambda: world.only_row().status is not BookingStatus.PENDING)
    assert world.only_row().status is BookingStatus.CONFIRMED
    assert (await world.book()).status is BookingStatus.CONFIRMED


async def test_a_retry_after_a_hang_up_waits_for_the_saga_still_running_instead_of_starting_another():
    world = World()
    stalled = world.shards.faults.stall("confirm")
    first = asyncio.create_task(world.book())
    await stalled.reached.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    world.clock.advance(DUPLICATE_WAIT_S * 10)  # old enough that a replay would finish it itself
    retry = asyncio.create_task(world.book())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not retry.done() and world.shards.faults.calls["place_hold"] == 1
    stalled.go.set()

    assert (await retry).status is BookingStatus.CONFIRMED
    assert world.shards.faults.calls["place_hold"] == 1 and world.shards.faults.calls["confirm"] == 1


async def test_a_room_not_in_the_catalogue_is_refused_as_unknown_and_nothing_is_stored():
    world = World()

    with pytest.raises(UnknownRoom) as unknown:
        await world.book(request=msgspec.structs.replace(REQUEST, room_id=ROOM.id + 1))

    assert unknown.value.status == 404
    assert world.store.rows == {} and world.calls() == {}


async def test_a_card_number_sent_as_the_token_is_refused_before_anything_is_stored():
    world = World()

    with pytest.raises(InvalidCardToken):
        await world.book(request=msgspec.structs.replace(REQUEST, card_token="4111111111111111"))

    assert world.store.rows == {} and world.calls() == {}


@pytest.mark.parametrize(
    "change",
    [
        {"check_in": dt.date(2031, 2, 27), "check_out": dt.date(2031, 3, 2)},  # starts in the past
        {"guests": ROOM.capacity + 1},
    ],
    ids=["past", "too-many-guests"],
)
async def test_a_stay_the_booking_rules_refuse_is_refused_before_anything_is_stored(change):
    world = World()

    with pytest.raises(InvalidBooking):
        await world.book(request=msgspec.structs.replace(REQUEST, **change))

    assert world.store.rows == {} and world.calls() == {}


async def test_a_replay_after_the_guest_cancelled_answers_the_cancelled_booking():
    world = World()
    booking = await world.book()
    cancelled = await world.cancel(booking.id)

    assert await world.book() == cancelled


# -- the reconciler ------------------------------------------------------------------------------


async def test_the_reconciler_confirms_a_stale_pending_booking_the_shard_has_booked():
    world = World()
    booking = await world.abandoned()
    await world.hold(booking)
    await world.shards.confirm(room_id=ROOM.id, hold_id=booking.id)
    past_the_hold_ttl(world)

    assert await world.service.reconcile() == 1

    assert world.only_row().status is BookingStatus.CONFIRMED
    assert world.shards.status(booking.id) is HoldStatus.BOOKED
    assert world.shards.taken(ROOM.id, REQUEST.stay) == NIGHTS


@pytest.mark.parametrize("hold_placed", [False, True], ids=["absent", "held"])
async def test_the_reconciler_expires_a_stale_pending_booking_the_shard_has_not_booked_and_frees_its_hold(
    hold_placed,
):
    world = World()
    booking = await world.abandoned()
    if hold_placed:  # late, but within its deadline: it is still held when the booking is given up
        world.clock.advance(HOLD_TTL_S / 2)
        await world.hold(booking)
    past_the_hold_ttl(world)
    assert world.shards.status(booking.id) is (HoldStatus.HELD if hold_placed else None)

    assert await world.service.reconcile() == 1

    row = world.only_row()
    assert (row.status, row.refusal) == (BookingStatus.EXPIRED, EXPIRED)
    assert world.shards.status(booking.id) is None and world.shards.taken(ROOM.id, REQUEST.stay) == []
    assert world.shards.faults.calls["release"] == 1
    with pytest.raises(HoldExpired):
        await world.book("gone")  # its replay answers what the reconciler settled


async def test_the_reconciler_leaves_a_pending_booking_younger_than_the_hold_ttl_and_the_clock_skew_alone():
    world = World()
    booking = await world.abandoned()
    await world.hold(booking)
    world.clock.advance(HOLD_TTL_S + CLOCK_SKEW_S)

    assert await world.service.reconcile() == 0

    assert world.only_row().status is BookingStatus.PENDING
    assert world.shards.faults.calls["release"] == 0


async def test_a_shard_that_is_down_leaves_a_stale_pending_booking_for_the_reconcilers_next_round():
    world = World()
    booking = await world.abandoned()
    past_the_hold_ttl(world)
    world.shards.faults.fail("release", ShardUnavailable("restarting"))

    assert await world.service.reconcile() == 0
    assert world.only_row().status is BookingStatus.PENDING

    assert await world.service.reconcile() == 1
    assert world.store.rows[booking.id].status is BookingStatus.EXPIRED


async def test_the_reconciler_settles_every_stale_booking_a_page_at_a_time():
    world = World()
    stale = [await world.abandoned(f"gone-{i}") for i in range(5)]
    past_the_hold_ttl(world)

    assert await world.service.reconcile(batch=2) == 5

    assert {world.store.rows[b.id].status for b in stale} == {BookingStatus.EXPIRED}
    assert world.store.faults.calls["pending_bookings_before"] == 3


async def test_the_reconciler_frees_the_nights_of_a_cancelled_booking_whose_release_is_pending():
    world = World()
    booking = await world.book()
    world.shards.faults.fail("cancel", ShardUnavailable("restarting"))
    world.shards.faults.fail("cancel", ShardUnavailable("still restarting"), call=2)
    await world.cancel(booking.id)

    assert await world.service.reconcile() == 0  # still down: left for the next round
    assert list(world.store.releases) == [booking.id]

    assert await world.service.reconcile() == 1
    assert world.store.releases == {}
    assert world.shards.taken(ROOM.id, REQUEST.stay) == []
    assert world.store.rows[booking.id].status is BookingStatus.CANCELLED


async def test_start_settles_what_a_previous_process_left_then_keeps_settling_in_the_background():
    world = World()
    old = await world.abandoned("old")
    world.clock.advance(HOLD_TTL_S * 2)
    young = await world.abandoned("young")
    world.store.faults.fail("pending_releases", StoreUnavailable("down"), call=2)  # a failed round

    await world.service.start()
    try:
        assert world.store.rows[old.id].status is BookingStatus.EXPIRED
        assert world.store.rows[young.id].status is BookingStatus.PENDING
        await turns_until(lambda: world.store.rows[young.id].status is not BookingStatus.PENDING)
    finally:
        await world.service.stop()

    assert world.store.rows[young.id].status is BookingStatus.EXPIRED
    assert world.store.faults.calls["pending_releases"] >= 3
    await world.service.stop()  # stopping twice is harmless


# -- reading and cancelling ----------------------------------------------------------------------


async def test_cancelling_a_confirmed_booking_cancels_it_and_frees_its_nights_for_someone_else():
    world = World()
    booking = await world.book()
    world.clock.advance(60)

    cancelled = await world.cancel(booking.id)

    assert cancelled.status is BookingStatus.CANCELLED and cancelled.id == booking.id
    assert cancelled.updated_at == dt.datetime.fromtimestamp(world.clock.now(), dt.UTC)
    assert world.store.rows[booking.id] == cancelled
    assert world.store.releases == {}
    assert world.shards.status(booking.id) is None
    theirs = await world.book("theirs", user_id=OTHER_GUEST)
    assert theirs.status is BookingStatus.CONFIRMED


async def test_a_cancel_while_the_shard_is_down_still_answers_cancelled_and_leaves_the_release_pending():
    world = World()
    booking = await world.book()
    world.shards.faults.fail("cancel", ShardUnavailable("restarting"))

    cancelled = await world.cancel(booking.id)

    assert cancelled.status is BookingStatus.CANCELLED
    assert world.store.rows[booking.id].status is BookingStatus.CANCELLED
    assert list(world.store.releases) == [booking.id]
    assert world.shards.taken(ROOM.id, REQUEST.stay) == NIGHTS  # booked for nobody until freed


async def test_a_cancel_whose_commit_acknowledgement_is_lost_answers_outcome_unknown_and_its_nights_are_freed_later():
    world = World()
    booking = await world.book()
    world.store.faults.fail("cancel_booking", StoreUnavailable("connection cut"), after_applying=True)

    with pytest.raises(OutcomeUnknown):
        await world.cancel(booking.id)

    assert world.store.rows[booking.id].status is BookingStatus.CANCELLED
    assert await world.service.reconcile() == 2  # its refund made, its nights freed
    assert world.shards.taken(ROOM.id, REQUEST.stay) == []
    assert world.store.rows[booking.id].refund_id is not None


async def test_cancelling_a_booking_still_pending_is_refused_as_in_progress():
    world = World()
    booking = await world.abandoned()

    with pytest.raises(BookingInProgress) as in_progress:
        await world.cancel(booking.id)

    assert in_progress.value.status == 409
    assert world.only_row().status is BookingStatus.PENDING


async def test_cancelling_twice_answers_cancelled_both_times_and_cancels_once():
    world = World()
    booking = await world.book()

    first = await world.cancel(booking.id)
    second = await world.cancel(booking.id)

    assert first == second and second.status is BookingStatus.CANCELLED
    assert [type(e) for e in world.store.outbox].count(BookingCancelled) == 1
    assert world.store.releases == {}


async def test_two_concurrent_cancels_both_answer_cancelled_and_cancel_once():
    world = World()
    booking = await world.book()

    one, other = await asyncio.gather(world.cancel(booking.id), world.cancel(booking.id))

    assert one.status is other.status is BookingStatus.CANCELLED
    assert [type(e) for e in world.store.outbox].count(BookingCancelled) == 1
    assert world.store.releases == {} and world.shards.taken(ROOM.id, REQUEST.stay) == []


async def test_cancelling_a_refused_or_expired_booking_changes_nothing():
    world = World()
    world.shards.faults.fail("confirm", HoldExpired("ran out"))
    with pytest.raises(HoldExpired):
        await world.book()
    expired = world.only_row()

    assert await world.cancel(expired.id) == expired
    assert world.only_row() == expired


async def test_someone_elses_booking_is_unknown_to_cancel_and_to_read():
    world = World()
    booking = await world.book()

    with pytest.raises(UnknownBooking) as unknown:
        await world.cancel(booking.id, user_id=OTHER_GUEST)
    with pytest.raises(UnknownBooking):
        await world.service.booking(user_id=OTHER_GUEST, region=Region.EU, booking_id=booking.id)

    assert unknown.value.status == 404
    assert world.only_row().status is BookingStatus.CONFIRMED


async def test_a_guest_reads_their_bookings_newest_first_and_each_by_id():
    world = World()
    first = await world.book("a")
    world.clock.advance(1)
    second = await world.book(
        "b", msgspec.structs.replace(REQUEST, check_in=dt.date(2031, 4, 1), check_out=dt.date(2031, 4, 2))
    )

    page = await world.service.bookings_of(user_id=GUEST, region=Region.EU, page=1, per_page=10)
    mine = await world.service.booking(user_id=GUEST, region=Region.EU, booking_id=first.id)

    assert [b.id for b in page.items] == [second.id, first.id] and page.total == 2
    assert mine == first


# -- events --------------------------------------------------------------------------------------


async def test_each_status_change_hands_its_booking_event_to_the_store_in_the_same_call():
    world = World()
    booking = await world.book()
    await world.book()  # a replay changes nothing, so it records nothing
    await world.cancel(booking.id)
    world.shards.faults.fail("confirm", HoldExpired("ran out"))
    with pytest.raises(HoldExpired):
        await world.book("key-2")
    world.shards.faults.fail("check_stay", ShardUnavailable("no answer"))  # so its hold refuses it
    with pytest.raises(NightsUnavailable):
        await world.book("key-3", user_id=OTHER_GUEST)
    expired, refused = (b for b in world.store.rows.values() if b.id != booking.id)

    described = [(type(e), e.booking_id, e.previous_status, e.status, e.refusal) for e in world.store.outbox]

    assert described == [
        (BookingCreated, booking.id, None, BookingStatus.PENDING, None),
        (BookingConfirmed, booking.id, BookingStatus.PENDING, BookingStatus.CONFIRMED, None),
        (BookingCancelled, booking.id, BookingStatus.CONFIRMED, BookingStatus.CANCELLED, None),
        (BookingRefunded, booking.id, BookingStatus.CANCELLED, BookingStatus.CANCELLED, None),
        (BookingCreated, expired.id, None, BookingStatus.PENDING, None),
        (BookingCancelled, expired.id, BookingStatus.PENDING, BookingStatus.EXPIRED, EXPIRED),
        (BookingCreated, refused.id, None, BookingStatus.PENDING, None),
        (BookingCancelled, refused.id, BookingStatus.PENDING, BookingStatus.CANCELLED, refused.refusal),
    ]
    assert {e.region for e in world.store.outbox} == {"eu"}
    assert {e.user_id for e in world.store.outbox if e.booking_id == refused.id} == {OTHER_GUEST}


# -- cancellation policies and refunds -------------------------------------------------------------

WEEK_NOTICE = CancellationPolicy(free_until_days=7, fee=CancellationFee.FIRST_NIGHT)


async def test_a_booking_keeps_the_policy_of_its_room_when_it_was_made():
    world = World(policies={ROOM.id: WEEK_NOTICE})
    booking = await world.book()
    world.catalogue.policies.clear()  # changed later: the guest keeps what they agreed to

    assert booking.cancellation_policy == WEEK_NOTICE
    world.clock.advance(5 * 24 * 3600)  # 4 days before arrival
    cancelled = await world.cancel(booking.id)

    assert (cancelled.cancellation_fee, cancelled.refund_amount) == (decimal.Decimal("80.00"), decimal.Decimal("80.00"))


async def test_a_cancellation_refunds_through_the_payments_once_and_records_booking_refunded():
    world = World(policies={ROOM.id: WEEK_NOTICE})
    booking = await world.book()
    world.clock.advance(5 * 24 * 3600)

    cancelled = await world.cancel(booking.id)
    again = await world.cancel(booking.id)

    [refund] = world.payments.refunds.values()
    assert (refund.payment_intent_id, refund.amount) == (booking.payment_intent_id, decimal.Decimal("80.00"))
    assert cancelled.refund_id == refund.id and again == cancelled == world.store.rows[booking.id]
    refunded = [e for e in world.store.outbox if isinstance(e, BookingRefunded)]
    assert [(e.refund, e.refund_id, e.cancellation_fee) for e in refunded] == [
        (decimal.Decimal("80.00"), refund.id, decimal.Decimal("80.00"))
    ]
    [cancel_event] = [e for e in world.store.outbox if isinstance(e, BookingCancelled)]
    assert (cancel_event.cancellation_fee, cancel_event.refund) == (decimal.Decimal("80.00"), decimal.Decimal("80.00"))


async def test_cancelling_early_enough_is_free_and_refunds_everything():
    world = World(policies={ROOM.id: WEEK_NOTICE})
    booking = await world.book()  # 9 days before arrival

    cancelled = await world.cancel(booking.id)

    assert (cancelled.cancellation_fee, cancelled.refund_amount) == (decimal.Decimal("0.00"), booking.total_price)
    assert cancelled.refund_id is not None


async def test_a_non_refundable_booking_is_cancelled_refunding_nothing_and_sends_no_refund():
    world = World(policies={ROOM.id: CancellationPolicy(non_refundable=True)})
    booking = await world.book()

    cancelled = await world.cancel(booking.id)

    assert (cancelled.cancellation_fee, cancelled.refund_amount) == (booking.total_price, decimal.Decimal("0.00"))
    assert cancelled.refund_id is None and world.payments.refunds == {}
    assert not any(isinstance(e, BookingRefunded) for e in world.store.outbox)
    assert world.shards.taken(ROOM.id, REQUEST.stay) == []  # the nights are free all the same


async def test_a_refund_the_payments_do_not_answer_is_made_by_the_reconciler_and_only_once():
    world = World()
    booking = await world.book()
    world.payments.faults.fail("refund", ConnectionError("processor down"))

    cancelled = await world.cancel(booking.id)

    assert cancelled.status is BookingStatus.CANCELLED and cancelled.refund_id is None
    assert world.shards.taken(ROOM.id, REQUEST.stay) == []
    assert await world.service.reconcile() >= 1
    row = world.store.rows[booking.id]
    assert row.refund_id is not None and len(world.payments.refunds) == 1
    assert await world.service.reconcile() == 0  # nothing more is due


async def test_a_refund_whose_answer_is_lost_after_it_was_made_is_not_made_twice():
    world = World()
    booking = await world.book()
    world.payments.faults.fail("refund", ConnectionError("answer lost"), after_applying=True)
    world.store.faults.fail("record_refund", StoreUnavailable("gone"))

    await world.cancel(booking.id)
    await world.service.reconcile()
    await world.service.reconcile()

    [refund] = world.payments.refunds.values()  # the retry got the first refund back
    assert world.store.rows[booking.id].refund_id == refund.id
    assert sum(isinstance(e, BookingRefunded) for e in world.store.outbox) == 1


async def test_a_replayed_key_answers_as_it_did_though_the_rooms_rules_now_refuse_its_stay():
    world = World()
    booking = await world.book()
    stricter = msgspec.structs.replace(ROOM, stay_rules=StayRules(min_nights=5))
    later = world.process(stricter)

    assert await world.book(service=later) == booking
    free_dates = msgspec.structs.replace(REQUEST, check_in=dt.date(2031, 3, 20), check_out=dt.date(2031, 3, 22))
    with pytest.raises(StayRefused) as refused:
        await world.book("key-2", free_dates, service=later)
    assert refused.value.rule is StayRule.MIN_STAY
    assert list(world.store.rows) == [booking.id]
