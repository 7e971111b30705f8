"""Moving a live shard to a new actor while it serves (ray_runtime.move_shard), on the session's Ray
over MariaDB: no command fails, nothing acknowledged is lost, no night is doubled."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import msgspec
import pytest
import ray

from roombook.actors import ray_runtime
from roombook.actors.client import AvailabilityClient
from roombook.actors.ray_runtime import RayShards
from roombook.domain.errors import ShardOwnedElsewhere
from roombook.domain.nights import NightStatus
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

pytestmark = [pytest.mark.ray, pytest.mark.mysql]

RING = ShardRing(2)
START = dt.date(2032, 3, 1)
DAY = dt.timedelta(days=1)
NAMESPACE = "roombook-tests"  # the session cluster's (tests/conftest.py)


@pytest.fixture
async def store(mysql_dsn):
    async with availability_store(mysql_dsn) as store:
        await store.migrate()
        yield store


@pytest.fixture
async def shards(ray_cluster, mysql_dsn, store):
    shards = RayShards(store_dsn=mysql_dsn, ring=RING, namespace=NAMESPACE, name_prefix=f"mv-{uuid.uuid4().hex[:8]}")
    await shards.start()
    yield shards
    await shards.close()
    await ray_runtime.stop_shards(RING.shard_count, namespace=NAMESPACE, name_prefix=shards.name_prefix)


async def book_while(client: AvailabilityClient, rooms: list[int], operation, *, workers: int = 16):
    """Book one night at a time on `rooms` from `workers` callers while `operation()` runs; return
    (what operation returned, acknowledged bookings, failures)."""
    queue = asyncio.Queue()
    for n in range(40):
        for room in rooms:
            queue.put_nowait((f"b{room}-{n}", room, START + n * DAY))
    acknowledged, failures = [], []
    started = asyncio.Event()

    async def booker() -> None:
        while not queue.empty():
            hold_id, room, night = queue.get_nowait()
            try:
                await client.place_hold(
                    room_id=room, hold_id=hold_id, stay=Stay(check_in=night, check_out=night + DAY), ttl_s=600
                )
                await client.confirm(room_id=room, hold_id=hold_id)
            except Exception as exc:
                failures.append((hold_id, exc))
            else:
                acknowledged.append((hold_id, room, night))
            if len(acknowledged) >= 50:
                started.set()

    tasks = [asyncio.create_task(booker()) for _ in range(workers)]
    await started.wait()
    result = await operation()
    await asyncio.gather(*tasks)
    return result, acknowledged, failures


async def assert_all_booked(store, acknowledged) -> None:
    for hold_id, room, night in acknowledged:
        [row] = await store.nights(room, night, night + DAY)
        assert (row.status, row.holder, row.version) == (NightStatus.BOOKED, hold_id, 2)  # once each, never twice


async def test_a_shard_moved_under_load_answers_every_command_and_keeps_every_booking(shards, store):
    client = AvailabilityClient(shards, RING)
    rooms = [r for r in range(1, 100) if RING.shard_of(r) == 0][:6]
    before = await store.lease(0)

    async def move():
        return await ray_runtime.move_shard(0, namespace=NAMESPACE, name_prefix=shards.name_prefix)

    report, acknowledged, failures = await book_while(client, rooms, move)
    assert failures == []
    assert len(acknowledged) == 40 * len(rooms)
    await assert_all_booked(store, acknowledged)
    assert report.from_actor == f"{shards.name_prefix}-0" and report.to_actor.startswith(f"{shards.name_prefix}-0.")
    assert report.epoch > before.epoch and 0 < report.pause_s < report.took_s
    lease = await store.lease(0)
    assert (lease.epoch, lease.actor) == (report.epoch, report.to_actor)
    [status, _] = await shards.statuses()  # asked of the entry actor, answered by the new owner
    assert status.serving and status.epoch == report.epoch


async def test_a_second_move_stops_the_actor_of_the_first_and_the_entry_follows(shards, store):
    client = AvailabilityClient(shards, RING)
    room = next(r for r in range(1, 100) if RING.shard_of(r) == 1)
    one_night = Stay(check_in=START, check_out=START + DAY)
    await client.place_hold(room_id=room, hold_id="kept", stay=one_night, ttl_s=600)
    first = await ray_runtime.move_shard(1, namespace=NAMESPACE, name_prefix=shards.name_prefix)
    second = await ray_runtime.move_shard(1, namespace=NAMESPACE, name_prefix=shards.name_prefix)
    assert second.from_actor == first.to_actor and second.epoch > first.epoch
    with pytest.raises(ValueError):
        ray.get_actor(first.to_actor, namespace=NAMESPACE)  # ended once it handed the shard on
    assert (await client.confirm(room_id=room, hold_id="kept")).status == "booked"  # the hold moved with it
    fresh = RayShards(store_dsn=shards.store_dsn, ring=RING, namespace=NAMESPACE, name_prefix=shards.name_prefix)
    assert (await fresh.start())[1] == second.epoch  # a front starting now finds the owner, takes no epoch
    await fresh.close()


async def test_a_move_that_cannot_place_its_new_actor_leaves_the_old_owner_serving(shards, store):
    client = AvailabilityClient(shards, RING)
    room = next(r for r in range(1, 100) if RING.shard_of(r) == 0)
    before = await store.lease(0)
    with pytest.raises(ValueError):  # no such node: Ray refuses to place the new actor, the move gives up
        await asyncio.wait_for(
            ray_runtime.move_shard(0, namespace=NAMESPACE, name_prefix=shards.name_prefix, to_node="ff" * 28), 20
        )
    held = await client.place_hold(
        room_id=room, hold_id="after", stay=Stay(check_in=START, check_out=START + DAY), ttl_s=60
    )
    assert held.status == "held"
    assert (await store.lease(0)).epoch == before.epoch  # never handed over


def test_rebalance_moves_as_few_shards_as_it_takes_to_even_out_the_nodes():
    plan = ray_runtime.rebalance_plan({0: "a", 1: "a", 2: "a", 3: "b"}, ["a", "b", "c"])
    assert len(plan) == 1 and plan[0][1] == "c"
    assert ray_runtime.rebalance_plan({0: "a", 1: "b"}, ["a", "b"]) == []
    gone = ray_runtime.rebalance_plan({0: "a", 1: "gone", 2: "gone", 3: "b"}, ["a", "b"])
    assert sorted(shard for shard, _ in gone) == [1, 2] and sorted(node for _, node in gone) == ["a", "b"]
    assert ray_runtime.rebalance_plan({0: "a"}, []) == []


async def test_a_take_over_that_fails_leaves_the_old_owner_serving_again(ray_cluster, mysql_dsn, store):
    prefix = f"mv-{uuid.uuid4().hex[:8]}"
    shards = RayShards(store_dsn=mysql_dsn, ring=RING, namespace=NAMESPACE, name_prefix=prefix, lease_s=2.0)
    await shards.start()
    client = AvailabilityClient(shards, RING)
    room = next(r for r in range(1, 100) if RING.shard_of(r) == 0)
    await client.place_hold(room_id=room, hold_id="kept", stay=Stay(check_in=START, check_out=START + DAY), ttl_s=600)
    entry = ray.get_actor(f"{prefix}-0", namespace=NAMESPACE)
    # a successor of another deployment: the live lease refuses it the shard at its take-over
    stranger = ray_runtime.create_actor(
        msgspec.structs.replace(shards.actor_config(0, f"{prefix}-0.x"), deployment="elsewhere", lease_s=0.0)
    )
    await stranger.prepare.remote()
    with pytest.raises(ShardOwnedElsewhere):
        await entry.hand_over.remote(f"{prefix}-0.x")
    assert (await client.confirm(room_id=room, hold_id="kept")).status == "booked"
    assert (await store.lease(0)).actor == f"{prefix}-0"
    ray.kill(stranger, no_restart=True)
    await shards.close()
    await ray_runtime.stop_shards(RING.shard_count, namespace=NAMESPACE, name_prefix=prefix)
