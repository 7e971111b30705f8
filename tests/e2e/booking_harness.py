"""Shared pieces of the booking e2e tests: the real app on given settings, users signed in over
HTTP, a demo room or two, and the racing and idempotency scenarios that run on every stack."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import decimal
import itertools
import secrets
import string

import aiohttp
from aiohttp import web

from roombook.config import Settings
from roombook.domain.accounts import Role
from roombook.domain.rooms import Location, Room
from roombook.http.app import create_app
from roombook.http.keys import CATALOGUE, EVENTS, REGIONS, SEARCH
from roombook.services.accounts import AuthSettings

API = "/api/v1"
PASSWORD = "correct horse battery"
JWT_SECRET = "e2e-secret-" + "x" * 40
FAST_AUTH = AuthSettings(jwt_secret=JWT_SECRET, argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
START = dt.date.today() + dt.timedelta(days=400)  # far enough ahead to stay in the future
_emails = itertools.count()


def app_for(settings: Settings) -> web.Application:
    return create_app(settings, auth=FAST_AUTH)


def local_settings(tmp_path) -> Settings:
    return Settings(data_dir=str(tmp_path), runtime="local", shards=2, jwt_secret=JWT_SECRET, cookie_secure=False)


def night(offset: int) -> str:
    return (START + dt.timedelta(days=offset)).isoformat()


def stay(room_id: int, first: int, last: int, **extra: object) -> dict[str, object]:
    """A body booking nights START+first .. START+last-1."""
    return {"room_id": room_id, "check_in": night(first), "check_out": night(last), "guests": 1} | extra


class Guest:
    """A signed-in user: their id, region and Bearer headers."""

    def __init__(self, user_id: int, region: str, token: str) -> None:
        self.id = user_id
        self.region = region
        self.headers = {"Authorization": f"Bearer {token}"}

    def booking_headers(self, key: str | None = None) -> dict[str, str]:
        # letters only: a random hex key holds a Luhn-valid run of 12+ digits about once in 1,500
        # draws, and the API refuses anything that looks like a card number, keys included
        key = key or "".join(secrets.choice(string.ascii_letters) for _ in range(20))
        return self.headers | {"Idempotency-Key": key}


async def sign_up(client, region: str = "eu") -> Guest:
    email = f"guest{next(_emails)}-{secrets.token_hex(3)}@example.com"
    body = {"email": email, "password": PASSWORD, "region": region}
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status == 201, await response.text()
    return await _login(client, email, region)


async def _login(client, email: str, region: str) -> Guest:
    response = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    out = await response.json()
    return Guest(out["user"]["id"], region, out["access_token"])


async def sign_up_admin(client) -> Guest:
    guest = await sign_up(client)
    store = client.app[REGIONS][guest.region]
    await store.set_role(guest.id, Role.ADMIN, dt.datetime.now(dt.UTC))
    user = await store.user(guest.id)
    return await _login(client, user.email, guest.region)


def room(**overrides: object) -> Room:
    fields: dict[str, object] = {
        "title": "Quiet double",
        "location": Location(city="Lisbon", country="PT", address="Rua 1", lat=38.7, lon=-9.1),
        "price_per_night": decimal.Decimal("120.50"),
        "capacity": 2,
        "amenities": ["wifi"],
    }
    return Room(**(fields | overrides))


async def add_rooms(client, *rooms: Room) -> list[int]:
    """Rooms added straight into the catalogue; returns once the search index has them (through
    their room.updated events when the app runs the consumers, else put there directly)."""
    catalogue, index = client.app[CATALOGUE], client.app[SEARCH]
    ids = await catalogue.add_rooms(list(rooms) or [room()])
    if EVENTS not in client.app:
        await index.upsert([await catalogue.room(room_id) for room_id in ids])
    async with asyncio.timeout(20):
        while await index.count() < await catalogue.room_count():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return ids


async def book(client, guest: Guest, body: dict[str, object], key: str | None = None) -> aiohttp.ClientResponse:
    return await client.post(f"{API}/bookings", json=body, headers=guest.booking_headers(key))


# -- scenarios run on the embedded stack and on MariaDB + Ray ---------------------------------------


async def twenty_requests_with_one_key_make_one_booking(client) -> None:
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    body = stay(room_id, 0, 3)
    responses = await asyncio.gather(*(book(client, guest, body, key="same-key") for _ in range(20)))
    assert [r.status for r in responses] == [201] * 20
    bodies = [await r.json() for r in responses]
    assert len({b["booking"]["id"] for b in bodies}) == 1
    assert all(b == bodies[0] for b in bodies)
    history = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    assert history["total"] == 1
    # a replay after the fact answers the same, and the key with another body is refused
    again = await book(client, guest, body, key="same-key")
    assert (again.status, await again.json()) == (201, bodies[0])
    other = await book(client, guest, stay(room_id, 5, 6), key="same-key")
    assert other.status == 422
    assert (await other.json())["type"].endswith("idempotency-key-reused")


async def users_racing_for_overlapping_stays_never_share_a_night(client, users: int = 100) -> None:
    room_ids = await add_rooms(client, room(), room(title="Loft"))
    guests = [await sign_up(client, region="eu" if i % 2 else "us") for i in range(users)]
    # each guest wants 1-3 nights somewhere in the first 10 nights of one of the two rooms
    wishes = [(room_ids[i % 2], (i * 7) % 9, (i * 7) % 9 + 1 + i % 3) for i in range(users)]
    responses = await asyncio.gather(
        *(book(client, g, stay(r, first, last)) for g, (r, first, last) in zip(guests, wishes, strict=True))
    )
    statuses = collections.Counter(r.status for r in responses)
    unexpected = [await r.text() for r in responses if r.status not in (201, 409)]
    assert not unexpected, (statuses, unexpected)
    assert statuses[201] >= 2  # at least the first stay on each room succeeded
    taken: dict[tuple[int, str], str] = {}
    for guest, response in zip(guests, responses, strict=True):
        if response.status != 201:
            continue
        booking = (await response.json())["booking"]
        nights = [
            (dt.date.fromisoformat(booking["check_in"]) + dt.timedelta(days=i)).isoformat()
            for i in range(booking["nights"])
        ]
        for n in nights:
            assert (booking["room_id"], n) not in taken, f"night {n} booked twice"
            taken[booking["room_id"], n] = booking["id"]
        history = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
        assert [b["id"] for b in history["items"]] == [booking["id"]]
        assert history["items"][0]["status"] == "CONFIRMED"
    # and the shards agree: exactly the nights of the 201s are booked
    for room_id in room_ids:
        calendar = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(12)})
        booked = {n["date"] for n in (await calendar.json())["nights"] if n["status"] == "booked"}
        assert booked == {n for (r, n) in taken if r == room_id}
