"""The booking API on MariaDB when a store fails mid-request: a regional write cut during a cancel,
a COMMIT whose answer is lost, a store that is down. Nothing is double-booked, no request whose
outcome is unknown is answered as failed, and the same request again settles it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from booking_harness import API, JWT_SECRET, add_rooms, app_for, book, sign_up, stay

from bench.chaos.proxy import MysqlFaultProxy
from roombook.config import Settings
from roombook.domain.accounts import Region
from roombook.domain.bookings import BookingStatus
from roombook.http.keys import BOOKINGS, REGIONS
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = pytest.mark.mysql

SETTLE = b"UPDATE bookings SET status"  # a booking's status change (settle, cancel)
PENDING_ROW = b"INSERT INTO bookings"
BATCH_WRITE = b"shard_leases"


class Proxies:
    def __init__(self, global_: MysqlFaultProxy, eu: MysqlFaultProxy) -> None:
        self.global_ = global_
        self.eu = eu


@pytest.fixture
async def proxies(mysql_dsns) -> AsyncIterator[Proxies]:
    target = mysql_target(mysql_dsns["global"])
    async with MysqlFaultProxy(target.host, target.port) as g, MysqlFaultProxy(target.host, target.port) as eu:
        yield Proxies(g, eu)


@pytest.fixture
async def client(aiohttp_client, tmp_path, mysql_dsns, proxies):
    settings = Settings(
        data_dir=str(tmp_path),
        global_dsn=proxies.global_.through(mysql_dsns["global"]),
        eu_dsn=proxies.eu.through(mysql_dsns["eu"]),
        us_dsn=mysql_dsns["us"],
        runtime="local",
        shards=2,
        jwt_secret=JWT_SECRET,
        cookie_secure=False,
    )
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    yield client
    await client.close()  # before the databases are dropped (see test_bookings_mariadb_ray)


async def problem(response: aiohttp.ClientResponse) -> str:
    assert response.content_type == "application/problem+json", await response.text()
    return (await response.json())["type"].rsplit("/", 1)[-1]


async def history(client, guest) -> list[tuple[str, str]]:
    page = await (await client.get(f"{API}/bookings", headers=guest.headers)).json()
    return [(b["id"], b["status"]) for b in page["items"]]


async def test_a_cancel_whose_regional_write_fails_never_frees_nights_of_a_confirmed_booking(client, proxies):
    (room_id,) = await add_rooms(client)
    ada, bob = await sign_up(client), await sign_up(client)
    first = await book(client, ada, stay(room_id, 0, 2))
    assert first.status == 201
    booking_id = (await first.json())["booking"]["id"]

    proxies.eu.cut_mid_transaction(only_if=SETTLE)
    cancel = await client.post(f"{API}/bookings/{booking_id}/cancel", headers=ada.headers)
    assert proxies.eu.counters.transactions_cut == 1
    assert cancel.status == 503 and await problem(cancel) == "outcome-unknown"
    assert cancel.headers["Retry-After"] == "1"
    assert await history(client, ada) == [(booking_id, "CONFIRMED")]
    taken = await book(client, bob, stay(room_id, 0, 2))  # the nights are still ada's
    assert taken.status == 409 and await problem(taken) == "nights-unavailable"

    again = await client.post(f"{API}/bookings/{booking_id}/cancel", headers=ada.headers)
    assert again.status == 200 and (await again.json())["booking"]["status"] == "CANCELLED"
    assert (await book(client, bob, stay(room_id, 0, 2))).status == 201


async def test_a_cancel_whose_shard_step_fails_is_cancelled_and_the_reconciler_frees_the_nights(client, proxies):
    (room_id,) = await add_rooms(client)
    ada, bob = await sign_up(client), await sign_up(client)
    booking_id = (await (await book(client, ada, stay(room_id, 0, 2))).json())["booking"]["id"]

    await proxies.global_.outage(True)  # the shard cannot write: its cancel fails
    cancel = await client.post(f"{API}/bookings/{booking_id}/cancel", headers=ada.headers)
    assert cancel.status == 200 and (await cancel.json())["booking"]["status"] == "CANCELLED"
    assert await client.app[REGIONS][Region.EU].pending_releases() != []
    await proxies.global_.outage(False)

    service = client.app[BOOKINGS]
    for _ in range(100):  # one round frees them once the shard serves again
        await service.reconcile()
        if not await client.app[REGIONS][Region.EU].pending_releases():
            break
        await asyncio.sleep(0.1)
    assert await client.app[REGIONS][Region.EU].pending_releases() == []
    assert (await book(client, bob, stay(room_id, 0, 2))).status == 201
    assert await history(client, ada) == [(booking_id, "CANCELLED")]


@pytest.mark.parametrize("lost", [PENDING_ROW, SETTLE], ids=["pending-row", "confirmation"])
async def test_a_booking_whose_commit_answer_is_lost_is_settled_by_the_store_and_booked_once(client, proxies, lost):
    # The regional store's group commit writes each write of a batch whose COMMIT answer was lost
    # again, alone (each is idempotent): the guest gets the booking, once, and a replay the same
    (room_id,) = await add_rooms(client)
    ada = await sign_up(client)
    proxies.eu.drop_commit_ack(only_if=lost)
    first = await book(client, ada, stay(room_id, 0, 2), key="lost-answer")
    assert proxies.eu.counters.acks_dropped == 1
    assert first.status == 201, await first.text()

    replay = await book(client, ada, stay(room_id, 0, 2), key="lost-answer")
    assert replay.status == 201, await replay.text()
    booking = (await replay.json())["booking"]
    assert booking["id"] == (await first.json())["booking"]["id"]
    assert await history(client, ada) == [(booking["id"], "CONFIRMED")]
    stored = await client.app[REGIONS][Region.EU].booking(booking["id"], ada.id)
    assert stored.status is BookingStatus.CONFIRMED


async def test_a_lost_answer_of_the_shards_commit_is_invisible_to_the_guest(client, proxies):
    (room_id,) = await add_rooms(client)
    ada, bob = await sign_up(client), await sign_up(client)
    proxies.global_.drop_commit_ack(2, only_if=BATCH_WRITE)  # the hold's and the confirmation's
    first = await book(client, ada, stay(room_id, 0, 2))
    assert proxies.global_.counters.acks_dropped == 2
    assert first.status == 201, await first.text()
    assert (await book(client, bob, stay(room_id, 0, 2))).status == 409
    nights = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": stay(room_id, 0, 2)["check_in"]})
    assert nights.status == 422  # (both bounds are required: a malformed query is not a 5xx)


async def test_a_regional_store_outage_is_503_problem_json_and_it_recovers(client, proxies):
    (room_id,) = await add_rooms(client)
    ada = await sign_up(client)
    await proxies.eu.outage(True)
    listed = await client.get(f"{API}/bookings", headers=ada.headers)
    assert listed.status == 503 and await problem(listed) == "unavailable"
    assert listed.headers["Retry-After"] == "1"
    booked = await book(client, ada, stay(room_id, 0, 2), key="during-outage")
    assert booked.status == 503 and await problem(booked) == "outcome-unknown"
    await proxies.eu.outage(False)
    replay = await book(client, ada, stay(room_id, 0, 2), key="during-outage")
    assert replay.status == 201, await replay.text()
    assert len(await history(client, ada)) == 1
