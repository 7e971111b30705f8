import collections
import decimal
import os
import pathlib
import re
import statistics
import subprocess
import sys
import zoneinfo

import msgspec
import pytest

import roombook
from roombook.domain.rooms import Room
from roombook.ops.demo_catalogue import AMENITIES, demo_rooms

EURO_AREA = {"AT", "BE", "DE", "ES", "FI", "FR", "GR", "IE", "IT", "NL", "PT"}
IMAGE = re.compile(r"https://images\.roombook\.example/rooms/(\d+)/(\d+)\.jpg")

ROOMS = demo_rooms(500)


# -- determinism -------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_rooms():
    assert demo_rooms(500) == ROOMS
    assert demo_rooms(40, seed=11) == demo_rooms(40, seed=11)


def test_a_longer_catalogue_starts_with_the_shorter_one():
    assert demo_rooms(50) == ROOMS[:50]


def test_another_seed_gives_other_rooms():
    other = demo_rooms(500, seed=8)

    assert sum(a != b for a, b in zip(ROOMS, other, strict=True)) > 450


def test_the_same_seed_gives_the_same_rooms_in_another_process_with_another_hash_seed():
    source_root = str(pathlib.Path(roombook.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", "import msgspec, sys\nfrom roombook.ops.demo_catalogue import demo_rooms\n"
         "sys.stdout.buffer.write(msgspec.json.encode(demo_rooms(100)))"],
        env={**os.environ, "PYTHONHASHSEED": "1234", "PYTHONPATH": pythonpath},
        capture_output=True,
        check=True,
        timeout=60,
    )  # fmt: skip

    assert done.stdout == msgspec.json.encode(ROOMS[:100])


def test_no_rooms_is_an_empty_catalogue():
    assert demo_rooms(0) == []


def test_a_negative_count_is_refused():
    with pytest.raises(ValueError, match="negative"):
        demo_rooms(-1)


# -- validity ----------------------------------------------------------------------------------


def test_every_room_survives_validation_as_a_room():
    for room in ROOMS:
        assert msgspec.json.decode(msgspec.json.encode(room), type=Room) == room
        assert room.id == 0


def test_every_room_is_in_a_real_place_with_a_real_timezone():
    for room in ROOMS:
        location = room.location
        zoneinfo.ZoneInfo(location.timezone)
        if location.country in EURO_AREA:
            assert location.timezone.startswith("Europe/")
            assert 35 < location.lat < 61 and -10 < location.lon < 26
        else:
            assert location.country in {"US", "CA"}
            assert location.timezone.startswith("America/")
            assert 25 < location.lat < 50 and -124 < location.lon < -70
        assert location.address and location.address == location.address.strip()


def test_rooms_of_one_city_lie_close_together():
    by_city = collections.defaultdict(list)
    for room in ROOMS:
        by_city[room.location.city].append(room.location)

    for locations in by_city.values():
        assert max(loc.lat for loc in locations) - min(loc.lat for loc in locations) <= 0.04
        assert max(loc.lon for loc in locations) - min(loc.lon for loc in locations) <= 0.04
        assert len({(loc.country, loc.timezone) for loc in locations}) == 1


def test_the_currency_follows_the_country():
    for room in ROOMS:
        expected = {"US": "USD", "CA": "CAD"}.get(room.location.country, "EUR")
        assert room.currency == expected


def test_prices_are_positive_decimals_with_two_places():
    for room in ROOMS:
        assert isinstance(room.price_per_night, decimal.Decimal)
        assert room.price_per_night.as_tuple().exponent == -2
        assert decimal.Decimal(20) <= room.price_per_night <= decimal.Decimal(1_000)


def test_capacities_are_between_one_and_six():
    assert {room.capacity for room in ROOMS} == {1, 2, 3, 4, 5, 6}


def test_amenities_come_from_the_fixed_vocabulary_in_its_order():
    for room in ROOMS:
        assert room.amenities == [name for name in AMENITIES if name in room.amenities]


def test_every_room_has_two_to_four_images_of_its_own():
    for number, room in enumerate(ROOMS, start=1):
        assert 2 <= len(room.images) <= 4
        matches = [IMAGE.fullmatch(url) for url in room.images]
        assert all(matches)
        assert [(int(m[1]), int(m[2])) for m in matches] == [(number, k) for k in range(1, len(room.images) + 1)]


def test_titles_and_descriptions_read_as_sentences():
    for room in ROOMS:
        assert room.title[0].isupper() and len(room.title) <= 80
        assert room.description[0].isupper() and room.description.endswith(".")
        assert room.location.city in room.description
        assert "  " not in room.description and "{" not in room.description
        assert not re.search(r"\bA [aeiou]", room.description)


# -- variety -----------------------------------------------------------------------------------


def test_the_catalogue_spans_about_thirty_cities_on_both_continents():
    cities = {room.location.city for room in ROOMS}
    countries = {room.location.country for room in ROOMS}

    assert len(cities) >= 28
    assert {"US", "CA"} <= countries
    assert len(countries & EURO_AREA) >= 10


def test_titles_rarely_repeat():
    assert len({room.title for room in ROOMS}) >= 0.8 * len(ROOMS)


def test_every_amenity_occurs_and_none_is_everywhere_but_wifi():
    counts = collections.Counter(name for room in ROOMS for name in room.amenities)

    assert set(counts) == set(AMENITIES)
    assert all(count < len(ROOMS) for name, count in counts.items() if name != "wifi")


def test_prices_vary_by_city():
    by_city = collections.defaultdict(list)
    for room in ROOMS:
        if room.currency == "EUR" and room.capacity == 2:
            by_city[room.location.city].append(room.price_per_night)
    medians = [statistics.median(prices) for prices in by_city.values() if len(prices) >= 3]

    assert max(medians) >= decimal.Decimal("1.4") * min(medians)


def test_larger_rooms_cost_more_than_single_rooms():
    eur = [room for room in ROOMS if room.currency == "EUR"]
    single = statistics.median(room.price_per_night for room in eur if room.capacity == 1)
    large = statistics.median(room.price_per_night for room in eur if room.capacity >= 4)

    assert large >= 2 * single
