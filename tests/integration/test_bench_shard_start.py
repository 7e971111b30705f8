"""bench.shard_start: its full-scan reference agrees with load_nights, and a small run measures both."""

from __future__ import annotations

from bench.shard_start import fill, full_scan, parse_args, run
from roombook.routing.ring import ShardRing


def _keys(nights):
    return sorted((n.room_id, n.date, n.holder, n.version) for n in nights)


async def test_the_full_scan_reference_and_load_nights_return_each_shards_rows(availability_store):
    assert await fill(availability_store, rooms=50, nights=4) == 200
    ring = ShardRing(4)
    for shard_id in range(4):
        loaded = await availability_store.load_nights(ring, shard_id)
        assert _keys(loaded) == _keys(await full_scan(availability_store, ring, shard_id))
        assert {n.room_id for n in loaded} == {room for room in range(1, 51) if ring.shard_of(room) == shard_id}
        assert len(loaded) == 4 * len({n.room_id for n in loaded})


async def test_a_small_run_loads_every_shard_both_ways_on_both_stores(mysql_dsn):
    results = await run(parse_args(["--rooms", "40", "--nights", "3", "--shards", "2,4", "--mysql-dsn", mysql_dsn]))
    assert [(r["store"], r["shards"]) for r in results] == [("sqlite", 2), ("sqlite", 4), ("mysql", 2), ("mysql", 4)]
    for r in results:
        assert r["table_rows"] == 120
        assert 0 < r["shard_rows"] < 120
        assert r["load_ms"] > 0 and r["full_scan_ms"] > 0
