"""Reading the catalogue and updating rooms, the same contract on SQLite and on MariaDB."""

from __future__ import annotations

import datetime as dt
import decimal

import msgspec

from roombook.domain.rates import RateOverride, RatePlan, Weekday
from roombook.domain.rooms import Location, Room, RoomPatch
from roombook.domain.stay_rules import StayRules

JULY = dt.date(2031, 7, 1)


def _room(title: str, price: str, capacity: int, amenities: list[str], city: str = "Lisbon") -> Room:
    return Room(
        title=title,
        location=Location(city=city, country="PT"),
        price_per_night=decimal.Decimal(price),
        capacity=capacity,
        amenities=amenities,
    )


async def test_the_rooms_after_an_id_come_in_id_order_at_most_limit_of_them(availability_store):
    rooms = [_room(f"r{i}", f"{90 - i}.50", i + 1, ["wifi"] * (i % 2)) for i in range(5)]
    ids = await availability_store.add_rooms(rooms)
    first = await availability_store.rooms_after(0, limit=3)
    assert first == [msgspec.structs.replace(room, id=i) for room, i in zip(rooms[:3], ids[:3], strict=True)]
    rest = await availability_store.rooms_after(first[-1].id, limit=3)
    assert [r.id for r in rest] == ids[3:]
    assert await availability_store.rooms_after(ids[-1], limit=3) == []


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


async def test_a_rooms_rates_and_stay_rules_round_trip(availability_store):
    rates = RatePlan(
        weekdays={Weekday.SAT: decimal.Decimal("150.00")},
        overrides=[RateOverride(start=JULY, end=JULY + dt.timedelta(days=31), price=decimal.Decimal("99.99"))],
    )
    rules = StayRules(min_nights=2, closed_to_arrival=[JULY], same_day_cutoff=dt.time(18, 0))
    (room_id,) = await availability_store.add_rooms([msgspec.structs.replace(_room("a", "80.00", 2, []), rates=rates)])

    assert (await availability_store.room(room_id)).rates == rates
    assert (await availability_store.room(room_id)).stay_rules == StayRules()
    updated = await availability_store.update_room(room_id, RoomPatch(stay_rules=rules))
    assert (updated.rates, updated.stay_rules) == (rates, rules)
    assert await availability_store.room(room_id) == updated


async def test_an_update_with_expected_fields_is_a_compare_and_set(availability_store):
    (room_id,) = await availability_store.add_rooms([_room("a", "80.00", 2, [])])
    first = RatePlan(weekdays={Weekday.MON: decimal.Decimal("10.00")})
    second = RatePlan(weekdays={Weekday.TUE: decimal.Decimal("20.00")})

    # a room that never had rates is expected as the default ones
    won = await availability_store.update_room(room_id, RoomPatch(rates=first), expected=RoomPatch(rates=RatePlan()))
    lost = await availability_store.update_room(room_id, RoomPatch(rates=second), expected=RoomPatch(rates=RatePlan()))

    assert won.rates == first
    assert lost.rates == first  # the stale expectation changed nothing
    again = await availability_store.update_room(room_id, RoomPatch(rates=second), expected=RoomPatch(rates=first))
    assert again.rates == second == (await availability_store.room(room_id)).rates
    # only the room whose update won published a change
    events = [e for _, e in await availability_store.pending_events(100) if getattr(e, "room_id", None) == room_id]
    assert len(events) == 3  # its creation and the two changes that landed
