"""The reconciler settles what a crashed saga left PENDING, from the shard's truth."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import aiohttp
import pytest
from booking_harness import API, add_rooms, app_for, book, local_settings, night, sign_up, stay

from roombook.actors.client import AvailabilityClient
from roombook.domain.accounts import Region
from roombook.domain.bookings import BookingIds, BookingRequest, BookingStatus, pending_booking, stay_quote
from roombook.domain.errors import HoldExpired
from roombook.http.keys import AVAILABILITY, BOOKINGS, CATALOGUE, PAYMENTS, REGIONS
from roombook.services.bookings import BookingService


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def _crashed_booking(client, guest, room_id: int, *, confirm: bool):
    """What a process that died mid-saga leaves: a PENDING row and a hold (or a booking) in the shard."""
    request = BookingRequest(
        room_id=room_id,
        check_in=dt.date.fromisoformat(night(0)),
        check_out=dt.date.fromisoformat(night(2)),
        guests=1,
    )
    room = await client.app[CATALOGUE].room(room_id)
    an_hour_ago = time.time() - 3600
    booking = pending_booking(
        booking_id=BookingIds().next(int(an_hour_ago * 1000)),
        user_id=guest.id,
        request=request,
        quote=stay_quote(request, price_per_night=room.price_per_night, currency=room.currency),
        idempotency_key="crashed",
        now=dt.datetime.fromtimestamp(an_hour_ago, dt.UTC),
    )
    store = client.app[REGIONS][Region.EU]
    await store.insert_booking(booking)
    shards = client.app[AVAILABILITY]
    await shards.place_hold(room_id=room_id, hold_id=booking.id, stay=request.stay, ttl_s=600)
    if confirm:
        await shards.confirm(room_id=room_id, hold_id=booking.id)
    return store, booking


async def _statuses(client, room_id: int) -> list[str]:
    response = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(2)})
    return [n["status"] for n in (await response.json())["nights"]]


async def test_a_stale_pending_booking_with_only_a_hold_expires_and_its_nights_are_freed(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    store, booking = await _crashed_booking(client, guest, room_id, confirm=False)
    assert await _statuses(client, room_id) == ["held", "held"]
    assert await client.app[BOOKINGS].reconcile() == 1
    assert (await store.booking(booking.id, guest.id)).status is BookingStatus.EXPIRED
    assert await _statuses(client, room_id) == ["available", "available"]
    other = await sign_up(client)
    assert (await book(client, other, stay(room_id, 0, 2))).status == 201
    assert await client.app[BOOKINGS].reconcile() == 0


async def test_a_stale_pending_booking_the_shard_has_booked_becomes_confirmed(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    store, booking = await _crashed_booking(client, guest, room_id, confirm=True)
    assert await client.app[BOOKINGS].reconcile() == 1
    assert (await store.booking(booking.id, guest.id)).status is BookingStatus.CONFIRMED
    assert await _statuses(client, room_id) == ["booked", "booked"]


async def test_a_pending_booking_younger_than_the_hold_ttl_is_left_alone(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    store, booking = await _crashed_booking(client, guest, room_id, confirm=False)
    assert await client.app[BOOKINGS].reconcile(time.time() - 3600 + 10) == 0
    assert (await store.booking(booking.id, guest.id)).status is BookingStatus.PENDING


async def test_a_replay_finishes_the_booking_a_failure_left_pending_and_never_makes_a_second(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    store, booking = await _crashed_booking(client, guest, room_id, confirm=False)
    replay = await client.post(f"{API}/bookings", json=stay(room_id, 0, 2), headers=guest.booking_headers("crashed"))
    assert replay.status == 201, await replay.text()
    assert (await replay.json())["booking"]["id"] == booking.id
    [stored] = (await store.bookings_of(guest.id, page=1, per_page=10)).items
    assert (stored.id, stored.status) == (booking.id, BookingStatus.CONFIRMED)
    assert await _statuses(client, room_id) == ["booked", "booked"]


class HoldsWaitingFor:
    """The real shards, but place_hold waits for a signal: a saga stalled right before its hold."""

    def __init__(self, real: AvailabilityClient, go: asyncio.Event) -> None:
        self._real = real
        self._go = go
        self.stalled = asyncio.Event()  # set once the saga has its PENDING row and wants its hold
        self.check_stay = real.check_stay
        self.confirm = real.confirm
        self.release = real.release
        self.cancel = real.cancel

    async def place_hold(self, **kwargs):
        self.stalled.set()
        await self._go.wait()
        return await self._real.place_hold(**kwargs)


async def test_a_saga_given_up_by_the_reconciler_frees_the_nights_it_went_on_to_book(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    app, go = client.app, asyncio.Event()
    hold_ttl_s = 600.0
    availability = HoldsWaitingFor(app[AVAILABILITY], go)
    stalled = BookingService(
        availability=availability,
        catalogue=app[CATALOGUE],
        regions=app[REGIONS],
        payments=app[PAYMENTS],
        hold_ttl_s=hold_ttl_s,
    )
    request = BookingRequest(
        room_id=room_id,
        check_in=dt.date.fromisoformat(night(0)),
        check_out=dt.date.fromisoformat(night(2)),
        guests=1,
    )
    saga = asyncio.create_task(
        stalled.book(user_id=guest.id, region=Region.EU, idempotency_key="stalled", request=request)
    )
    store = app[REGIONS][Region.EU]
    await availability.stalled.wait()
    # the reconciler, a TTL later, finds it PENDING with nothing held and gives it up
    assert await stalled.reconcile(now_s=time.time() + hold_ttl_s + 1) == 1
    go.set()
    with pytest.raises(HoldExpired):
        await saga
    [booking] = (await store.bookings_of(guest.id, page=1, per_page=10)).items
    assert booking.status is BookingStatus.EXPIRED
    assert await _statuses(client, room_id) == ["available", "available"]  # nobody owns the nights
