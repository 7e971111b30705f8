"""The in-process runtime: every shard a RoomShard in this process (one-process deployments, tests)."""

from __future__ import annotations

import os
import socket

from roombook.actors.shard import EarlyReplies, GroupCommit, RoomShard, ShardStatus
from roombook.domain.commands import Command, Reply
from roombook.routing.ring import ShardRing
from roombook.storage.ports import AvailabilityStore


class LocalShards:
    """All shards of the ring, in this process, over one store. A ShardTransport."""

    calls_in_flight = 4  # calls cost nothing here; see ShardTransport

    def __init__(
        self,
        store: AvailabilityStore,
        ring: ShardRing,
        *,
        group_commit: GroupCommit | None = None,
        lease_s: float = 0.0,
    ) -> None:
        """lease_s > 0: the shards keep their leases live, and never take one another process
        keeps live (see RoomShard)."""
        owner = self.deployment = f"local:{socket.gethostname()}:{os.getpid()}"
        self.shards = [
            RoomShard(store, ring, shard_id, owner=owner, group_commit=group_commit, deployment=owner, lease_s=lease_s)
            for shard_id in range(ring.shard_count)
        ]

    async def start(self) -> None:
        for shard in self.shards:
            await shard.start()

    async def stop(self) -> None:
        for shard in self.shards:
            await shard.stop()

    async def apply(self, shard_id: int, commands: list[Command], early: EarlyReplies | None = None) -> list[Reply]:
        return await self.shards[shard_id].apply(commands, early)

    async def statuses(self) -> list[ShardStatus]:
        return [shard.status() for shard in self.shards]
