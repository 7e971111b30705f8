"""The one room search query: what GET /rooms decodes from its query string, and what the search
service and every search index take. Normal once built, refused when it makes no sense."""

from __future__ import annotations

import datetime as dt
import decimal

import msgspec
import pytest

from roombook.domain.errors import InvalidSearchQuery, InvalidStay
from roombook.domain.search import RoomQuery, SearchSort
from roombook.domain.stays import Stay

D = decimal.Decimal
JUNE_1, JUNE_4 = dt.date(2031, 6, 1), dt.date(2031, 6, 4)


def from_query_string(params: dict[str, str]) -> RoomQuery:
    """As the API reads a query string: every value a string, coerced to the field's type."""
    return msgspec.convert(params, RoomQuery, strict=False)


@pytest.mark.parametrize(
    "fields",
    [
        {"min_price": D("-1")},
        {"max_price": D("NaN")},
        {"max_price": D("100000000")},
        {"min_price": D(100), "max_price": D(99)},
        {"radius_km": 5.0},
        {"lat": 48.0},
        {"lat": 91.0, "lon": 0.0},
        {"lat": 0.0, "lon": -180.5},
        {"lat": 0.0, "lon": 0.0, "radius_km": 0.0},
        {"sort": SearchSort.DISTANCE},
        {"sort": SearchSort.RELEVANCE},
        {"text": "  ", "sort": SearchSort.RELEVANCE},
        {"guests": 0},
        {"page": 0},
        {"per_page": 101},
        {"page": 101, "per_page": 100},
        {"text": "room " * 41},
        {"check_in": JUNE_1},
        {"check_out": JUNE_4},
    ],
)
def test_a_query_that_makes_no_sense_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidSearchQuery):
        RoomQuery(**fields)  # type: ignore[arg-type]  # fields of any type: RoomQuery must refuse them


def test_dates_that_are_no_stay_are_refused() -> None:
    with pytest.raises(InvalidStay):
        RoomQuery(check_in=JUNE_4, check_out=JUNE_1)


def test_decoding_a_bad_query_is_a_validation_error() -> None:
    with pytest.raises(msgspec.ValidationError, match="min_price is above max_price"):
        msgspec.json.decode(b'{"min_price": "10", "max_price": "5"}', type=RoomQuery)


def test_a_query_string_decodes_into_the_query_the_index_takes() -> None:
    q = from_query_string(
        {
            "q": " loft ",
            "city": "Paris",
            "amenities": "Wifi, pool,,wifi",
            "check_in": "2031-06-01",
            "check_out": "2031-06-04",
        }
    )
    assert (q.text, q.city, q.amenities, q.required_amenities) == ("loft", "paris", "pool,wifi", ("pool", "wifi"))
    assert q.stay == Stay(check_in=JUNE_1, check_out=JUNE_4)
    assert from_query_string({"guests": "2", "page": "3", "per_page": "10"}).offset == 20


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        ({"q": "x" * 201}, "length <= 200"),
        ({"city": ""}, "length >= 1"),
        ({"country": "fra"}, "regex"),
        ({"guests": "51"}, "<= 50"),
        ({"per_page": "101"}, "<= 100"),
        ({"page": "1000001"}, "<= 1000000"),
        ({"amenities": "x" * 1001}, "length <= 1000"),
        ({"min_price": "-1"}, "min_price must be a non-negative number"),
        ({"max_price": "100000000"}, "max_price must be below 100000000"),
        ({"sort": "title"}, "Invalid enum value"),
    ],
)
def test_a_query_string_out_of_bounds_is_refused_naming_the_bound(params: dict[str, str], refused: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=refused):
        from_query_string(params)


def test_a_query_is_normalised() -> None:
    q = RoomQuery(text="  ", city=" PARIS ", country="fr", amenities="Wifi,pool,wifi, ")
    assert (q.text, q.city, q.country, q.amenities, q.required_amenities) == (
        None,
        "paris",
        "FR",
        "pool,wifi",
        ("pool", "wifi"),
    )
    assert RoomQuery(amenities=" , ").required_amenities == ()
    assert RoomQuery(city="Paris", sort=SearchSort.PRICE) == RoomQuery(city=" paris", sort=SearchSort.PRICE)


def test_the_default_order_follows_what_the_query_has() -> None:
    assert RoomQuery(text="loft").order is SearchSort.RELEVANCE
    assert RoomQuery(lat=1.0, lon=2.0).order is SearchSort.DISTANCE
    assert RoomQuery(text="loft", lat=1.0, lon=2.0).order is SearchSort.RELEVANCE
    assert RoomQuery(text=" ", lat=1.0, lon=2.0).order is SearchSort.DISTANCE
    assert RoomQuery(text=" ").order is SearchSort.PRICE  # a blank text has no terms to rank by
    assert RoomQuery(city="Paris").order is SearchSort.ID
    assert RoomQuery(city="Paris", sort=SearchSort.CAPACITY).order is SearchSort.CAPACITY
    assert RoomQuery(city="Paris") == RoomQuery(city="Paris", sort=SearchSort.ID)  # one query, one cache key
