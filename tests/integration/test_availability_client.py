"""AvailabilityClient's lanes in front of real shards (in-process, SQLite): a refusal reaches its
caller while the rest of its call waits for the commit."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3

import pytest

from roombook.actors.client import AvailabilityClient
from roombook.actors.local_runtime import LocalShards
from roombook.domain.errors import NightsUnavailable
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

RING = ShardRing(1)
START = dt.date(2031, 9, 1)


def night(offset: int) -> Stay:
    check_in = START + dt.timedelta(days=offset)
    return Stay(check_in=check_in, check_out=check_in + dt.timedelta(days=1))


@pytest.mark.parametrize("early_refusals", [True, False], ids=["ahead", "with-the-call"])
async def test_a_refusal_returns_while_the_holds_of_its_call_wait_for_their_commit(tmp_path, early_refusals):
    path = tmp_path / "global.db"
    async with availability_store(f"sqlite:///{path}") as store:
        await store.migrate()
        shards = LocalShards(store, RING)
        await shards.start()
        client = AvailabilityClient(shards, RING, max_calls_in_flight=1, early_refusals=early_refusals)
        try:
            await client.place_hold(room_id=1, hold_id="first", stay=night(0), ttl_s=600)
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the shard's next commit waits for this writer
            try:
                free = asyncio.ensure_future(client.place_hold(room_id=1, hold_id="free", stay=night(3), ttl_s=600))
                late = asyncio.ensure_future(client.place_hold(room_id=1, hold_id="late", stay=night(0), ttl_s=600))
                if early_refusals:
                    with pytest.raises(NightsUnavailable):
                        await asyncio.wait_for(late, 5)
                else:
                    await asyncio.sleep(0.2)
                    assert not late.done()  # told with the rest of its call, after the commit
                await asyncio.sleep(0.05)
                assert not free.done()  # its write is the one waiting
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert (await free).status == "held"
            with pytest.raises(NightsUnavailable):
                await late
            held = await client.calendar(room_id=1, start=START, end=START + dt.timedelta(days=7))
            assert [n.date for n in held if n.status.value == "held"] == [START, START + dt.timedelta(days=3)]
        finally:
            await shards.stop()
