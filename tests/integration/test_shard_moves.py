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
    await ray_runtime.stop_shards(namespace=NAMESPACE, name_prefix=shards.name_prefix)


async def book_while(client: AvailabilityClient, rooms: list[int], operation, *, workers: int = 16):
    """Book one night at a time on `rooms` from `workers` callers, from before `operation()` starts
    until 0.3 s after it ended; return (what operation returned, acknowledged bookings, failures)."""
    nights = ((f"b{room}-{n}", room, START + n * DAY) for n in range(1000) for room in rooms)
    acknowledged, failures = [], []
    started, done = asyncio.Event(), asyncio.Event()

    async def booker() -> None:
        for hold_id, room, night in nights:
            if done.is_set():
                return
            try:
                stay = Stay(check_in=night, check_out=night + DAY)
                await client.place_hold(room_id=room, hold_id=hold_id, stay=stay, ttl_s=600)
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
    await asyncio.sleep(0.3)
    done.set()
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
    await ray_runtime.stop_shards(namespace=NAMESPACE, name_prefix=prefix)


@pytest.mark.parametrize("sizes", [(3, 1)], ids=["2-3-1"])
async def test_a_resize_under_load_answers_every_command_and_moves_only_the_rooms_that_must_move(shards, store, sizes):
    client = AvailabilityClient(shards, RING)
    rooms = list(range(1, 13))
    one_night = Stay(check_in=START + 1500 * DAY, check_out=START + 1501 * DAY)  # beyond what is booked
    for room in rooms:  # held before the resizes, confirmed after: each hold goes with its room
        await client.place_hold(room_id=room, hold_id=f"early-{room}", stay=one_night, ttl_s=600)
    reports = []

    async def resize():
        for size in sizes:
            reports.append(
                await ray_runtime.resize_shards(size, store=store, namespace=NAMESPACE, name_prefix=shards.name_prefix)
            )
            await asyncio.sleep(0.2)

    _, acknowledged, failures = await book_while(client, rooms, resize)
    await assert_all_booked(store, acknowledged)  # whatever failed, nothing acknowledged is lost or doubled
    assert [r.to_ring[1] for r in reports] == list(sizes)
    assert reports[0].from_ring == (1, 2) and reports[-1].to_ring == (1 + len(sizes), sizes[-1])
    assert client.ring == ShardRing(sizes[-1], version=1 + len(sizes))
    for room in rooms:
        assert (await client.confirm(room_id=room, hold_id=f"early-{room}")).status == "booked"
    statuses = await shards.statuses()
    assert [s.shard_count for s in statuses] == [sizes[-1]] * sizes[-1] and all(s.serving for s in statuses)
    retired = await store.lease(2)
    assert retired.owner.startswith("retired by ring")
    assert ray_runtime._actor_names(NAMESPACE, shards.name_prefix) == [f"{shards.name_prefix}-0"]
    assert failures == []  # every call held across a resize is answered by the shard's owner now


async def test_a_resize_whose_resizer_died_after_recording_the_ring_is_healed_by_running_it_again(shards, store):
    # The resizer stopped the shards and recorded the ring, then died before restarting them:
    # calls wait on held shards. The same `resize` again finds nothing to change and lets them serve.
    client = AvailabilityClient(shards, RING)
    entries = [ray.get_actor(f"{shards.name_prefix}-{i}", namespace=NAMESPACE) for i in range(RING.shard_count)]
    await asyncio.gather(*(actor.reshard_begin.remote() for actor in entries))
    recorded = await store.change_ring((await store.ring()).version, RING.shard_count)
    one_night = Stay(check_in=START + 1600 * DAY, check_out=START + 1601 * DAY)
    waiting = asyncio.ensure_future(client.place_hold(room_id=1, hold_id="after-heal", stay=one_night, ttl_s=600))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # held by the half-done resize
    report = await ray_runtime.resize_shards(
        RING.shard_count, store=store, namespace=NAMESPACE, name_prefix=shards.name_prefix
    )
    assert report.to_ring == (recorded.version, RING.shard_count)
    assert (await asyncio.wait_for(waiting, 30)).status == "held"


def test_growing_the_ring_by_one_moves_only_the_rooms_the_new_shard_takes():
    rooms = list(range(1, 10_001))
    moved = ShardRing(4).moved_rooms(ShardRing(5), rooms)
    assert all(ShardRing(5).shard_of(room) == 4 for room in moved)  # all to the new shard
    assert 0.15 < len(moved) / len(rooms) < 0.25  # about 1/5
