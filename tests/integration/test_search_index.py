"""The SearchIndex contract, on every adapter: the embedded index, OpenSearch's API as served by
osmem-server (an in-memory OpenSearch-compatible server started once per session, one clone per
test), and a real OpenSearch when ROOMBOOK_TEST_OPENSEARCH_URL is set (then a third parameter).
"""

from __future__ import annotations

import asyncio
import decimal
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from osmem_server import OsmemServer

from roombook.domain.errors import InvalidSearchQuery
from roombook.domain.rooms import Location, Room
from roombook.domain.search import RoomQuery, SearchSort, haversine_km, tokenize
from roombook.ops.demo_catalogue import demo_rooms
from roombook.storage.ports import SearchIndex
from roombook.storage.search.memory_search import MemorySearchIndex
from roombook.storage.search.opensearch_search import OpenSearchSearchIndex

OPENSEARCH_URL = os.environ.get("ROOMBOOK_TEST_OPENSEARCH_URL")
OPENSEARCH_BACKENDS = ["osmem", *(["opensearch"] if OPENSEARCH_URL else [])]
LOUVRE = (48.8606, 2.3376)
D = decimal.Decimal


@pytest.fixture(scope="session")
def osmem() -> Iterator[OsmemServer]:
    server = OsmemServer.start(japanese=False)  # on a free loopback port; exits with this process too
    yield server
    server.close()  # closes its stdin (it exits), kills it if it has not after a grace period
    if server.process.stdout is not None:
        server.process.stdout.close()  # the launcher leaves its end of the pipe open


async def opened_opensearch(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[OpenSearchSearchIndex]:
    if backend == "osmem":
        clone = request.getfixturevalue("osmem").clone()
        request.addfinalizer(clone.close)
        url = clone.url
    else:
        assert OPENSEARCH_URL is not None
        url = OPENSEARCH_URL
    async with OpenSearchSearchIndex(url, alias=f"rooms_test_{secrets.token_hex(4)}", refresh="true") as index:
        try:
            yield index
        finally:
            await index.drop()


@pytest.fixture(params=["memory", *OPENSEARCH_BACKENDS])
async def index(request: pytest.FixtureRequest) -> AsyncIterator[SearchIndex]:
    if request.param == "memory":
        async with MemorySearchIndex() as memory:
            yield memory
    else:
        async for opensearch in opened_opensearch(request, request.param):
            yield opensearch


@pytest.fixture(params=OPENSEARCH_BACKENDS)
async def opensearch_index(request: pytest.FixtureRequest) -> AsyncIterator[OpenSearchSearchIndex]:
    async for opensearch in opened_opensearch(request, request.param):
        yield opensearch


def room(
    room_id: int,
    title: str,
    city: str,
    country: str,
    lat: float,
    lon: float,
    price: str,
    capacity: int,
    *amenities: str,
) -> Room:
    return Room(
        id=room_id,
        title=title,
        description=DESCRIPTIONS.get(room_id, ""),
        location=Location(city=city, country=country, lat=lat, lon=lon),
        price_per_night=D(price),
        capacity=capacity,
        amenities=list(amenities),
    )


DESCRIPTIONS = {
    1: "A studio with a balcony.",
    2: "Louvre views, louvre walks.",
    5: "A quiet suite.",
    6: "Quiet, small.",
    8: "Quiet street.",
}
ROOMS = [
    room(1, "Quiet studio near the Louvre", "Paris", "FR", *LOUVRE, "120.00", 2, "wifi", "balcony"),
    room(2, "Loft in Le Marais", "Paris", "FR", 48.8590, 2.3620, "180.50", 4, "wifi", "kitchen", "workspace"),
    room(3, "Double room in Montmartre", "Paris", "FR", 48.8867, 2.3431, "95.00", 2, "wifi"),
    room(4, "Family room in Lyon", "Lyon", "FR", 45.7578, 4.8320, "110.00", 5, "wifi", "kitchen", "pet_friendly"),
    room(5, "Suite in Kreuzberg", "Berlin", "DE", 52.4990, 13.4180, "210.00", 3, "wifi", "balcony", "gym"),
    room(6, "Single room in Mitte", "Berlin", "DE", 52.5290, 13.4010, "60.00", 1),
    room(7, "Apartment in Williamsburg", "New York", "US", 40.7081, -73.9571, "250.00", 4, "wifi", "kitchen", "pool"),
    room(8, "Room in Harlem", "New York", "US", 40.8116, -73.9465, "120.00", 2, "wifi", "parking"),
]


async def ids(index: SearchIndex, **query: object) -> list[int]:
    return (await index.search(RoomQuery(per_page=100, **query))).room_ids  # type: ignore[arg-type]  # any filters: RoomQuery checks their types


def numbered(rooms: list[Room]) -> list[Room]:
    return [msgspec.structs.replace(r, id=i) for i, r in enumerate(rooms, 1)]


# -- filters -------------------------------------------------------------------------------------


async def test_city_filter_ignores_case(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    assert await ids(index, city="PARIS", sort=SearchSort.PRICE) == [3, 1, 2]
    assert await ids(index, city="new york", sort=SearchSort.PRICE) == [8, 7]
    assert await ids(index, city="Springfield") == []


async def test_country_filter(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    assert await ids(index, country="de", sort=SearchSort.PRICE) == [6, 5]


async def test_price_range_includes_both_bounds(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    assert await ids(index, min_price=D("95"), max_price=D("120.00"), sort=SearchSort.PRICE) == [3, 4, 1, 8]
    assert await ids(index, min_price=D("180.51"), sort=SearchSort.PRICE) == [5, 7]
    assert await ids(index, max_price=D("59.99")) == []


async def test_guests_need_a_capacity_at_least_as_large(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    assert await ids(index, guests=4, sort=SearchSort.PRICE) == [4, 2, 7]


async def test_a_room_must_have_every_amenity_asked_for(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    assert await ids(index, amenities="wifi,kitchen", sort=SearchSort.PRICE) == [4, 2, 7]
    assert await ids(index, amenities="Kitchen,pool") == [7]
    assert await ids(index, amenities="balcony", sort=SearchSort.PRICE) == [1, 5]
    assert await ids(index, amenities="sauna") == []


async def test_radius_keeps_rooms_within_it_and_reports_their_distance(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    page = await index.search(RoomQuery(lat=LOUVRE[0], lon=LOUVRE[1], radius_km=2.5, sort=SearchSort.PRICE))
    assert page.room_ids == [1, 2]
    expected = [haversine_km(*LOUVRE, r.location.lat, r.location.lon) for r in ROOMS[:2]]
    assert [hit.distance_km for hit in page.hits] == pytest.approx(expected, abs=1e-6)
    assert await ids(index, lat=LOUVRE[0], lon=LOUVRE[1], radius_km=5) == [1, 2, 3]
    assert await ids(index, lat=LOUVRE[0], lon=LOUVRE[1], radius_km=500) == [1, 2, 3, 4]


async def test_distance_order_is_nearest_first(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    page = await index.search(RoomQuery(lat=LOUVRE[0], lon=LOUVRE[1], country="FR"))
    assert page.room_ids == [1, 2, 3, 4]
    distances = [hit.distance_km for hit in page.hits]
    assert distances[0] == pytest.approx(0.0, abs=1e-6)
    assert distances == sorted(distances)
    assert (await index.search(RoomQuery(country="FR"))).hits[0].distance_km is None


# -- order, text and pages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (SearchSort.PRICE, [6, 3, 4, 1, 8, 2, 5, 7]),  # 1 and 8 cost the same: id breaks the tie
        (SearchSort.PRICE_DESC, [7, 5, 2, 1, 8, 4, 3, 6]),
        (SearchSort.CAPACITY, [6, 1, 3, 8, 5, 2, 7, 4]),
        (SearchSort.CAPACITY_DESC, [4, 2, 7, 5, 1, 3, 8, 6]),
    ],
)
async def test_sorts_break_ties_by_room_id(index: SearchIndex, sort: SearchSort, expected: list[int]) -> None:
    await index.upsert(ROOMS)
    assert await ids(index, sort=sort) == expected


async def test_text_ranks_rooms_by_relevance(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    assert await ids(index, text="Louvre") == [2, 1]  # twice in a shorter text beats once
    quiet_balcony = await index.search(RoomQuery(text="quiet balcony"))
    assert quiet_balcony.total == 4
    assert quiet_balcony.room_ids[0] == 1  # the only room with both words
    assert await ids(index, text="quiet", city="berlin", sort=SearchSort.PRICE) == [6, 5]
    assert sorted(await ids(index, text="new york")) == [7, 8]
    assert await ids(index, text="zebra") == []
    assert await ids(index, text="!!!") == []


async def test_pages_split_the_order_and_share_the_total(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    pages = [await index.search(RoomQuery(sort=SearchSort.PRICE, page=p, per_page=3)) for p in (1, 2, 3, 4)]
    assert [page.room_ids for page in pages] == [[6, 3, 4], [1, 8, 2], [5, 7], []]
    assert {page.total for page in pages} == {8}
    assert (pages[1].page, pages[1].per_page) == (2, 3)


async def test_candidate_limit_returns_the_first_matches_whatever_the_page(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    page = await index.search(RoomQuery(sort=SearchSort.PRICE, page=3, per_page=2), candidate_limit=5)
    assert (page.room_ids, page.total, page.page, page.per_page) == ([6, 3, 4, 1, 8], 8, 1, 5)
    with pytest.raises(InvalidSearchQuery):
        await index.search(RoomQuery(), candidate_limit=10_001)


async def test_candidates_yield_every_match_in_order_past_the_result_window(index: SearchIndex) -> None:
    rooms = numbered(demo_rooms(12_000))
    await index.reindex(rooms)
    for q in (
        RoomQuery(sort=SearchSort.PRICE),
        RoomQuery(country="US", guests=2, sort=SearchSort.CAPACITY_DESC),
        RoomQuery(text="balcony quiet", sort=SearchSort.RELEVANCE),
        RoomQuery(lat=48.85, lon=2.35, amenities="wifi"),  # by distance
    ):
        pages = [page async for page in index.candidates(q, page_size=4_000)]
        assert all(1 <= len(page) <= 4_000 for page in pages)
        got = [room_id for page in pages for room_id in page]
        assert len(got) == len(set(got)) == (await index.search(q)).total, q
        if q.order is SearchSort.RELEVANCE:  # scores are the index's own
            assert got[:100] == (await index.search(msgspec.structs.replace(q, per_page=100))).room_ids
        elif q.order is SearchSort.DISTANCE:  # rooms millimetres apart may come in either order
            km = {r.id: haversine_km(48.85, 2.35, r.location.lat, r.location.lon) for r in rooms}
            assert set(got) == set(plain_scan(rooms, q))
            assert all(km[a] <= km[b] + 1e-3 for a, b in itertools.pairwise(got))  # metres: the formulas differ
        else:
            assert got == plain_scan(rooms, q), q
    assert len([room_id async for page in index.candidates(RoomQuery(), page_size=5_000) for room_id in page]) == 12_000


@pytest.mark.parametrize("load", ["upsert", "reindex"])
async def test_every_filter_agrees_with_a_plain_scan_of_demo_rooms(index: SearchIndex, load: str) -> None:
    rooms = numbered(demo_rooms(400))
    if load == "upsert":
        await index.upsert(rooms[:200])
        await index.upsert(rooms[100:])
    else:
        await index.upsert(rooms[:50])
        await index.reindex(rooms)
    queries = [
        RoomQuery(city="Paris", max_price=D(150), sort=SearchSort.PRICE),
        RoomQuery(country="US", guests=3, amenities="pool", sort=SearchSort.CAPACITY_DESC),
        RoomQuery(lat=52.52, lon=13.405, radius_km=2.0),
        RoomQuery(min_price=D(200), sort=SearchSort.PRICE_DESC),
        RoomQuery(text="balcony Kreuzberg", sort=SearchSort.PRICE, amenities="wifi"),
        RoomQuery(text="Saint-Germain-des-Prés d'Or", country="FR", sort=SearchSort.CAPACITY),
    ]
    for q in queries:
        expected = plain_scan(rooms, q)
        page = await index.search(q, candidate_limit=400)
        assert (page.room_ids, page.total) == (expected, len(expected)), q
    assert any(plain_scan(rooms, q) for q in queries)


def plain_scan(rooms: list[Room], q: RoomQuery) -> list[int]:
    terms = set(tokenize(q.text or ""))

    def km(loc: Location) -> float:
        assert q.lat is not None and q.lon is not None  # a radius or a distance order comes with a point
        return haversine_km(q.lat, q.lon, loc.lat, loc.lon)

    def matches(r: Room) -> bool:
        loc = r.location
        return (
            (q.city is None or loc.city.casefold() == q.city)
            and (q.country is None or loc.country == q.country)
            and (q.min_price is None or r.price_per_night >= q.min_price)
            and (q.max_price is None or r.price_per_night <= q.max_price)
            and (q.guests is None or r.capacity >= q.guests)
            and set(q.required_amenities) <= set(r.amenities)
            and (q.radius_km is None or km(loc) <= q.radius_km)
            and (not q.text or bool(terms & set(tokenize(f"{r.title} {r.description} {loc.city}"))))
        )

    def key(r: Room) -> tuple[object, int]:
        match q.order:
            case SearchSort.PRICE:
                return r.price_per_night, r.id
            case SearchSort.PRICE_DESC:
                return -r.price_per_night, r.id
            case SearchSort.CAPACITY:
                return r.capacity, r.id
            case SearchSort.CAPACITY_DESC:
                return -r.capacity, r.id
            case _:
                return km(r.location), r.id

    return [r.id for r in sorted(filter(matches, rooms), key=key)]


# -- writes --------------------------------------------------------------------------------------


async def test_upsert_replaces_the_room_with_the_same_id(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    moved = msgspec.structs.replace(
        ROOMS[2], title="Loft by the Saône", location=Location(city="Lyon", country="FR", lat=45.76, lon=4.83)
    )
    await index.upsert([moved])
    assert await index.count() == 8
    assert await ids(index, city="paris", sort=SearchSort.PRICE) == [1, 2]
    assert await ids(index, city="lyon", sort=SearchSort.PRICE) == [3, 4]
    assert await ids(index, text="montmartre") == []
    assert await ids(index, text="saône") == [3]


async def test_delete_removes_rooms_and_ignores_unknown_ids(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    await index.delete([6, 999])
    assert await index.count() == 7
    assert await ids(index, country="DE") == [5]
    assert await ids(index, text="mitte") == []


async def test_the_last_of_rooms_sharing_an_id_wins(index: SearchIndex) -> None:
    cheaper = msgspec.structs.replace(ROOMS[0], price_per_night=D("10.00"))
    await index.upsert([ROOMS[0], cheaper])
    assert await ids(index, max_price=D(50)) == [1]
    await index.reindex([cheaper, ROOMS[0]])
    assert await ids(index, max_price=D(50)) == []
    assert await index.count() == 1


async def test_a_room_without_an_id_is_refused(index: SearchIndex) -> None:
    with pytest.raises(ValueError, match="id"):
        await index.upsert([msgspec.structs.replace(ROOMS[0], id=0)])
    assert await index.count() == 0


async def test_reindex_replaces_the_whole_contents(index: SearchIndex) -> None:
    await index.upsert(ROOMS)
    await index.reindex(ROOMS[:3])
    assert await index.count() == 3
    assert await ids(index, sort=SearchSort.PRICE) == [3, 1, 2]
    await index.upsert([ROOMS[7]])
    assert await index.count() == 4


async def test_search_answers_fully_throughout_a_reindex(index: SearchIndex) -> None:
    rooms = numbered(demo_rooms(1_500))
    await index.upsert(rooms)
    query = RoomQuery(country="FR", per_page=5)
    expected = (await index.search(query)).total
    assert expected > 0
    renovated = [msgspec.structs.replace(r, description=r.description + " Zephyr.") for r in rooms]
    reindex = asyncio.create_task(index.reindex(renovated))
    totals = []
    while not reindex.done():
        totals.append((await index.search(query)).total)
        await asyncio.sleep(0)
    await reindex
    assert len(totals) >= 2  # searches really ran while the index was rebuilt
    assert set(totals) == {expected}
    assert (await index.search(RoomQuery(text="zephyr"))).total == 1_500


async def test_writes_made_during_a_reindex_survive_it(index: SearchIndex) -> None:
    rooms = numbered(demo_rooms(1_500))
    await index.upsert(rooms)
    reindex = asyncio.create_task(index.reindex(rooms))
    await asyncio.sleep(0)
    assert not reindex.done()
    for k in range(5):  # some before the new index exists, some while it is loaded
        await index.upsert([msgspec.structs.replace(rooms[k], title=f"Zephyr loft {k}")])
        await index.delete([rooms[100 + k].id])
        await asyncio.sleep(0.005)
    await reindex
    assert sorted(await ids(index, text="zephyr")) == [1, 2, 3, 4, 5]
    assert await index.count() == 1_495


async def test_reindex_leaves_one_index_behind_the_alias(opensearch_index: OpenSearchSearchIndex) -> None:
    await opensearch_index.upsert(ROOMS)
    await opensearch_index.reindex(ROOMS)
    await opensearch_index.reindex(ROOMS[:2])
    client, alias = opensearch_index.client, opensearch_index.alias
    indices = await client.indices.get(index=f"{alias}-*")
    assert list(indices) == list(await client.indices.get_alias(name=alias))
    assert len(indices) == 1
    assert await opensearch_index.count() == 2
