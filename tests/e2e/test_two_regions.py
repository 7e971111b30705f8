"""Residency, proven end to end through the edge, on a real two-region deployment: one Ray (the
session's) with the shard actors, an EU front on the global and EU databases, a US front on the
global and US databases (separate MariaDB databases), and the edge in front, each a process of
its own on loopback (roombook/ops/two_regions.py).

EU and US users register, log in without saying their region, search, book, list, cancel and
refresh; then every row of every table of every database is read: nothing of an EU user outside
the EU database, nothing of a US user outside the US one, no email in the global one. The front
of the other region never saw their requests (its request counters), and an EU token sent
straight to the US front is 421. Then the US front stops under load and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import asyncmy
import pytest

from roombook.domain.accounts import Region
from roombook.ops.two_regions import TwoRegionDeployment, free_port
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = [pytest.mark.mysql, pytest.mark.ray]

API = "/api/v1"
PASSWORD = "correct horse battery staple"
SHARDS = 2


@pytest.fixture
def two_regions(ray_cluster, mysql_dsns, tmp_path: Path):
    from roombook.actors import ray_runtime

    deployment = TwoRegionDeployment(
        tmp_path / "deployment",
        dsns=mysql_dsns,
        ray_address=ray_runtime.cluster_address(),  # the session's Ray: one per test run
        shards=SHARDS,
        seed_rooms=20,
        edge_env={"ROOMBOOK_EDGE_HEALTH_EVERY_S": "0.2", "ROOMBOOK_EDGE_RATE_BURST": "100000"},
    )
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()
        for shard in range(deployment.shards):  # detached on a shared cluster: they outlive the fronts
            name = f"{deployment.actor_prefix}-{shard}"
            with contextlib.suppress(ValueError):  # never created
                ray_cluster.kill(ray_cluster.get_actor(name, namespace=deployment.namespace), no_restart=True)


class User:
    def __init__(self, region: str) -> None:
        self.region = region
        self.email = f"{region}-{secrets.token_hex(4)}@example.com"
        self.headers: dict[str, str] = {}
        self.user_id = 0
        self.refresh_token = ""
        self.booking_ids: list[str] = []


def stay(room_id: int, offset: int) -> dict[str, object]:
    check_in = dt.date.today() + dt.timedelta(days=60 + offset)
    return {
        "room_id": room_id,
        "check_in": str(check_in),
        "check_out": str(check_in + dt.timedelta(days=2)),
        "guests": 1,
    }


async def live_through_the_edge(http: aiohttp.ClientSession, edge: str, user: User, room_id: int) -> None:
    """Everything a guest does, with nothing saying which region they live in after registering."""
    registered = await http.post(
        f"{edge}{API}/auth/register", json={"email": user.email, "password": PASSWORD, "region": user.region}
    )
    assert registered.status == 201, await registered.text()
    login = await http.post(f"{edge}{API}/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status == 200, await login.text()
    body = await login.json()
    assert body["user"]["region"] == user.region
    user.user_id = body["user"]["id"]
    user.headers = {"Authorization": f"Bearer {body['access_token']}"}
    user.refresh_token = login.cookies["refresh_token"].value
    rooms = await http.get(f"{edge}{API}/rooms?per_page=5", headers=user.headers)
    assert rooms.status == 200
    for n, key in enumerate(("first", "second")):
        booked = await http.post(
            f"{edge}{API}/bookings", json=stay(room_id, 5 * n), headers=user.headers | {"Idempotency-Key": key}
        )
        assert booked.status == 201, await booked.text()
        user.booking_ids.append((await booked.json())["booking"]["id"])
    listed = await http.get(f"{edge}{API}/bookings", headers=user.headers)
    assert [b["id"] for b in (await listed.json())["items"]] == user.booking_ids[::-1]
    cancelled = await http.post(f"{edge}{API}/bookings/{user.booking_ids[0]}/cancel", headers=user.headers)
    assert cancelled.status == 200 and (await cancelled.json())["booking"]["status"] == "CANCELLED"
    refreshed = await http.post(f"{edge}{API}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status == 200, await refreshed.text()


async def api_requests_seen(http: aiohttp.ClientSession, front: str) -> float:
    """Requests the front answered, the edge's health probes and these scrapes aside."""
    text = await (await http.get(front + "/metrics")).text()
    total = 0.0
    for line in text.splitlines():
        probe = 'route="/healthz"' in line or 'route="/metrics"' in line
        if line.startswith("roombook_http_requests_total{") and not probe:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def every_row(dsn: str) -> dict[str, list[tuple]]:
    target = mysql_target(dsn)
    conn = await asyncmy.connect(
        host=target.host, port=target.port, user=target.user, password=target.password, db=target.database
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("SHOW TABLES")
            tables = [row[0] for row in await cur.fetchall()]
            rows = {}
            for table in tables:
                await cur.execute(f"SELECT * FROM `{table}`")
                rows[table] = list(await cur.fetchall())
        return rows
    finally:
        conn.close()


def mentions(rows: dict[str, list[tuple]], needle: str) -> list[str]:
    return [table for table, table_rows in rows.items() if needle in repr(table_rows)]


async def test_each_users_data_lives_only_in_their_region_and_the_other_front_never_sees_them(
    two_regions: TwoRegionDeployment,
):
    edge, eu_front, us_front = (two_regions.url(name) for name in ("edge", "eu", "us"))
    users = {"eu": [User("eu"), User("eu")], "us": [User("us"), User("us")]}
    rooms = iter(range(1, 20))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for region, other_front in (("eu", us_front), ("us", eu_front)):
            seen_before = await api_requests_seen(http, other_front)
            for user in users[region]:
                await live_through_the_edge(http, edge, user, next(rooms))
            assert await api_requests_seen(http, other_front) == seen_before, f"the other front saw {region} users"

        eu_user = users["eu"][0]
        straight = await http.get(f"{us_front}{API}/me", headers=eu_user.headers)
        assert straight.status == 421
        assert (await straight.json())["region"] == "eu"

        # a request line past aiohttp's default limit (8,190 bytes) crosses the edge and its front
        long_line = await http.get(f"{edge}{API}/rooms", params={"city": "a" * 9_000})
        assert long_line.status == 422 and (await long_line.json())["status"] == 422

    databases = {name: await every_row(dsn) for name, dsn in two_regions.dsns.items()}
    for region, other in (("eu", "us"), ("us", "eu")):
        home = databases[region]
        assert sorted(row[1] for row in home["users"]) == sorted(u.email for u in users[region])
        assert {row[0] for row in home["users"]} == {u.user_id for u in users[region]}
        for user in users[region]:
            assert mentions(databases[other], user.email) == []
            assert mentions(databases["global"], user.email) == []  # the directory keeps keyed hashes only
            for booking_id in user.booking_ids:
                assert "bookings" in mentions(home, booking_id) and "outbox" in mentions(home, booking_id)
                assert mentions(databases[other], booking_id) == []
        assert len(home["refresh_tokens"]) == 3 * len(users[region])  # register's, login's, its rotation
    assert len(databases["global"]["email_directory"]) == 4

    mail = {region: two_regions.data_dir / region / "mail" for region in ("eu", "us")}
    for region, other in (("eu", "us"), ("us", "eu")):
        for _ in range(100):  # the guests' emails are written by each front's event consumer
            written = " ".join(p.read_text() for p in mail[region].glob("*.eml")) if mail[region].exists() else ""
            if all(u.email in written for u in users[region]):
                break
            await asyncio.sleep(0.1)
        assert all(u.email in written for u in users[region])
        elsewhere = " ".join(p.read_text() for p in mail[other].glob("*.eml")) if mail[other].exists() else ""
        assert not any(u.email in elsewhere for u in users[region])


async def test_a_region_that_stops_under_load_fails_only_its_own_users_and_comes_back(
    two_regions: TwoRegionDeployment,
):
    edge = two_regions.url("edge")
    edge_pid = two_regions.processes["edge"].pid
    eu_user, us_user = User("eu"), User("us")
    outcomes: dict[str, list[int]] = {"eu": [], "us": [], "global": []}
    stopping = asyncio.Event()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for n, user in enumerate((eu_user, us_user)):
            await live_through_the_edge(http, edge, user, room_id=n + 1)

        async def load(kind: str, url: str, headers: dict[str, str]) -> None:
            while not stopping.is_set():
                async with http.get(url, headers=headers) as resp:
                    await resp.read()
                    outcomes[kind].append(resp.status)
                    if resp.status == 503:
                        assert resp.headers["Content-Type"].startswith("application/problem+json")

        us_visitor = {"CloudFront-Viewer-Country": "US"}  # nearest: the US, while it is up
        tasks = [
            asyncio.create_task(load("eu", f"{edge}{API}/bookings", eu_user.headers)),
            asyncio.create_task(load("us", f"{edge}{API}/bookings", us_user.headers)),
            asyncio.create_task(load("global", f"{edge}{API}/rooms?per_page=3", us_visitor)),
            asyncio.create_task(load("global", f"{edge}{API}/rooms/1/availability?from=2030-01-01&to=2030-01-08", {})),
        ]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(two_regions.stop_front, Region.US)
        us_before = len(outcomes["us"])
        await asyncio.sleep(1.5)
        await asyncio.to_thread(two_regions.start_front, Region.US)
        for _ in range(100):  # the edge's poller finds it again within a period or two
            if (await http.get(edge + "/readyz")).status == 200:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        stopping.set()
        await asyncio.gather(*tasks)

        assert set(outcomes["eu"]) == {200}, sorted(set(outcomes["eu"]))
        assert set(outcomes["global"]) == {200}, sorted(set(outcomes["global"]))
        assert 503 in outcomes["us"][us_before:] and set(outcomes["us"]) <= {200, 503}
        assert outcomes["us"][-1] == 200  # back, with the token it had
        assert two_regions.processes["edge"].pid == edge_pid  # the same edge all along
        me = await http.get(f"{edge}{API}/me", headers=us_user.headers)
        assert me.status == 200 and (await me.json())["user"]["region"] == "us"


def test_roombook_dev_up_serves_two_regions_through_its_edge_and_stops_on_sigterm(ray_cluster, tmp_path: Path):
    from roombook.actors import ray_runtime

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMBOOK_")}
    env["RAY_ADDRESS"] = ray_runtime.cluster_address()  # the session's Ray, not one of its own
    command = [sys.executable, "-m", "roombook", "dev", "up", "--data-dir", str(tmp_path), "--port", str(port)]
    command += ["--seed-rooms", "5", "--shards", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    described: dict = {}
    try:
        assert proc.stdout is not None
        described = json.loads(proc.stdout.readline())  # printed once every part answers
        assert "two regions up" in proc.stdout.readline()
        assert described["urls"]["edge"] == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as ready:
            assert json.load(ready)["checks"] == {"eu": "ok", "us": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{API}/rooms?per_page=1", timeout=5) as rooms:
            assert json.load(rooms)["total"] == 5
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for shard in range(2):  # detached on the session's cluster: they outlive dev up
            with contextlib.suppress(ValueError, KeyError):
                actor = ray_cluster.get_actor(f"{described['actor_prefix']}-{shard}", namespace=described["namespace"])
                ray_cluster.kill(actor, no_restart=True)
    assert proc.returncode == 0, err
    assert "two regions stopped" in out
    for name in ("eu", "us", "edge"):
        url = described["urls"][name]
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/healthz", timeout=1):
            raise AssertionError(f"{name} still answers after dev up stopped")
