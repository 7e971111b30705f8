"""find_shard_statuses on a real local Ray: shard actors are found by name only, and asking one
for its status never starts its shard (which would take an epoch)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from roombook.actors.ray_runtime import FoundShard, RayShards, find_shard_statuses
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

pytestmark = pytest.mark.ray


async def leases(dsn: str) -> dict[int, int]:
    async with availability_store(dsn) as store:
        return {lease.shard_id: lease.epoch for lease in await store.leases()}


def summary(found: list[FoundShard]) -> list[tuple[int, int | None, bool | None, str | None]]:
    return [(f.shard_id, f.status and f.status.epoch, f.status and f.status.serving, f.missing) for f in found]


async def test_actors_are_found_by_name_and_their_shards_are_never_started_by_asking(ray_cluster, tmp_path: Path):
    dsn = f"sqlite:///{tmp_path / 'global.db'}"
    async with availability_store(dsn) as store:
        await store.migrate()
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    shards = RayShards(store_dsn=dsn, ring=ShardRing(2), name_prefix=prefix)  # actors made, shards not started
    try:
        found = await find_shard_statuses([0, 1, 2], namespace="roombook", name_prefix=prefix)
        assert summary(found) == [
            (0, None, None, "not started"),
            (1, None, None, "not started"),
            (2, None, None, "no actor"),
        ]
        assert await leases(dsn) == {}

        epochs = await shards.start()
        found = await find_shard_statuses([0, 1, 2], namespace="roombook", name_prefix=prefix)
        assert summary(found) == [(0, epochs[0], True, None), (1, epochs[1], True, None), (2, None, None, "no actor")]
        assert await leases(dsn) == {0: epochs[0], 1: epochs[1]}
        assert await find_shard_statuses([0, 1], namespace="elsewhere", name_prefix=prefix) == [
            FoundShard(shard_id=0, missing="no actor"),
            FoundShard(shard_id=1, missing="no actor"),
        ]
    finally:
        shards.stop()

    deadline = time.monotonic() + 10  # a killed actor's name is released shortly after
    while summary(await find_shard_statuses([0], namespace="roombook", name_prefix=prefix))[0][3] != "no actor":
        assert time.monotonic() < deadline, "the killed actor is still found"
        await asyncio.sleep(0.1)
    assert await leases(dsn) == {0: epochs[0], 1: epochs[1]}
