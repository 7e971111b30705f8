"""The racing and idempotency scenarios again on the production shape: MariaDB stores (global, EU,
US) and the room shards as Ray actors of the session's one local cluster."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from booking_harness import (
    JWT_SECRET,
    app_for,
    twenty_requests_with_one_key_make_one_booking,
    users_racing_for_overlapping_stays_never_share_a_night,
)

from roombook.config import Settings

pytestmark = [pytest.mark.mysql, pytest.mark.ray]


@pytest.fixture(params=[True, False], ids=["direct-socket", "ray-calls"])
async def client(request, aiohttp_client, tmp_path, mysql_dsns, ray_cluster):
    settings = Settings(
        data_dir=str(tmp_path),
        global_dsn=mysql_dsns["global"],
        eu_dsn=mysql_dsns["eu"],
        us_dsn=mysql_dsns["us"],
        runtime="ray",
        ray_namespace="roombook-tests",
        ray_actor_prefix=f"e2e-{uuid.uuid4().hex[:8]}",  # this test's own shard actors
        shards=2,
        ray_direct=request.param,  # ROOMBOOK_RAY_DIRECT: how commands reach the shard actors
        jwt_secret=JWT_SECRET,
        cookie_secure=False,
    )
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    yield client
    # close the app before mysql_dsns drops its databases: that teardown blocks this loop, and a
    # query the app has in flight then holds its metadata lock for good (DROP waits forever)
    await client.close()


async def test_twenty_concurrent_requests_with_one_key_make_exactly_one_booking(client):
    await twenty_requests_with_one_key_make_one_booking(client)


async def test_a_hundred_users_racing_for_two_rooms_never_share_a_night(client):
    await users_racing_for_overlapping_stays_never_share_a_night(client)
