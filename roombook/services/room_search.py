"""Room search and room details for the API.

The index finds the rooms matching the filters; the catalogue, through the details cache, fills
the page in. For a stay, every matching room is checked, however many match, so `total` and every
page are exact: the index hands its matches over in pages of `candidate_page` (in the query's
order), and each page is checked by the owning shards in one ReadFreeRooms call per shard, all
shards at once, while the index reads the next page. The free rooms whose stay rules refuse the
stay (in each property's time zone) are dropped, and pages are cut after those filters. The shards
answer from memory, as of the moment each call runs: no cache stands between, so a room booked a
moment ago is never shown free (the index itself trails the catalogue by the search-indexing
consumer's lag). A search that compares prices (a price bound or order) does so here, in the
buyer's currency through the conversion table, with the stay's nightly average from each rate
calendar when it has dates: the index only knows each room's base price as a bare number. These
are views: a booking never reads them, only the shard decides whether a night is free.

Cache keys and why they stay correct are in roombook/storage/cache/keys.py; the consumers that invalidate
them and keep the index up to date are in roombook/events/catalogue_views.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import time
from collections.abc import Callable, Sequence

import msgspec

from roombook.actors.client import AvailabilityClient
from roombook.domain.commands import NightView
from roombook.domain.currency import ConversionTable
from roombook.domain.errors import InvalidSearchQuery
from roombook.domain.rates import price_stay
from roombook.domain.rooms import MAX_PRICE, Room
from roombook.domain.search import RoomPage, RoomQuery, SearchSort, StayPrice
from roombook.domain.stay_rules import stay_refusal
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
DECODED_ROOMS = 100_000  # decoded room details kept in this process (see RoomFinder._decode)

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
        candidate_limit: int,
        candidate_page: int = 5000,
        conversion: ConversionTable | None = None,
        clock: Callable[[], float] = time.time,
        photos: RoomImages | None = None,
    ) -> None:
        """candidate_limit: the matches an undated search that compares prices takes from the index;
        candidate_page: how many a dated search takes at a time (it takes every one); conversion:
        how prices in different currencies compare (default: none do); clock: unix seconds, for the
        properties' "today"; photos: where the rooms' uploaded images are served (None: `images`
        as stored)."""
        self._index = index
        self._cache = cache
        self._catalogue = catalogue
        self._availability = availability
        self._ttls = ttls
        self._candidate_limit = candidate_limit
        self._candidate_page = candidate_page
        self._decoded: dict[bytes, Room] = {}
        self._photos = photos
        self._conversion = conversion or ConversionTable(reference="EUR", rates={"EUR": decimal.Decimal(1)})
        self._clock = clock

    async def room(self, room_id: int) -> Room | None:
        (room,) = await self.rooms([room_id])
        return room

    async def rooms(self, room_ids: Sequence[int]) -> list[Room | None]:
        """Each room's details as served, in the order asked (None: no such room)."""
        return await self._served(await self._stored_rooms(room_ids))

    async def _served(self, rooms: Sequence[Room | None]) -> list[Room | None]:
        if self._photos is None:
            return list(rooms)
        # the cache keeps rooms as stored: a served URL may be signed for a while only
        return [None if room is None else await self._photos.served(room) for room in rooms]

    async def _stored_rooms(self, room_ids: Sequence[int]) -> list[Room | None]:
        """Each room's details as stored (through the cache), in the order asked."""
        cached = await self._cache.get_many([room_details_key(i) for i in room_ids])
        rooms = [None if raw is None else self._decode(raw) for raw in cached]
        missing = [n for n, room in enumerate(rooms) if room is None]
        loaded = await asyncio.gather(*(self._catalogue.room(room_ids[n]) for n in missing))
        for n, room in zip(missing, loaded, strict=True):
            rooms[n] = room
        ttl_s = self._ttls.room_details_ttl_s
        await asyncio.gather(
            *(self._cache.set(room_details_key(room.id), _encoder.encode(room), ttl_s) for room in loaded if room)
        )
        return rooms

    def _decode(self, raw: bytes) -> Room:
        """A cached room's bytes, decoded once: a dated search reads every free room of its city,
        and decoding them again each time was most of its cost. The same bytes are the same room
        (rooms are frozen, so one object serves every caller); a changed room has other bytes."""
        room = self._decoded.get(raw)
        if room is None:
            if len(self._decoded) >= DECODED_ROOMS:
                self._decoded.clear()  # crude but bounded: the next searches decode again
            room = self._decoded[raw] = _room_decoder.decode(raw)
        return room

    async def search(self, query: RoomQuery) -> RoomPage:
        currency = query.currency or self._conversion.reference
        if not self._conversion.knows(currency):
            known = ", ".join(sorted(self._conversion.rates))
            raise InvalidSearchQuery(f"prices cannot be shown in {currency}: this site converts {known}")
        if (stay := query.stay) is not None:
            # a date that is past at every property (the last zone is UTC-12) is no stay to search
            if stay.check_in < (dt.datetime.fromtimestamp(self._clock(), dt.UTC) - _LAST_ZONE).date():
                raise InvalidSearchQuery(f"check_in {stay.check_in} is in the past")
            return await self._search_free(query, stay, currency)
        # The generation is read before the index: a page read before a room changed can only be
        # stored under a generation the change's consumer has already left behind.
        generation = await self._cache.generation(SEARCH_NAMESPACE)
        key = None if generation is None else search_key(generation, query)
        if key is not None and (raw := await self._cache.get(key)) is not None:
            return _page_decoder.decode(raw)
        if query.compares_prices:
            page = await self._search_priced(query, currency)
        else:
            hits = await self._index.search(query)
            items = [room for room in await self.rooms(hits.room_ids) if room is not None]
            page = RoomPage(items=items, total=hits.total, page=query.page, per_page=query.per_page)
        if key is not None:
            await self._cache.set(key, _encoder.encode(page), self._ttls.search_ttl_s)
        return page

    async def _search_free(self, query: RoomQuery, stay: Stay, currency: str) -> RoomPage:
        """The candidates whose rules take the stay and whose stay price passes the filters, in the
        query's order, free every night of it."""
        index_query = _candidates_query(query, self._conversion, currency, dated=True)
        free = await self.free_matches(index_query, stay)  # the shards first: they drop the most
        now_s, guests = self._clock(), query.guests or 1
        rooms = [
            room
            for room in await self._stored_rooms(free)
            if room is not None and stay_refusal(room, stay.check_in, stay.check_out, guests, now_s) is None
        ]
        if query.compares_prices:
            rooms = self._by_price(query, rooms, currency, stay)
        window = [room for room in await self._served(rooms[query.offset : query.offset + query.per_page]) if room]
        prices = [_stay_price(room, stay) for room in window]
        return RoomPage(items=window, total=len(rooms), page=query.page, per_page=query.per_page, stay_prices=prices)

    async def free_matches(self, query: RoomQuery, stay: Stay) -> list[int]:
        """Every room matching the query's filters and free every night of the stay, in the
        index's order of the query."""
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

    async def _search_priced(self, query: RoomQuery, currency: str) -> RoomPage:
        """A price filter or order with no dates: the candidates by their base price in `currency`."""
        index_query = _candidates_query(query, self._conversion, currency, dated=False)
        candidates = await self._index.search(index_query, candidate_limit=self._candidate_limit)
        rooms = self._by_price(query, [r for r in await self.rooms(candidates.room_ids) if r is not None], currency)
        window = rooms[query.offset : query.offset + query.per_page]
        return RoomPage(items=window, total=len(rooms), page=query.page, per_page=query.per_page)

    def _by_price(self, query: RoomQuery, rooms: list[Room], currency: str, stay: Stay | None = None) -> list[Room]:
        """The rooms whose nightly price (the stay's average, with one) in `currency` is within
        the query's bounds, in its order if that is a price order. A room whose currency the table
        cannot convert passes no bound and comes after the others in a price order."""
        low, high = query.min_price, query.max_price
        priced: list[tuple[decimal.Decimal | None, Room]] = []
        for room in rooms:
            own = room.price_per_night if stay is None else _average_nightly(room, stay)
            price = self._conversion.convert(own, room.currency, currency)
            if (low is not None or high is not None) and (
                price is None or (low is not None and price < low) or (high is not None and price > high)
            ):
                continue
            priced.append((price, room))
        if query.order in (SearchSort.PRICE, SearchSort.PRICE_DESC):
            sign = -1 if query.order is SearchSort.PRICE_DESC else 1
            priced.sort(key=lambda p: _price_order(p[0], p[1], sign))
        return [room for _, room in priced]

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


_CENT = decimal.Decimal("0.01")
_LAST_ZONE = dt.timedelta(hours=12)  # UTC-12, where a date ends last


def _candidates_query(query: RoomQuery, conversion: ConversionTable, currency: str, *, dated: bool) -> RoomQuery:
    """What to ask the index when the caller compares the prices itself. The index knows only each
    room's base price, as a bare number: it keeps its price order (a first guess at the cheapest,
    re-sorted by the caller), and its bounds are widened to the base price, in any currency the
    table knows, that could convert to within them (none with dates: a calendar may price a
    night anywhere)."""
    if not query.compares_prices:
        return query
    low = high = None
    if not dated and (query.min_price is not None or query.max_price is not None):
        factors = [conversion.rates[currency] / rate for rate in conversion.rates.values()]
        if query.min_price is not None:
            low = (query.min_price * min(factors)).quantize(_CENT, rounding=decimal.ROUND_FLOOR)
        if query.max_price is not None:
            high = (query.max_price * max(factors)).quantize(_CENT, rounding=decimal.ROUND_CEILING)
            high = high if high < MAX_PRICE else None
    return msgspec.structs.replace(query, min_price=low, max_price=high)


def _price_order(price: decimal.Decimal | None, room: Room, sign: int) -> tuple[object, ...]:
    # unconvertible rooms last, by their own currency and price: never compared with the others
    if price is None:
        return (1, room.currency, sign * room.price_per_night, room.id)
    return (0, sign * price, room.id)


def _stay_price(room: Room, stay: Stay) -> StayPrice:
    quote = price_stay(room, stay.check_in, stay.check_out, 1)
    return StayPrice(room_id=room.id, total=quote.total, currency=quote.currency)


def _average_nightly(room: Room, stay: Stay) -> decimal.Decimal:
    if not room.rates.overrides and not room.rates.weekdays:  # most rooms: every night at the base
        return room.price_per_night
    return price_stay(room, stay.check_in, stay.check_out, 1).average_nightly


async def catalogue_rooms(catalogue: AvailabilityStore) -> list[Room]:
    """Every room of the catalogue, in id order (what a reindex loads)."""
    rooms: list[Room] = []
    while True:
        batch = await catalogue.rooms_after(rooms[-1].id if rooms else 0, limit=CATALOGUE_PAGE)
        rooms += batch
        if len(batch) < CATALOGUE_PAGE:
            return rooms
