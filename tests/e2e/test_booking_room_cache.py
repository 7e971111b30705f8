"""A booking reads its room (price, capacity) through the room-details cache
when ROOMBOOK_BOOKING_ROOM_CACHE is on (off by default), so that a booking costs no catalogue round trip; a
price change reaches bookings once its room.updated event has dropped the cached room."""

from __future__ import annotations

import decimal

import aiohttp
import msgspec
from booking_harness import API, add_rooms, app_for, book, local_settings, room, sign_up, sign_up_admin, stay
from test_search_views import until

from roombook.http.keys import CACHE
from roombook.storage.cache.keys import room_details_key


async def test_a_booking_fills_the_room_cache_and_a_price_change_reaches_the_next_booking(aiohttp_client, tmp_path):
    settings = msgspec.structs.replace(local_settings(tmp_path), booking_room_cache=True)
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    (room_id,) = await add_rooms(client, room(price_per_night=decimal.Decimal("100.00")))
    assert await client.app[CACHE].get(room_details_key(room_id)) is None
    guest = await sign_up(client)
    first = await book(client, guest, stay(room_id, 0, 2))
    assert first.status == 201 and (await first.json())["booking"]["total_price"] == 200
    assert await client.app[CACHE].get(room_details_key(room_id)) is not None  # read through the cache

    admin = await sign_up_admin(client)
    patched = await client.patch(f"{API}/rooms/{room_id}", json={"price_per_night": "150.00"}, headers=admin.headers)
    assert patched.status == 200

    async def dropped() -> bool:
        return await client.app[CACHE].get(room_details_key(room_id)) is None

    await until(dropped, what="the room.updated event to drop the cached room")
    second = await book(client, guest, stay(room_id, 3, 5))
    assert second.status == 201 and (await second.json())["booking"]["total_price"] == 300


async def test_with_the_room_cache_off_a_booking_reads_the_catalogue(aiohttp_client, tmp_path):
    settings = local_settings(tmp_path)
    assert not settings.booking_room_cache  # the default
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    (room_id,) = await add_rooms(client, room(price_per_night=decimal.Decimal("100.00")))
    guest = await sign_up(client)
    assert (await book(client, guest, stay(room_id, 0, 2))).status == 201
    assert await client.app[CACHE].get(room_details_key(room_id)) is None  # never went through it
