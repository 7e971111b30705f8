"""The same account and ops flows on both deployments: the embedded one (SQLite, in-process
shards) and the distributed one (MariaDB for the global, EU and US stores, shards as Ray actors)."""

from __future__ import annotations

import secrets

import aiohttp
import pytest
from e2e_app import PASSWORD, new_email

from roombook.domain.accounts import Region
from roombook.http.keys import REGIONS


@pytest.fixture(params=["embedded", pytest.param("mariadb-ray", marks=[pytest.mark.mysql, pytest.mark.ray])])
async def deployed(request, aiohttp_client, app_factory):
    if request.param == "embedded":
        app = app_factory()
    else:
        request.getfixturevalue("ray_cluster")
        dsns = request.getfixturevalue("mysql_dsns")
        app = app_factory(
            runtime="ray",
            global_dsn=dsns["global"],
            eu_dsn=dsns["eu"],
            us_dsn=dsns["us"],
            ray_namespace="roombook-tests",
            ray_actor_prefix=f"rb-e2e-{secrets.token_hex(4)}",  # actors are per test, never shared
        )
    client = await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar())
    yield client
    # close the app before mysql_dsns drops its databases: that teardown blocks this loop, and a
    # query the app has in flight then holds its metadata lock for good (DROP waits forever)
    await client.close()


async def test_ready_with_every_store_and_shard(deployed):
    resp = await deployed.get("/readyz")
    assert resp.status == 200, await resp.text()


async def test_register_login_refresh_logout(deployed):
    email = new_email()
    resp = await deployed.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "region": "us"})
    assert resp.status == 201
    assert await deployed.app[REGIONS][Region.EU].account_by_email(email) is None
    resp = await deployed.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200
    token = (await resp.json())["access_token"]
    refresh = resp.cookies["refresh_token"].value
    me = await deployed.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert (await me.json())["user"]["region"] == "us"
    rotated = await deployed.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert rotated.status == 200
    assert (await deployed.post("/api/v1/auth/refresh", json={"refresh_token": refresh})).status == 401
    assert (await deployed.post("/api/v1/auth/logout", json={"refresh_token": refresh})).status == 204


async def test_metrics_read_the_shards(deployed):
    text = await (await deployed.get("/metrics")).text()
    assert 'roombook_shard_commit_batches{shard="1"}' in text
