"""The edge router over real HTTP, in front of two real one-region fronts (each on its own
embedded stores): where each request goes, what travels with it, and what the edge answers itself
(413, 429, 503 for a region that is down, its probes and metrics).

The header and streaming mechanics are checked against a small recording server, the one place
that can show what a front received."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from e2e_app import JWT_SECRET, PASSWORD, auth_settings, new_email, settings_for
from test_serve_command import free_port

from roombook import bootstrap
from roombook.edge.app import create_edge_app
from roombook.edge.settings import EdgeSettings
from roombook.http.app import create_app
from roombook.services.payments import PaymentSettings

API = "/api/v1"
PROBLEM = "application/problem+json"


def front(data_dir: Path, region: str) -> web.Application:
    """A one-region front over its own embedded stores; the fronts share the email directory
    (in the parent directory), as every process of a deployment does."""
    settings = settings_for(data_dir, region=region, directory_dsn=directory_dsn(data_dir.parent))
    return create_app(settings, auth=auth_settings(), payments=PaymentSettings(seed=1))


def directory_dsn(root: Path) -> str:
    return f"sqlite:///{root / 'directory.db'}"


def edge_directory(root: Path):
    return bootstrap.email_directory(settings_for(root, directory_dsn=directory_dsn(root)))


def edge_settings(eu: str, us: str, **overrides: object) -> EdgeSettings:
    fields: dict[str, object] = {"eu_url": eu, "us_url": us, "health_every_s": 0.1, "health_timeout_s": 0.5}
    return EdgeSettings(**(fields | overrides))  # type: ignore[arg-type]


@pytest.fixture
async def fronts(aiohttp_server, tmp_path: Path) -> dict[str, TestServer]:
    return {region: await aiohttp_server(front(tmp_path / region, region)) for region in ("eu", "us")}


@pytest.fixture
async def edge(aiohttp_client, fronts, tmp_path: Path):
    settings = edge_settings(str(fronts["eu"].make_url("")), str(fronts["us"].make_url("")))
    app = create_edge_app(settings, jwt_secret=JWT_SECRET, directory=edge_directory(tmp_path))
    return await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar())


async def register(client, region: str, email: str | None = None):
    email = email or new_email()
    resp = await client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD, "region": region})
    assert resp.status == 201, await resp.text()
    return email, resp


async def bearer(client, email: str, **hint: str) -> dict[str, str]:
    resp = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD} | hint)
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def test_each_users_requests_reach_their_own_region(edge):
    for region in ("eu", "us"):
        email, registered = await register(edge, region)  # by the body's region
        headers = await bearer(edge, email)  # by the email directory: no hint, no cookie
        await bearer(edge, email, region=region)  # by the login's hint
        me = await edge.get(f"{API}/me", headers=headers)  # by the token's region claim
        assert me.status == 200, await me.text()
        assert (await me.json())["user"]["region"] == region
        by_cookie = await edge.post(
            f"{API}/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"Cookie": f"region={region}"},
        )
        assert by_cookie.status == 200
        refresh = registered.cookies["refresh_token"].value  # "us.…": by its prefix
        rotated = await edge.post(f"{API}/auth/refresh", json={"refresh_token": refresh})
        assert rotated.status == 200, await rotated.text()


async def test_an_invalid_token_is_forwarded_and_answered_401_by_a_front(edge):
    resp = await edge.get(f"{API}/me", headers={"Authorization": "Bearer not.a.token"})
    assert resp.status == 401
    assert resp.headers["Content-Type"].startswith(PROBLEM)


async def test_global_reads_go_to_the_nearest_region_by_the_country_header(edge, fronts):
    resp = await edge.get(f"{API}/rooms", headers={"CloudFront-Viewer-Country": "US"})
    assert resp.status == 200 and "items" in await resp.json()


# --- what travels ---------------------------------------------------------------------------------


async def _recording_upstream(aiohttp_server) -> TestServer:
    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/big":
            resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "Content-Length": "1048576"})
            await resp.prepare(request)
            for _ in range(16 if request.method != "HEAD" else 0):
                await resp.write(b"x" * 65536)
            await resp.write_eof()
            return resp
        seen = {"headers": dict(request.headers), "body_bytes": len(body), "raw_path": request.raw_path}
        return web.json_response(seen, headers={"Proxy-Authenticate": "Basic", "X-From-Front": "yes"})

    app = web.Application(client_max_size=2**20)
    app.router.add_route("*", "/{tail:.*}", echo)
    return await aiohttp_server(app)


@pytest.fixture
async def recorded(aiohttp_server, aiohttp_client):
    upstream = await _recording_upstream(aiohttp_server)
    url = str(upstream.make_url(""))
    edge_app = create_edge_app(edge_settings(url, url, max_body_bytes=1000), jwt_secret=JWT_SECRET)
    return await aiohttp_client(edge_app)


async def test_forwarded_headers_and_request_id_travel_and_hop_by_hop_headers_stop(recorded):
    resp = await recorded.get(
        f"{API}/bookings?page=2&q=a%26b",
        headers={"X-Request-ID": "trace-42", "Connection": "keep-alive, X-Private", "X-Private": "1", "TE": "trailers"},
    )
    seen = await resp.json()
    assert seen["raw_path"] == f"{API}/bookings?page=2&q=a%26b"  # the raw query, unchanged
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-request-id"] == "trace-42"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"].startswith("127.0.0.1:")
    assert "x-private" not in headers and "te" not in headers  # named by Connection; hop-by-hop
    assert resp.headers["X-Request-ID"] == "trace-42"
    assert resp.headers["X-From-Front"] == "yes"
    assert "Proxy-Authenticate" not in resp.headers


async def test_a_request_id_is_generated_when_none_or_a_bad_one_is_sent(recorded):
    for sent in ({}, {"X-Request-ID": "no spaces or\tcontrol characters"}):
        resp = await recorded.get("/anything", headers=sent)
        generated = resp.headers["X-Request-ID"]
        assert generated.startswith("req_") and len(generated) == 28
        assert (await resp.json())["headers"]["X-Request-ID"] == generated


async def test_a_client_supplied_forwarded_for_is_not_believed_without_trusted_hops(recorded):
    resp = await recorded.get("/x", headers={"X-Forwarded-For": "6.6.6.6"})
    assert (await resp.json())["headers"]["X-Forwarded-For"] == "127.0.0.1"


async def test_bodies_stream_both_ways(recorded):
    big = await recorded.get("/big")
    assert big.status == 200 and len(await big.read()) == 16 * 65536

    async def chunks():
        for _ in range(3):
            yield b"y" * 300

    resp = await recorded.post("/upload", data=chunks())  # no length: chunked
    assert (await resp.json())["body_bytes"] == 900


async def test_a_body_over_the_cap_is_413_with_or_without_a_length(recorded):
    resp = await recorded.post("/upload", data=b"z" * 1001)
    assert resp.status == 413 and resp.headers["Content-Type"].startswith(PROBLEM)
    assert (await resp.json())["type"].endswith("/too-large")

    async def chunks():
        for _ in range(5):
            yield b"y" * 300

    resp = await recorded.post("/upload", data=chunks())
    assert resp.status == 413


async def test_a_client_over_its_rate_gets_429_with_retry_after(aiohttp_server, aiohttp_client):
    upstream = await _recording_upstream(aiohttp_server)
    url = str(upstream.make_url(""))
    edge_app = create_edge_app(edge_settings(url, url, rate_per_s=0.01, rate_burst=3), jwt_secret=JWT_SECRET)
    client = await aiohttp_client(edge_app)
    statuses = [(await client.get("/x")).status for _ in range(3)]
    limited = await client.get("/x")
    assert statuses == [200, 200, 200]
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    problem = await limited.json()
    assert problem["type"].endswith("/too-many-requests") and problem["retry_after_s"] >= 1


# --- a region down, and back ----------------------------------------------------------------------


async def test_a_region_down_is_503_for_its_users_only_and_it_comes_back_without_an_edge_restart(
    aiohttp_server, aiohttp_client, tmp_path: Path
):
    eu = await aiohttp_server(front(tmp_path / "eu", "eu"))
    us_port = free_port()
    us_url = f"http://127.0.0.1:{us_port}"
    edge_app = create_edge_app(edge_settings(str(eu.make_url("")), us_url), jwt_secret=JWT_SECRET)
    edge = await aiohttp_client(edge_app, cookie_jar=aiohttp.DummyCookieJar())

    body = {"email": new_email(), "password": PASSWORD, "region": "us"}
    down = await edge.post(f"{API}/auth/register", json=body)
    assert down.status == 503, await down.text()
    problem = await down.json()
    assert problem["type"].endswith("/unavailable") and problem["region"] == "us"
    assert down.headers["Retry-After"] == "1"
    ready = await edge.get("/readyz")
    assert ready.status == 503 and "us" in (await ready.json())["detail"]
    # EU users and global reads meet no error meanwhile
    eu_email, _ = await register(edge, "eu")
    assert (await edge.get(f"{API}/me", headers=await bearer(edge, eu_email, region="eu"))).status == 200
    rooms = await edge.get(f"{API}/rooms", headers={"CloudFront-Viewer-Country": "US"})
    assert rooms.status == 200

    us_runner = web.AppRunner(front(tmp_path / "us", "us"))
    await us_runner.setup()
    await web.TCPSite(us_runner, "127.0.0.1", us_port).start()
    try:
        for _ in range(100):  # the poller finds it within a period or two
            if (await edge.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.05)
        assert (await edge.get("/readyz")).status == 200
        again = await edge.post(f"{API}/auth/register", json=body)
        assert again.status == 201, await again.text()
    finally:
        await us_runner.cleanup()


async def test_the_edge_has_its_own_probes_and_metrics(edge):
    assert await (await edge.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await edge.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"] == {"eu": "ok", "us": "ok"}
    await edge.get(f"{API}/rooms")
    text = await (await edge.get("/metrics")).text()
    assert 'roombook_edge_requests_total{reason="global-read",region="eu",status="200"}' in text
    assert "roombook_edge_upstream_seconds_bucket" in text
    assert 'roombook_edge_region_up{region="us"} 1.0' in text
    assert "roombook_http_requests_total" not in text  # the edge's registry only
    json.loads(await (await edge.get("/healthz")).text())


async def test_a_login_the_directory_cannot_place_follows_its_hints(edge):
    email, _ = await register(edge, "us")
    unknown = await edge.post(f"{API}/auth/login", json={"email": new_email(), "password": PASSWORD})
    assert unknown.status == 401  # no account anywhere: the default region says so
    hinted_wrong = await edge.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD, "region": "eu"})
    assert hinted_wrong.status == 200  # the directory outranks a stale hint


async def test_a_global_read_whose_region_refuses_the_connection_is_answered_by_the_other(
    aiohttp_server, aiohttp_client, tmp_path: Path
):
    eu = await aiohttp_server(front(tmp_path / "eu", "eu"))
    us = await aiohttp_server(front(tmp_path / "us", "us"))
    settings = edge_settings(str(eu.make_url("")), str(us.make_url("")), health_every_s=3600)
    edge = await aiohttp_client(create_edge_app(settings, jwt_secret=JWT_SECRET))
    assert (await edge.get("/readyz")).status == 200  # the first poll found both up; the next is an hour away
    await us.close()
    errors = 'roombook_edge_upstream_errors_total{kind="connect",region="us"}'
    before = metric_value(await (await edge.get("/metrics")).text(), errors)
    resp = await edge.get(f"{API}/rooms", headers={"CloudFront-Viewer-Country": "US"})
    assert resp.status == 200  # refused by the US, answered by the EU
    assert metric_value(await (await edge.get("/metrics")).text(), errors) == before + 1
    assert (await edge.get("/readyz")).status == 503  # and the US is known down from then on


def metric_value(text: str, series: str) -> float:
    """A series' value in Prometheus text (the edge's metrics count over the whole test process)."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series + " ")]
    return values[0] if values else 0.0


async def test_behind_the_edge_the_login_throttle_counts_each_viewer_not_the_edge(
    aiohttp_server, aiohttp_client, tmp_path: Path
):
    """The test client plays the CDN: the edge believes its X-Forwarded-For (one hop), and the
    fronts believe two (the CDN's, then the edge's own)."""
    fronts = {}
    for region in ("eu", "us"):
        settings = settings_for(
            tmp_path / region, region=region, directory_dsn=directory_dsn(tmp_path), trusted_proxy_hops=2
        )
        fronts[region] = await aiohttp_server(create_app(settings, auth=auth_settings(), payments=PaymentSettings()))
    settings = edge_settings(str(fronts["eu"].make_url("")), str(fronts["us"].make_url("")), trusted_hops=1)
    edge = await aiohttp_client(create_edge_app(settings, jwt_secret=JWT_SECRET, directory=edge_directory(tmp_path)))
    email, _ = await register(edge, "us")
    wrong = {"email": email, "password": "not the password at all"}
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    statuses = [(await edge.post(f"{API}/auth/login", json=wrong, headers=attacker)).status for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    guest = {"X-Forwarded-For": "198.51.100.7"}
    resp = await edge.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD}, headers=guest)
    assert resp.status == 200, await resp.text()


async def test_with_a_trusted_hop_the_rate_limit_is_per_viewer(aiohttp_server, aiohttp_client):
    upstream = await _recording_upstream(aiohttp_server)
    url = str(upstream.make_url(""))
    settings = edge_settings(url, url, rate_per_s=0.01, rate_burst=2, trusted_hops=1)
    client = await aiohttp_client(create_edge_app(settings, jwt_secret=JWT_SECRET))
    first = [(await client.get("/x", headers={"X-Forwarded-For": "203.0.113.1"})).status for _ in range(3)]
    other = await client.get("/x", headers={"X-Forwarded-For": "203.0.113.2"})
    assert first == [200, 200, 429] and other.status == 200
    seen = await other.json()
    assert seen["headers"]["X-Forwarded-For"] == "203.0.113.2, 127.0.0.1"  # the viewer, then who handed it over


async def test_a_head_request_keeps_the_length_a_get_would_have(recorded):
    get = await recorded.get("/big")
    head = await recorded.head("/big")
    assert head.status == get.status == 200
    assert head.headers["Content-Length"] == str(len(await get.read()))
    assert await head.read() == b""
    small_get, small_head = await recorded.get("/small"), await recorded.head("/small")  # answered in one write
    assert small_head.headers["Content-Length"] == str(len(await small_get.read()))
