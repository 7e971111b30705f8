"""Shard actors on a real local Ray cluster over MariaDB: crashes and duplicate owners."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from roombook.actors.client import AvailabilityClient
from roombook.actors.ray_runtime import RayShards
from roombook.domain.errors import ShardOwnedElsewhere, ShardUnavailable
from roombook.domain.nights import NightStatus
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

pytestmark = [pytest.mark.ray, pytest.mark.mysql]

RING = ShardRing(2)
START = dt.date(2031, 9, 1)
DAY = dt.timedelta(days=1)


@pytest.fixture
async def store(mysql_dsn):
    async with availability_store(mysql_dsn) as store:
        await store.migrate()
        yield store


def ray_shards(dsn: str, *, direct: bool = True) -> RayShards:
    return RayShards(store_dsn=dsn, ring=RING, name_prefix=f"t-{uuid.uuid4().hex[:8]}", direct=direct)


@pytest.mark.parametrize("direct", [True, False], ids=["direct-socket", "ray-calls"])
async def test_a_killed_shard_actor_restarts_with_every_acknowledged_booking_and_none_doubled(
    ray_cluster, mysql_dsn, store, direct
):
    shards = ray_shards(mysql_dsn, direct=direct)
    first_epochs = await shards.start()
    first_pid = await shards.actor_pid(0)
    client = AvailabilityClient(shards, RING)
    rooms = [r for r in range(1, 200) if RING.shard_of(r) == 0][:20]
    bookings = [(f"k{room}-{n}", room, START + n * DAY) for room in rooms for n in range(15)]
    acknowledged: list[tuple[str, int, dt.date]] = []
    a_third_done = asyncio.Event()
    queue = asyncio.Queue()
    for booking in bookings:
        queue.put_nowait(booking)

    async def booker() -> None:
        while not queue.empty():
            hold_id, room, night = queue.get_nowait()
            one_night = Stay(check_in=night, check_out=night + DAY)
            await client.place_hold(room_id=room, hold_id=hold_id, stay=one_night, ttl_s=600)
            await client.confirm(room_id=room, hold_id=hold_id)
            acknowledged.append((hold_id, room, night))
            if len(acknowledged) >= len(bookings) // 3:
                a_third_done.set()

    workers = [asyncio.create_task(booker()) for _ in range(16)]
    await a_third_done.wait()
    shards.kill(0)  # a crash in the middle of the stream
    await asyncio.gather(*workers)

    assert len(acknowledged) == len(bookings)
    assert await shards.actor_pid(0) != first_pid
    statuses = await shards.statuses()
    assert statuses[0].epoch > first_epochs[0]
    for hold_id, room, night in acknowledged:
        [row] = await store.nights(room, night, night + DAY)
        # version 2 = one hold + one confirm: a retried command was never applied twice
        assert (row.status, row.holder, row.version) == (NightStatus.BOOKED, hold_id, 2)
    shards.stop()


async def test_a_second_set_of_actors_of_the_deployment_joins_the_live_owners_instead_of_fencing_them(
    ray_cluster, mysql_dsn, store
):
    room = next(r for r in range(1, 100) if RING.shard_of(r) == 1)
    old = ray_shards(mysql_dsn)
    old_epochs = await old.start()
    old_client = AvailabilityClient(old, RING)
    await old_client.place_hold(
        room_id=room, hold_id="old-1", stay=Stay(check_in=START, check_out=START + DAY), ttl_s=600
    )

    new = ray_shards(mysql_dsn)  # other actor names, same cluster and namespace: the same deployment
    assert await new.start() == old_epochs  # no new epoch was taken: the live owners serve both
    new_client = AvailabilityClient(new, RING)
    second = Stay(check_in=START + DAY, check_out=START + 2 * DAY)
    await new_client.place_hold(room_id=room, hold_id="new-2", stay=second, ttl_s=600)
    assert (await old_client.confirm(room_id=room, hold_id="new-2")).status == "booked"
    assert (await new_client.confirm(room_id=room, hold_id="old-1")).status == "booked"
    assert [s.epoch for s in await old.statuses()] == old_epochs
    new.stop()
    old.stop()


async def test_a_fenced_owner_heals_and_the_commands_in_flight_are_answered_by_it_again(ray_cluster, mysql_dsn, store):
    shards = ray_shards(mysql_dsn)
    epochs = await shards.start()
    client = AvailabilityClient(shards, RING)
    room = next(r for r in range(1, 100) if RING.shard_of(r) == 0)
    one_night = Stay(check_in=START, check_out=START + DAY)
    await client.place_hold(room_id=room, hold_id="before", stay=one_night, ttl_s=600)
    # a newer epoch under a name no live actor holds (a stale incarnation's): the live owner is fenced
    await store.acquire_shard(0, "ghost", deployment=shards.deployment, actor="no-such-actor")
    later = Stay(check_in=START + DAY, check_out=START + 2 * DAY)
    held = await client.place_hold(room_id=room, hold_id="after", stay=later, ttl_s=600)  # no error reaches us
    assert held.status == "held"
    assert (await client.confirm(room_id=room, hold_id="before")).status == "booked"  # reloaded, kept
    [status, _] = await shards.statuses()
    assert status.serving and status.epoch > epochs[0] + 1
    lease = await store.lease(0)
    assert lease is not None and lease.epoch == status.epoch and lease.actor.endswith("-0")
    shards.stop()


async def test_a_second_deployment_is_refused_while_the_first_keeps_its_leases_live(ray_cluster, mysql_dsn, store):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    first = RayShards(store_dsn=mysql_dsn, ring=RING, name_prefix=prefix, namespace="rb-first", lease_s=1.0)
    epochs = await first.start()
    second = RayShards(store_dsn=mysql_dsn, ring=RING, name_prefix=prefix, namespace="rb-second", lease_s=1.0)
    assert second.deployment != first.deployment
    with pytest.raises(ShardOwnedElsewhere, match="another running deployment"):
        await second.start()
    assert [s.epoch for s in await first.statuses()] == epochs  # never fenced
    client = AvailabilityClient(first, RING)
    room = next(r for r in range(1, 100) if RING.shard_of(r) == 1)
    held = await client.place_hold(
        room_id=room, hold_id="first", stay=Stay(check_in=START, check_out=START + DAY), ttl_s=60
    )
    assert held.status == "held"
    second.stop()
    first.stop()


async def test_drain_answers_what_is_queued_then_the_shards_stop_serving(ray_cluster, mysql_dsn, store):
    shards = ray_shards(mysql_dsn)
    await shards.start()
    client = AvailabilityClient(shards, RING)
    for shard_id in range(RING.shard_count):  # open each shard's connection first, so that the holds
        room = next(r for r in range(1000, 2000) if RING.shard_of(r) == shard_id)  # leave at once
        await client.calendar(room_id=room, start=START, end=START + DAY)
    one_night = Stay(check_in=START, check_out=START + DAY)
    holds = [
        asyncio.ensure_future(client.place_hold(room_id=room, hold_id=f"d{room}", stay=one_night, ttl_s=600))
        for room in range(1, 201)
    ]
    await asyncio.sleep(0.005)  # let the first calls leave, then drain while they are in flight
    await shards.drain()
    outcomes = await asyncio.gather(*holds, return_exceptions=True)

    acked = [room for room, o in zip(range(1, 201), outcomes, strict=True) if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert acked, "nothing was answered before the drain"
    assert all(isinstance(o, ShardUnavailable) for o in refused)
    for room in range(1, 201):
        rows = await store.nights(room, START, START + DAY)
        assert [r.holder for r in rows] == ([f"d{room}"] if room in acked else [])
    with pytest.raises(ShardUnavailable):
        await client.release(room_id=acked[0], hold_id=f"d{acked[0]}")
    shards.stop()


@pytest.mark.parametrize("freeze_heap", [True, False], ids=["frozen", "not-frozen"])
async def test_a_shard_actor_freezes_its_start_up_heap_unless_told_not_to(ray_cluster, mysql_dsn, store, freeze_heap):
    shards = RayShards(
        store_dsn=mysql_dsn, ring=ShardRing(1), name_prefix=f"t-{uuid.uuid4().hex[:8]}", freeze_heap=freeze_heap
    )
    await shards.start()
    [(frozen, _)] = await shards.gc_reports()
    if freeze_heap:
        assert frozen > 10_000  # Ray's worker alone is tens of thousands of tracked objects
    else:
        assert frozen == 0
    hold = await AvailabilityClient(shards, ShardRing(1)).place_hold(
        room_id=1, hold_id="after-freeze", stay=Stay(check_in=START, check_out=START + DAY), ttl_s=60
    )
    assert hold.status == "held"  # and it serves as before
    await shards.close()
    shards.stop()


async def test_a_handle_found_again_by_name_does_not_end_the_shard_actor_this_process_created(
    ray_cluster, mysql_dsn, store
):
    # An actor that is not detached lives while its creator holds a handle. After a slow control
    # call the transport finds the actor again by name (see RayShards._call) and replaces its
    # handle: the shard must serve on, in the same process, not die for want of a reference.
    import gc

    from roombook.actors import ray_runtime

    shards = ray_shards(mysql_dsn)
    await shards.start()
    pid = await shards.actor_pid(0)
    shards._actors[0] = ray_runtime._find(ray_runtime.entry_name(shards.name_prefix, 0), shards._namespace)
    gc.collect()
    await asyncio.sleep(2)  # for Ray to end an actor whose references are all gone
    client = AvailabilityClient(shards, RING)
    room = next(r for r in range(1, 100) if RING.shard_of(r) == 0)
    held = await client.place_hold(
        room_id=room, hold_id="found-again", stay=Stay(check_in=START, check_out=START + DAY), ttl_s=60
    )
    assert held.status == "held"
    assert await shards.actor_pid(0) == pid
    await shards.close()
    shards.stop()
