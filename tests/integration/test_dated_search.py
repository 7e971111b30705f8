"""A dated search is exact at any size: 20,000 rooms in one city, a third of them taken on some
night, every page and `total` checked against a plain scan of the catalogue and the stored nights.

The shards run in-process over SQLite (the same RoomShard a Ray actor runs); the index is the
embedded one, handing its matches over in pages smaller than the match count, so several pages of
candidates and several ReadFreeRooms per shard make one answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from roombook.actors.client import AvailabilityClient
from roombook.actors.local_runtime import LocalShards
from roombook.domain.rooms import Location, Room
from roombook.domain.search import RoomQuery, SearchSort
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.services.room_search import RoomFinder, catalogue_rooms
from roombook.storage.cache.keys import CacheSettings
from roombook.storage.cache.memory_cache import MemoryCache
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.ports import AvailabilityStore
from roombook.storage.search.memory_search import MemorySearchIndex
from roombook.storage.sql.connect import availability_store

RING = ShardRing(4)
CITY_ROOMS = 20_000
START = dt.date.today() + dt.timedelta(days=30)  # within every room's booking horizon
D = decimal.Decimal


def _day(offset: int) -> dt.date:
    return START + dt.timedelta(days=offset)


def _rooms(rng: random.Random) -> list[Room]:
    lyon = [
        Room(
            title=f"Lyon room {i}",
            location=Location(city="Lyon", country="FR"),
            price_per_night=D(rng.randrange(4_000, 40_000)) / 100,
            capacity=rng.randint(1, 6),
        )
        for i in range(CITY_ROOMS)
    ]
    elsewhere = [
        Room(title=f"Nice room {i}", location=Location(city="Nice", country="FR"), price_per_night=D(90), capacity=2)
        for i in range(300)
    ]
    return lyon + elsewhere


class Catalogue:
    def __init__(self, store: AvailabilityStore, client: AvailabilityClient, finder: RoomFinder) -> None:
        self.store, self.client, self.finder = store, client, finder

    async def taken(self, now_s: float) -> set[tuple[int, dt.date]]:
        """Every (room, night) the store holds as booked or held and unexpired: the reference."""
        rows = [n for shard in range(RING.shard_count) for n in await self.store.load_nights(RING, shard)]
        return {(n.room_id, n.date) for n in rows if n.is_taken(now_s)}


# one catalogue for the module: its shards' tasks live on the module's loop, as do the tests'
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def catalogue(tmp_path_factory) -> AsyncIterator[Catalogue]:
    rng = random.Random(21)
    path = tmp_path_factory.mktemp("dated-search") / "global.db"
    async with availability_store(f"sqlite:///{path}") as store:
        await store.migrate()
        await store.add_rooms(_rooms(rng))
        shards = LocalShards(store, RING)
        await shards.start()
        client = AvailabilityClient(shards, RING)
        try:
            rooms = await catalogue_rooms(store)
            lyon = [r.id for r in rooms if r.location.city == "Lyon"]
            # a third of the city taken on some night of the first fortnight: booked, or held for an hour
            holds = []
            for n, room_id in enumerate(rng.sample(lyon, len(lyon) // 3)):
                first = rng.randrange(0, 12)
                stay = Stay(check_in=_day(first), check_out=_day(first + rng.randint(1, 3)))
                holds.append((room_id, f"h{n}", stay, n % 2 == 0))
            await asyncio.gather(*(client.place_hold(room_id=r, hold_id=h, stay=s, ttl_s=3600) for r, h, s, _ in holds))
            await asyncio.gather(*(client.confirm(room_id=r, hold_id=h) for r, h, _, book in holds if book))
            index = MemorySearchIndex()
            await index.upsert(rooms)
            finder = RoomFinder(
                index=index,
                cache=ResilientCache(MemoryCache()),
                catalogue=store,
                availability=client,
                ttls=CacheSettings(),
                candidate_limit=1000,
                candidate_page=3_000,  # several pages of candidates per search
            )
            yield Catalogue(store, client, finder)
        finally:
            await shards.stop()


_SORT_KEYS: dict[SearchSort, Callable[[Room], Any]] = {
    SearchSort.ID: lambda r: (r.id,),
    SearchSort.PRICE: lambda r: (r.price_per_night, r.id),
    SearchSort.CAPACITY_DESC: lambda r: (-r.capacity, r.id),
}


def plain_scan(rooms: list[Room], taken: set[tuple[int, dt.date]], query: RoomQuery) -> list[int]:
    """The answer by brute force: filter every room of the catalogue, check every night, sort."""
    stay = query.stay
    assert stay is not None
    nights = stay.nights()
    kept = [
        r
        for r in rooms
        if r.location.city.casefold() == query.city
        and (query.guests is None or r.capacity >= query.guests)
        and not any((r.id, night) in taken for night in nights)
    ]
    return [r.id for r in sorted(kept, key=_SORT_KEYS[query.order])]


@pytest.mark.parametrize(
    ("sort", "guests", "first", "last"),
    [
        (SearchSort.ID, None, 0, 3),  # overlaps the taken fortnight
        (SearchSort.PRICE, 2, 4, 6),
        (SearchSort.CAPACITY_DESC, None, 10, 14),
        (SearchSort.ID, 5, 20, 22),  # past every taken night: all of the city's large rooms
    ],
)
async def test_total_and_every_page_match_a_plain_scan_of_20000_rooms(catalogue, sort, guests, first, last):
    rooms = await catalogue_rooms(catalogue.store)
    taken = await catalogue.taken(time.time())
    base = {"city": "lyon", "check_in": _day(first), "check_out": _day(last), "guests": guests, "sort": sort}
    expected = plain_scan(rooms, taken, RoomQuery(**base))
    assert len(expected) > 1000  # far past what one page of candidates, or the old limit, could hold
    per_page = 100
    pages = (len(expected) + per_page - 1) // per_page
    for page in sorted({1, 2, pages // 2, pages - 1, pages, pages + 1}):
        answer = await catalogue.finder.search(RoomQuery(**base, page=page, per_page=per_page))
        assert answer.total == len(expected)
        window = expected[(page - 1) * per_page : page * per_page]
        assert [room.id for room in answer.items] == window, f"page {page}"


async def test_a_night_booked_after_a_search_drops_the_room_from_the_next_one(catalogue):
    query = RoomQuery(city="lyon", check_in=_day(30), check_out=_day(31), sort=SearchSort.PRICE, per_page=5)
    before = await catalogue.finder.search(query)
    cheapest = before.items[0].id
    stay = Stay(check_in=_day(30), check_out=_day(31))
    await catalogue.client.place_hold(room_id=cheapest, hold_id="late", stay=stay, ttl_s=3600)
    after = await catalogue.finder.search(query)
    assert after.total == before.total - 1
    assert [r.id for r in after.items] == [r.id for r in before.items[1:]] + [after.items[-1].id]
    assert cheapest not in await catalogue.client.free_rooms([cheapest], start=_day(30), end=_day(31))
