"""`roombook shards`: each shard's rooms, epoch, state and pending writes."""

from __future__ import annotations

import collections

from roombook import bootstrap
from roombook.config import Settings
from roombook.routing.ring import ShardRing


async def show_shards(settings: Settings) -> None:
    ring = ShardRing(settings.shards)
    async with bootstrap.global_store(settings) as store:
        await store.migrate()
        per_shard = collections.Counter(ring.shard_of(room_id) for room_id in await store.room_ids())
        async with bootstrap.availability_service(settings) as client:
            statuses = await client.statuses()
    print(f"{'shard':>5} {'rooms':>7} {'epoch':>6} {'serving':>7} {'pending':>7} {'rows':>8}  owner")
    for s in statuses:
        print(
            f"{s.shard_id:>5} {per_shard[s.shard_id]:>7} {s.epoch:>6} {s.serving!s:>7} "
            f"{s.pending:>7} {s.rows:>8}  {s.owner}"
        )
