"""Booking analytics over real HTTP on the embedded stack: the bookings a guest makes and cancels
reach the analytics consumer, and an admin reads the day's counts per room and region."""

from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp
import pytest
from booking_harness import API, add_rooms, app_for, book, local_settings, room, sign_up, sign_up_admin, stay

COUNTS = f"{API}/admin/analytics/bookings"


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def counts(client, headers, **params: object) -> dict:
    response = await client.get(COUNTS, params={k: str(v) for k, v in params.items()}, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_an_admin_reads_the_days_bookings_per_room_and_region(client):
    booked, cancelled = await add_rooms(client, room(title="Booked"), room(title="Cancelled"))
    eu, us = await sign_up(client, "eu"), await sign_up(client, "us")
    assert (await book(client, eu, stay(booked, 0, 2))).status == 201
    response = await book(client, us, stay(cancelled, 3, 4))
    booking = (await response.json())["booking"]
    assert (await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=us.headers)).status == 200
    admin = await sign_up_admin(client)
    today = dt.datetime.now(dt.UTC).date()
    window = {"from": today, "to": today + dt.timedelta(days=1)}
    expected = [
        {"date": today.isoformat(), "room_id": booked, "region": "eu", "created": 1, "confirmed": 1, "cancelled": 0},
        {"date": today.isoformat(), "room_id": cancelled, "region": "us", "created": 1, "confirmed": 1, "cancelled": 1},
    ]
    async with asyncio.timeout(20):
        while (answer := await counts(client, admin.headers, **window))["items"] != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the relay and the consumer run in the background: nothing to wait on
    assert (answer["created"], answer["confirmed"], answer["cancelled"]) == (2, 2, 1)
    one = await counts(client, admin.headers, **window, room_id=cancelled, region="us")
    assert one["items"] == expected[1:]
    assert (await counts(client, admin.headers, **window, region="eu"))["items"] == expected[:1]


async def test_analytics_are_for_admins_and_a_bad_range_is_422(client):
    guest = await sign_up(client)
    today = dt.date.today()
    window = {"from": today.isoformat(), "to": (today + dt.timedelta(days=1)).isoformat()}
    assert (await client.get(COUNTS, params=window)).status == 401
    assert (await client.get(COUNTS, params=window, headers=guest.headers)).status == 403
    admin = await sign_up_admin(client)
    for bad in (
        {"from": window["to"], "to": window["from"]},
        {"from": "2030-01-01", "to": "2031-06-01"},
        window | {"region": "mars"},
        window | {"room_id": "0"},
        {"from": "yesterday", "to": window["to"]},
    ):
        response = await client.get(COUNTS, params=bad, headers=admin.headers)
        assert response.status == 422, bad
        assert response.content_type == "application/problem+json"
