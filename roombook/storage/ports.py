"""The ports roombook's core talks through. Adapters are async context managers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import msgspec

from roombook.domain.nights import Night
from roombook.domain.rooms import Room
from roombook.routing.ring import ShardRing


class ShardLease(msgspec.Struct, frozen=True, kw_only=True):
    """Who owns a shard now. `commits` counts the transactions written under any epoch."""

    shard_id: int
    epoch: int
    owner: str
    acquired_at: dt.datetime
    commits: int


class AvailabilityStore(Protocol):
    """The global source of truth for rooms and room-nights.

    Writes are fenced: `write_nights` succeeds only for the shard's current epoch, and only if
    each row's stored version is exactly one below the new row's (an absent row counts as 0).
    Otherwise nothing of the call is written and ShardFenced is raised. No row locks are taken.
    """

    async def __aenter__(self) -> AvailabilityStore: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def migrate(self) -> list[int]:
        """Apply the schema migrations not applied yet; return their version numbers."""
        ...

    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        """Become the shard's owner; return the new epoch, greater than every earlier one."""
        ...

    async def load_nights(self, ring: ShardRing, shard_id: int) -> list[Night]:
        """Every stored night of every room that `ring` places on `shard_id`."""
        ...

    async def write_nights(self, shard_id: int, epoch: int, nights: Sequence[Night]) -> None:
        """Persist the rows in one transaction, durably, before returning (group commit)."""
        ...

    async def nights(self, room_id: int, start: dt.date, end: dt.date) -> list[Night]:
        """Stored rows of one room for [start, end), date order (absent rows are available)."""
        ...

    async def leases(self) -> list[ShardLease]: ...

    async def add_rooms(self, rooms: Sequence[Room]) -> list[int]: ...

    async def room(self, room_id: int) -> Room | None: ...

    async def room_count(self) -> int: ...
