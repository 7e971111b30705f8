"""A process serving one region opens only that region's store and refuses the other region's users
with 421 wrong-region, naming the region that serves them; an all-region process serves both."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from e2e_app import PASSWORD, auth_settings, new_email, settings_for
from test_serve_command import STOP_TIMEOUT_S, free_port, get, wait_until_listening

from roombook.config import load_settings
from roombook.http.app import create_app
from roombook.services.payments import PaymentSettings

API = "/api/v1"


def one_region_app(data_dir: Path, region: str) -> web.Application:
    """A process serving `region` only, over its own data dir; every side shares the JWT secret,
    as the processes of one deployment do."""
    return create_app(settings_for(data_dir, region=region), auth=auth_settings(), payments=PaymentSettings(seed=1))


@pytest.fixture
async def us_side(aiohttp_client, tmp_path: Path):
    """A US-only process: it issues the US users' tokens."""
    return await aiohttp_client(one_region_app(tmp_path / "us-side", "us"), cookie_jar=aiohttp.DummyCookieJar())


@pytest.fixture
async def eu_side(aiohttp_client, tmp_path: Path):
    return await aiohttp_client(one_region_app(tmp_path / "eu-side", "eu"), cookie_jar=aiohttp.DummyCookieJar())


def assert_wrong_region(status: int, problem: dict, region: str) -> None:
    assert status == 421, problem
    assert problem["type"].endswith("/wrong-region")
    assert problem["region"] == region
    assert f"served by region '{region}'" in problem["detail"]


async def test_an_eu_process_refuses_a_us_token_with_421_and_never_opens_the_us_store(
    eu_side, us_side, sign_up, tmp_path: Path
):
    us_user = await sign_up(us_side, region="us")
    for method, path in [("GET", "/me"), ("GET", "/bookings"), ("POST", "/bookings")]:
        resp = await eu_side.request(method, API + path, headers=us_user | {"Idempotency-Key": "k1"}, json={})
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert_wrong_region(resp.status, await resp.json(), "us")
    assert (tmp_path / "eu-side" / "eu.db").exists()
    assert not (tmp_path / "eu-side" / "us.db").exists()
    assert not (tmp_path / "us-side" / "eu.db").exists()


async def test_an_eu_process_serves_its_own_users_and_checks_only_its_stores(eu_side, sign_up):
    eu_user = await sign_up(eu_side, region="eu")
    me = await eu_side.get(f"{API}/me", headers=eu_user)
    assert me.status == 200 and (await me.json())["user"]["region"] == "eu"
    ready = await eu_side.get("/readyz")
    assert ready.status == 200
    assert set((await ready.json())["checks"]) == {"global", "shards", "eu"}


async def test_an_eu_process_refuses_to_register_a_us_user(eu_side):
    body = {"email": new_email(), "password": PASSWORD, "region": "us"}
    resp = await eu_side.post(f"{API}/auth/register", json=body)
    assert_wrong_region(resp.status, await resp.json(), "us")


async def test_a_login_hinted_to_the_other_region_is_answered_421(eu_side, us_side):
    email = new_email()
    registered = await us_side.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD, "region": "us"})
    assert registered.status == 201
    assert registered.cookies["region"].value == "us"  # the hint a browser carries to its next login
    credentials = {"email": email, "password": PASSWORD}
    by_body = await eu_side.post(f"{API}/auth/login", json=credentials | {"region": "us"})
    assert_wrong_region(by_body.status, await by_body.json(), "us")
    by_cookie = await eu_side.post(f"{API}/auth/login", json=credentials, headers={"Cookie": "region=us"})
    assert_wrong_region(by_cookie.status, await by_cookie.json(), "us")
    # with no hint the EU process looks in its own region only: it cannot know the user exists
    unhinted = await eu_side.post(f"{API}/auth/login", json=credentials)
    assert unhinted.status == 401


async def test_a_refresh_token_of_the_other_region_is_answered_421(eu_side, us_side):
    email = new_email()
    await us_side.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD, "region": "us"})
    login = await us_side.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    refresh_token = login.cookies["refresh_token"].value
    for path in ("/auth/refresh", "/auth/logout"):
        resp = await eu_side.post(API + path, json={"refresh_token": refresh_token})
        assert_wrong_region(resp.status, await resp.json(), "us")
    still_live = await us_side.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})
    assert still_live.status == 200  # the EU process neither spent nor revoked it


async def test_an_all_region_process_serves_users_of_both_regions(client, sign_up, tmp_path: Path):
    for region in ("eu", "us"):
        me = await client.get(f"{API}/me", headers=await sign_up(client, region=region))
        assert me.status == 200 and (await me.json())["user"]["region"] == region
    ready = await client.get("/readyz")
    assert set((await ready.json())["checks"]) == {"global", "shards", "eu", "us"}
    assert (tmp_path / "eu.db").exists() and (tmp_path / "us.db").exists()


def test_the_region_setting_is_all_eu_or_us():
    assert [r.value for r in load_settings({}).regions] == ["eu", "us"]
    assert [r.value for r in load_settings({"ROOMBOOK_REGION": "us"}).regions] == ["us"]
    assert [r.value for r in load_settings({}, region="eu").regions] == ["eu"]
    with pytest.raises(SystemExit, match="ROOMBOOK_REGION must be"):
        load_settings({"ROOMBOOK_REGION": "asia"})


def test_serve_with_region_eu_migrates_and_opens_only_the_eu_store(tmp_path: Path):
    port = free_port()
    command = [sys.executable, "-m", "roombook", "--data-dir", str(tmp_path), "--runtime", "local", "--shards", "2"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--seed-rooms", "5", "--region", "eu"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_listening(proc, base + "/healthz")
        status, ready = get(base + "/readyz")
        assert status == 200 and set(ready["checks"]) == {"global", "shards", "eu"}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "eu: applied" in out and "us:" not in out
    assert not (tmp_path / "us.db").exists()


def test_worker_with_region_us_opens_only_the_us_store(tmp_path: Path):
    command = [sys.executable, "-m", "roombook", "--data-dir", str(tmp_path), "worker", "--region", "us"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once its stores are open and migrated
        assert "regions: us" in line, line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert (tmp_path / "us.db").exists() and (tmp_path / "global.db").exists()
    assert not (tmp_path / "eu.db").exists()


async def test_directory_backfill_gives_accounts_registered_before_it_their_entries(tmp_path: Path, capsys):
    import datetime as dt

    from roombook import bootstrap
    from roombook.cli import main
    from roombook.domain.accounts import NewUser, Region

    settings = load_settings({}, data_dir=str(tmp_path))
    now = dt.datetime.now(dt.UTC)
    for region, email in ((Region.EU, "old-eu@example.com"), (Region.US, "old-us@example.com")):
        async with bootstrap.regional_store(settings, region) as store:  # as before the directory existed
            await store.migrate()
            await store.create_user(NewUser(email=email, password_hash="x", region=region, created_at=now))

    assert await asyncio.to_thread(main, ["directory", "backfill", "--data-dir", str(tmp_path)]) == 0
    assert "2 entries confirmed, 0 held by another region" in capsys.readouterr().out
    directory = bootstrap.email_directory(settings)
    async with directory.store:
        assert await directory.region_of("old-eu@example.com") is Region.EU
        assert await directory.region_of("old-us@example.com") is Region.US
        assert await directory.store.pending(Region.EU, now + dt.timedelta(days=1)) == []
