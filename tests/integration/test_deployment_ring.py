"""A deployment serves by the ring its store records, whatever shard count a process is given."""

from __future__ import annotations

import datetime as dt

from roombook import bootstrap
from roombook.config import Settings
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing

START = dt.date(2032, 5, 1)
DAY = dt.timedelta(days=1)


async def test_a_process_configured_with_another_shard_count_serves_by_the_recorded_ring(tmp_path, caplog):
    first = Settings(data_dir=str(tmp_path), runtime="local", shards=4)
    async with bootstrap.global_store(first) as store:
        await store.migrate()
    async with bootstrap.availability_service(first) as client:
        assert client.ring == ShardRing(4, version=1)
        await client.place_hold(room_id=7, hold_id="h7", stay=Stay(check_in=START, check_out=START + DAY), ttl_s=600)

    six = Settings(data_dir=str(tmp_path), runtime="local", shards=6)
    async with bootstrap.availability_service(six) as client:
        assert client.ring == ShardRing(4, version=1)  # not 6: it would route room 7 elsewhere
        assert "the store's ring has 4 shards (version 1): serving by it, not by ROOMBOOK_SHARDS=6" in caplog.text
        [night] = await client.calendar(room_id=7, start=START, end=START + DAY)
        assert night.status == "held"  # the night the 4-shard deployment holds, seen by the right shard
        assert (await client.confirm(room_id=7, hold_id="h7")).status == "booked"
