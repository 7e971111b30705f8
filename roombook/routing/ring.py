"""Room -> shard by jump consistent hash (Lamping & Veach, 2014).

Stable across processes and restarts (no use of Python's salted `hash`), balanced, and when the
shard count grows from n to n+1 only about 1/(n+1) of the rooms move, all of them to the new shard.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64 finaliser: spreads sequential room ids over the whole 64-bit space."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def jump_hash(key: int, buckets: int) -> int:
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


@functools.lru_cache(maxsize=1 << 18)
def _shard_of(room_id: int, shard_count: int) -> int:
    # every command is routed twice (client and shard): the hot rooms hit this cache; a dated
    # search routes every room it matches, so a city's rooms stay in it (a few tens of MB at most)
    return jump_hash(_mix64(room_id), shard_count)


class ShardRing:
    """Maps room ids onto shard ids 0..shard_count-1.

    version: which ring of the deployment this is (the store records the current one; a resize
    makes the next). Commands carry the version they were routed by, so a shard can tell a caller
    whose ring is out of date."""

    __slots__ = ("shard_count", "version")

    def __init__(self, shard_count: int, *, version: int = 0) -> None:
        if shard_count < 1:
            raise ValueError("shard_count must be at least 1")
        self.shard_count = shard_count
        self.version = version

    def __repr__(self) -> str:
        return f"ShardRing({self.shard_count}, version={self.version})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShardRing) and (other.shard_count, other.version) == (self.shard_count, self.version)

    def __hash__(self) -> int:
        return hash((self.shard_count, self.version))

    def moved_rooms(self, other: ShardRing, room_ids: list[int]) -> list[int]:
        """The rooms of `room_ids` that `other` places on another shard than this ring does."""
        return [room_id for room_id in room_ids if self.shard_of(room_id) != other.shard_of(room_id)]

    def shard_of(self, room_id: int) -> int:
        return _shard_of(room_id, self.shard_count)

    def owns(self, shard_id: int, room_id: int) -> bool:
        return self.shard_of(room_id) == shard_id


def rooms_to_load(
    room_ids: Iterable[int], ring: ShardRing, shard_id: int, unless_owned_by: ShardRing | None = None
) -> list[int]:
    """The rooms `ring` places on shard_id, less those `unless_owned_by` placed there too (after a
    resize, a shard loads only the rooms it gains)."""
    return [
        room_id
        for room_id in room_ids
        if ring.owns(shard_id, room_id) and (unless_owned_by is None or not unless_owned_by.owns(shard_id, room_id))
    ]
