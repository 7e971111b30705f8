"""Batched point reads of a MariaDB catalogue (read_batches): concurrent reads of rooms and of
their cancellation policies share statements, each caller gets what its read alone would give,
a room asked for twice is read once, and a failure or a caller going away harms no other caller."""

from __future__ import annotations

import asyncio
import decimal

import pytest

from bench.chaos.proxy import MysqlFaultProxy
from roombook.domain.cancellation import CancellationPolicy
from roombook.domain.errors import StoreUnavailable
from roombook.domain.rooms import Location, Room
from roombook.storage.sql.mysql_availability import MysqlAvailabilityStore
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = pytest.mark.mysql


async def open_store(dsn: str, *, batch_reads: bool = True) -> MysqlAvailabilityStore:
    store = MysqlAvailabilityStore(mysql_target(dsn), pool_size=4, batch_reads=batch_reads)
    await store.__aenter__()
    await store.migrate()
    return store


def room(n: int) -> Room:
    return Room(
        title=f"Room {n}",
        location=Location(city="Lisbon", country="PT"),
        price_per_night=decimal.Decimal("80.00") + n,
        capacity=2,
        amenities=["wifi"] * (n % 2),
    )


async def catalogue(store: MysqlAvailabilityStore) -> list[int]:
    """Ten rooms, the even ones with a non-refundable policy."""
    ids = await store.add_rooms([room(n) for n in range(10)])
    for room_id in ids[::2]:
        await store.set_cancellation_policy(room_id, CancellationPolicy(non_refundable=True))
    return ids


async def test_concurrent_reads_share_statements_and_each_gets_what_its_read_alone_gives(mysql_dsn):
    batched = await open_store(mysql_dsn)
    alone = await open_store(mysql_dsn, batch_reads=False)
    try:
        ids = await catalogue(batched)
        wanted = [*ids, ids[0], ids[0], ids[-1] + 100]  # a room twice more, and one that does not exist
        rooms = await asyncio.gather(*(batched.room(i) for i in wanted))
        policies = await asyncio.gather(*(batched.cancellation_policy(i) for i in wanted))
        assert rooms == [await alone.room(i) for i in wanted]
        assert policies == [await alone.cancellation_policy(i) for i in wanted]
        assert rooms[-1] is None and [r.title for r in rooms[:10]] == [f"Room {n}" for n in range(10)]
        assert [p is not None for p in policies[:10]] == [n % 2 == 0 for n in range(10)]
        assert batched._room_reads is not None and batched._room_reads.lookups == 11  # each room read once
        assert batched._room_reads.batches <= 2 and batched._policy_reads.batches <= 2  # type: ignore[union-attr]
    finally:
        await batched.__aexit__(None, None, None)
        await alone.__aexit__(None, None, None)


async def test_a_caller_that_goes_away_does_not_take_the_read_from_the_others_of_its_room(mysql_dsn):
    store = await open_store(mysql_dsn)
    try:
        (room_id,) = await store.add_rooms([room(1)])
        readers = [asyncio.create_task(store.room(room_id)) for _ in range(3)]
        await asyncio.sleep(0)
        readers[0].cancel()
        answers = await asyncio.gather(*readers, return_exceptions=True)
        assert isinstance(answers[0], asyncio.CancelledError)
        assert [a.id for a in answers[1:]] == [room_id, room_id]  # type: ignore[union-attr]
    finally:
        await store.__aexit__(None, None, None)


async def test_with_the_store_gone_every_reader_is_told_it_failed_and_reads_again_once_it_is_back(mysql_dsn):
    target = mysql_target(mysql_dsn)
    async with MysqlFaultProxy(target.host, target.port) as proxy:
        store = await open_store(proxy.through(mysql_dsn))
        try:
            ids = await catalogue(store)
            await proxy.outage(True)
            failed = await asyncio.gather(
                *(store.room(i) for i in ids), store.cancellation_policy(ids[0]), return_exceptions=True
            )
            assert all(isinstance(a, StoreUnavailable) for a in failed)
            await proxy.outage(False)
            assert [r.id for r in await asyncio.gather(*(store.room(i) for i in ids))] == ids  # type: ignore[union-attr]
        finally:
            await store.__aexit__(None, None, None)
