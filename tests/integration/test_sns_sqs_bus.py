"""The SNS/SQS event bus against a real moto server: topology, routing, redelivery, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json

import pytest

from roombook.domain.events import Event, NightState, availability_updated, room_updated
from roombook.storage.bus.event_routing import (
    ANALYTICS,
    CACHE_INVALIDATION,
    EMAIL_NOTIFICATIONS,
    QUEUES,
    SEARCH_INDEXING,
    WAITLIST_NOTIFICATIONS,
)
from roombook.storage.bus.sns_sqs_bus import SnsSqsConfig, SnsSqsEventBus

NOW_S = 1_900_000_000.0


def night_event(room_id: int) -> Event:
    return availability_updated(room_id, [NightState(date=dt.date(2031, 1, 1), status="held", version=1)], now_s=NOW_S)


@pytest.fixture
async def bus(moto):
    config = SnsSqsConfig(endpoint_url=moto, prefix="t-", max_receives=3, retry_delay_s=0, visibility_timeout_s=5)
    async with SnsSqsEventBus(config) as bus:
        yield bus


@contextlib.asynccontextmanager
async def consuming(bus, queue: str, handler):
    task = asyncio.create_task(bus.consume(queue, handler, wait_s=1))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition, timeout_s: float = 20.0) -> None:
    """Poll a condition on what handlers saw (there is no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def drain(bus, url: str) -> list[dict]:
    """Every message now in a queue (received and deleted)."""
    messages = []
    while True:
        answer = await bus.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not answer.get("Messages"):
            return messages
        messages += answer["Messages"]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(answer["Messages"])]
        await bus.sqs.delete_message_batch(QueueUrl=url, Entries=entries)


async def test_ensure_topology_is_idempotent_and_wires_dead_letter_queues_and_filters(bus):
    await bus.ensure_topology(QUEUES)
    await bus.ensure_topology(QUEUES)
    topics = (await bus.sns.list_topics())["Topics"]
    assert sorted(t["TopicArn"].rsplit(":", 1)[1] for t in topics) == ["t-availability", "t-booking", "t-room"]
    queues = (await bus.sqs.list_queues(QueueNamePrefix="t-"))["QueueUrls"]
    assert sorted(u.rsplit("/", 1)[1] for u in queues) == sorted(
        [f"t-{q}" for q in QUEUES] + [f"t-{q}-dlq" for q in QUEUES]
    )
    url = await bus.queue_url(EMAIL_NOTIFICATIONS)
    attributes = (await bus.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":t-email-notifications-dlq")
    assert int(redrive["maxReceiveCount"]) == 3
    subscriptions = (await bus.sns.list_subscriptions())["Subscriptions"]
    assert (
        len(subscriptions) == 6
    )  # cache: availability + room; search: room; email: booking; waitlist: availability; analytics: booking
    for subscription in subscriptions:
        got = await bus.sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
        assert got["Attributes"]["RawMessageDelivery"] == "true"
        assert "type" in json.loads(got["Attributes"]["FilterPolicy"])


async def test_each_queue_receives_exactly_the_types_routed_to_it(bus):
    await bus.ensure_topology(QUEUES)
    await bus.publish([night_event(1), room_updated(2, now_s=NOW_S)])
    bodies = {}
    for queue in QUEUES:
        bodies[queue] = sorted(json.loads(m["Body"])["type"] for m in await drain(bus, await bus.queue_url(queue)))
    assert bodies == {
        CACHE_INVALIDATION: ["availability.updated", "room.updated"],
        SEARCH_INDEXING: ["room.updated"],
        EMAIL_NOTIFICATIONS: [],
        WAITLIST_NOTIFICATIONS: ["availability.updated"],
        ANALYTICS: [],
    }


async def test_a_large_publish_is_split_into_batches_and_every_event_arrives_once(bus):
    await bus.ensure_topology([CACHE_INVALIDATION])
    events = [night_event(room) for room in range(35)]
    await bus.publish(events)
    handled: list[str] = []

    async def collect(event: Event) -> None:
        handled.append(event.id)

    async with consuming(bus, CACHE_INVALIDATION, collect):

        async def all_handled() -> bool:
            return len(handled) >= 35

        await until(all_handled)
    assert sorted(handled) == sorted(e.id for e in events)


async def test_a_poison_message_ends_in_the_dead_letter_queue_and_the_consumer_keeps_going(bus):
    await bus.ensure_topology([CACHE_INVALIDATION])
    url = await bus.queue_url(CACHE_INVALIDATION)
    await bus.sqs.send_message(QueueUrl=url, MessageBody="{not an event")
    handled: list[int] = []

    async def collect(event: Event) -> None:
        handled.append(event.room_id)

    dlq = await bus.queue_url(CACHE_INVALIDATION, dead_letters=True)
    dead: list[dict] = []
    async with consuming(bus, CACHE_INVALIDATION, collect):
        await bus.publish([night_event(1)])

        async def poison_dead_and_good_handled() -> bool:
            dead.extend(await drain(bus, dlq))
            return bool(dead) and handled == [1]

        await until(poison_dead_and_good_handled)
        await bus.publish([night_event(2)])  # still consuming after the poison

        async def second_handled() -> bool:
            return handled == [1, 2]

        await until(second_handled)
    assert [m["Body"] for m in dead] == ["{not an event"]


async def test_a_handler_that_keeps_failing_sends_its_message_to_the_dead_letter_queue(bus):
    await bus.ensure_topology([SEARCH_INDEXING])
    attempts: list[int] = []

    async def failing(event: Event) -> None:
        attempts.append(event.room_id)
        if event.room_id == 9:
            raise RuntimeError("index down")

    dlq = await bus.queue_url(SEARCH_INDEXING, dead_letters=True)
    dead: list[dict] = []
    async with consuming(bus, SEARCH_INDEXING, failing):
        await bus.publish([room_updated(9, now_s=NOW_S), room_updated(10, now_s=NOW_S)])

        async def dead_lettered() -> bool:
            dead.extend(await drain(bus, dlq))
            return bool(dead)

        await until(dead_lettered)
    assert attempts.count(9) == 3 and attempts.count(10) == 1
    assert json.loads(dead[0]["Body"])["room_id"] == 9
