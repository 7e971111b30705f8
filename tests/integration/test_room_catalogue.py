"""Catalogue search and room updates, the same contract on SQLite and on MariaDB."""

from __future__ import annotations

import datetime as dt
import decimal

from roombook.domain.nights import Night, NightStatus
from roombook.domain.rooms import Location, Room, RoomPatch, RoomSearch, RoomSort
from roombook.domain.stays import Stay

NOW_S = 2_000_000_000.0
DAY = dt.timedelta(days=1)
START = dt.date(2033, 5, 1)


def _room(title: str, price: str, capacity: int, amenities: list[str], city: str = "Lisbon") -> Room:
    return Room(
        title=title,
        location=Location(city=city, country="PT"),
        price_per_night=decimal.Decimal(price),
        capacity=capacity,
        amenities=amenities,
    )


async def test_search_filters_sorts_pages_and_skips_rooms_taken_on_any_night(availability_store):
    ids = await availability_store.add_rooms(
        [
            _room("a", "80.00", 2, ["wifi"]),
            _room("b", "150.25", 4, ["wifi", "pool"]),
            _room("c", "99.99", 1, ["pool"], city="Porto"),
        ]
    )
    epoch = await availability_store.acquire_shard(0, "test")
    await availability_store.write_nights(
        0,
        epoch,
        [
            Night(room_id=ids[0], date=START + DAY, status=NightStatus.BOOKED, holder="bk", version=1),
            # a hold that expired before NOW_S does not take its night
            Night(
                room_id=ids[1], date=START, status=NightStatus.HELD, holder="h", hold_expires_at_s=NOW_S - 1, version=1
            ),
        ],
    )
    search = await availability_store.search_rooms(RoomSearch(city="LISBON", amenities=("wifi",)), now_s=NOW_S)
    assert [r.id for r in search.items] == ids[:2]
    assert search.items[1].price_per_night == decimal.Decimal("150.25")
    priced = RoomSearch(min_price=decimal.Decimal("90"), sort=RoomSort.PRICE_DESC)
    assert [r.id for r in (await availability_store.search_rooms(priced, now_s=NOW_S)).items] == [ids[1], ids[2]]
    free = await availability_store.search_rooms(
        RoomSearch(stay=Stay(check_in=START, check_out=START + 3 * DAY), per_page=1, page=2), now_s=NOW_S
    )
    assert (free.total, [r.id for r in free.items]) == (2, [ids[2]])
    big = await availability_store.search_rooms(RoomSearch(guests=3, sort=RoomSort.CAPACITY), now_s=NOW_S)
    assert [r.id for r in big.items] == ids[1:2]


async def test_update_room_changes_only_the_fields_set(availability_store):
    (room_id,) = await availability_store.add_rooms([_room("a", "80.00", 2, ["wifi"])])
    updated = await availability_store.update_room(
        room_id, RoomPatch(price_per_night=decimal.Decimal("85.50"), amenities=["wifi", "pool"])
    )
    assert updated.id == room_id
    assert (updated.title, updated.price_per_night, updated.amenities) == (
        "a",
        decimal.Decimal("85.50"),
        ["wifi", "pool"],
    )
    assert await availability_store.room(room_id) == updated
    assert await availability_store.update_room(room_id + 100, RoomPatch(title="x")) is None
