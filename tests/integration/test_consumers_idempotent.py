"""Every consumer handles an event id once, and an event that arrives late brings no older state
back: each event delivered twice and out of order to the consumers as the worker registers them,
over the global store on SQLite and on MariaDB, with real shards (in-process), the embedded cache
and the embedded index."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from collections.abc import AsyncIterator

import pytest

from roombook.actors.client import AvailabilityClient
from roombook.actors.local_runtime import LocalShards
from roombook.domain.analytics import BookingCountKind, DailyBookingCounts
from roombook.domain.bookings import BookingStatus
from roombook.domain.events import (
    AvailabilityUpdated,
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    Event,
    NightState,
    RoomUpdated,
    new_event_id,
)
from roombook.domain.rooms import Location, Room, RoomPatch
from roombook.domain.search import RoomQuery
from roombook.domain.stays import Stay
from roombook.events.catalogue_views import SearchIndexing
from roombook.events.notifications import CONSUMER as EMAIL_CONSUMER
from roombook.events.waitlist_notifications import CONSUMER as WAITLIST_CONSUMER
from roombook.events.worker import consumers
from roombook.routing.ring import ShardRing
from roombook.storage.bus.event_routing import (
    ANALYTICS,
    CACHE_INVALIDATION,
    EMAIL_NOTIFICATIONS,
    SEARCH_INDEXING,
    WAITLIST_NOTIFICATIONS,
)
from roombook.storage.cache.keys import SEARCH_NAMESPACE, availability_namespace
from roombook.storage.cache.memory_cache import MemoryCache
from roombook.storage.mail.file_mail import FileMailSender
from roombook.storage.ports import AvailabilityStore, ClaimOutcome, EventHandler
from roombook.storage.search.memory_search import MemorySearchIndex

RING = ShardRing(2)
DAY = dt.date(2031, 6, 1)


class Views:
    def __init__(self, store: AvailabilityStore, cache: MemoryCache, index: MemorySearchIndex, handlers) -> None:
        self.store, self.cache, self.index = store, cache, index
        self.handlers: dict[str, EventHandler] = handlers

    async def deliver(self, queue: str, *events: Event) -> None:
        for event in events:
            await self.handlers[queue](event)

    async def events(self) -> list[Event]:
        """Everything the store's outbox holds, oldest first (what the relay would publish)."""
        return [event for _, event in await self.store.pending_events(1000)]


@pytest.fixture
async def views(availability_store, tmp_path) -> AsyncIterator[Views]:
    cache, index = MemoryCache(), MemorySearchIndex()
    registered = consumers(
        catalogue=availability_store,
        regions={},
        mail=FileMailSender(tmp_path / "mail"),
        cache=cache,
        index=index,
        mail_from="roombook <no-reply@roombook.invalid>",
    )
    yield Views(availability_store, cache, index, {c.queue: c.handler for c in registered})


def _room(title: str) -> Room:
    return Room(
        title=title, location=Location(city="Porto", country="PT"), price_per_night=decimal.Decimal(80), capacity=2
    )


def _booking_event(kind: type[BookingCreated | BookingConfirmed | BookingCancelled], **fields: object) -> Event:
    status = {BookingCreated: BookingStatus.PENDING, BookingConfirmed: BookingStatus.CONFIRMED}.get(
        kind, BookingStatus.CANCELLED
    )
    at = dt.datetime.combine(DAY, dt.time(23, 30), dt.UTC)
    values: dict[str, object] = {
        "id": new_event_id(at.timestamp()),
        "occurred_at": at,
        "booking_id": "bk_1",
        "user_id": 1,
        "region": "eu",
        "room_id": 7,
        "check_in": DAY,
        "check_out": DAY + dt.timedelta(days=2),
        "nights": 2,
        "guests": 1,
        "total": decimal.Decimal("160.00"),
        "currency": "EUR",
        "status": status,
    }
    return kind(**(values | fields))  # type: ignore[arg-type]


# -- cache invalidation --------------------------------------------------------------------------


async def test_an_availability_event_delivered_twice_bumps_the_generation_once(views):
    (room_id,) = await views.store.add_rooms([_room("A")])
    namespace = availability_namespace(room_id)
    event = AvailabilityUpdated(id=new_event_id(1.0e9), occurred_at=dt.datetime.now(dt.UTC), room_id=room_id, nights=[])
    before = await views.cache.generation(namespace)
    await views.deliver(CACHE_INVALIDATION, event, event)
    assert await views.cache.generation(namespace) == before + 1
    (updated,) = [e for e in await views.events() if isinstance(e, RoomUpdated)]
    search_before = await views.cache.generation(SEARCH_NAMESPACE)
    await views.deliver(CACHE_INVALIDATION, updated, updated)
    assert await views.cache.generation(SEARCH_NAMESPACE) == search_before + 1


async def test_an_older_availability_event_after_a_newer_one_leaves_the_shards_state_in_view(views):
    (room_id,) = await views.store.add_rooms([_room("A")])
    shards = LocalShards(views.store, RING)
    await shards.start()
    client = AvailabilityClient(shards, RING)
    try:
        stay = Stay(check_in=DAY, check_out=DAY + dt.timedelta(days=1))
        await client.place_hold(room_id=room_id, hold_id="h", stay=stay, ttl_s=3600)
        await client.confirm(room_id=room_id, hold_id="h")
        held, booked = [e for e in await views.events() if isinstance(e, AvailabilityUpdated)]
        assert [n.status for n in held.nights + booked.nights] == ["held", "booked"]
        namespace = availability_namespace(room_id)
        await views.deliver(CACHE_INVALIDATION, booked)
        generation = await views.cache.generation(namespace)
        await views.deliver(CACHE_INVALIDATION, held, booked)  # the older one late, the newer one again
        # nothing of the older event is applied: the generation only moves on, and what a reader
        # fills in under it is what the shard holds now
        assert await views.cache.generation(namespace) == generation + 1
        [night] = await client.calendar(room_id=room_id, start=stay.check_in, end=stay.check_out)
        assert night.status.value == "booked"
        assert await client.free_rooms([room_id], start=stay.check_in, end=stay.check_out) == []
    finally:
        await shards.stop()


# -- search indexing -----------------------------------------------------------------------------


async def titles(index: MemorySearchIndex, text: str) -> list[int]:
    return (await index.search(RoomQuery(text=text))).room_ids


async def test_room_updates_twice_and_out_of_order_leave_the_newest_room_indexed(views):
    (room_id,) = await views.store.add_rooms([_room("Harbour view")])
    await views.store.update_room(room_id, RoomPatch(title="Garden view"))
    await views.store.update_room(room_id, RoomPatch(title="Rooftop view"))
    added, older, newer = [e for e in await views.events() if isinstance(e, RoomUpdated)]
    generation = await views.cache.generation(SEARCH_NAMESPACE)
    await views.deliver(SEARCH_INDEXING, newer, older, added, newer, older)
    assert await titles(views.index, "rooftop") == [room_id]
    assert await titles(views.index, "garden") == await titles(views.index, "harbour") == []
    # three distinct events handled, each once: one bump each; the copies did nothing
    assert await views.cache.generation(SEARCH_NAMESPACE) == generation + 3


class PausingCatalogue:
    """The real store, with the first read of a room held until released (two workers interleaving)."""

    def __init__(self, store: AvailabilityStore) -> None:
        self._store = store
        self.read_once = asyncio.Event()
        self.release = asyncio.Event()
        self._paused = False

    async def room(self, room_id: int) -> Room | None:
        room = await self._store.room(room_id)
        if not self._paused:
            self._paused = True
            self.read_once.set()
            await self.release.wait()
        return room


async def test_an_update_indexed_by_a_slower_worker_after_a_newer_one_is_written_over(views):
    """Worker A reads the room, the room changes and worker B indexes the change, then A writes what
    it read: A reads the room again after its write and puts the newest state back."""
    (room_id,) = await views.store.add_rooms([_room("Harbour view")])
    slow_catalogue = PausingCatalogue(views.store)
    slow = SearchIndexing(views.index, slow_catalogue, views.cache)  # type: ignore[arg-type]  # the store's room()
    fast = SearchIndexing(views.index, views.store, views.cache)
    (added,) = [e for e in await views.events() if isinstance(e, RoomUpdated)]
    a = asyncio.create_task(slow(added))
    await slow_catalogue.read_once.wait()  # A holds "Harbour view"
    await views.store.update_room(room_id, RoomPatch(title="Rooftop view"))
    newer = [e for e in await views.events() if isinstance(e, RoomUpdated)][-1]
    await fast(newer)
    assert await titles(views.index, "rooftop") == [room_id]
    slow_catalogue.release.set()
    await a
    assert await titles(views.index, "rooftop") == [room_id]
    assert await titles(views.index, "harbour") == []


# -- analytics -----------------------------------------------------------------------------------


async def test_booking_events_twice_and_out_of_order_count_once_per_day_room_and_region(views):
    created = _booking_event(BookingCreated)
    confirmed = _booking_event(BookingConfirmed, previous_status=BookingStatus.PENDING)
    cancelled = _booking_event(BookingCancelled, previous_status=BookingStatus.CONFIRMED)
    other_room = _booking_event(BookingCreated, booking_id="bk_2", room_id=8, region="us")
    next_day = _booking_event(
        BookingCreated,
        booking_id="bk_3",
        occurred_at=dt.datetime.combine(DAY, dt.time(23, 30), dt.UTC) + dt.timedelta(hours=1),
    )
    await views.deliver(ANALYTICS, cancelled, confirmed, created, cancelled, other_room, created, next_day, other_room)
    assert await views.store.booking_counts(DAY, DAY + dt.timedelta(days=2)) == [
        DailyBookingCounts(date=DAY, room_id=7, region="eu", created=1, confirmed=1, cancelled=1),
        DailyBookingCounts(date=DAY, room_id=8, region="us", created=1),
        DailyBookingCounts(date=DAY + dt.timedelta(days=1), room_id=7, region="eu", created=1),
    ]
    assert await views.store.booking_counts(DAY, DAY + dt.timedelta(days=1), region="us") == [
        DailyBookingCounts(date=DAY, room_id=8, region="us", created=1)
    ]
    assert await views.store.booking_counts(DAY, DAY + dt.timedelta(days=5), room_id=7, region="eu") == [
        DailyBookingCounts(date=DAY, room_id=7, region="eu", created=1, confirmed=1, cancelled=1),
        DailyBookingCounts(date=DAY + dt.timedelta(days=1), room_id=7, region="eu", created=1),
    ]
    assert await views.store.booking_counts(DAY + dt.timedelta(days=2), DAY + dt.timedelta(days=9)) == []


async def test_a_count_whose_answer_was_lost_is_not_counted_again(availability_store):
    """The count and its event id commit together: the retry of a count that committed (its answer
    lost, so the consumer failed and the bus delivers again) finds the id and adds nothing."""
    first = await availability_store.count_booking_event(
        "ev_lost", BookingCountKind.CONFIRMED, day=DAY, room_id=3, region="eu"
    )
    again = await availability_store.count_booking_event(
        "ev_lost", BookingCountKind.CONFIRMED, day=DAY, room_id=3, region="eu"
    )
    assert (first, again) == (True, False)
    assert await availability_store.booking_counts(DAY, DAY + dt.timedelta(days=1)) == [
        DailyBookingCounts(date=DAY, room_id=3, region="eu", confirmed=1)
    ]


# -- events a consumer ignores ---------------------------------------------------------------------


async def _claimed(store: AvailabilityStore, consumer: str, event: Event) -> bool:
    """Whether `consumer` claimed `event` (a claim of it now finds it done), leaving no claim behind."""
    outcome = await store.claim_event(consumer, event.id, lease_s=60)
    if outcome is ClaimOutcome.NEW:
        await store.release_event(consumer, event.id)
    return outcome is ClaimOutcome.DONE


async def test_the_waitlist_claims_only_the_updates_that_free_a_night(views):
    (room_id,) = await views.store.add_rooms([_room("A")])

    def update(*statuses: str) -> AvailabilityUpdated:
        nights = [NightState(date=DAY + dt.timedelta(days=i), status=s, version=2) for i, s in enumerate(statuses)]
        return AvailabilityUpdated(
            id=new_event_id(1.0e9), occurred_at=dt.datetime.now(dt.UTC), room_id=room_id, nights=nights
        )

    held, booked, freed = update("held", "held"), update("booked"), update("booked", "available")
    await views.deliver(WAITLIST_NOTIFICATIONS, held, booked, freed)
    assert [await _claimed(views.store, WAITLIST_CONSUMER, e) for e in (held, booked, freed)] == [False, False, True]


async def test_the_emails_claim_only_the_events_that_mail_someone(views):
    confirmed = _booking_event(BookingConfirmed, previous_status=BookingStatus.PENDING)
    refused = _booking_event(BookingCancelled, previous_status=BookingStatus.PENDING)  # told while waiting
    await views.deliver(EMAIL_NOTIFICATIONS, confirmed, refused)
    assert [await _claimed(views.store, EMAIL_CONSUMER, e) for e in (confirmed, refused)] == [True, False]
