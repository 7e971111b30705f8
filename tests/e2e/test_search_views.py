"""Search and room pages through the index and the cache, kept current by events, over real HTTP:
on the embedded stack, on Redis with SNS/SQS (moto), with the cache down, and the OpenSearch
reindex command against osmem-server."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
import redis
import redis.exceptions
from booking_harness import API, add_rooms, app_for, book, local_settings, night, room, sign_up, sign_up_admin, stay
from event_services import event_env
from opensearchpy import AsyncOpenSearch
from osmem_server import OsmemServer

from roombook.domain.rooms import Location
from roombook.http.keys import CACHE
from roombook.storage.cache.keys import room_details_key

REDIS_URL = os.environ.get("ROOMBOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def until(condition, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll an async condition on what a consumer did: there is nothing to wait on."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def search(client, **params: object) -> dict:
    response = await client.get(f"{API}/rooms", params={k: str(v) for k, v in params.items()})
    assert response.status == 200, await response.text()
    return await response.json()


async def a_booking_drops_the_room_from_the_next_dated_search(client) -> None:
    """A dated search asks the shards, not a cache: the room a guest just booked is gone from the
    very next search, before any event is consumed."""
    booked, other = await add_rooms(client, room(title="Booked"), room(title="Other"))
    dates = {"check_in": night(0), "check_out": night(3)}
    assert [r["id"] for r in (await search(client, **dates))["items"]] == [booked, other]

    guest = await sign_up(client)
    assert (await book(client, guest, stay(booked, 1, 2))).status == 201
    page = await search(client, **dates)
    assert ([r["id"] for r in page["items"]], page["total"]) == ([other], 1)
    assert (await search(client, check_in=night(2), check_out=night(4)))["total"] == 2  # other nights: free


# -- the embedded stack ----------------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def test_a_booking_drops_the_room_from_the_next_dated_search(client):
    await a_booking_drops_the_room_from_the_next_dated_search(client)


async def test_an_admin_change_is_searchable_once_its_event_is_consumed(client):
    room_id, _ = await add_rooms(client, room(title="Quiet double"), room(title="Loud single"))
    assert (await (await client.get(f"{API}/rooms/{room_id}")).json())["title"] == "Quiet double"  # now cached
    assert (await search(client, q="zanzibar"))["total"] == 0  # a cached empty page for later
    admin = await sign_up_admin(client)
    body = {"title": "Zanzibar suite", "location": {"city": "Porto", "country": "PT"}}
    assert (await client.patch(f"{API}/rooms/{room_id}", json=body, headers=admin.headers)).status == 200

    async def searchable() -> bool:
        by_text = await search(client, q="zanzibar")
        by_city = await search(client, city="porto")
        return [r["id"] for r in by_text["items"]] == [room_id] and [r["id"] for r in by_city["items"]] == [room_id]

    await until(searchable, what="the room.updated event to reach the index")

    async def details_fresh() -> bool:
        return (await (await client.get(f"{API}/rooms/{room_id}")).json())["title"] == "Zanzibar suite"

    await until(details_fresh, what="the room.updated event to drop the cached details")
    [item] = (await search(client, q="zanzibar suite", city="porto"))["items"]
    assert (item["title"], item["location"]["city"]) == ("Zanzibar suite", "Porto")
    assert (await search(client, city="lisbon"))["total"] == 1


async def test_new_query_parameters_search_by_text_and_place_and_nonsense_is_422(client):
    near, far = await add_rooms(
        client,
        room(title="Harbour view", location=Location(city="Lisbon", country="PT", lat=38.70, lon=-9.14)),
        room(title="Harbour loft", location=Location(city="Porto", country="PT", lat=41.15, lon=-8.61)),
    )
    assert [r["id"] for r in (await search(client, lat=38.7, lon=-9.1, radius_km=50))["items"]] == [near]
    assert [r["id"] for r in (await search(client, lat=41.0, lon=-8.6))["items"]] == [far, near]  # by distance
    assert [r["id"] for r in (await search(client, q="loft harbour"))["items"]] == [far, near]  # by relevance
    for params in (
        {"sort": "relevance"},
        {"sort": "distance"},
        {"radius_km": "5"},
        {"lat": "1"},
        {"lat": "91", "lon": "0"},
    ):
        response = await client.get(f"{API}/rooms", params=params)
        assert response.status == 422, params
        assert response.content_type == "application/problem+json"


# -- Redis and SNS/SQS (moto) ----------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the test Redis; every key under it is deleted after."""
    prefix = f"roombook-test:{secrets.token_hex(6)}:"
    with redis.Redis.from_url(REDIS_URL) as raw:
        try:
            raw.ping()
        except redis.exceptions.ConnectionError as exc:
            pytest.fail(f"the test Redis at {REDIS_URL} is unreachable ({exc})", pytrace=False)
        yield prefix
        keys = list(raw.scan_iter(match=prefix + "*"))
        if keys:
            raw.delete(*keys)


async def test_the_same_on_redis_and_sns_sqs(aiohttp_client, tmp_path, moto, redis_prefix):
    settings = msgspec.structs.replace(
        local_settings(tmp_path),
        cache="redis",
        redis_url=REDIS_URL,
        cache_key_prefix=redis_prefix,
        event_bus="sns-sqs",
        events_in_process=True,
        aws_endpoint_url=moto,
        event_prefix=f"e2e-{secrets.token_hex(3)}-",
    )
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    await a_booking_drops_the_room_from_the_next_dated_search(client)
    with redis.Redis.from_url(REDIS_URL) as raw:  # the entries really are in Redis
        assert list(raw.scan_iter(match=redis_prefix + "room:*:details"))
    assert not client.app[CACHE].degraded


# -- the cache down ---------------------------------------------------------------------------------


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_searches_and_room_pages_answer_from_the_source_while_the_cache_is_down(aiohttp_client, tmp_path):
    settings = msgspec.structs.replace(local_settings(tmp_path), cache="redis", redis_url=refused_url())
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    booked, other = await add_rooms(client, room(title="Booked"), room(title="Other"))
    guest = await sign_up(client)
    assert (await book(client, guest, stay(booked, 0, 2))).status == 201  # bookings never read the cache
    assert (await search(client, check_in=night(0), check_out=night(2)))["items"][0]["id"] == other
    assert (await search(client, q="booked"))["total"] == 1
    assert (await client.get(f"{API}/rooms/{booked}")).status == 200
    calendar = await client.get(f"{API}/rooms/{booked}/availability", params={"from": night(0), "to": night(2)})
    assert calendar.status == 200
    assert client.app[CACHE].degraded.total() > 0
    assert await client.app[CACHE].get(room_details_key(booked)) is None


# -- `roombook search reindex` against osmem-server ---------------------------------------------------


@pytest.fixture(scope="module")
def osmem() -> Iterator[OsmemServer]:
    server = OsmemServer.start(japanese=False)
    yield server
    server.close()
    if server.process.stdout is not None:
        server.process.stdout.close()


def roombook(data_dir: Path, *args: str, **env: str) -> str:
    command = [sys.executable, "-m", "roombook", "--data-dir", str(data_dir), *args]
    done = subprocess.run(command, env=event_env(**env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_search_reindex_leaves_one_index_with_every_room_behind_the_alias(tmp_path, osmem, request):
    clone = osmem.clone()
    request.addfinalizer(clone.close)
    alias = f"rooms_e2e_{secrets.token_hex(4)}"
    env = {"ROOMBOOK_SEARCH": "opensearch", "ROOMBOOK_OPENSEARCH_URL": clone.url, "ROOMBOOK_OPENSEARCH_ALIAS": alias}
    await asyncio.to_thread(roombook, tmp_path, "seed", "--rooms", "30")
    for _ in range(2):  # the second run replaces the first run's index
        out = await asyncio.to_thread(roombook, tmp_path, "search", "reindex", **env)
        assert "reindexed 30 rooms" in out
    client = AsyncOpenSearch(hosts=[clone.url])
    try:
        indices = list(await client.indices.get_alias(name=alias))
        assert len(indices) == 1 and indices[0].startswith(f"{alias}-")
        assert list(await client.indices.get(index=f"{alias}-*")) == indices  # the old one is gone
        hits = await client.search(index=alias, body={"size": 100, "query": {"match_all": {}}})
        assert sorted(int(h["_id"]) for h in hits["hits"]["hits"]) == list(range(1, 31))
    finally:
        await client.close()


async def test_a_process_that_consumes_no_events_refreshes_its_embedded_index(aiohttp_client, tmp_path):
    # what every `serve --workers N` worker but the one running the relay and consumers is like
    settings = msgspec.structs.replace(local_settings(tmp_path), events_in_process=False, search_refresh_s=0.2)
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    room_id, _ = await add_rooms(client, room(title="Quiet double"), room(title="Loud single"))
    admin = await sign_up_admin(client)
    body = {"title": "Zanzibar suite"}
    assert (await client.patch(f"{API}/rooms/{room_id}", json=body, headers=admin.headers)).status == 200

    async def searchable() -> bool:
        return [r["id"] for r in (await search(client, q="zanzibar"))["items"]] == [room_id]

    await until(searchable, what="the periodic rebuild of the embedded index")
