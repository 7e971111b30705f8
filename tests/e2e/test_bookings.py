"""Booking over real HTTP on the embedded stack (SQLite stores, shards in this process)."""

from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp
import pytest
from booking_harness import (
    API,
    add_rooms,
    app_for,
    book,
    local_settings,
    night,
    sign_up,
    sign_up_admin,
    stay,
    twenty_requests_with_one_key_make_one_booking,
    users_racing_for_overlapping_stays_never_share_a_night,
)

from roombook.domain.accounts import Region
from roombook.http.keys import REGIONS


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def test_a_booking_is_confirmed_and_priced_per_night(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    response = await book(client, guest, stay(room_id, 0, 3, card_token="tok_visa"))
    assert response.status == 201
    booking = (await response.json())["booking"]
    assert booking["status"] == "CONFIRMED"
    assert booking["nights"] == 3
    assert booking["total_price"] == 361.5
    assert booking["currency"] == "EUR"
    assert dt.datetime.fromisoformat(booking["created_at"])
    got = await client.get(f"{API}/bookings/{booking['id']}", headers=guest.headers)
    assert (await got.json())["booking"] == booking


async def test_taken_nights_answer_409_and_list_the_nights(client):
    (room_id,) = await add_rooms(client)
    first, second = await sign_up(client), await sign_up(client)
    assert (await book(client, first, stay(room_id, 2, 4))).status == 201
    response = await book(client, second, stay(room_id, 0, 3))
    assert response.status == 409
    assert response.content_type == "application/problem+json"
    assert (await response.json())["nights"] == [night(2)]
    # refused by the shard before anything was stored: not in the history, its key still free
    history = await (await client.get(f"{API}/bookings", headers=second.headers)).json()
    assert history["items"] == [] and history["total"] == 0


async def test_a_declined_payment_answers_402_records_a_refused_attempt_and_frees_the_nights(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    response = await book(client, guest, stay(room_id, 0, 2, card_token="tok_decline"), key="k1")
    assert response.status == 402
    assert (await response.json())["type"].endswith("payment-declined")
    history = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    assert [(b["status"], b["reason"]) for b in history["items"]] == [("REFUSED", "payment_declined")]
    replay = await book(client, guest, stay(room_id, 0, 2, card_token="tok_decline"), key="k1")
    assert (replay.status, await replay.json()) == (402, await response.json())
    assert (await book(client, guest, stay(room_id, 0, 2))).status == 201


async def test_an_unknown_room_is_404(client):
    guest = await sign_up(client)
    response = await book(client, guest, stay(999_999, 0, 1))
    assert response.status == 404


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"check_out": night(0)}, "check_out equals check_in"),
        ({"check_in": dt.date.today().replace(year=2020).isoformat()}, "check-in in the past"),
        ({"check_out": night(31)}, "31 nights"),
        ({"guests": 0}, "no guests"),
        ({"guests": 3}, "more guests than the room sleeps"),
        ({"card_token": "4111 1111 1111 1111"}, "a raw card number"),
        ({"card_token": "tok_x", "note": "4111111111111111"}, "a card number in an unknown field"),
        ({"colour": "blue"}, "an unknown field"),
    ],
)
async def test_bad_input_is_422_and_books_nothing(client, change, why):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    response = await book(client, guest, stay(room_id, 0, 2) | change)
    assert response.status == 422, why
    assert response.content_type == "application/problem+json"
    assert "4111" not in await response.text()
    history = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    assert history["total"] == 0


@pytest.mark.parametrize("key", [None, "", "x" * 256, "caf\u00e9"])
async def test_an_idempotency_key_is_required_and_printable_ascii(client, key):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    headers = guest.headers if key is None else guest.headers | {"Idempotency-Key": key}
    response = await client.post(f"{API}/bookings", json=stay(room_id, 0, 1), headers=headers)
    assert response.status == 422


async def test_booking_needs_a_signed_in_user(client):
    (room_id,) = await add_rooms(client)
    response = await client.post(f"{API}/bookings", json=stay(room_id, 0, 1), headers={"Idempotency-Key": "k"})
    assert response.status == 401


async def test_a_409_stores_nothing_so_its_key_retried_once_the_nights_are_free_books_them_once(client):
    (room_id,) = await add_rooms(client)
    first, second = await sign_up(client), await sign_up(client)
    assert (await book(client, first, stay(room_id, 1, 2))).status == 201
    refused = await book(client, second, stay(room_id, 0, 3), key="again")
    assert refused.status == 409 and (await refused.json())["nights"] == [night(1)]
    await client.post(f"{API}/bookings/{(await _only_booking(client, first))['id']}/cancel", headers=first.headers)
    retried = await book(client, second, stay(room_id, 0, 3), key="again")  # the nights are free now
    replay = await book(client, second, stay(room_id, 0, 3), key="again")
    assert (retried.status, replay.status) == (201, 201)
    assert (await replay.json()) == (await retried.json())
    assert (await (await client.get(f"{API}/bookings", headers=second.headers)).json())["total"] == 1


async def test_guests_racing_for_one_free_stay_are_refused_before_storing_anything_but_the_winner(client):
    (room_id,) = await add_rooms(client)
    guests = [await sign_up(client) for _ in range(12)]

    answers = await asyncio.gather(*(book(client, guest, stay(room_id, 0, 2)) for guest in guests))

    assert sorted(a.status for a in answers) == [201] + [409] * 11
    # The first check claimed the stay until its hold: the others were refused by the shard
    # at once, so only the winner's attempt was ever stored (none is REFUSED in a history).
    totals = [(await (await client.get(f"{API}/bookings", headers=guest.headers)).json())["total"] for guest in guests]
    assert sum(totals) == 1


async def test_a_guest_refused_by_a_stay_rule_does_not_keep_the_nights_from_the_next_request(client):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    rules = {"min_nights": 2}
    set_rules = await client.patch(f"{API}/rooms/{room_id}", json={"stay_rules": rules}, headers=admin.headers)
    assert set_rules.status == 200, await set_rules.text()
    guest = await sign_up(client)

    short = await book(client, guest, stay(room_id, 0, 1))
    right = await book(client, guest, stay(room_id, 0, 2))  # a new key, at once: the first's claim ended

    assert (short.status, right.status) == (422, 201)


async def test_twenty_concurrent_requests_with_one_key_make_exactly_one_booking(client):
    await twenty_requests_with_one_key_make_one_booking(client)


async def test_a_hundred_users_racing_for_two_rooms_never_share_a_night(client):
    await users_racing_for_overlapping_stays_never_share_a_night(client)


async def test_cancel_frees_the_nights_at_once_and_is_idempotent(client):
    (room_id,) = await add_rooms(client)
    guest, other = await sign_up(client), await sign_up(client)
    booking = (await (await book(client, guest, stay(room_id, 0, 2))).json())["booking"]
    url = f"{API}/bookings/{booking['id']}/cancel"
    for _ in range(2):
        response = await client.post(url, headers=guest.headers)
        assert response.status == 200
        assert (await response.json())["booking"]["status"] == "CANCELLED"
    calendar = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(2)})
    assert {n["status"] for n in (await calendar.json())["nights"]} == {"available"}
    assert (await book(client, other, stay(room_id, 0, 2))).status == 201


async def test_another_users_booking_is_404_everywhere(client):
    (room_id,) = await add_rooms(client)
    owner, stranger = await sign_up(client), await sign_up(client)
    booking = (await (await book(client, owner, stay(room_id, 0, 1))).json())["booking"]
    assert (await client.get(f"{API}/bookings/{booking['id']}", headers=stranger.headers)).status == 404
    cancel = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=stranger.headers)
    assert cancel.status == 404
    assert (await (await client.get(f"{API}/bookings", headers=stranger.headers)).json())["total"] == 0
    assert (await _only_booking(client, owner))["status"] == "CONFIRMED"


async def test_an_eu_users_booking_rows_exist_only_in_the_eu_store(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client, region="eu")
    booking = (await (await book(client, guest, stay(room_id, 0, 1))).json())["booking"]
    stores = client.app[REGIONS]
    assert (await stores[Region.EU].booking(booking["id"], guest.id)) is not None
    assert (await stores[Region.EU].bookings_of(guest.id, page=1, per_page=10)).total == 1
    assert (await stores[Region.US].bookings_of(guest.id, page=1, per_page=10)).total == 0
    assert (await stores[Region.US].user(guest.id)) is None


async def test_listing_is_newest_first_and_paginated(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    ids = [(await (await book(client, guest, stay(room_id, i, i + 1))).json())["booking"]["id"] for i in range(3)]
    page = await (await client.get(f"{API}/bookings", params={"per_page": 2}, headers=guest.headers)).json()
    assert [b["id"] for b in page["items"]] == ids[::-1][:2]
    assert (page["total"], page["page"], page["per_page"]) == (3, 1, 2)
    rest = await client.get(f"{API}/bookings", params={"per_page": 2, "page": 2}, headers=guest.headers)
    assert [b["id"] for b in (await rest.json())["items"]] == ids[:1]
    assert (await client.get(f"{API}/bookings", params={"per_page": 101}, headers=guest.headers)).status == 422


async def _only_booking(client, guest) -> dict:
    (booking,) = (await (await client.get(f"{API}/bookings", headers=guest.headers)).json())["items"]
    return booking


async def test_a_uuid_key_with_a_luhn_valid_digit_group_is_accepted_but_a_card_number_key_is_not(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    uuid_like = "550e8400-e29b-41d4-a71f-411111111117"  # its last group alone is a Luhn-valid 12-digit run
    assert (await book(client, guest, stay(room_id, 0, 1), key=uuid_like)).status == 201
    refused = await book(client, guest, stay(room_id, 2, 3), key="4111-1111-1111-1111")
    assert refused.status == 422
    assert "4111" not in await refused.text()
