"""Rates, quotes, stay rules, currencies and the property's clock over real HTTP (embedded stack)."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import zoneinfo

import aiohttp
import pytest
from booking_harness import (
    API,
    START,
    add_rooms,
    app_for,
    book,
    local_settings,
    night,
    room,
    sign_up,
    sign_up_admin,
    stay,
)

from roombook.domain.rooms import Location
from roombook.domain.stay_rules import StayRules
from roombook.http.page_format import money

D = decimal.Decimal


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def put_rates(client, admin, room_id: int, body: dict) -> aiohttp.ClientResponse:
    return await client.put(f"{API}/rooms/{room_id}/rates", json=body, headers=admin.headers)


async def quote(client, room_id: int, first: int, last: int, guests: int = 1) -> aiohttp.ClientResponse:
    params = {"check_in": night(first), "check_out": night(last), "guests": str(guests)}
    return await client.get(f"{API}/rooms/{room_id}/quote", params=params)


async def search(client, **params) -> dict:
    response = await client.get(f"{API}/rooms", params={k: str(v) for k, v in params.items()})
    assert response.status == 200, await response.text()
    return await response.json()


def weekday_of(offset: int) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(START + dt.timedelta(days=offset)).weekday()]


async def test_a_rate_change_replaces_its_range_and_sending_it_twice_changes_nothing(client):
    (room_id,) = await add_rooms(client, room(price_per_night=D("100.00")))
    admin = await sign_up_admin(client)
    await put_rates(client, admin, room_id, {"from": night(0), "to": night(10), "price": 80})

    first = await put_rates(client, admin, room_id, {"from": night(2), "to": night(4), "price": "150.00"})
    again = await put_rates(client, admin, room_id, {"from": night(2), "to": night(4), "price": "150.00"})

    assert first.status == again.status == 200
    assert await first.json() == await again.json() == (await (await client.get(f"{API}/rooms/{room_id}/rates")).json())
    rates = await first.json()
    assert (rates["base_price"], rates["currency"]) == (100, "EUR")
    assert [(o["from"], o["to"], o["price"]) for o in rates["overrides"]] == [
        (night(0), night(2), 80),
        (night(2), night(4), 150),
        (night(4), night(10), 80),
    ]


async def test_a_quote_and_the_booking_price_each_night_from_the_calendar_and_the_booking_keeps_the_breakdown(client):
    (room_id,) = await add_rooms(client, room(price_per_night=D("100.00")))
    admin = await sign_up_admin(client)
    assert (await put_rates(client, admin, room_id, {"weekdays": {weekday_of(1): "130.00"}})).status == 200
    assert (await put_rates(client, admin, room_id, {"from": night(2), "to": night(3), "price": "99.99"})).status == 200

    response = await quote(client, room_id, 0, 4, guests=2)
    assert response.status == 200, await response.text()
    answer = await response.json()
    breakdown = [{"date": night(0), "price": 100}, {"date": night(1), "price": 130}]
    breakdown += [{"date": night(2), "price": 99.99}, {"date": night(3), "price": 100}]
    assert answer["nights"] == breakdown
    assert (answer["total"], answer["currency"], answer["guests"]) == (429.99, "EUR", 2)
    assert (answer["timezone"], answer["check_in_time"], answer["check_out_time"]) == ("UTC", "15:00:00", "11:00:00")

    guest = await sign_up(client)
    booked = await book(client, guest, stay(room_id, 0, 4))
    assert booked.status == 201, await booked.text()
    booking = (await booked.json())["booking"]
    assert (booking["total_price"], booking["night_prices"]) == (429.99, breakdown)
    read = await (await client.get(f"{API}/bookings/{booking['id']}", headers=guest.headers)).json()
    assert read["booking"]["night_prices"] == breakdown
    # a later change of the calendar does not reprice what was booked
    await put_rates(client, admin, room_id, {"from": night(0), "to": night(4), "price": "1.00"})
    again = await (await client.get(f"{API}/bookings/{booking['id']}", headers=guest.headers)).json()
    assert (again["booking"]["total_price"], again["booking"]["night_prices"]) == (429.99, breakdown)


async def test_concurrent_changes_of_one_rooms_rates_all_land(client):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    bodies = [{"from": night(2 * i), "to": night(2 * i + 1), "price": 50 + i} for i in range(12)]

    responses = await asyncio.gather(*(put_rates(client, admin, room_id, body) for body in bodies))

    assert [r.status for r in responses] == [200] * 12
    rates = await (await client.get(f"{API}/rooms/{room_id}/rates")).json()
    assert [(o["from"], o["price"]) for o in rates["overrides"]] == [(b["from"], b["price"]) for b in bodies]


@pytest.mark.parametrize(
    "body",
    [
        {"from": "2031-01-02", "to": "2031-01-01", "price": 10},
        {"from": "2031-01-01", "price": 10},
        {"price": 10},
        {"from": "2031-01-01", "to": "2031-01-02", "price": "10.001"},
        {"from": "2031-01-01", "to": "2031-01-02", "price": 0},
        {"weekdays": {"someday": 10}},
        {"from": "2031-01-01", "to": "2031-01-02", "price": 10, "colour": "red"},
    ],
)
async def test_a_rate_change_that_makes_no_sense_is_422_and_changes_nothing(client, body):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)

    response = await put_rates(client, admin, room_id, body)

    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert (await (await client.get(f"{API}/rooms/{room_id}/rates")).json())["overrides"] == []


async def test_only_an_admin_changes_rates_and_an_unknown_room_is_404(client):
    (room_id,) = await add_rooms(client)
    body = {"from": night(0), "to": night(1), "price": 10}
    assert (await client.put(f"{API}/rooms/{room_id}/rates", json=body)).status == 401
    guest = await sign_up(client)
    assert (await put_rates(client, guest, room_id, body)).status == 403
    admin = await sign_up_admin(client)
    assert (await put_rates(client, admin, 999_999, body)).status == 404
    assert (await quote(client, 999_999, 0, 1)).status == 404


async def set_rules(client, admin, room_id: int, rules: dict) -> None:
    response = await client.patch(f"{API}/rooms/{room_id}", json={"stay_rules": rules}, headers=admin.headers)
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    ("rules", "first", "last", "rule"),
    [
        ({"min_nights": 3}, 0, 2, "min_stay"),
        ({"max_nights": 2}, 0, 3, "max_stay"),
        ({"arrivals": [{"from": night(0), "to": night(1), "min_nights": 5}]}, 0, 4, "min_stay"),
        ({"closed_to_arrival": [night(0)]}, 0, 2, "closed_to_arrival"),
        ({"closed_to_departure": [night(2)]}, 0, 2, "closed_to_departure"),
        ({"horizon_days": 30}, 0, 2, "booking_horizon"),
    ],
)
async def test_a_stay_the_rooms_rules_refuse_is_a_422_naming_the_rule_and_books_nothing(
    client, rules, first, last, rule
):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    await set_rules(client, admin, room_id, rules)
    guest = await sign_up(client)

    for response in (await book(client, guest, stay(room_id, first, last)), await quote(client, room_id, first, last)):
        assert response.status == 422
        problem = await response.json()
        assert (problem["rule"], problem["type"]) == (rule, "https://roombook.dev/problems/stay-refused")
    history = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    assert history["total"] == 0
    # the dated search leaves the room out for that stay, and shows it for one the rules take
    assert (await search(client, check_in=night(first), check_out=night(last)))["total"] == 0
    taken = stay(room_id, 10, 13 if rule == "min_stay" else 12)
    assert (await book(client, guest, taken)).status == (422 if rule == "booking_horizon" else 201)


async def test_rules_that_make_no_sense_are_422(client):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    for rules in ({"min_nights": 5, "max_nights": 2}, {"min_nights": 0}, {"same_day_cutoff": "25:00"}, {"x": 1}):
        response = await client.patch(f"{API}/rooms/{room_id}", json={"stay_rules": rules}, headers=admin.headers)
        assert response.status == 422, rules
    for tz in ("Mars/Olympus", "../../etc/passwd", ""):
        location = {"city": "X", "country": "FR", "timezone": tz}
        response = await client.patch(f"{API}/rooms/{room_id}", json={"location": location}, headers=admin.headers)
        assert response.status == 422, tz


async def test_a_dated_search_filters_and_sorts_by_the_price_of_those_dates(client):
    cheap, dear = await add_rooms(
        client, room(title="a", price_per_night=D(100)), room(title="b", price_per_night=D(200))
    )
    admin = await sign_up_admin(client)
    await put_rates(client, admin, dear, {"from": night(0), "to": night(2), "price": 50})  # a sale on the dear one

    dated = {"check_in": night(0), "check_out": night(2)}
    page = await search(client, sort="price", **dated)
    assert [r["id"] for r in page["items"]] == [dear, cheap]
    assert page["stay_prices"] == [
        {"room_id": dear, "total": 100, "currency": "EUR"},
        {"room_id": cheap, "total": 200, "currency": "EUR"},
    ]
    html = await (await client.get("/search", params=dated | {"sort": "price"})).text()
    shown = [f"{money(D(total), 'EUR', 'PT')} in total" for total in (100, 200)]
    assert html.index(shown[0]) < html.index(shown[1])
    assert [r["id"] for r in (await search(client, max_price=60, **dated))["items"]] == [dear]
    # half the stay on sale: its average is 125 a night
    half = {"check_in": night(1), "check_out": night(3)}
    assert [r["id"] for r in (await search(client, min_price=110, **half))["items"]] == [dear]
    # with no dates, the base price
    assert [r["id"] for r in (await search(client, sort="price"))["items"]] == [cheap, dear]
    assert [r["id"] for r in (await search(client, max_price=60))["items"]] == []


async def test_prices_in_other_currencies_compare_only_through_the_conversion_table(aiohttp_client, tmp_path):
    settings = local_settings(tmp_path)
    settings = type(settings)(
        **{**{f: getattr(settings, f) for f in settings.__struct_fields__}, "currency_rates": "USD=0.5"}
    )
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    eur, usd, cad = await add_rooms(
        client,
        room(title="eur", price_per_night=D(100), currency="EUR"),  # 100 EUR
        room(title="usd", price_per_night=D(150), currency="USD"),  # 75 EUR
        room(title="cad", price_per_night=D(10), currency="CAD"),  # not in the table
    )

    ids = lambda page: [r["id"] for r in page["items"]]  # noqa: E731
    assert ids(await search(client, sort="price")) == [usd, eur, cad]  # never 10 CAD first
    assert ids(await search(client, sort="-price")) == [eur, usd, cad]
    assert ids(await search(client, max_price=80)) == [usd]
    assert ids(await search(client, max_price=160, currency="usd")) == [usd]  # 100 EUR is 200 USD
    assert ids(await search(client, min_price=1, currency="USD", sort="price")) == [usd, eur]
    response = await client.get(f"{API}/rooms", params={"max_price": "10", "currency": "CAD"})
    assert response.status == 422
    assert "CAD" in (await response.json())["detail"]


async def test_past_dates_are_refused_in_search_and_shown_as_past_in_the_calendar(client):
    (room_id,) = await add_rooms(
        client, room(location=Location(city="Kiritimati", country="KI", timezone="Pacific/Kiritimati"))
    )
    utc_today = dt.datetime.now(dt.UTC).date()
    long_ago = {"check_in": (utc_today - dt.timedelta(days=3)).isoformat(), "check_out": utc_today.isoformat()}
    response = await client.get(f"{API}/rooms", params=long_ago)
    assert response.status == 422
    assert "past" in (await response.json())["detail"]

    start = utc_today - dt.timedelta(days=2)
    params = {"from": start.isoformat(), "to": (start + dt.timedelta(days=5)).isoformat()}
    calendar = await (await client.get(f"{API}/rooms/{room_id}/availability", params=params)).json()
    local = dt.datetime.now(zoneinfo.ZoneInfo("Pacific/Kiritimati")).date()  # UTC+14: today or tomorrow in UTC
    assert [n["status"] for n in calendar["nights"]] == [
        "past" if start + dt.timedelta(days=i) < local else "available" for i in range(5)
    ]
    assert calendar["nights"][1]["status"] == "past"  # UTC's yesterday is past there in any case


async def test_today_and_the_past_are_the_propertys_far_from_utc(client):
    places = (("Kiritimati", "KI", "Pacific/Kiritimati"), ("Pago Pago", "AS", "Pacific/Pago_Pago"))
    zones = tuple(zone for _, _, zone in places)
    # two rooms a zone: before 11:00 UTC yesterday in UTC is tonight in Pago Pago, and the first
    # booking would take the night the second one asks for
    rooms = await add_rooms(
        client,
        *(
            room(location=Location(city=city, country=country, timezone=zone))
            for city, country, zone in places
            for _ in range(2)
        ),
    )
    guest = await sign_up(client)
    now = dt.datetime.now(dt.UTC)
    for room_id, tonight_room, zone in ((rooms[0], rooms[1], zones[0]), (rooms[2], rooms[3], zones[1])):
        local_today = now.astimezone(zoneinfo.ZoneInfo(zone)).date()
        utc_yesterday = now.date() - dt.timedelta(days=1)
        body = stay(room_id, 0, 1) | {"check_in": utc_yesterday.isoformat(), "check_out": now.date().isoformat()}
        response = await book(client, guest, body)
        # yesterday in UTC is past in Kiritimati always, still today in Pago Pago before 11:00 UTC
        if utc_yesterday < local_today:
            assert (response.status, (await response.json())["rule"]) == (422, "check_in_in_past"), zone
        else:
            assert response.status == 201, zone
        today = stay(tonight_room, 0, 1) | {
            "check_in": local_today.isoformat(),
            "check_out": str(local_today + dt.timedelta(1)),
        }
        assert (await book(client, guest, today)).status == 201, zone  # tonight, in the property's zone


async def test_a_same_day_cut_off_stops_arrivals_today_after_it_in_the_propertys_time(client):
    (room_id,) = await add_rooms(client, room(location=Location(city="Tokyo", country="JP", timezone="Asia/Tokyo")))
    admin = await sign_up_admin(client)
    await set_rules(client, admin, room_id, {"same_day_cutoff": "00:00:00"})  # arrivals today always closed
    guest = await sign_up(client)
    today = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo")).date()
    body = stay(room_id, 0, 1) | {"check_in": today.isoformat(), "check_out": (today + dt.timedelta(1)).isoformat()}

    response = await book(client, guest, body)

    assert (response.status, (await response.json())["rule"]) == (422, "same_day_cutoff")
    assert (await book(client, guest, stay(room_id, 0, 1))).status == 201  # another day is fine


def test_stay_rules_default_to_accepting_one_to_thirty_nights():
    rules = StayRules()
    assert (rules.min_nights, rules.max_nights, rules.horizon_days) == (1, 30, 548)


async def test_bookings_racing_rate_changes_are_each_priced_by_one_calendar_and_never_share_a_night(client):
    (room_id,) = await add_rooms(client, room(price_per_night=D("100.00")))
    admin = await sign_up_admin(client)
    guests = [await sign_up(client) for _ in range(8)]
    changes = [{"from": night(0), "to": night(20), "price": str(50 + i)} for i in range(8)]

    async def guest_books(n: int) -> aiohttp.ClientResponse:
        return await book(client, guests[n], stay(room_id, 2 * n, 2 * n + 2))

    answers = await asyncio.gather(
        *(guest_books(n) for n in range(8)), *(put_rates(client, admin, room_id, c) for c in changes)
    )

    assert [a.status for a in answers] == [201] * 8 + [200] * 8
    allowed = {D("100.00")} | {D(c["price"]) for c in changes}
    nights = []
    for answer in answers[:8]:
        booking = (await answer.json())["booking"]
        prices = [D(str(n["price"])) for n in booking["night_prices"]]
        assert len(set(prices)) == 1 and prices[0] in allowed  # one calendar priced the whole stay
        assert D(str(booking["total_price"])) == sum(prices)
        nights += [n["date"] for n in booking["night_prices"]]
    assert len(nights) == len(set(nights)) == 16
    calendar = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(16)})
    assert {n["status"] for n in (await calendar.json())["nights"]} == {"booked"}


async def test_a_dated_search_keeps_a_room_only_where_its_check_in_is_not_past_in_its_zone(client):
    kiritimati, pago_pago = await add_rooms(
        client,
        room(location=Location(city="Kiritimati", country="KI", timezone="Pacific/Kiritimati")),
        room(location=Location(city="Pago Pago", country="AS", timezone="Pacific/Pago_Pago")),
    )
    now = dt.datetime.now(dt.UTC)
    check_in = (now - dt.timedelta(hours=11)).date()  # today in Pago Pago (UTC-11), past in Kiritimati
    params = {"check_in": check_in.isoformat(), "check_out": (check_in + dt.timedelta(days=1)).isoformat()}

    found = [r["id"] for r in (await search(client, **params))["items"]]

    assert found == [pago_pago]
    assert kiritimati not in found
