"""The transactional outbox and the processed-events claims, on SQLite and on MariaDB.

An event is in the outbox exactly when the change it describes was committed: rows and events
share one transaction in the global store (write_nights, add_rooms, update_room) and in the
regional stores (insert_booking, transition_booking).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal

import msgspec
import pytest
from regional_stores import ENGINES, open_regional_stores

from roombook.domain.accounts import NewUser, Region
from roombook.domain.bookings import BookingIds, BookingRequest, BookingStatus, Refusal, pending_booking, stay_quote
from roombook.domain.errors import ShardDiverged, ShardFenced
from roombook.domain.events import BookingCancelled, NightState, availability_updated, booking_event
from roombook.domain.nights import Night, NightStatus
from roombook.domain.rooms import Location, Room, RoomPatch
from roombook.storage.ports import ClaimOutcome

START = dt.date(2031, 1, 1)
NOW = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)
NOW_S = NOW.timestamp()


def held(room_id: int, offset: int = 0, version: int = 1) -> Night:
    return Night(
        room_id=room_id,
        date=START + dt.timedelta(days=offset),
        status=NightStatus.HELD,
        holder="h",
        hold_expires_at_s=NOW_S + 600,
        version=version,
    )


def event_for(*nights: Night):
    states = [NightState(date=n.date, status=n.status.value, version=n.version) for n in nights]
    return availability_updated(nights[0].room_id, states, now_s=NOW_S)


# -- the global store -------------------------------------------------------------------------------


async def test_events_are_written_with_the_rows_and_come_back_in_order(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    first = [event_for(held(1)), event_for(held(2))]
    await availability_store.write_nights(0, epoch, [held(1), held(2)], first)
    second = [event_for(held(1, version=2))]
    await availability_store.write_nights(0, epoch, [held(1, version=2)], second)
    pending = await availability_store.pending_events(100)
    assert [event for _, event in pending] == first + second
    seqs = [seq for seq, _ in pending]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [event for _, event in await availability_store.pending_events(2)] == first


async def test_marked_events_are_no_longer_pending(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    events = [event_for(held(room)) for room in range(1, 6)]
    await availability_store.write_nights(0, epoch, [held(room) for room in range(1, 6)], events)
    pending = await availability_store.pending_events(100)
    await availability_store.mark_published([seq for seq, _ in pending[:3]])
    assert [event for _, event in await availability_store.pending_events(100)] == events[3:]
    await availability_store.mark_published([seq for seq, _ in pending[3:]])
    assert await availability_store.pending_events(100) == []


async def test_a_fenced_write_writes_neither_rows_nor_events(availability_store):
    stale = await availability_store.acquire_shard(0, "old")
    await availability_store.acquire_shard(0, "new")
    with pytest.raises(ShardFenced):
        await availability_store.write_nights(0, stale, [held(1)], [event_for(held(1))])
    epoch = await availability_store.acquire_shard(0, "newest")
    await availability_store.write_nights(0, epoch, [held(1)], [])
    with pytest.raises(ShardDiverged):  # a stale version in the batch
        await availability_store.write_nights(0, epoch, [held(2), held(1)], [event_for(held(2)), event_for(held(1))])
    assert await availability_store.pending_events(100) == []
    assert await availability_store.nights(2, START, START + dt.timedelta(days=1)) == []


async def test_a_batch_of_many_events_is_written_whole(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    rows = [held(room) for room in range(1, 501)]
    events = [event_for(row) for row in rows]
    await availability_store.write_nights(0, epoch, rows, events)
    assert [event for _, event in await availability_store.pending_events(1000)] == events


async def test_added_and_changed_rooms_are_announced_with_room_updated(availability_store):
    room = Room(
        title="Loft", location=Location(city="Oslo", country="NO"), price_per_night=decimal.Decimal(80), capacity=2
    )
    ids = await availability_store.add_rooms([room, room])
    await availability_store.update_room(ids[0], RoomPatch(title="Big loft"))
    await availability_store.update_room(ids[0] + 100, RoomPatch(title="nobody"))  # unknown: nothing changed
    events = [event for _, event in await availability_store.pending_events(100)]
    assert [(e.type, e.room_id) for e in events] == [("room.updated", room_id) for room_id in (*ids, ids[0])]


# -- processed events ---------------------------------------------------------------------------------


async def test_a_claim_is_new_once_then_busy_then_done(availability_store):
    store = availability_store
    assert await store.claim_event("mail", "ev_1", lease_s=60) is ClaimOutcome.NEW
    assert await store.claim_event("mail", "ev_1", lease_s=60) is ClaimOutcome.BUSY
    assert await store.claim_event("search", "ev_1", lease_s=60) is ClaimOutcome.NEW  # per consumer
    await store.complete_event("mail", "ev_1")
    assert await store.claim_event("mail", "ev_1", lease_s=60) is ClaimOutcome.DONE


async def test_a_released_or_expired_claim_can_be_taken_again(availability_store):
    store = availability_store
    assert await store.claim_event("mail", "ev_2", lease_s=60) is ClaimOutcome.NEW
    await store.release_event("mail", "ev_2")
    assert await store.claim_event("mail", "ev_2", lease_s=0.05) is ClaimOutcome.NEW
    await asyncio.sleep(0.1)  # its holder "died": the lease runs out
    assert await store.claim_event("mail", "ev_2", lease_s=60) is ClaimOutcome.NEW
    await store.complete_event("mail", "ev_2")
    await store.release_event("mail", "ev_2")  # a done event stays done
    assert await store.claim_event("mail", "ev_2", lease_s=60) is ClaimOutcome.DONE


async def test_concurrent_claims_of_one_event_have_one_winner(availability_store):
    outcomes = await asyncio.gather(*(availability_store.claim_event("mail", "ev_3", lease_s=60) for _ in range(20)))
    assert outcomes.count(ClaimOutcome.NEW) == 1
    assert outcomes.count(ClaimOutcome.BUSY) == 19


# -- a regional store ---------------------------------------------------------------------------------


@pytest.fixture(params=[e if e == "sqlite" else pytest.param(e, marks=pytest.mark.mysql) for e in ENGINES])
async def eu(request, tmp_path):
    mysql_dsn = request.getfixturevalue("mysql_dsn") if request.param == "mysql" else None
    async with open_regional_stores(request.param, tmp_path, mysql_dsn) as stores:
        yield stores[Region.EU]


async def a_pending_booking(store, key: str = "key-1"):
    user = await store.create_user(
        NewUser(email=f"{key}@example.org", password_hash="$argon2id$x", region=Region.EU, created_at=NOW)
    )
    request = BookingRequest(room_id=7, check_in=START, check_out=START + dt.timedelta(days=2), guests=1)
    return pending_booking(
        booking_id=BookingIds().next(int(NOW_S * 1000)),
        user_id=user.id,
        request=request,
        quote=stay_quote(request, price_per_night=decimal.Decimal("50.00"), currency="EUR"),
        idempotency_key=key,
        now=NOW,
    )


async def test_a_new_booking_is_stored_with_its_event_and_a_replay_adds_none(eu):
    booking = await a_pending_booking(eu)
    created = booking_event(booking, region="eu", previous=None, now_s=NOW_S)
    assert (await eu.insert_booking(booking, created)).id == booking.id
    replay = msgspec.structs.replace(booking, id=BookingIds().next(int(NOW_S * 1000) + 5))
    again = booking_event(replay, region="eu", previous=None, now_s=NOW_S)
    assert (await eu.insert_booking(replay, again)).id == booking.id  # the key was used: nothing stored
    assert [event for _, event in await eu.pending_events(10)] == [created]


async def test_a_transition_writes_its_event_only_when_the_row_changes(eu):
    booking = await a_pending_booking(eu)
    await eu.insert_booking(booking)
    confirmed = msgspec.structs.replace(booking, status=BookingStatus.CONFIRMED)
    event = booking_event(confirmed, region="eu", previous=BookingStatus.PENDING, now_s=NOW_S)
    moved = await eu.transition_booking(
        booking.id, expected=BookingStatus.PENDING, to=BookingStatus.CONFIRMED, now=NOW, event=event
    )
    assert moved
    loser = booking_event(
        msgspec.structs.replace(booking, status=BookingStatus.EXPIRED),
        region="eu",
        previous=BookingStatus.PENDING,
        now_s=NOW_S,
    )
    assert not await eu.transition_booking(
        booking.id, expected=BookingStatus.PENDING, to=BookingStatus.EXPIRED, now=NOW, event=loser
    )
    pending = await eu.pending_events(10)
    assert [event for _, event in pending] == [event]
    await eu.mark_published([seq for seq, _ in pending])
    assert await eu.pending_events(10) == []


async def test_event_text_with_quotes_backslashes_and_unicode_comes_back_exactly(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    reason = Refusal(kind="payment_declined", decline_code="card 'declined' \\ \"twice\" — ünïcödé 🛏️ %s")
    event = msgspec.structs.replace(
        BookingCancelled(
            id="ev_01j0000000000000000000000a",
            occurred_at=NOW,
            booking_id="bk_1",
            user_id=1,
            region="eu",
            room_id=1,
            check_in=START,
            check_out=START + dt.timedelta(days=1),
            nights=1,
            guests=1,
            total=decimal.Decimal("10.00"),
            currency="EUR",
            status=BookingStatus.CANCELLED,
        ),
        refusal=reason,
    )
    await availability_store.write_nights(0, epoch, [held(1)], [event])
    [(_, back)] = await availability_store.pending_events(10)
    assert back == event and back.refusal == reason
