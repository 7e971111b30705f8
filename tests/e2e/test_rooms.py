"""The room catalogue over real HTTP on the embedded stack: search, details, calendar, admin writes."""

from __future__ import annotations

import decimal

import aiohttp
import pytest
from booking_harness import API, add_rooms, app_for, book, local_settings, night, room, sign_up, sign_up_admin, stay

from roombook.domain.rooms import Location


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


PARIS = Location(city="Paris", country="FR")


async def _search(client, **params) -> dict:
    response = await client.get(f"{API}/rooms", params={k: str(v) for k, v in params.items()})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_search_filters_by_place_guests_price_and_amenities(client):
    ids = await add_rooms(
        client,
        room(title="a", price_per_night=decimal.Decimal("80"), capacity=2, amenities=["wifi"]),
        room(title="b", price_per_night=decimal.Decimal("150"), capacity=4, amenities=["wifi", "pool"]),
        room(title="c", location=PARIS, price_per_night=decimal.Decimal("99.99"), capacity=1, amenities=["pool"]),
    )
    assert [r["id"] for r in (await _search(client, city="lisbon"))["items"]] == ids[:2]
    assert [r["id"] for r in (await _search(client, country="fr"))["items"]] == ids[2:]
    assert [r["id"] for r in (await _search(client, guests=3))["items"]] == ids[1:2]
    assert [r["id"] for r in (await _search(client, min_price=90, max_price=150))["items"]] == ids[1:]
    assert [r["id"] for r in (await _search(client, amenities="wifi,pool"))["items"]] == ids[1:2]
    by_price = await _search(client, sort="-price")
    assert [r["id"] for r in by_price["items"]] == [ids[1], ids[2], ids[0]]
    assert by_price["items"][2]["price_per_night"] == 80
    assert [r["id"] for r in (await _search(client, sort="capacity"))["items"]] == [ids[2], ids[0], ids[1]]


async def test_search_pages_and_counts_every_match(client):
    ids = await add_rooms(client, *(room(title=f"r{i}") for i in range(5)))
    page = await _search(client, per_page=2, page=3)
    assert (page["total"], page["page"], page["per_page"]) == (5, 3, 2)
    assert [r["id"] for r in page["items"]] == ids[4:]


async def test_the_date_filter_keeps_only_rooms_free_every_night_and_total_follows(client):
    ids = await add_rooms(client, *(room(title=f"r{i}") for i in range(3)))
    guest = await sign_up(client)
    assert (await book(client, guest, stay(ids[1], 2, 3))).status == 201
    free = await _search(client, check_in=night(0), check_out=night(5), per_page=1)
    assert free["total"] == 2
    assert [r["id"] for r in free["items"]] == ids[:1]
    assert (await _search(client, check_in=night(3), check_out=night(5)))["total"] == 3  # checkout day is free


@pytest.mark.parametrize(
    "params",
    [
        {"min_price": "10", "max_price": "5"},
        {"min_price": "-1"},
        {"guests": "0"},
        {"check_in": night(3), "check_out": night(3)},
        {"check_in": night(3)},
        {"per_page": "101"},
        {"page": "0"},
        {"sort": "title"},
        {"colour": "red"},
    ],
)
async def test_nonsense_searches_are_422(client, params):
    response = await client.get(f"{API}/rooms", params=params)
    assert response.status == 422
    assert response.content_type == "application/problem+json"


async def test_a_room_shows_its_details_and_an_unknown_one_is_404(client):
    (room_id,) = await add_rooms(client)
    details = await (await client.get(f"{API}/rooms/{room_id}")).json()
    assert details["id"] == room_id
    assert details["location"]["city"] == "Lisbon"
    assert set(details) >= {"title", "description", "price_per_night", "currency", "capacity", "amenities", "images"}
    assert (await client.get(f"{API}/rooms/999999")).status == 404
    assert (await client.get(f"{API}/rooms/nope")).status == 404


async def test_the_calendar_shows_each_nights_status_from_the_shard(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    assert (await book(client, guest, stay(room_id, 1, 3))).status == 201
    response = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(4)})
    calendar = await response.json()
    assert calendar["room_id"] == room_id
    assert [n["status"] for n in calendar["nights"]] == ["available", "booked", "booked", "available"]
    assert [n["date"] for n in calendar["nights"]] == [night(i) for i in range(4)]
    too_long = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(367)})
    assert too_long.status == 422
    unknown = await client.get(f"{API}/rooms/999999/availability", params={"from": night(0), "to": night(1)})
    assert unknown.status == 404


async def test_only_an_admin_adds_or_changes_rooms(client):
    body = {"title": "New", "location": {"city": "Rome", "country": "IT"}, "price_per_night": 70, "capacity": 2}
    assert (await client.post(f"{API}/rooms", json=body)).status == 401
    guest = await sign_up(client)
    assert (await client.post(f"{API}/rooms", json=body, headers=guest.headers)).status == 403
    admin = await sign_up_admin(client)
    created = await client.post(f"{API}/rooms", json=body, headers=admin.headers)
    assert created.status == 201
    new = await created.json()
    assert (new["title"], new["price_per_night"], new["location"]["city"]) == ("New", 70, "Rome")
    url = f"{API}/rooms/{new['id']}"
    assert (await client.patch(url, json={"price_per_night": 75.5}, headers=guest.headers)).status == 403
    patched = await client.patch(url, json={"price_per_night": 75.5, "amenities": ["pool"]}, headers=admin.headers)
    assert patched.status == 200
    assert (await patched.json()) | {} == new | {"price_per_night": 75.5, "amenities": ["pool"]}
    assert (await (await client.get(url)).json())["price_per_night"] == 75.5
    assert (await client.patch(url, json={"capacity": 0}, headers=admin.headers)).status == 422
    assert (await client.patch(url, json={"owner": "me"}, headers=admin.headers)).status == 422
    assert (await client.patch(f"{API}/rooms/999999", json={"title": "x"}, headers=admin.headers)).status == 404
