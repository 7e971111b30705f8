"""The consumers that keep the views of the catalogue current: the cached views and the search index.

Both are idempotent by nature, so they take no durable claim: bumping a generation twice, deleting
a key twice or upserting the room as the catalogue has it now leaves the same state. They use the
cache without ResilientCache's fallback: an invalidation lost to an outage raises, and the bus
delivers the event again (up to its dead-letter queue), rather than leaving stale entries.

    cache-invalidation  availability.updated  bump the room's availability generation
                        room.updated          drop the room's details, bump the search generation
    search-indexing     room.updated          upsert the room as the catalogue has it (delete if
                                              gone), then bump the search generation
"""

from __future__ import annotations

from roombook.domain.events import AvailabilityUpdated, Event, RoomUpdated
from roombook.storage.cache.keys import SEARCH_NAMESPACE, availability_namespace, room_details_key
from roombook.storage.ports import AvailabilityStore, Cache, SearchIndex


class CacheInvalidation:
    """Every cached view an event makes stale is unreachable once the handler returns."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def __call__(self, event: Event) -> None:
        match event:
            case AvailabilityUpdated(room_id=room_id):
                await self._cache.bump_generation(availability_namespace(room_id))
            case RoomUpdated(room_id=room_id):
                await self._cache.delete([room_details_key(room_id)])
                await self._cache.bump_generation(SEARCH_NAMESPACE)
            case _:
                pass


class SearchIndexing:
    """Once the handler returns, the index holds the room as the catalogue had it when it started."""

    def __init__(self, index: SearchIndex, catalogue: AvailabilityStore, cache: Cache) -> None:
        self._index = index
        self._catalogue = catalogue
        self._cache = cache

    async def __call__(self, event: Event) -> None:
        if not isinstance(event, RoomUpdated):
            return
        room = await self._catalogue.room(event.room_id)
        if room is None:
            await self._index.delete([event.room_id])
        else:
            await self._index.upsert([room])
        # Bumped again here, after the index changed: the cache-invalidation consumer's bump may
        # come first, and a search between the two would cache the old results under the new one.
        await self._cache.bump_generation(SEARCH_NAMESPACE)
