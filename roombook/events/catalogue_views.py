"""The consumers that keep the views of the catalogue current: the cached views and the search index.

Both run behind IdempotentHandler (worker.py), claiming each event id in processed_events: a
redelivered event is acknowledged without touching the cache or the index again. Neither applies
what an event carries, only what the source holds when it is handled, so an event that arrives
late (an older availability.updated after a newer one, an older room.updated after a newer one)
can cost a cache miss but never bring an older state back:

    cache-invalidation  availability.updated  bump the room's availability generation (entries
                                              cached under the older generation are unreachable)
                        room.updated          drop the room's details, bump the search generation
    search-indexing     room.updated          upsert the room as the catalogue has it (delete if
                                              gone), read it again and repeat until the two agree,
                                              then bump the search generation

They use the cache without ResilientCache's fallback: an invalidation lost to an outage raises, and
the bus delivers the event again (up to its dead-letter queue), rather than leaving stale entries.
"""

from __future__ import annotations

from roombook.domain.events import AvailabilityUpdated, Event, RoomUpdated
from roombook.domain.rooms import Room
from roombook.storage.cache.keys import SEARCH_NAMESPACE, availability_namespace, room_details_key
from roombook.storage.ports import AvailabilityStore, Cache, SearchIndex

CACHE_CONSUMER = "cache-invalidation"
SEARCH_CONSUMER = "search-indexing"
MAX_INDEX_ROUNDS = 5  # a room still changing after this many writes: the bus brings its event back


class RoomKeptChanging(Exception):
    """The room changed under every write of the index: try the event again later."""


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
    """Once the handler returns, the index holds the room as the catalogue had it after the write.

    Reading the catalogue and writing the index are two steps, and two workers handling two
    updates of one room may interleave them so that the older state is written last. Reading the
    room again after the write settles it: the last writer sees the newest state and writes it."""

    def __init__(self, index: SearchIndex, catalogue: AvailabilityStore, cache: Cache) -> None:
        self._index = index
        self._catalogue = catalogue
        self._cache = cache

    async def __call__(self, event: Event) -> None:
        if not isinstance(event, RoomUpdated):
            return
        room = await self._catalogue.room(event.room_id)
        for _ in range(MAX_INDEX_ROUNDS):
            await self._write(event.room_id, room)
            again = await self._catalogue.room(event.room_id)
            if again == room:
                break
            room = again
        else:
            raise RoomKeptChanging(f"room {event.room_id} changed under {MAX_INDEX_ROUNDS} index writes")
        # Bumped again here, after the index changed: the cache-invalidation consumer's bump may
        # come first, and a search between the two would cache the old results under the new one.
        await self._cache.bump_generation(SEARCH_NAMESPACE)

    async def _write(self, room_id: int, room: Room | None) -> None:
        if room is None:
            await self._index.delete([room_id])
        else:
            await self._index.upsert([room])
