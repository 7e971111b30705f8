"""Room search and room details for the API.

The index finds the rooms matching the filters; the catalogue, through the details cache, fills
the page in. For a stay, every matching room is checked, however many match, so `total` and every
page are exact: the index hands its matches over in pages of `candidate_page` (in the query's
order), and each page is checked by the owning shards in one ReadFreeRooms call per shard, all
shards at once, while the index reads the next page. Pages are cut after that filter. The shards
answer from memory, as of the moment each call runs: no cache stands between, so a room booked a
moment ago is never shown free (the index itself trails the catalogue by the search-indexing
consumer's lag). These are views: a booking never reads them, only the shard decides whether a
night is free.

Cache keys and why they stay correct are in roombook/storage/cache/keys.py; the consumers that invalidate
them and keep the index up to date are in roombook/events/catalogue_views.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import msgspec

from roombook.actors.client import AvailabilityClient
from roombook.domain.commands import NightView
from roombook.domain.rooms import Room
from roombook.domain.search import RoomPage, RoomQuery
from roombook.domain.stays import Stay
from roombook.services.room_images import RoomImages
from roombook.storage.cache.keys import (
    SEARCH_NAMESPACE,
    CacheSettings,
    availability_key,
    availability_namespace,
    room_details_key,
    search_key,
)
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.ports import AvailabilityStore, SearchIndex

CATALOGUE_PAGE = 1000  # rooms read per query when the whole catalogue is loaded

_encoder = msgspec.msgpack.Encoder()
_room_decoder = msgspec.msgpack.Decoder(Room)
_page_decoder = msgspec.msgpack.Decoder(RoomPage)
_nights_decoder = msgspec.msgpack.Decoder(list[NightView])


class RoomFinder:
    """Answers searches from the index and room details from the cache, never stale past a TTL."""

    def __init__(
        self,
        *,
        index: SearchIndex,
        cache: ResilientCache,
        catalogue: AvailabilityStore,
        availability: AvailabilityClient,
        ttls: CacheSettings,
        candidate_page: int = 5000,
        photos: RoomImages | None = None,
    ) -> None:
        """photos: where the rooms' uploaded images are served (None: `images` as stored)."""
        self._index = index
        self._cache = cache
        self._catalogue = catalogue
        self._availability = availability
        self._ttls = ttls
        self._candidate_page = candidate_page
        self._photos = photos

    async def room(self, room_id: int) -> Room | None:
        (room,) = await self.rooms([room_id])
        return room

    async def rooms(self, room_ids: Sequence[int]) -> list[Room | None]:
        """Each room's details, in the order asked (None: no such room)."""
        cached = await self._cache.get_many([room_details_key(i) for i in room_ids])
        rooms = [None if raw is None else _room_decoder.decode(raw) for raw in cached]
        missing = [n for n, room in enumerate(rooms) if room is None]
        loaded = await asyncio.gather(*(self._catalogue.room(room_ids[n]) for n in missing))
        for n, room in zip(missing, loaded, strict=True):
            rooms[n] = room
        ttl_s = self._ttls.room_details_ttl_s
        await asyncio.gather(
            *(self._cache.set(room_details_key(room.id), _encoder.encode(room), ttl_s) for room in loaded if room)
        )
        if self._photos is None:
            return rooms
        # the cache keeps rooms as stored: a served URL may be signed for a while only
        return [None if room is None else await self._photos.served(room) for room in rooms]

    async def search(self, query: RoomQuery) -> RoomPage:
        if (stay := query.stay) is not None:
            return await self._search_free(query, stay)
        # The generation is read before the index: a page read before a room changed can only be
        # stored under a generation the change's consumer has already left behind.
        generation = await self._cache.generation(SEARCH_NAMESPACE)
        key = None if generation is None else search_key(generation, query)
        if key is not None and (raw := await self._cache.get(key)) is not None:
            return _page_decoder.decode(raw)
        hits = await self._index.search(query)
        items = [room for room in await self.rooms(hits.room_ids) if room is not None]
        page = RoomPage(items=items, total=hits.total, page=query.page, per_page=query.per_page)
        if key is not None:
            await self._cache.set(key, _encoder.encode(page), self._ttls.search_ttl_s)
        return page

    async def _search_free(self, query: RoomQuery, stay: Stay) -> RoomPage:
        free = await self.free_matches(query, stay)
        window = free[query.offset : query.offset + query.per_page]
        items = [room for room in await self.rooms(window) if room is not None]
        return RoomPage(items=items, total=len(free), page=query.page, per_page=query.per_page)

    async def free_matches(self, query: RoomQuery, stay: Stay) -> list[int]:
        """Every room matching the query and free every night of the stay, in the query's order."""
        free: list[int] = []
        checking: asyncio.Task[list[int]] | None = None
        try:
            async for page in self._index.candidates(query, page_size=self._candidate_page):
                if checking is not None:
                    free += await checking
                read = self._availability.free_rooms(page, start=stay.check_in, end=stay.check_out)
                checking = asyncio.ensure_future(read)  # checked while the index reads the next page
            if checking is not None:
                free += await checking
        except BaseException:
            if checking is not None:
                checking.cancel()
                with contextlib.suppress(BaseException):
                    await checking  # retrieved, so its own failure is not reported as unhandled
            raise
        return free

    async def calendars(self, room_ids: Sequence[int], stay: Stay) -> list[list[NightView]]:
        """Each room's nights of the stay: cached, else from its shard (concurrently), then cached."""
        start, end = stay.check_in, stay.check_out
        generations = await asyncio.gather(*(self._cache.generation(availability_namespace(i)) for i in room_ids))
        keys = [
            None if g is None else availability_key(i, start, end, generation=g)
            for i, g in zip(room_ids, generations, strict=True)
        ]
        known = [k for k in keys if k is not None]
        cached = iter(await self._cache.get_many(known) if known else [])
        raws = [None if k is None else next(cached) for k in keys]
        calendars: list[list[NightView] | None] = [None if r is None else _nights_decoder.decode(r) for r in raws]
        missing = [n for n, c in enumerate(calendars) if c is None]
        read = await asyncio.gather(
            *(self._availability.calendar(room_id=room_ids[n], start=start, end=end) for n in missing)
        )
        stores = []
        for n, nights in zip(missing, read, strict=True):
            calendars[n] = nights
            if (key := keys[n]) is not None:
                stores.append(self._cache.set(key, _encoder.encode(nights), self._ttls.availability_ttl_s))
        await asyncio.gather(*stores)
        return [c for c in calendars if c is not None]


async def catalogue_rooms(catalogue: AvailabilityStore) -> list[Room]:
    """Every room of the catalogue, in id order (what a reindex loads)."""
    rooms: list[Room] = []
    while True:
        batch = await catalogue.rooms_after(rooms[-1].id if rooms else 0, limit=CATALOGUE_PAGE)
        rooms += batch
        if len(batch) < CATALOGUE_PAGE:
            return rooms
