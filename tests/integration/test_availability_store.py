"""The AvailabilityStore contract, run on SQLite and on MariaDB (fixture `availability_store`), and
on MariaDB again with `?pack_writes=false` (a write's statements one round trip each)."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import sqlite3

import asyncmy.errors
import msgspec
import pytest

from roombook.domain.errors import RingChanged, ShardDiverged, ShardFenced, ShardOwnedElsewhere
from roombook.domain.nights import Night, NightStatus
from roombook.domain.rooms import Location, Room
from roombook.routing.ring import ShardRing
from roombook.storage.sql import connect
from roombook.storage.sql.mysql_availability import MysqlAvailabilityStore
from roombook.storage.sql.mysql_db import mysql_target

START = dt.date(2031, 1, 1)
DAY = dt.timedelta(days=1)
EXPIRES_S = 1_924_992_000.123457  # 2031-01-01T00:00:00.123457Z: a whole number of microseconds


def night(room_id: int, offset: int = 0, *, version: int = 1, holder: str = "h1") -> Night:
    return Night(
        room_id=room_id,
        date=START + offset * DAY,
        status=NightStatus.HELD,
        holder=holder,
        hold_expires_at_s=EXPIRES_S,
        version=version,
    )


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("mysql, unpacked", marks=pytest.mark.mysql),
    ]
)
def availability_dsn(request: pytest.FixtureRequest, tmp_path) -> str:
    """Overrides conftest's: the same engines, and MariaDB once more without packed writes."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'global.db'}"
    dsn = request.getfixturevalue("mysql_dsn")
    return dsn + "?pack_writes=false" if request.param == "mysql, unpacked" else dsn


async def stored(store, room_id: int) -> list[Night]:
    return await store.nights(room_id, START, START + 400 * DAY)


async def test_acquire_shard_bumps_epoch(availability_store):
    before = dt.datetime.now(dt.UTC)
    assert await availability_store.acquire_shard(3, "first") == 1
    assert await availability_store.acquire_shard(3, "second") == 2
    [lease] = await availability_store.leases()
    assert (lease.shard_id, lease.epoch, lease.owner, lease.commits) == (3, 2, "second", 0)
    assert lease.acquired_at.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(seconds=5) <= lease.acquired_at <= dt.datetime.now(dt.UTC)


async def test_two_stores_racing_acquire_shard_get_distinct_epochs(availability_dsn, availability_store):
    async with connect.availability_store(availability_dsn) as other:
        epochs = await asyncio.gather(
            *(store.acquire_shard(0, f"owner-{i}") for i in range(10) for store in (availability_store, other))
        )
    assert sorted(epochs) == list(range(1, 21))
    assert [lease.epoch for lease in await availability_store.leases()] == [20]


async def test_one_write_is_one_transaction_and_bumps_commits(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    await availability_store.write_nights(0, epoch, [night(1, 0), night(1, 1), night(2, 0)])
    assert (availability_store.transactions, availability_store.rows_written) == (1, 3)
    assert [lease.commits for lease in await availability_store.leases()] == [1]
    assert await stored(availability_store, 1) == [night(1, 0), night(1, 1)]


async def test_write_is_rejected_for_a_stale_epoch_and_writes_nothing(availability_store):
    stale = await availability_store.acquire_shard(0, "old owner")
    await availability_store.acquire_shard(0, "new owner")
    with pytest.raises(ShardFenced):
        await availability_store.write_nights(0, stale, [night(1)])
    assert await stored(availability_store, 1) == []
    assert [lease.commits for lease in await availability_store.leases()] == [0]
    assert availability_store.transactions == 0


async def test_write_is_rejected_for_a_shard_never_acquired(availability_store):
    with pytest.raises(ShardFenced):
        await availability_store.write_nights(5, 1, [night(1)])
    assert await stored(availability_store, 1) == []


async def test_renewing_takes_a_new_epoch_only_while_the_owner_still_holds_the_lease(availability_store):
    first = await availability_store.acquire_shard(0, "me")
    renewed = await availability_store.acquire_shard(0, "me", renew=True)
    assert renewed == first + 1
    with pytest.raises(ShardFenced):  # the old epoch's writes are fenced by the renewal
        await availability_store.write_nights(0, first, [night(1)])
    await availability_store.write_nights(0, renewed, [night(1)])
    other = await availability_store.acquire_shard(0, "other")
    with pytest.raises(ShardFenced, match="another owner"):
        await availability_store.acquire_shard(0, "me", renew=True)
    assert [(lease.epoch, lease.owner) for lease in await availability_store.leases()] == [(other, "other")]


async def test_a_live_lease_of_another_deployment_is_refused_and_left_as_it_was(availability_store):
    epoch = await availability_store.acquire_shard(0, "a-1", deployment="a", actor="shard-0", lease_s=30)
    with pytest.raises(ShardOwnedElsewhere) as refused:
        await availability_store.acquire_shard(0, "b-1", deployment="b", actor="shard-0", lease_s=0.1)
    assert refused.value.deployment == "a"
    assert 0 <= refused.value.renewed_s_ago < 30
    [lease] = await availability_store.leases()
    assert (lease.epoch, lease.owner, lease.deployment, lease.actor, lease.lease_s) == (
        epoch,
        "a-1",
        "a",
        "shard-0",
        30,
    )
    assert lease.live
    await availability_store.write_nights(0, epoch, [night(1)])  # the live owner goes on writing
    again = await availability_store.acquire_shard(0, "a-2", deployment="a", lease_s=30)  # its own deployment may
    assert again == epoch + 1


async def test_a_lease_its_owner_did_not_renew_in_time_may_be_taken_by_another_deployment(availability_store):
    epoch = await availability_store.acquire_shard(0, "a-1", deployment="a", lease_s=0.2)
    await asyncio.sleep(0.3)
    assert not (await availability_store.lease(0)).live
    taken = await availability_store.acquire_shard(0, "b-1", deployment="b", lease_s=30)
    assert taken == epoch + 1
    with pytest.raises(ShardFenced):
        await availability_store.write_nights(0, epoch, [night(1)])
    unpromised = await availability_store.acquire_shard(1, "c-1", deployment="c")  # lease_s 0: never live
    assert await availability_store.acquire_shard(1, "d-1", deployment="d", lease_s=30) == unpromised + 1


async def test_renew_lease_keeps_the_lease_live_and_answers_false_once_fenced(availability_store):
    epoch = await availability_store.acquire_shard(0, "a-1", deployment="a", lease_s=0.25)
    await asyncio.sleep(0.3)
    assert not (await availability_store.lease(0)).live
    assert await availability_store.renew_lease(0, epoch)
    lease = await availability_store.lease(0)
    assert lease is not None and lease.live and lease.renewed_s_ago < 0.25
    with pytest.raises(ShardOwnedElsewhere):
        await availability_store.acquire_shard(0, "b-1", deployment="b")
    newer = await availability_store.acquire_shard(0, "a-2", deployment="a")
    assert not await availability_store.renew_lease(0, epoch)
    assert await availability_store.renew_lease(0, newer)
    assert await availability_store.lease(1) is None
    assert not await availability_store.renew_lease(1, 1)


async def test_a_commit_renews_the_lease(availability_store):
    epoch = await availability_store.acquire_shard(0, "a-1", deployment="a")
    await asyncio.sleep(0.3)
    await availability_store.write_nights(0, epoch, [night(1)])
    lease = await availability_store.lease(0)
    assert lease is not None and lease.renewed_s_ago is not None and lease.renewed_s_ago < 0.3


async def test_write_is_rejected_when_a_version_is_stale_and_writes_nothing(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    await availability_store.write_nights(0, epoch, [night(1), night(2)])
    good, stale = night(1, version=2, holder="h2"), night(2, version=3, holder="h2")
    with pytest.raises(ShardDiverged, match="stale version"):
        await availability_store.write_nights(0, epoch, [good, stale])
    assert await stored(availability_store, 1) == [night(1)]
    assert await stored(availability_store, 2) == [night(2)]
    assert [lease.commits for lease in await availability_store.leases()] == [1]
    assert (availability_store.transactions, availability_store.rows_written) == (1, 2)


async def test_new_row_conflicts_with_an_existing_row(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    await availability_store.write_nights(0, epoch, [night(1, holder="first")])
    with pytest.raises(ShardDiverged):
        await availability_store.write_nights(0, epoch, [night(1, holder="second")])
    assert await stored(availability_store, 1) == [night(1, holder="first")]


async def test_a_row_cannot_skip_a_version(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    with pytest.raises(ShardDiverged):
        await availability_store.write_nights(0, epoch, [night(1, version=2)])  # absent counts as 0
    assert await stored(availability_store, 1) == []


async def test_replaying_a_write_is_rejected(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    await availability_store.write_nights(0, epoch, [night(1)])
    await availability_store.write_nights(0, epoch, [night(1, version=2, holder="h2")])
    with pytest.raises(ShardDiverged):
        await availability_store.write_nights(0, epoch, [night(1, version=2, holder="h2")])


async def test_each_version_replaces_every_column(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    booked = msgspec.structs.replace(night(1, version=2), status=NightStatus.BOOKED, hold_expires_at_s=None)
    released = Night(room_id=1, date=START, status=NightStatus.AVAILABLE, version=3)
    for version in (night(1), booked, released):
        await availability_store.write_nights(0, epoch, [version])
        assert await stored(availability_store, 1) == [version]


async def test_hold_expiry_round_trips_to_the_microsecond(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    expiries = [EXPIRES_S, 1_924_992_000.000001, 1_924_992_000.999999, 0.0]
    nights = [msgspec.structs.replace(night(1, i), hold_expires_at_s=s) for i, s in enumerate(expiries)]
    await availability_store.write_nights(0, epoch, nights)
    assert [n.hold_expires_at_s for n in await stored(availability_store, 1)] == expiries
    loaded = await availability_store.load_nights(ShardRing(1), 0)
    assert [n.hold_expires_at_s for n in sorted(loaded, key=lambda n: n.date)] == expiries


async def test_nights_returns_one_rooms_rows_in_date_order_within_the_range(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    await availability_store.write_nights(0, epoch, [night(r, d) for r in (1, 2) for d in (4, 0, 2, 3, 1)])
    got = await availability_store.nights(1, START + DAY, START + 4 * DAY)
    assert got == [night(1, 1), night(1, 2), night(1, 3)]


async def test_load_nights_returns_only_the_shards_rooms(availability_store):
    ring = ShardRing(4)
    rooms = range(1, 41)
    for shard_id in range(4):
        epoch = await availability_store.acquire_shard(shard_id, "me")
        owned = [night(room, d) for room in rooms if ring.shard_of(room) == shard_id for d in range(3)]
        await availability_store.write_nights(shard_id, epoch, owned)
    loaded = await availability_store.load_nights(ring, 2)
    expected = {(room, d) for room in rooms if ring.shard_of(room) == 2 for d in range(3)}
    assert expected and {(n.room_id, (n.date - START).days) for n in loaded} == expected
    assert all(n == night(n.room_id, (n.date - START).days) for n in loaded)


@pytest.mark.parametrize(("before", "after"), [(4, 6), (6, 3), (1, 2), (2, 1)])
async def test_a_resized_shard_loads_only_the_rooms_it_gains(availability_store, before, after):
    old, new = ShardRing(before, version=1), ShardRing(after, version=2)
    rooms = range(1, 121)
    for shard_id in range(before):
        epoch = await availability_store.acquire_shard(shard_id, "me")
        await availability_store.write_nights(shard_id, epoch, [night(r, 0) for r in rooms if old.owns(shard_id, r)])
    for shard_id in range(after):
        gained = await availability_store.load_nights(new, shard_id, unless_owned_by=old)
        expected = {r for r in rooms if new.owns(shard_id, r) and not old.owns(shard_id, r)}
        assert {n.room_id for n in gained} == expected
        everything = await availability_store.load_nights(new, shard_id)
        assert {n.room_id for n in everything} == {r for r in rooms if new.owns(shard_id, r)}


async def test_the_shards_loads_partition_the_table_even_past_one_querys_worth_of_rooms(availability_store):
    ring = ShardRing(4)
    rooms = [7 + 1_000_003 * i for i in range(2_400)]  # sparse ids past 2**31, about 600 a shard
    for shard_id in range(4):
        epoch = await availability_store.acquire_shard(shard_id, "me")
        owned = [night(room, room % 3) for room in rooms if ring.shard_of(room) == shard_id]
        await availability_store.write_nights(shard_id, epoch, owned)
    loads = [await availability_store.load_nights(ring, shard_id) for shard_id in range(4)]
    assert min(len(loaded) for loaded in loads) > 500  # more rooms than one IN (...) query takes
    for shard_id, loaded in enumerate(loads):
        assert {n.room_id for n in loaded} == {room for room in rooms if ring.shard_of(room) == shard_id}
        assert all(n == night(n.room_id, n.room_id % 3) for n in loaded)
    assert sorted(n.room_id for loaded in loads for n in loaded) == rooms  # each row once, in one shard


async def test_a_2000_row_batch_is_written_in_one_call_and_one_transaction(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    batch = [night(room, d) for room in range(20) for d in range(100)]
    await availability_store.write_nights(0, epoch, batch)
    await availability_store.write_nights(0, epoch, [msgspec.structs.replace(n, version=2) for n in batch])
    assert (availability_store.transactions, availability_store.rows_written) == (2, 4000)
    assert [lease.commits for lease in await availability_store.leases()] == [2]
    assert {n.version for n in await availability_store.load_nights(ShardRing(1), 0)} == {2}
    assert len(await stored(availability_store, 7)) == 100


async def test_a_row_the_schema_refuses_fails_the_whole_write_and_the_store_keeps_working(
    availability_store,
):
    epoch = await availability_store.acquire_shard(0, "me")
    with pytest.raises((sqlite3.IntegrityError, asyncmy.errors.DataError)):
        await availability_store.write_nights(0, epoch, [night(1), night(2, holder="h" * 65)])
    assert await stored(availability_store, 1) == []
    assert [lease.commits for lease in await availability_store.leases()] == [0]
    await availability_store.write_nights(0, epoch, [night(1)])
    assert await stored(availability_store, 1) == [night(1)]


async def test_a_night_twice_in_one_call_is_a_caller_bug(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    with pytest.raises(ValueError, match="twice"):
        await availability_store.write_nights(0, epoch, [night(1), night(1, version=2)])


async def test_migrate_is_idempotent(availability_dsn, availability_store):
    assert await availability_store.migrate() == []
    async with connect.availability_store(availability_dsn) as again:
        assert await again.migrate() == []


def a_room(title: str, price: str = "129.90") -> Room:
    return Room(
        title=title,
        description="Quiet, bright, with a view — ünïcödé and 🛏",
        location=Location(city="Lyon", country="FR", address="1 quai", lat=45.76, lon=4.83, timezone="Europe/Paris"),
        price_per_night=decimal.Decimal(price),
        currency="EUR",
        capacity=2,
        amenities=["wifi", "kitchen"],
        images=["https://img.example/1.jpg"],
    )


async def test_rooms_round_trip_with_an_exact_price_and_json_fields(availability_store):
    bare = msgspec.structs.replace(a_room("Bare"), description="", amenities=[], images=[])
    rooms = [a_room("Loft"), a_room("Studio", price="80"), bare]
    ids = await availability_store.add_rooms(rooms)
    assert ids == sorted(set(ids)) and await availability_store.room_ids() == ids
    for room_id, room in zip(ids, rooms, strict=True):
        assert await availability_store.room(room_id) == msgspec.structs.replace(room, id=room_id)
    studio = await availability_store.room(ids[1])
    assert str(studio.price_per_night) == "80.00"
    assert await availability_store.room_count() == 3
    assert await availability_store.room(max(ids) + 1) is None


async def test_add_rooms_returns_the_id_of_every_room_of_a_large_batch(availability_store):
    ids = await availability_store.add_rooms([a_room(f"room {i}") for i in range(250)])
    assert len(set(ids)) == 250 and await availability_store.room_ids() == ids
    assert [(await availability_store.room(room_id)).title for room_id in ids[::50]] == [
        f"room {i}" for i in range(0, 250, 50)
    ]


async def test_a_price_with_more_than_two_decimals_is_refused(availability_store):
    with pytest.raises(ValueError, match="decimal places"):
        await availability_store.add_rooms([a_room("Odd", price="10.005")])
    assert await availability_store.room_count() == 0


def test_an_unknown_scheme_is_refused_without_echoing_the_dsn():
    with pytest.raises(ValueError) as refused:
        connect.availability_store("postgres://user:s3cret@db.example/roombook")
    assert "s3cret" not in str(refused.value)


AWKWARD = ["it's", 'say "hi"', "back\\slash", "percent %s %d", "nul\x00byte", "emoji 🛏️ ünïcödé", "'; DROP TABLE x; --"]


async def test_holders_with_quotes_backslashes_and_unicode_round_trip_exactly(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    rows = [night(1, i, holder=holder) for i, holder in enumerate(AWKWARD)]
    await availability_store.write_nights(0, epoch, rows)
    assert await stored(availability_store, 1) == rows


async def test_a_batch_larger_than_one_statement_is_written_whole_or_not_at_all(availability_store):
    epoch = await availability_store.acquire_shard(0, "me")
    batch = [night(room, d) for room in range(50) for d in range(100)]  # 5000 rows: several statements
    await availability_store.write_nights(0, epoch, batch)
    stale_last = [msgspec.structs.replace(n, version=2) for n in batch[:-1]] + [batch[-1]]  # last row stale
    with pytest.raises(ShardDiverged):
        await availability_store.write_nights(0, epoch, stale_last)
    assert {n.version for n in await availability_store.load_nights(ShardRing(1), 0)} == {1}
    assert availability_store.rows_written == 5000


@pytest.mark.mysql
async def test_a_write_spread_over_several_queries_is_one_transaction(mysql_dsn):
    """Statements that do not fit one query go in several; a failure in a later query still undoes
    the earlier ones, and the store goes on working."""
    async with MysqlAvailabilityStore(mysql_target(mysql_dsn), max_query_chars=3_000) as store:
        await store.migrate()
        epoch = await store.acquire_shard(0, "me")
        ok = [night(room, d) for room in range(40) for d in range(60)]  # 2 upserts of ~100 KB: 3 queries
        await store.write_nights(0, epoch, ok)
        refused = [msgspec.structs.replace(n, version=2) for n in ok[:-1]] + [night(39, 59, holder="h" * 65)]
        with pytest.raises(asyncmy.errors.DataError):
            await store.write_nights(0, epoch, refused)  # the too-long holder is in the last query
        assert {n.version for n in await store.load_nights(ShardRing(1), 0)} == {1}
        assert [lease.commits for lease in await store.leases()] == [1]
        await store.write_nights(0, epoch, refused[:-1])
        assert {n.version for n in await store.load_nights(ShardRing(1), 0)} == {1, 2}


def test_a_mysql_dsn_takes_pack_writes_and_refuses_other_options_without_echoing_the_dsn():
    assert mysql_target("mysql://u@h/db").pack_writes is True
    assert mysql_target("mysql://u@h/db?pack_writes=false").pack_writes is False
    assert mysql_target("mysql://u@h/db?pack_writes=ON").pack_writes is True
    for dsn in ("mysql://u:s3cret@h/db?ssl=1", "mysql://u:s3cret@h/db?pack_writes=maybe"):
        with pytest.raises(ValueError) as refused:
            mysql_target(dsn)
        assert "s3cret" not in str(refused.value)


async def test_the_first_ring_recorded_wins_and_a_change_must_name_the_version_it_replaces(availability_store):
    assert await availability_store.ring() is None
    assert await availability_store.ring(default_shard_count=4) == ShardRing(4, version=1)
    assert await availability_store.ring(default_shard_count=6) == ShardRing(4, version=1)  # recorded: it stays
    assert await availability_store.change_ring(1, 6) == ShardRing(6, version=2)
    with pytest.raises(RingChanged):  # a second resize from version 1 lost the race
        await availability_store.change_ring(1, 3)
    with pytest.raises(RingChanged):
        await availability_store.change_ring(0, 3)
    assert await availability_store.ring() == ShardRing(6, version=2)
