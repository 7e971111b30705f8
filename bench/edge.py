"""What the edge costs: requests/s and latency through `roombook edge` against straight to the
EU front, in the same run, for a read route and the booking route.

    python -m bench.edge [--seconds 5] [--clients 32] [--rounds 2] [--mysql-dsn DSN]

It starts a local two-region deployment (roombook/ops/two_regions.py: its own Ray, an EU and a US
front, the edge; SQLite stores, or fresh MariaDB databases with --mysql-dsn), signs one EU guest
up, then for each round, route and target runs a closed loop of C clients for S seconds from a
separate process (aiohttp, one keep-alive pool): the order of the targets alternates per round
so that a drifting machine favours neither. Routes:

* details: `GET /api/v1/rooms/{id}` over every room (room details, cached by the front: the
  cheapest route a front has, so the edge's own cost shows the most);
* availability: `GET /api/v1/rooms/{id}/availability` for two weeks (asks the room's shard);
* book: `POST /api/v1/bookings`, one night of a (room, night) pair no request used before.

Printed per route and target: requests/s, p50/p99 ms, errors, and the CPU seconds of the load
generator, the edge and the front over the run, at C clients and at one; then the edge's
throughput as a share of the front's at C clients, and what it adds to p50 at one client (no
queue: its own latency) and at C (where a saturated machine adds queueing too). Targets: the
edge keeps at least 75% of the front's throughput and adds at most 2 ms to p50. On a 2-core
machine the load generator, the edge and the front share the cores, so every CPU second the
edge spends is one the front loses: read the CPU columns beside the requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import multiprocessing
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec

from bench.latency import percentile
from bench.process_cpu import cpu_seconds
from roombook.ops.two_regions import TwoRegionDeployment

API = "/api/v1"
PASSWORD = "correct horse battery staple"
ROUTES = ("details", "availability", "book")
TARGETS = ("front", "edge")


class Load(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str
    route: str
    clients: int
    seconds: float
    token: str
    rooms: int
    first: int  # the first (room, night) index this run may book


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    ok: int
    errors: int
    elapsed_s: float
    latencies_ms: list[float]  # sorted
    cpu_s: float  # the load generator's


class Result(msgspec.Struct, frozen=True, kw_only=True):
    route: str
    target: str
    clients: int
    round: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    loadgen_cpu_s: float
    edge_cpu_s: float
    front_cpu_s: float


FROM = dt.date.today() + dt.timedelta(days=30)
TO = FROM + dt.timedelta(days=14)


# The nights booked, from 30 days ahead: within a room's default booking horizon (548 days)
NIGHTS_AHEAD = 500


def booking(index: int, rooms: int) -> dict[str, object]:
    """The index-th (room, night) pair: every room, night after night, from 30 days ahead."""
    check_in = dt.date.today() + dt.timedelta(days=30 + (index // rooms) % NIGHTS_AHEAD)
    return {
        "room_id": 1 + index % rooms,
        "check_in": str(check_in),
        "check_out": str(check_in + dt.timedelta(days=1)),
        "guests": 1,
    }


async def _closed_loop(load: Load) -> Outcome:
    counter = itertools.count(load.first)
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {load.token}"}
    connector = aiohttp.TCPConnector(limit=load.clients)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        deadline = time.perf_counter() + load.seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                n = next(counter)
                started = time.perf_counter()
                room = 1 + n % load.rooms
                if load.route == "details":
                    request = http.get(f"{load.base_url}{API}/rooms/{room}")
                elif load.route == "availability":
                    request = http.get(f"{load.base_url}{API}/rooms/{room}/availability?from={FROM}&to={TO}")
                else:
                    key = {"Idempotency-Key": f"bench-{n}"}
                    request = http.post(
                        f"{load.base_url}{API}/bookings", json=booking(n, load.rooms), headers=headers | key
                    )
                async with request as resp:
                    await resp.read()
                    if resp.status in (200, 201):
                        latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(load.clients)))
        elapsed = time.perf_counter() - started
    return Outcome(
        ok=len(latencies), errors=errors, elapsed_s=elapsed, latencies_ms=sorted(latencies), cpu_s=time.process_time()
    )


def _load_process(raw: bytes) -> bytes:
    return msgspec.msgpack.encode(asyncio.run(_closed_loop(msgspec.msgpack.decode(raw, type=Load))))


def run_load(load: Load) -> Outcome:
    """The closed loop in a process of its own, so it shares no event loop or GIL with anything."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return msgspec.msgpack.decode(pool.apply(_load_process, (msgspec.msgpack.encode(load),)), type=Outcome)


async def sign_up(edge_url: str) -> str:
    """An EU guest's access token (registered through the edge, as a guest would)."""
    email = f"bench-{secrets.token_hex(4)}@example.com"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        body = {"email": email, "password": PASSWORD, "region": "eu"}
        async with http.post(f"{edge_url}{API}/auth/register", json=body) as resp:
            assert resp.status == 201, await resp.text()
        async with http.post(f"{edge_url}{API}/auth/login", json={"email": email, "password": PASSWORD}) as resp:
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["access_token"])


def measure(deployment: TwoRegionDeployment, *, seconds: float, clients: int, rounds: int, rooms: int) -> list[Result]:
    """Every round of every route against both targets, the order of the targets alternating:
    at `clients` (throughput) and at one client (the latency the edge adds, with no queue)."""
    token = asyncio.run(sign_up(deployment.url("edge")))
    pids = {name: proc.pid for name, proc in deployment.processes.items()}
    # each booking run books from its own range of (room, night) pairs: its share of the nights
    # within the rooms' horizon (a run that books more than its share meets its own bookings: 409s)
    runs = rounds * len(dict.fromkeys((clients, 1))) * len(TARGETS)
    used = itertools.count(0, rooms * (NIGHTS_AHEAD // runs))
    results = []
    for n in range(rounds):
        for route in ROUTES:
            for concurrency in dict.fromkeys((clients, 1)):
                for target in TARGETS if n % 2 == 0 else TARGETS[::-1]:
                    url = deployment.url("edge" if target == "edge" else "eu")
                    load = Load(
                        base_url=url,
                        route=route,
                        clients=concurrency,
                        seconds=seconds,
                        token=token,
                        rooms=rooms,
                        first=next(used) if route == "book" else 0,
                    )
                    before = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
                    outcome = run_load(load)
                    after = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
                    results.append(
                        Result(
                            route=route,
                            target=target,
                            clients=concurrency,
                            round=n,
                            requests_per_s=outcome.ok / outcome.elapsed_s,
                            p50_ms=percentile(outcome.latencies_ms, 0.50),
                            p99_ms=percentile(outcome.latencies_ms, 0.99),
                            errors=outcome.errors,
                            loadgen_cpu_s=outcome.cpu_s,
                            edge_cpu_s=after["edge"] - before["edge"],
                            front_cpu_s=after["eu"] - before["eu"],
                        )
                    )
    return results


def report(results: list[Result]) -> str:
    lines = [
        "| route | target | clients | round | req/s | p50 ms | p99 ms | errors | loadgen CPU s | edge CPU s |"
        " front CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.route} | {r.target} | {r.clients} | {r.round} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} | {r.loadgen_cpu_s:.1f} | {r.edge_cpu_s:.1f} | {r.front_cpu_s:.1f} |"
        )
    lines.append("")
    most = max(r.clients for r in results)
    for route in ROUTES:
        ratio = mean(results, route, "edge", most, "requests_per_s") / mean(
            results, route, "front", most, "requests_per_s"
        )
        added = mean(results, route, "edge", 1, "p50_ms") - mean(results, route, "front", 1, "p50_ms")
        added_loaded = mean(results, route, "edge", most, "p50_ms") - mean(results, route, "front", most, "p50_ms")
        verdict = "within" if ratio >= 0.75 and added <= 2.0 else "OUTSIDE"
        lines.append(
            f"{route}: through the edge {ratio:.0%} of the front's requests/s at {most} clients; p50 {added:+.2f} ms "
            f"at 1 client, {added_loaded:+.2f} ms at {most} ({verdict} the targets: >= 75%, <= +2 ms)"
        )
    return "\n".join(lines)


def mean(results: list[Result], route: str, target: str, clients: int, field: str) -> float:
    values = [getattr(r, field) for r in results if (r.route, r.target, r.clients) == (route, target, clients)]
    return sum(values) / len(values)


@contextlib.contextmanager
def local_deployment(data_dir: Path, *, mysql_dsn: str | None, seed_rooms: int) -> Iterator[TwoRegionDeployment]:
    with contextlib.ExitStack() as stack:
        dsns = None
        if mysql_dsn:
            from bench.databases import fresh_mysql
            from roombook.storage.sql.mysql_db import drop_database, mysql_target

            dsns = {name: asyncio.run(fresh_mysql(mysql_dsn, f"rb_edge_{name}")) for name in ("global", "eu", "us")}
            for dsn in dsns.values():
                stack.callback(asyncio.run, drop_database(mysql_target(dsn)))
        deployment = TwoRegionDeployment(
            data_dir, dsns=dsns, seed_rooms=seed_rooms, edge_env={"ROOMBOOK_EDGE_RATE_BURST": "1000000"}
        )
        stack.enter_context(deployment)
        yield deployment


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per run (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every run (default: %(default)s)")
    parser.add_argument("--rooms", type=int, default=200, help="rooms seeded and used (default: %(default)s)")
    parser.add_argument("--mysql-dsn", help="fresh MariaDB databases on this server instead of SQLite files")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="rb-bench-edge-") as tmp,
        local_deployment(Path(tmp), mysql_dsn=args.mysql_dsn, seed_rooms=args.rooms) as deployment,
    ):
        results = measure(deployment, seconds=args.seconds, clients=args.clients, rounds=args.rounds, rooms=args.rooms)
    print(report(results))


if __name__ == "__main__":
    main()
