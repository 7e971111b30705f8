"""The embedded event bus: routing by type, at-least-once delivery, dead letters, backpressure."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest

from roombook.domain.errors import EventBusy
from roombook.domain.events import Event, NightState, availability_updated, room_updated
from roombook.storage.bus.event_routing import (
    ANALYTICS,
    CACHE_INVALIDATION,
    EMAIL_NOTIFICATIONS,
    QUEUES,
    SEARCH_INDEXING,
    WAITLIST_NOTIFICATIONS,
)
from roombook.storage.bus.memory_bus import MemoryEventBus

NOW_S = 1_900_000_000.0


def night_event(room_id: int, version: int = 1) -> Event:
    return availability_updated(
        room_id, [NightState(date=dt.date(2031, 1, 1), status="held", version=version)], now_s=NOW_S
    )


@contextlib.asynccontextmanager
async def consuming(bus: MemoryEventBus, queue: str, handler):
    task = asyncio.create_task(bus.consume(queue, handler, wait_s=0.05))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition, timeout_s: float = 5.0) -> None:
    """Poll a condition on the bus's or the handlers' state (there is no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_each_declared_queue_receives_the_types_routed_to_it():
    bus = MemoryEventBus()
    await bus.ensure_topology(QUEUES)
    got: dict[str, list[str]] = {queue: [] for queue in QUEUES}
    async with contextlib.AsyncExitStack() as stack:
        for queue in QUEUES:

            async def collect(event: Event, queue: str = queue) -> None:
                got[queue].append(event.type)

            await stack.enter_async_context(consuming(bus, queue, collect))
        await bus.publish([night_event(1), room_updated(1, now_s=NOW_S)])
        await until(lambda: sum(map(len, got.values())) == 4)
    assert got == {
        CACHE_INVALIDATION: ["availability.updated", "room.updated"],
        SEARCH_INDEXING: ["room.updated"],
        EMAIL_NOTIFICATIONS: [],
        WAITLIST_NOTIFICATIONS: ["availability.updated"],
        ANALYTICS: [],
    }


async def test_an_undeclared_queue_keeps_nothing():
    bus = MemoryEventBus()
    await bus.ensure_topology([EMAIL_NOTIFICATIONS])
    await bus.publish([night_event(1)])
    assert bus.depth(EMAIL_NOTIFICATIONS) == 0
    with pytest.raises(ValueError, match="not declared"):
        bus.depth(CACHE_INVALIDATION)
    with pytest.raises(ValueError, match="unknown queue"):
        await bus.ensure_topology(["emails"])


async def test_a_failing_handler_gets_the_event_again_until_it_succeeds():
    bus = MemoryEventBus(max_receives=5, retry_delay_s=0.01)
    await bus.ensure_topology([CACHE_INVALIDATION])
    attempts: list[str] = []

    async def flaky(event: Event) -> None:
        attempts.append(event.id)
        if len(attempts) < 3:
            raise RuntimeError("cache down")

    event = night_event(1)
    async with consuming(bus, CACHE_INVALIDATION, flaky):
        await bus.publish([event])
        await until(lambda: bus.depth(CACHE_INVALIDATION) == 0)
    assert attempts == [event.id] * 3
    assert bus.dead_letters(CACHE_INVALIDATION) == []


async def test_after_max_receives_a_message_is_dead_lettered_and_the_consumer_goes_on():
    bus = MemoryEventBus(max_receives=3, retry_delay_s=0.01)
    await bus.ensure_topology([CACHE_INVALIDATION])
    handled: list[int] = []

    async def refuse_room_13(event: Event) -> None:
        if event.room_id == 13:
            raise RuntimeError("room 13 always fails")
        handled.append(event.room_id)

    async with consuming(bus, CACHE_INVALIDATION, refuse_room_13):
        await bus.publish([night_event(13)])
        await bus.publish([night_event(room) for room in range(20) if room != 13])
        await until(lambda: bus.depth(CACHE_INVALIDATION) == 0)
    assert sorted(handled) == [room for room in range(20) if room != 13]
    [dead] = bus.dead_letters(CACHE_INVALIDATION)
    assert b'"room_id":13' in dead


async def test_a_poison_message_goes_to_the_dead_letters_and_good_ones_still_flow():
    bus = MemoryEventBus()
    await bus.ensure_topology([CACHE_INVALIDATION])
    handled: list[Event] = []

    async def collect(event: Event) -> None:
        handled.append(event)

    async with consuming(bus, CACHE_INVALIDATION, collect):
        await bus.send_raw(CACHE_INVALIDATION, b'{"type": "availability.updated", "oops": 1}')
        await bus.publish([night_event(1), night_event(2)])
        await until(lambda: len(handled) == 2)
    assert bus.dead_letters(CACHE_INVALIDATION) == [b'{"type": "availability.updated", "oops": 1}']


async def test_a_full_queue_makes_publish_wait_for_the_consumer():
    bus = MemoryEventBus(capacity=2)
    await bus.ensure_topology([CACHE_INVALIDATION])
    await bus.publish([night_event(1), night_event(2)])
    blocked = asyncio.create_task(bus.publish([night_event(3)]))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    handled: list[int] = []

    async def collect(event: Event) -> None:
        handled.append(event.room_id)

    async with consuming(bus, CACHE_INVALIDATION, collect):
        await asyncio.wait_for(blocked, 5)
        await until(lambda: len(handled) == 3)
    assert handled == [1, 2, 3]


async def test_a_message_being_handled_when_the_consumer_stops_is_delivered_again():
    bus = MemoryEventBus()
    await bus.ensure_topology([SEARCH_INDEXING])
    started = asyncio.Event()

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(60)

    async with consuming(bus, SEARCH_INDEXING, slow):
        await bus.publish([room_updated(5, now_s=NOW_S)])
        await asyncio.wait_for(started.wait(), 5)
    assert bus.depth(SEARCH_INDEXING) == 1  # not acknowledged
    handled: list[int] = []

    async def collect(event: Event) -> None:
        handled.append(event.room_id)

    async with consuming(bus, SEARCH_INDEXING, collect):
        await until(lambda: handled == [5])


async def test_an_event_busy_elsewhere_comes_back_later_without_counting_as_a_failure():
    bus = MemoryEventBus(max_receives=2, retry_delay_s=60)
    await bus.ensure_topology([SEARCH_INDEXING])
    attempts: list[int] = []

    async def busy_for_a_while(event: Event) -> None:
        attempts.append(event.room_id)
        if len(attempts) <= 5:
            raise EventBusy("another worker has it", retry_after_s=0.01)

    async with consuming(bus, SEARCH_INDEXING, busy_for_a_while):
        await bus.publish([room_updated(8, now_s=NOW_S)])
        await until(lambda: bus.depth(SEARCH_INDEXING) == 0)
    assert attempts == [8] * 6
    assert bus.dead_letters(SEARCH_INDEXING) == []
