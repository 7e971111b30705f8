"""What roombook caches, under which keys and for how long.

    availability:{room_id}:g{gen}:{from}:{to}   30-120 s   calendar of one room over [from, to)
    room:{room_id}:details               5-30 min   a room's details for pages
    search:{generation}:{query_hash}     30-300 s   one page of search results

Search keys carry the `search` namespace's generation: bumping it (on room.updated, say)
invalidates every cached search at once; the old entries are never read again and expire.
Availability keys carry their room's generation (namespace `availability:{room_id}`) the same
way, since a room's entries cover many ranges that no one could list to delete them: bumping it
on availability.updated drops them all. A reader takes the generation before reading the source,
so a value read before a change can only land under a generation already left behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import msgspec

from roombook.domain.search import RoomQuery

SEARCH_NAMESPACE = "search"


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """TTLs default to the middle of each key's range (the table above). No redis_url: the embedded MemoryCache."""

    availability_ttl_s: float = 60.0  # within 30-120 s: a calendar changes with every booking
    room_details_ttl_s: float = 600.0  # within 5-30 min: a room's details rarely change
    search_ttl_s: float = 120.0  # within 30-300 s: long enough for repeated searches to hit
    redis_url: str | None = None
    key_prefix: str = "roombook:"  # one per deployment sharing a Redis
    memory_max_entries: int = 100_000
    memory_max_bytes: int = 64 * 2**20
    outage_retry_after_s: float = 1.0  # how long ResilientCache leaves a failed backend alone

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, int | float) and value <= 0:
                raise ValueError(f"{name} must be positive")


def availability_namespace(room_id: int) -> str:
    return f"availability:{room_id}"


def availability_key(room_id: int, start: dt.date, end: dt.date, *, generation: int | None = None) -> str:
    """With the room's generation (see availability_namespace), as every cached calendar is stored."""
    range_ = f"{start.isoformat()}:{end.isoformat()}"
    if generation is None:
        return f"availability:{room_id}:{range_}"
    return f"availability:{room_id}:g{generation}:{range_}"


def room_details_key(room_id: int) -> str:
    return f"room:{room_id}:details"


_query_encoder = msgspec.json.Encoder()


def query_hash(query: RoomQuery) -> str:
    """The same for equal queries (a normalised RoomQuery encodes its fields in a fixed order)."""
    return hashlib.blake2b(_query_encoder.encode(query), digest_size=16).hexdigest()


def search_key(generation: int, query: RoomQuery) -> str:
    return f"search:{generation}:{query_hash(query)}"
