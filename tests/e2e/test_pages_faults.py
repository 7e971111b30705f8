"""The web pages on MariaDB when a store is down: an HTML page saying so (503, Retry-After), never a
500 or a half-done change; a room page already cached keeps being served; a cancel refused during
the outage works once the store is back."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from booking_harness import API, JWT_SECRET, PASSWORD, add_rooms, app_for, night, room, stay

from bench.chaos.proxy import MysqlFaultProxy
from roombook.config import Settings
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = pytest.mark.mysql


@pytest.fixture
async def proxies(mysql_dsns) -> AsyncIterator[dict[str, MysqlFaultProxy]]:
    target = mysql_target(mysql_dsns["global"])
    async with MysqlFaultProxy(target.host, target.port) as g, MysqlFaultProxy(target.host, target.port) as eu:
        yield {"global": g, "eu": eu}


@pytest.fixture
async def client(aiohttp_client, tmp_path, mysql_dsns, proxies):
    settings = Settings(
        data_dir=str(tmp_path),
        global_dsn=proxies["global"].through(mysql_dsns["global"]),
        eu_dsn=proxies["eu"].through(mysql_dsns["eu"]),
        us_dsn=mysql_dsns["us"],
        runtime="local",
        shards=2,
        jwt_secret=JWT_SECRET,
        cookie_secure=False,
    )
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    yield client
    await client.close()  # before the databases are dropped


async def _session(client) -> tuple[str, str]:
    body = {"email": f"f-{secrets.token_hex(4)}@example.com", "password": PASSWORD, "region": "eu"}
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status == 201, await response.text()
    jar = {name: morsel.value for name, morsel in response.cookies.items()}
    return f"access_token={jar['access_token']}; csrf_token={jar['csrf_token']}", jar["csrf_token"]


def _assert_outage_page(response: aiohttp.ClientResponse, text: str) -> None:
    assert response.status == 503, text
    assert response.content_type == "text/html"
    assert response.headers["Retry-After"] == "1"
    assert "try again in a moment" in text


async def test_a_regional_outage_is_a_503_page_and_the_cancel_works_once_it_is_over(client, proxies):
    (room_id,) = await add_rooms(client)
    cookie, csrf = await _session(client)
    headers = {"Cookie": cookie, "X-CSRF-Token": csrf, "Idempotency-Key": "pages-fault-1"}
    booked = await client.post(f"{API}/bookings", json=stay(room_id, 0, 2), headers=headers)
    assert booked.status == 201, await booked.text()
    booking_id = (await booked.json())["booking"]["id"]
    cancel = f"/account/bookings/{booking_id}/cancel"

    await proxies["eu"].outage(True)
    for path in ("/account", f"/account/bookings/{booking_id}", cancel):
        response = await client.get(path, headers={"Cookie": cookie})
        _assert_outage_page(response, await response.text())
    response = await client.post(cancel, data={"csrf_token": csrf}, headers={"Cookie": cookie}, allow_redirects=False)
    _assert_outage_page(response, await response.text())

    await proxies["eu"].outage(False)
    response = await client.post(cancel, data={"csrf_token": csrf}, headers={"Cookie": cookie}, allow_redirects=False)
    assert response.status == 303, await response.text()
    mine = await client.get(f"{API}/bookings/{booking_id}", headers={"Cookie": cookie})
    assert (await mine.json())["booking"]["status"] == "CANCELLED"
    calendar = await client.get(f"{API}/rooms/{room_id}/availability", params={"from": night(0), "to": night(2)})
    assert {n["status"] for n in (await calendar.json())["nights"]} == {"available"}


async def test_a_catalogue_outage_serves_cached_room_pages_and_says_so_for_the_others(client, proxies):
    seen, unseen = await add_rooms(client, room(title="Seen before"), room(title="Never seen"))
    assert (await client.get(f"/rooms/{seen}")).status == 200  # its details are cached now
    await proxies["global"].outage(True)
    try:
        response = await client.get(f"/rooms/{seen}")
        assert response.status == 200 and "Seen before" in await response.text()
        response = await client.get(f"/rooms/{unseen}")
        _assert_outage_page(response, await response.text())
    finally:
        await proxies["global"].outage(False)
