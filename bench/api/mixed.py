"""The mixed profile against A (`roombook serve` on MariaDB and Ray), and GET /healthz on the same
server with the same driver: the share of the front's own ceiling the API's real mix reaches.

Out of 100 requests (bench/locustfile.py's Mixed): search 50 (city or country, dates 80%, guests,
price range, amenities, sort, page 1-3), a room 25, its calendar for 2-8 weeks 15, one's own
bookings 5, book 4, book and cancel 1. Stays start within 60 days. Each user loops for the
given seconds; then as many users loop GET /healthz as long.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.api.rounds import ACCOUNTS, API, _session, sign_up, token_codec
from bench.api.servers import catalogue_settled, roombook_server
from bench.databases import scratch_mysql
from bench.latency import percentile
from bench.process_cpu import CpuMeter

ROOMS = 1000
# bench/locustfile.py's (importing it would patch the standard library: it imports gevent)
CITIES = ("Paris", "Lyon", "Berlin", "Munich", "Amsterdam", "Rome", "Madrid", "Barcelona", "Lisbon", "Dublin",
          "New York", "Boston", "Chicago", "San Francisco", "Seattle", "Austin", "Toronto", "Vancouver")  # fmt: skip
COUNTRIES = ("FR", "DE", "IT", "ES", "NL", "US", "CA")
AMENITIES = ("wifi", "kitchen", "workspace", "balcony", "air_conditioning", "parking", "breakfast", "pool")
SORTS = ("id", "price", "-price", "capacity")
WEIGHTS = {"search": 50, "room": 25, "calendar": 15, "own bookings": 5, "book": 4, "book+cancel": 1}


async def run_mixed(base_dsn: str, *, users: int, seconds: float, out: Path) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    async with (
        scratch_mysql(base_dsn, prefix="rb_api_mg") as global_dsn,
        scratch_mysql(base_dsn, prefix="rb_api_me") as eu_dsn,
        scratch_mysql(base_dsn, prefix="rb_api_mu") as us_dsn,
    ):
        dsns = {"global": global_dsn, "eu": eu_dsn, "us": us_dsn}
        with roombook_server(
            dsns, jwt_secret=secret, rooms=ROOMS, shards=4, workers=1, out=out, extra_env={}
        ) as server:
            await catalogue_settled(global_dsn)
            async with _session(users) as session:
                tokens = await sign_up(session, server.url, ACCOUNTS, token_codec(secret))
                headers = [{"Authorization": f"Bearer {token}"} for _, token in tokens]
                meter = CpuMeter({})
                meter.start()
                mixed = await _loop(session, server.url, users, seconds, headers, mixed=True)
                mixed_cpu = meter.stop()
                meter.start()
                healthz = await _loop(session, server.url, users, seconds, headers, mixed=False)
                healthz_cpu = meter.stop()
    mixed_wall, healthz_wall = mixed_cpu["wall"] or 1e-9, healthz_cpu["wall"] or 1e-9
    mixed_rps = sum(len(v[0]) for v in mixed.values()) / mixed_wall
    healthz_rps = sum(len(v[0]) for v in healthz.values()) / healthz_wall
    return {
        "users": users,
        "mixed_rps": mixed_rps,
        "healthz_rps": healthz_rps,
        "share": mixed_rps / healthz_rps if healthz_rps else 0.0,
        "driver_cores": (mixed_cpu["client"] or 0.0) / mixed_wall,
        "healthz_driver_cores": (healthz_cpu["client"] or 0.0) / healthz_wall,
        "routes": {route: _stats(times, errors) for route, (times, errors) in {**mixed, **healthz}.items()},
    }


def _stats(times: list[float], errors: int) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "requests": len(ordered),
        "errors": errors,
        "p50_ms": 1000 * percentile(ordered, 0.5),
        "p99_ms": 1000 * percentile(ordered, 0.99),
    }


async def _loop(
    session: aiohttp.ClientSession, url: str, users: int, seconds: float, headers: list[dict[str, str]], *, mixed: bool
) -> dict[str, tuple[list[float], int]]:
    """route -> (latencies of its answered requests, its errors: no answer or a 5xx)."""
    seen: dict[str, tuple[list[float], int]] = {}
    deadline = time.perf_counter() + seconds
    names, weights = list(WEIGHTS), list(WEIGHTS.values())

    async def get(
        route: str, path: str, params: dict[str, Any] | None = None, auth: dict[str, str] | None = None
    ) -> Any:
        times, errors = seen.setdefault(route, ([], 0))
        t0 = time.perf_counter()
        try:
            async with session.get(url + path, params=params, headers=auth) as resp:
                await resp.read()
                failed = resp.status >= 500
        except (aiohttp.ClientError, TimeoutError):
            failed = True
        times.append(time.perf_counter() - t0)
        if failed:
            seen[route] = (times, errors + 1)

    async def post(route: str, path: str, body: dict[str, Any] | None, auth: dict[str, str]) -> dict[str, Any] | None:
        times, errors = seen.setdefault(route, ([], 0))
        t0 = time.perf_counter()
        answer = None
        try:
            async with session.post(url + path, json=body, headers=auth) as resp:
                if resp.status in (200, 201):
                    answer = await resp.json()
                else:
                    await resp.read()
                failed = resp.status >= 500
        except (aiohttp.ClientError, TimeoutError):
            failed = True
        times.append(time.perf_counter() - t0)
        if failed:
            seen[route] = (times, errors + 1)
        return answer

    def stay(rng: random.Random) -> tuple[str, str]:
        check_in = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1 + rng.randrange(60))
        return str(check_in), str(check_in + dt.timedelta(days=rng.randint(1, 4)))

    async def user(i: int) -> None:
        rng = random.Random(i)
        auth = headers[i % len(headers)]
        while time.perf_counter() < deadline:
            if not mixed:
                await get("GET /healthz", "/healthz")
                continue
            match rng.choices(names, weights)[0]:
                case "search":
                    params: dict[str, Any] = {"sort": rng.choice(SORTS), "page": rng.choice((1, 1, 1, 2, 3))}
                    params |= {"city": rng.choice(CITIES)} if rng.random() < 0.7 else {"country": rng.choice(COUNTRIES)}
                    if rng.random() < 0.8:
                        params["check_in"], params["check_out"] = stay(rng)
                    if rng.random() < 0.6:
                        params["guests"] = rng.randint(1, 4)
                    if rng.random() < 0.5:
                        low = rng.choice((0, 50, 100))
                        params |= {"min_price": low, "max_price": low + rng.choice((100, 200, 400))}
                    if rng.random() < 0.4:
                        params["amenities"] = ",".join(rng.sample(AMENITIES, rng.randint(1, 2)))
                    await get("GET /rooms", f"{API}/rooms", params)
                case "room":
                    await get("GET /rooms/{id}", f"{API}/rooms/{rng.randint(1, ROOMS)}")
                case "calendar":
                    start = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=rng.randrange(60))
                    end = start + dt.timedelta(weeks=rng.randint(2, 8))
                    await get(
                        "GET /rooms/{id}/availability",
                        f"{API}/rooms/{rng.randint(1, ROOMS)}/availability",
                        {"from": str(start), "to": str(end)},
                    )
                case "own bookings":
                    await get("GET /bookings", f"{API}/bookings", {"per_page": 20}, auth)
                case choice:
                    check_in, check_out = stay(rng)
                    body = {"room_id": rng.randint(1, ROOMS), "check_in": check_in, "check_out": check_out, "guests": 1}
                    booked = await post(
                        "POST /bookings", f"{API}/bookings", body, auth | {"Idempotency-Key": str(uuid.uuid4())}
                    )
                    if choice == "book+cancel" and booked is not None:
                        await post(
                            "POST /bookings/{id}/cancel", f"{API}/bookings/{booked['booking']['id']}/cancel", None, auth
                        )

    await asyncio.gather(*(user(i) for i in range(users)))
    return seen
