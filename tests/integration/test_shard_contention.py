"""Many clients racing for overlapping stays: one writer per room means one owner per night.

Runs on both runtimes x stores the product supports: in-process shards on SQLite, and Ray shard
actors on MariaDB.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

import pytest

from roombook.actors.client import AvailabilityClient
from roombook.actors.local_runtime import LocalShards
from roombook.domain.errors import NightsUnavailable
from roombook.domain.nights import NightStatus
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

START = dt.date(2031, 3, 1)
WINDOW_END = START + dt.timedelta(days=20)
ROOMS = [101, 202, 303]


class Harness:
    def __init__(self, client: AvailabilityClient, store, runtime) -> None:
        self.client = client
        self.store = store  # a separate connection, for checking what is durable
        self.runtime = runtime


@pytest.fixture(params=["local-sqlite", pytest.param("ray-mariadb", marks=[pytest.mark.ray, pytest.mark.mysql])])
async def shards(request, tmp_path):
    ring = ShardRing(2)
    if request.param == "local-sqlite":
        dsn = f"sqlite:///{tmp_path / 'global.db'}"
    else:
        dsn = request.getfixturevalue("mysql_dsn")
        request.getfixturevalue("ray_cluster")
    async with availability_store(dsn) as store:
        await store.migrate()
        if request.param == "local-sqlite":
            runtime = LocalShards(store, ring)
            await runtime.start()
            yield Harness(AvailabilityClient(runtime, ring), store, runtime)
            await runtime.stop()
        else:
            from roombook.actors.ray_runtime import RayShards

            runtime = RayShards(store_dsn=dsn, ring=ring, name_prefix=f"t-{uuid.uuid4().hex[:8]}")
            await runtime.start()
            yield Harness(AvailabilityClient(runtime, ring), store, runtime)
            runtime.stop()


def random_stay(rng: random.Random) -> Stay:
    check_in = START + dt.timedelta(days=rng.randrange(0, 17))
    nights = rng.randint(1, 4)
    return Stay(check_in=check_in, check_out=min(check_in + dt.timedelta(days=nights), WINDOW_END))


async def test_300_racing_holds_leave_every_night_with_at_most_one_owner(shards: Harness):
    rng = random.Random(42)
    attempts = [(f"h{i}", rng.choice(ROOMS), random_stay(rng)) for i in range(300)]

    async def attempt(hold_id: str, room_id: int, stay: Stay) -> str:
        try:
            await shards.client.place_hold(room_id=room_id, hold_id=hold_id, stay=stay, ttl_s=600)
        except NightsUnavailable as exc:
            assert exc.nights and set(exc.nights) <= set(stay.nights())
            return "rejected"
        if int(hold_id[1:]) % 3 == 0:
            await shards.client.release(room_id=room_id, hold_id=hold_id)
            return "released"
        await shards.client.confirm(room_id=room_id, hold_id=hold_id)
        return "booked"

    outcomes = await asyncio.gather(*(attempt(*a) for a in attempts))

    owner_of: dict[tuple[int, dt.date], str] = {}
    for (hold_id, room_id, stay), outcome in zip(attempts, outcomes, strict=True):
        if outcome == "booked":
            for night in stay.nights():
                assert (room_id, night) not in owner_of, f"{night} of room {room_id} booked twice"
                owner_of[room_id, night] = hold_id
    assert owner_of and "rejected" in outcomes and "released" in outcomes

    stored = {}
    for room_id in ROOMS:
        for row in await shards.store.nights(room_id, START, WINDOW_END):
            stored[row.room_id, row.date] = row
    for key, hold_id in owner_of.items():
        assert stored[key].status is NightStatus.BOOKED and stored[key].holder == hold_id
    for row in stored.values():
        assert row.status in (NightStatus.BOOKED, NightStatus.AVAILABLE), row
        if row.status is NightStatus.BOOKED:
            assert owner_of[row.room_id, row.date] == row.holder  # never a rejected or released hold
        else:
            assert row.holder is None


async def test_calendar_is_answered_by_the_owning_shard(shards: Harness):
    stay = Stay(check_in=START, check_out=START + dt.timedelta(days=2))
    await shards.client.place_hold(room_id=ROOMS[0], hold_id="cal-1", stay=stay, ttl_s=600)
    nights = await shards.client.calendar(room_id=ROOMS[0], start=START, end=START + dt.timedelta(days=3))
    assert [n.status for n in nights] == [NightStatus.HELD, NightStatus.HELD, NightStatus.AVAILABLE]
    assert [n.date for n in nights] == [START + dt.timedelta(days=i) for i in range(3)]
