"""No card number is ever accepted or stored, whichever field a user hides it in: every string of
every JSON body (bookings, registration, room admin), the Idempotency-Key and the query are refused
with 422 by one detector; afterwards no file the app wrote holds the digits."""

from __future__ import annotations

import re
import uuid

import aiohttp
import pytest
from booking_harness import API, add_rooms, app_for, book, local_settings, sign_up, sign_up_admin, stay

CARD = "4111111111111111"
AMEX = "378282246310005"
IN_LAYOUTS = [
    "tok_4111_1111_1111_1111",
    "order-4111111111111111",
    "4111.1111.1111.1111",
    "Ada 4111 1111 1111 1111",
    "ref 3782-822463-10005",
]


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def assert_refused(response: aiohttp.ClientResponse) -> None:
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["type"].endswith("/invalid-request")
    assert not re.search(r"4111|3782", await response.text())  # the answer never repeats it


def holding_card_digits(tmp_path) -> list[str]:
    digits = re.compile("|".join("[ ._-]?".join(number) for number in (CARD, AMEX)).encode())
    return [p.name for p in sorted(tmp_path.rglob("*")) if p.is_file() and digits.search(p.read_bytes())]


@pytest.mark.parametrize("card_token", ["tok_4111_1111_1111_1111", "tok_4111111111111111", "tok_4111.1111.1111.1111"])
async def test_a_card_number_inside_a_card_token_is_refused(client, tmp_path, card_token):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)

    await assert_refused(await book(client, guest, stay(room_id, 0, 2, card_token=card_token)))
    history = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    assert history["total"] == 0
    assert holding_card_digits(tmp_path) == []


@pytest.mark.parametrize("key", ["order-4111111111111111", "4111_1111_1111_1111", "k 3782 822463 10005"])
async def test_a_card_number_inside_the_idempotency_key_is_refused(client, tmp_path, key):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)

    await assert_refused(await book(client, guest, stay(room_id, 0, 2), key=key))
    assert holding_card_digits(tmp_path) == []


async def test_uuid4_keys_are_accepted(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)

    for night in range(20):
        response = await book(client, guest, stay(room_id, night, night + 1), key=str(uuid.uuid4()))
        assert response.status == 201, await response.text()


async def test_a_card_number_written_with_json_escapes_is_refused(client, tmp_path):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    escaped = "tok_" + "".join(f"\\u{ord(c):04x}" for c in CARD)  # JSON for "tok_4111111111111111"
    body = stay(room_id, 0, 2)
    raw = (
        f'{{"room_id": {room_id}, "check_in": "{body["check_in"]}", "check_out": "{body["check_out"]}",'
        f' "guests": 1, "card_token": "{escaped}"}}'
    )
    response = await client.post(
        f"{API}/bookings", data=raw, headers=guest.booking_headers() | {"Content-Type": "application/json"}
    )

    await assert_refused(response)
    assert holding_card_digits(tmp_path) == []


@pytest.mark.parametrize("text", IN_LAYOUTS)
@pytest.mark.parametrize("field", ["first_name", "last_name", "email"])
async def test_a_card_number_in_a_registration_is_refused(client, tmp_path, field, text):
    body = {"email": f"ada-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery", "region": "eu"}
    body[field] = f"{text}@example.com" if field == "email" else text

    await assert_refused(await client.post(f"{API}/auth/register", json=body))
    assert holding_card_digits(tmp_path) == []


async def test_a_password_is_the_users_secret_not_card_data(client):
    # hashed, never stored in clear: a digit run in it is refused nowhere
    body = {"email": "digits@example.com", "password": f"my card {CARD}", "region": "eu"}

    assert (await client.post(f"{API}/auth/register", json=body)).status == 201
    assert (await client.post(f"{API}/auth/login", json=body | {"region": None})).status == 200


ROOM = {
    "title": "Quiet double",
    "location": {"city": "Lisbon", "country": "PT", "address": "Rua 1", "lat": 38.7, "lon": -9.1},
    "price_per_night": 80,
    "capacity": 2,
}


@pytest.mark.parametrize("text", IN_LAYOUTS[:3])
@pytest.mark.parametrize(
    "put",
    [
        lambda text: {"title": text},
        lambda text: {"description": text},
        lambda text: {"location": ROOM["location"] | {"address": text}},
        lambda text: {"amenities": ["wifi", text]},
        lambda text: {"images": [f"https://img.example/{text}.jpg"]},
    ],
    ids=["title", "description", "address", "amenities", "images"],
)
async def test_a_card_number_in_a_room_is_refused_on_create_and_patch(client, tmp_path, put, text):
    admin = await sign_up_admin(client)
    (room_id,) = await add_rooms(client)

    await assert_refused(await client.post(f"{API}/rooms", json=ROOM | put(text), headers=admin.headers))
    await assert_refused(await client.patch(f"{API}/rooms/{room_id}", json=put(text), headers=admin.headers))
    assert holding_card_digits(tmp_path) == []


@pytest.mark.parametrize("params", [{"q": "4111 1111 1111 1111"}, {"city": "order-4111111111111111"}])
async def test_a_card_number_in_a_search_is_refused(client, params):
    await assert_refused(await client.get(f"{API}/rooms", params=params))
