"""The outbox relay over real stores (SQLite and MariaDB) and the embedded bus."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal

import msgspec
import pytest

from roombook.domain.accounts import NewUser, Region
from roombook.domain.bookings import BookingIds, BookingRequest, BookingStatus, pending_booking, stay_quote
from roombook.domain.events import Event, NightState, availability_updated, booking_event
from roombook.domain.nights import Night, NightStatus
from roombook.events.idempotent_handler import IdempotentHandler
from roombook.events.outbox_relay import OutboxRelay
from roombook.storage.bus.event_routing import CACHE_INVALIDATION, EMAIL_NOTIFICATIONS
from roombook.storage.bus.memory_bus import MemoryEventBus
from roombook.storage.sql import connect

NOW = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)
START = dt.date(2031, 1, 1)


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def stores(request, tmp_path):
    """{"global": availability store, "eu": ..., "us": ...}: three databases, open and migrated."""
    if request.param == "sqlite":
        dsns = {name: f"sqlite:///{tmp_path / name}.db" for name in ("global", "eu", "us")}
    else:
        dsns = request.getfixturevalue("mysql_dsns")
    async with contextlib.AsyncExitStack() as stack:
        opened = {"global": await stack.enter_async_context(connect.availability_store(dsns["global"]))}
        for region in Region:
            opened[region.value] = await stack.enter_async_context(connect.regional_store(dsns[region.value], region))
        for store in opened.values():
            await store.migrate()
        yield opened


async def write_room_event(catalogue, room_id: int) -> Event:
    epoch = await catalogue.acquire_shard(0, "test")
    night = Night(room_id=room_id, date=START, status=NightStatus.BOOKED, holder="h", version=1)
    event = availability_updated(room_id, [NightState(date=START, status="booked", version=1)], now_s=NOW.timestamp())
    await catalogue.write_nights(0, epoch, [night], [event])
    return event


async def confirm_a_booking(store, region: Region) -> Event:
    user = await store.create_user(
        NewUser(email=f"guest-{region}@example.org", password_hash="$argon2id$x", region=region, created_at=NOW)
    )
    request = BookingRequest(room_id=1, check_in=START, check_out=START + dt.timedelta(days=1), guests=1)
    booking = pending_booking(
        booking_id=BookingIds().next(int(NOW.timestamp() * 1000)),
        user_id=user.id,
        request=request,
        quote=stay_quote(request, price_per_night=decimal.Decimal("10.00"), currency="EUR"),
        idempotency_key="k",
        now=NOW,
    )
    await store.insert_booking(booking)
    confirmed = msgspec.structs.replace(booking, status=BookingStatus.CONFIRMED)
    event = booking_event(confirmed, region=region.value, previous=BookingStatus.PENDING, now_s=NOW.timestamp())
    assert await store.transition_booking(
        booking.id, expected=BookingStatus.PENDING, to=BookingStatus.CONFIRMED, now=NOW, event=event
    )
    return event


async def until(condition, timeout_s: float = 10.0) -> None:
    """Poll a condition on stores or handlers (there is no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def nothing_pending(stores) -> bool:
    for store in stores.values():
        if await store.pending_events(1):
            return False
    return True


async def test_the_relay_publishes_every_outbox_and_marks_what_it_published(stores):
    bus = MemoryEventBus()
    await bus.ensure_topology([CACHE_INVALIDATION, EMAIL_NOTIFICATIONS])
    written = [
        await write_room_event(stores["global"], 5),
        await confirm_a_booking(stores["eu"], Region.EU),
        await confirm_a_booking(stores["us"], Region.US),
    ]
    relay = OutboxRelay(stores, bus, batch=2)
    assert await relay.relay_once() == 3
    assert await nothing_pending(stores)
    assert await relay.relay_once() == 0
    assert (bus.depth(CACHE_INVALIDATION), bus.depth(EMAIL_NOTIFICATIONS)) == (1, 2)
    got: list[Event] = []

    async def collect(event: Event) -> None:
        got.append(event)

    tasks = [
        asyncio.create_task(bus.consume(q, collect, wait_s=0.05)) for q in (CACHE_INVALIDATION, EMAIL_NOTIFICATIONS)
    ]

    async def all_three() -> bool:
        return len(got) == 3

    await until(all_three)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(e.id for e in got) == sorted(e.id for e in written)


async def test_a_running_relay_drains_a_backlog_in_bounded_rounds_and_stops_cleanly(stores):
    bus = MemoryEventBus()
    await bus.ensure_topology([CACHE_INVALIDATION])
    for room in range(1, 26):
        await write_room_event(stores["global"], room)
    relay = OutboxRelay(stores, bus, batch=10, idle_s=0.01)
    relay.start()
    await until(lambda: nothing_pending(stores))
    await relay.stop()
    assert relay.published == 25 and bus.depth(CACHE_INVALIDATION) == 25


async def test_a_relay_interrupted_between_publish_and_mark_loses_nothing_and_duplicates_no_effect(stores):
    """The first relay publishes an event, then blocks on a full queue and is cancelled before it
    marks anything: its events stay pending. A second relay publishes them all again; the
    consumer sees the first one twice and its idempotent handler applies each effect once."""
    bus = MemoryEventBus(capacity=1)
    await bus.ensure_topology([CACHE_INVALIDATION])
    written = [await write_room_event(stores["global"], room) for room in (1, 2, 3)]
    first = asyncio.create_task(OutboxRelay(stores, bus).relay_once())
    await until(lambda: _true_when(bus.depth(CACHE_INVALIDATION) == 1))
    await asyncio.sleep(0.05)
    assert not first.done()  # published the first event, waiting to publish the second
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert [e.id for _, e in await stores["global"].pending_events(10)] == [e.id for e in written]

    effects: list[str] = []

    async def effect(event: Event) -> None:
        effects.append(event.id)

    handler = IdempotentHandler("test-consumer", effect, stores["global"])
    consumer = asyncio.create_task(bus.consume(CACHE_INVALIDATION, handler, wait_s=0.05))
    second = OutboxRelay(stores, bus, idle_s=0.01)
    second.start()
    await until(lambda: nothing_pending(stores))
    await until(lambda: _true_when(bus.depth(CACHE_INVALIDATION) == 0))
    await second.stop()
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    assert sorted(effects) == sorted(e.id for e in written)  # each once, though the first came twice


async def _true_when(value: bool) -> bool:
    return value
