"""A booking's life over real HTTP on the embedded stack: a history that tells refused attempts
from cancelled bookings, and cancellation policies with their fees and refunds."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import sqlite3
import time
import urllib.parse
import uuid

import aiohttp
import icalendar
import pytest
from booking_harness import API, add_rooms, app_for, book, local_settings, night, room, sign_up, sign_up_admin, stay

from roombook.domain.events import BookingCancelled, BookingRefunded, decode_event
from roombook.domain.stays import Stay
from roombook.http.keys import ACCOUNTS, AVAILABILITY, REGIONS, SETTINGS
from roombook.services.calendar_feed import CalendarLinks


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


def _soon(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def _outbox(client, region: str) -> list:
    """Every event the region's store committed, published or not (the app's relay may have)."""
    path = client.app[SETTINGS].dsn(region).removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [decode_event(payload) for (payload,) in conn.execute("SELECT payload FROM outbox ORDER BY seq")]


async def _history(client, guest) -> list[tuple[str, str | None]]:
    listed = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    return [(b["status"], b["reason"]) for b in listed["items"]]


async def test_the_history_shows_refused_attempts_as_refused_with_their_reason_not_as_cancelled(client):
    (room_id,) = await add_rooms(client)
    guest, other = await sign_up(client), await sign_up(client)
    assert (await book(client, other, stay(room_id, 2, 4))).status == 201
    declined = await book(client, guest, stay(room_id, 0, 2, card_token="tok_decline"))
    taken = await book(client, guest, stay(room_id, 1, 3))
    made = await book(client, guest, stay(room_id, 5, 6))
    assert (declined.status, taken.status, made.status) == (402, 409, 201)
    booking_id = (await made.json())["booking"]["id"]
    assert (await client.post(f"{API}/bookings/{booking_id}/cancel", headers=guest.headers)).status == 200

    # the taken stay was refused before anything was stored (a hold refused after its attempt was
    # stored would show as REFUSED, nights_unavailable: tests/unit/test_booking_saga.py)
    assert await _history(client, guest) == [
        ("CANCELLED", "cancelled_by_guest"),
        ("REFUSED", "payment_declined"),
    ]


async def test_a_refused_attempt_replays_its_refusal_and_reads_back_as_refused(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    key = str(uuid.uuid4())
    first = await book(client, guest, stay(room_id, 0, 2, card_token="tok_decline"), key=key)
    replay = await book(client, guest, stay(room_id, 0, 2, card_token="tok_decline"), key=key)
    assert (first.status, replay.status) == (402, 402)
    listed = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    [attempt] = listed["items"]
    one = await (await client.get(f"{API}/bookings/{attempt['id']}", headers=guest.headers)).json()
    assert one["booking"]["status"] == "REFUSED" and one["booking"]["reason"] == "payment_declined"


async def _room_with_policy(client, policy: dict[str, object] | None) -> int:
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    url = f"{API}/rooms/{room_id}/cancellation-policy"
    put = await client.put(url, json={"policy": policy}, headers=admin.headers)
    assert put.status == 200, await put.text()
    assert await (await client.get(url)).json() == {"policy": policy and (await put.json())["policy"]}
    return room_id


async def test_cancelling_inside_the_paid_period_keeps_the_fee_and_refunds_the_rest(client):
    room_id = await _room_with_policy(client, {"free_until_days": 7, "fee": "percent", "fee_percent": 25})
    guest = await sign_up(client)
    body = {"room_id": room_id, "check_in": _soon(3), "check_out": _soon(5), "guests": 1}
    made = await book(client, guest, body)
    assert made.status == 201, await made.text()
    booking = (await made.json())["booking"]
    assert booking["cancellation_policy"] == {
        "free_until_days": 7,
        "fee": "percent",
        "fee_percent": 25,
        "non_refundable": False,
    }

    cancel = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=guest.headers)
    cancelled = (await cancel.json())["booking"]

    assert cancel.status == 200 and booking["total_price"] == 241.0
    assert (cancelled["status"], cancelled["cancellation_fee"], cancelled["refund"], cancelled["refunded"]) == (
        "CANCELLED",
        60.25,
        180.75,
        True,
    )
    read = await (await client.get(f"{API}/bookings/{booking['id']}", headers=guest.headers)).json()
    assert read["booking"] == cancelled
    events = _outbox(client, guest.region)
    assert [(type(e).__name__, str(e.refund)) for e in events if isinstance(e, BookingCancelled | BookingRefunded)] == [
        ("BookingCancelled", "180.75"),
        ("BookingRefunded", "180.75"),
    ]


async def test_a_non_refundable_room_refunds_nothing_and_a_room_without_policy_refunds_everything(client):
    strict = await _room_with_policy(client, {"non_refundable": True})
    (free,) = await add_rooms(client)
    guest = await sign_up(client)
    answers = []
    for room_id in (strict, free):
        made = (await (await book(client, guest, stay(room_id, 0, 2))).json())["booking"]
        cancel = await client.post(f"{API}/bookings/{made['id']}/cancel", headers=guest.headers)
        answers.append((await cancel.json())["booking"])

    assert [(b["cancellation_fee"], b["refund"], b["refunded"]) for b in answers] == [
        (241.0, 0.0, False),
        (0.0, 241.0, True),
    ]


async def test_a_policy_change_keeps_the_terms_of_bookings_made_before_it(client):
    room_id = await _room_with_policy(client, {"non_refundable": True})
    guest = await sign_up(client)
    made = (await (await book(client, guest, stay(room_id, 0, 2))).json())["booking"]
    await _room_with_policy_again(client, room_id, None)

    cancel = await client.post(f"{API}/bookings/{made['id']}/cancel", headers=guest.headers)

    assert (await cancel.json())["booking"]["refund"] == 0.0


async def _room_with_policy_again(client, room_id: int, policy: dict[str, object] | None) -> None:
    admin = await sign_up_admin(client)
    put = await client.put(f"{API}/rooms/{room_id}/cancellation-policy", json={"policy": policy}, headers=admin.headers)
    assert put.status == 200


@pytest.mark.parametrize(
    "policy",
    [
        {"fee_percent": 120},
        {"free_until_days": -2},
        {"fee": "everything"},
        {"free_until_days": 3, "surprise": True},
        "strict",
    ],
)
async def test_a_bad_policy_is_a_422_problem_and_changes_nothing(client, policy):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    url = f"{API}/rooms/{room_id}/cancellation-policy"
    put = await client.put(url, json={"policy": policy}, headers=admin.headers)
    assert put.status == 422 and put.content_type == "application/problem+json"
    assert await (await client.get(url)).json() == {"policy": None}


async def test_only_an_admin_sets_a_policy_and_an_unknown_room_is_404(client):
    (room_id,) = await add_rooms(client)
    guest, admin = await sign_up(client), await sign_up_admin(client)
    body = {"policy": {"non_refundable": True}}
    refused = await client.put(f"{API}/rooms/{room_id}/cancellation-policy", json=body, headers=guest.headers)
    unknown = await client.put(f"{API}/rooms/999999/cancellation-policy", json=body, headers=admin.headers)
    assert (refused.status, unknown.status) == (403, 404)
    assert (await client.get(f"{API}/rooms/999999/cancellation-policy")).status == 404


# -- changing a booking ------------------------------------------------------------------------------


async def _patch(client, guest, booking_id: str, body: dict[str, object], key: str | None = None):
    headers = guest.headers | {"Idempotency-Key": key or str(uuid.uuid4())}
    return await client.patch(f"{API}/bookings/{booking_id}", json=body, headers=headers)


async def test_patch_extends_a_stay_charges_the_difference_and_shows_the_booking_modified(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    booking = (await (await book(client, guest, stay(room_id, 0, 2))).json())["booking"]
    key = str(uuid.uuid4())

    changed = await _patch(client, guest, booking["id"], {"check_out": night(3)}, key)
    replay = await _patch(client, guest, booking["id"], {"check_out": night(3)}, key)

    assert changed.status == 200, await changed.text()
    body = (await changed.json())["booking"]
    assert (body["id"], body["nights"], body["total_price"], body["status"], body["reason"]) == (
        booking["id"],
        3,
        361.5,
        "CONFIRMED",
        "modified",
    )
    assert (await replay.json())["booking"] == body
    calendar = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(3)})
    assert [n["status"] for n in (await calendar.json())["nights"]] == ["booked"] * 3
    assert await _history(client, guest) == [("CONFIRMED", "modified")]


async def test_patch_onto_taken_nights_is_409_and_a_declined_difference_402_leaving_the_booking(client):
    (room_id,) = await add_rooms(client)
    guest, other = await sign_up(client), await sign_up(client)
    booking = (await (await book(client, guest, stay(room_id, 0, 2))).json())["booking"]
    assert (await book(client, other, stay(room_id, 2, 3))).status == 201

    taken = await _patch(client, guest, booking["id"], {"check_out": night(3)})
    declined = await _patch(
        client, guest, booking["id"], {"check_in": night(5), "check_out": night(8), "card_token": "tok_decline"}
    )

    assert (taken.status, declined.status) == (409, 402)
    assert taken.content_type == declined.content_type == "application/problem+json"
    assert (await taken.json())["nights"] == [night(2)]
    read = await (await client.get(f"{API}/bookings/{booking['id']}", headers=guest.headers)).json()
    assert read["booking"] == booking


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"check_out": "soon"}, {}, 422),
        ({"nights": 3}, {}, 422),
        ({"guests": 0}, {}, 422),
        ({"room_id": 999999}, {}, 404),
        ({"check_out": "2000-01-01"}, {}, 422),
        ({"check_out": "x"}, {"Idempotency-Key": ""}, 422),
    ],
)
async def test_a_bad_change_is_a_4xx_problem_and_changes_nothing(client, body, headers, status):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    booking = (await (await book(client, guest, stay(room_id, 0, 2))).json())["booking"]
    all_headers = guest.headers | {"Idempotency-Key": str(uuid.uuid4())} | headers
    response = await client.patch(f"{API}/bookings/{booking['id']}", json=body, headers=all_headers)
    assert response.status == status and response.content_type == "application/problem+json"
    read = await (await client.get(f"{API}/bookings/{booking['id']}", headers=guest.headers)).json()
    assert read["booking"] == booking


async def test_patch_across_weekend_rates_prices_each_night_and_a_stay_the_rules_refuse_is_422(client):
    (room_id,) = await add_rooms(client)
    admin, guest = await sign_up_admin(client), await sign_up(client)
    rates = await client.put(
        f"{API}/rooms/{room_id}/rates", json={"weekdays": {"sat": 200, "sun": 200}}, headers=admin.headers
    )
    assert rates.status == 200, await rates.text()
    friday = next(n for n in range(7) if dt.date.fromisoformat(night(n)).weekday() == 4)
    booking = (await (await book(client, guest, stay(room_id, friday - 1, friday + 1))).json())["booking"]
    assert booking["total_price"] == 241.0  # Thursday and Friday at the room's price

    changed = await _patch(client, guest, booking["id"], {"check_out": night(friday + 3)})

    assert changed.status == 200, await changed.text()
    body = (await changed.json())["booking"]
    assert [(n["date"], n["price"]) for n in body["night_prices"]] == [
        (night(friday - 1), 120.5),
        (night(friday), 120.5),
        (night(friday + 1), 200.0),
        (night(friday + 2), 200.0),
    ]
    assert body["total_price"] == 641.0
    refused_rules = {"closed_to_departure": [night(friday + 2)]}
    assert (await client.patch(f"{API}/rooms/{room_id}", json={"stay_rules": refused_rules}, headers=admin.headers)).ok

    refused = await _patch(client, guest, booking["id"], {"check_out": night(friday + 2)})

    assert (refused.status, refused.content_type) == (422, "application/problem+json")
    problem = await refused.json()
    assert (problem["type"], problem["rule"]) == ("https://roombook.dev/problems/stay-refused", "closed_to_departure")
    read = await (await client.get(f"{API}/bookings/{booking['id']}", headers=guest.headers)).json()
    assert read["booking"] == body


async def test_someone_elses_booking_cannot_be_changed(client):
    (room_id,) = await add_rooms(client)
    guest, other = await sign_up(client), await sign_up(client)
    booking = (await (await book(client, guest, stay(room_id, 0, 2))).json())["booking"]
    assert (await _patch(client, other, booking["id"], {"check_out": night(3)})).status == 404


# -- the room's calendar for other platforms -----------------------------------------------------------


def _feed_events(ics: bytes) -> list[tuple[str, str, str]]:
    calendar = icalendar.Calendar.from_ical(ics)
    return [
        (str(e["summary"]), e.decoded("dtstart").isoformat(), e.decoded("dtend").isoformat())
        for e in calendar.walk("VEVENT")
    ]


async def test_an_admin_reads_the_rooms_calendar_ics_with_its_booked_and_held_nights(client):
    (room_id,) = await add_rooms(client)
    guest, admin = await sign_up(client), await sign_up_admin(client)
    body = {"room_id": room_id, "check_in": _soon(2), "check_out": _soon(4), "guests": 1}
    assert (await book(client, guest, body)).status == 201
    stay_held = Stay(check_in=dt.date.fromisoformat(_soon(6)), check_out=dt.date.fromisoformat(_soon(7)))
    await client.app[AVAILABILITY].place_hold(room_id=room_id, hold_id="hold-1", stay=stay_held, ttl_s=600)

    response = await client.get(f"{API}/rooms/{room_id}/calendar.ics", headers=admin.headers)

    assert response.status == 200 and response.content_type == "text/calendar"
    assert _feed_events(await response.read()) == [("Booked", _soon(2), _soon(4)), ("Held", _soon(6), _soon(7))]


async def test_a_signed_link_shares_the_calendar_without_a_session_and_nothing_else(client):
    (room_id, other_room) = await add_rooms(client, room(), room(title="Other"))
    admin, guest = await sign_up_admin(client), await sign_up(client)
    made = await client.post(f"{API}/rooms/{room_id}/calendar-link", json={"valid_days": 30}, headers=admin.headers)
    assert made.status == 201, await made.text()
    link = (await made.json())["url"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))

    shared = await client.get(link)  # no session at all
    bare = await client.get(f"{API}/rooms/{room_id}/calendar.ics")
    as_guest = await client.get(f"{API}/rooms/{room_id}/calendar.ics", headers=guest.headers)
    elsewhere = await client.get(f"{API}/rooms/{other_room}/calendar.ics", params=query)
    tampered = await client.get(
        f"{API}/rooms/{room_id}/calendar.ics", params=query | {"expires": str(int(query["expires"]) + 1)}
    )
    expired_at = int(time.time()) - 1
    links = CalendarLinks(client.app[ACCOUNTS].derived_key(b"roombook room calendar links"))
    expired = await client.get(
        f"{API}/rooms/{room_id}/calendar.ics",
        params={"expires": str(expired_at), "signature": links.signature(room_id, expired_at)},
    )

    assert shared.status == 200 and shared.content_type == "text/calendar"
    assert (bare.status, as_guest.status) == (401, 403)
    assert (elsewhere.status, tampered.status, expired.status) == (403, 403, 403)
    assert expired.content_type == "application/problem+json"


async def test_a_link_for_a_room_that_does_not_exist_is_404_and_only_admins_make_links(client):
    admin, guest = await sign_up_admin(client), await sign_up(client)
    assert (await client.post(f"{API}/rooms/999999/calendar-link", headers=admin.headers)).status == 404
    (room_id,) = await add_rooms(client)
    assert (await client.post(f"{API}/rooms/{room_id}/calendar-link", headers=guest.headers)).status == 403
    made = await client.post(f"{API}/rooms/{room_id}/calendar-link", headers=admin.headers)  # no body: a year
    expires_at = dt.datetime.fromisoformat((await made.json())["expires_at"])
    assert made.status == 201 and 364 <= (expires_at - dt.datetime.now(dt.UTC)).days <= 365


# -- the waitlist ----------------------------------------------------------------------------------------


async def test_a_watcher_is_emailed_when_a_cancellation_frees_the_nights_watched(client, tmp_path):
    (room_id,) = await add_rooms(client)
    guest, watcher = await sign_up(client), await sign_up(client)
    booking = (await (await book(client, guest, stay(room_id, 0, 3))).json())["booking"]
    body = {"check_in": night(1), "check_out": night(3)}
    watched = await client.post(f"{API}/rooms/{room_id}/watch", json=body, headers=watcher.headers)
    again = await client.post(f"{API}/rooms/{room_id}/watch", json=body, headers=watcher.headers)
    assert watched.status == 201, await watched.text()
    assert (await again.json())["watch"] == (await watched.json())["watch"]

    assert (await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=watcher.headers)).status == 404
    assert (await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=guest.headers)).status == 200

    watcher_email = (await client.app[REGIONS][watcher.region].user(watcher.id)).email
    mail_dir = tmp_path / "mail"

    def watch_mails() -> list[str]:
        return [p.name for p in mail_dir.glob("watch-*.eml")]

    async with asyncio.timeout(20):  # the relay and the consumer run in the app
        while not watch_mails():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    [name] = watch_mails()
    message = email.message_from_bytes((mail_dir / name).read_bytes(), policy=email.policy.default)
    assert message["To"] == watcher_email and night(1) in message.get_content()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"check_in": "2001-01-01", "check_out": "2001-01-03"}, 422),  # past
        ({"check_in": "2099-01-05", "check_out": "2099-01-03"}, 422),
        ({"check_in": "2099-01-01", "check_out": "2099-03-01"}, 422),  # more than 30 nights
        ({"check_in": "2099-01-01"}, 422),
        ({"check_in": "2099-01-01", "check_out": "2099-01-03", "email": "x@example.org"}, 422),
    ],
)
async def test_a_bad_watch_is_a_422_problem(client, body, status):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    response = await client.post(f"{API}/rooms/{room_id}/watch", json=body, headers=guest.headers)
    assert response.status == status and response.content_type == "application/problem+json"


async def test_watching_needs_a_session_and_a_room_that_exists(client):
    guest = await sign_up(client)
    body = {"check_in": night(0), "check_out": night(1)}
    assert (await client.post(f"{API}/rooms/999999/watch", json=body, headers=guest.headers)).status == 404
    (room_id,) = await add_rooms(client)
    assert (await client.post(f"{API}/rooms/{room_id}/watch", json=body)).status == 401
