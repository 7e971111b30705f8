"""The room shard's availability.updated events: one per room per batch, committed with its rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3

import asyncmy
import pytest

from roombook.actors.shard import RoomShard
from roombook.domain.calendar import HoldView
from roombook.domain.commands import CancelBooking, ConfirmHold, Failure, PlaceHold
from roombook.domain.events import AvailabilityUpdated, NightState
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store
from roombook.storage.sql.sqlite_availability import SqliteAvailabilityStore

RING = ShardRing(1)
DAY = dt.timedelta(days=1)
START = dt.date(2031, 6, 1)


def stay(offset: int, nights: int = 1) -> Stay:
    return Stay(check_in=START + offset * DAY, check_out=START + (offset + nights) * DAY)


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def store(request, tmp_path):
    dsn = f"sqlite:///{tmp_path / 'global.db'}" if request.param == "sqlite" else request.getfixturevalue("mysql_dsn")
    async with availability_store(dsn) as store:
        await store.migrate()
        yield store


@pytest.fixture
async def shard(store):
    shard = RoomShard(store, RING, 0, owner="test")
    await shard.start()
    yield shard
    await shard.stop()


async def events_of(store) -> list[AvailabilityUpdated]:
    return [event for _, event in await store.pending_events(10_000)]


def states(event: AvailabilityUpdated) -> list[tuple[dt.date, str, int]]:
    return [(n.date, n.status, n.version) for n in event.nights]


async def test_one_batch_writes_one_event_per_room_with_each_nights_final_state(store, shard):
    replies = await shard.apply(
        [
            PlaceHold(room_id=1, hold_id="a", stay=stay(0, 2), ttl_s=600),
            PlaceHold(room_id=2, hold_id="b", stay=stay(5), ttl_s=600),
            PlaceHold(room_id=1, hold_id="c", stay=stay(3), ttl_s=600),
        ]
    )
    assert all(isinstance(r, HoldView) for r in replies)
    [room1, room2] = sorted(await events_of(store), key=lambda e: e.room_id)
    assert (room1.type, room1.room_id) == ("availability.updated", 1)
    assert states(room1) == [(START, "held", 1), (START + DAY, "held", 1), (START + 3 * DAY, "held", 1)]
    assert states(room2) == [(START + 5 * DAY, "held", 1)]
    assert room1.id != room2.id


async def test_each_commit_announces_the_versions_it_wrote(store, shard):
    await shard.apply([PlaceHold(room_id=4, hold_id="h", stay=stay(0), ttl_s=600)])
    await shard.apply([ConfirmHold(room_id=4, hold_id="h")])
    await shard.apply([CancelBooking(room_id=4, booking_id="h")])
    events = await events_of(store)
    assert [states(e) for e in events] == [
        [(START, "held", 1)],
        [(START, "booked", 2)],
        [(START, "available", 3)],
    ]
    assert [n.version for _, n in await shard_rows(store, 4)] == [3]


async def shard_rows(store, room_id: int):
    return [(n.date, n) for n in await store.nights(room_id, START, START + 10 * DAY)]


async def test_concurrent_commands_leave_exactly_one_event_per_committed_night_version(store, shard):
    holds = [PlaceHold(room_id=room, hold_id=f"g{room}", stay=stay(0, 2), ttl_s=600) for room in range(100)]
    await asyncio.gather(*(shard.apply([h]) for h in holds))
    await asyncio.gather(*(shard.apply([ConfirmHold(room_id=room, hold_id=f"g{room}")]) for room in range(100)))
    announced = {(e.room_id, n.date, n.version): n.status for e in await events_of(store) for n in e.nights}
    stored = {}
    for room in range(100):
        for date, night in await shard_rows(store, room):
            stored[room, date, night.version] = night.status.value
    assert len(announced) == 400  # 100 rooms x 2 nights x (held, booked), each announced once
    assert {key: status for key, status in announced.items() if key[2] == 2} == stored


async def refuse_room_666(store) -> None:
    """A real store failure, for room 666 only: a trigger that aborts the row's insert."""
    if isinstance(store, SqliteAvailabilityStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                "CREATE TRIGGER refuse_666 BEFORE INSERT ON availability WHEN NEW.room_id = 666 "
                "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        return
    target = store.target
    conn = await asyncmy.connect(
        host=target.host, port=target.port, user=target.user, password=target.password, db=target.database
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "CREATE TRIGGER refuse_666 BEFORE INSERT ON availability FOR EACH ROW"
                " IF NEW.room_id = 666 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'disk says no'; END IF"
            )
    finally:
        conn.close()


async def test_a_failed_batch_leaves_neither_rows_nor_events(store, shard):
    await refuse_room_666(store)
    good = PlaceHold(room_id=1, hold_id="good", stay=stay(0), ttl_s=600)
    bad = PlaceHold(room_id=666, hold_id="bad", stay=stay(0), ttl_s=600)
    replies = await shard.apply([good, bad])
    assert [r.kind for r in replies if isinstance(r, Failure)] == ["shard_unavailable"] * 2
    assert await events_of(store) == []
    [reply] = await shard.apply([good])  # the retried good command commits, with its event
    assert isinstance(reply, HoldView)
    [event] = await events_of(store)
    assert event.nights == [NightState(date=START, status="held", version=1)]


async def test_a_fenced_owner_writes_no_event(store, shard):
    newer = RoomShard(store, RING, 0, owner="newer")
    await newer.start()
    [stale] = await shard.apply([PlaceHold(room_id=7, hold_id="stale", stay=stay(1), ttl_s=600)])
    assert isinstance(stale, Failure) and stale.kind == "shard_fenced"
    assert await events_of(store) == []
    await newer.stop()


async def test_reads_and_no_op_commands_write_no_event(store, shard):
    await shard.apply([PlaceHold(room_id=3, hold_id="h", stay=stay(0), ttl_s=600)])
    before = await events_of(store)
    await shard.apply([PlaceHold(room_id=3, hold_id="h", stay=stay(0), ttl_s=600)])  # a replay
    await shard.apply([ConfirmHold(room_id=3, hold_id="h"), ConfirmHold(room_id=3, hold_id="h")])
    after = await events_of(store)
    assert len(after) == len(before) + 1
    assert states(after[-1]) == [(START, "booked", 2)]
