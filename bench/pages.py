"""The web pages against the JSON API they are built on: requests/s, p50/p99 and server CPU per
request, for the server-rendered room page against GET /api/v1/rooms/{id} and the search page
against GET /api/v1/rooms, measured in the same run on the same server.

    python -m bench.pages [--seconds 5] [--rounds 2] [--connections 32] [--rooms 200] [--host URL]

Without --host it starts `roombook serve` (in-process shards, embedded stores, memory cache) on a
free loopback port with demo rooms, and ends it by its PID afterwards. Every URL is requested once
before it is measured, so both sides answer from the warm cache (`room:{id}:details`, the search
pages). The targets take turns, round after round, so a change in the machine's load falls on
all of them alike. The client is this process (aiohttp, a closed loop of --connections requests in
flight), on the same machine: the printed CPU shows which side was the bottleneck. Server CPU per
request is the fairest comparison when the client is saturated. The target: a cached room page
serves at least half the JSON room endpoint's requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from bench.latency import percentile
from bench.process_cpu import CpuMeter

READY_TIMEOUT_S = 120.0
ROOM_IDS = 50  # distinct rooms requested, all cached after the warm-up
CITIES = ("paris", "berlin", "new york", "lisbon", "rome", "toronto")
ROOM_PAGE_TARGET = 0.5  # a cached room page at >= 50% of the JSON room endpoint's requests/s


def targets() -> dict[str, list[str]]:
    rooms = range(1, ROOM_IDS + 1)
    searches = [f"city={city.replace(' ', '+')}&per_page=20" for city in CITIES]
    return {
        "json room": [f"/api/v1/rooms/{i}" for i in rooms],
        "room page": [f"/rooms/{i}" for i in rooms],
        "json search": [f"/api/v1/rooms?{q}" for q in searches],
        "search page": [f"/search?{q}" for q in searches],
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(rooms: int) -> Iterator[tuple[str, int]]:
    """`roombook serve` in a temporary data dir; yields (base URL, pid)."""
    with tempfile.TemporaryDirectory(prefix="rb-bench-pages-") as data:
        port = free_port()
        command = [sys.executable, "-m", "roombook", "serve", "--data-dir", data, "--runtime", "local"]
        command += ["--shards", "2", "--host", "127.0.0.1", "--port", str(port), "--seed-rooms", str(rooms)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
        with Path(data, "serve.log").open("w") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                yield _wait_ready(proc, f"http://127.0.0.1:{port}", Path(data, "serve.log")), proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_ready(proc: subprocess.Popen, base: str, log: Path) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise SystemExit("roombook serve exited:\n" + log.read_text())
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2).close()
            return base
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing answered at {base}") from None
            time.sleep(0.2)


async def hammer(session: aiohttp.ClientSession, base: str, paths: list[str], seconds: float, connections: int):
    """A closed loop of `connections` workers for `seconds`: (latencies in ms, errors)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    cycle = itertools.cycle(paths)

    async def worker() -> None:
        nonlocal errors
        while (started := time.perf_counter()) < deadline:
            async with session.get(base + next(cycle)) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, errors


async def measure(base: str, server_pid: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    plan = targets()
    totals: dict[str, dict[str, float]] = {
        name: {"requests": 0, "errors": 0, "wall": 0.0, "server": 0.0, "client": 0.0} for name in plan
    }
    latencies: dict[str, list[float]] = {name: [] for name in plan}
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        for paths in plan.values():  # warm every cache the pages and the API read
            for path in paths:
                async with session.get(base + path) as response:
                    assert response.status == 200, (path, response.status)
                    await response.read()
        for _ in range(args.rounds):
            for name, paths in plan.items():
                meter = CpuMeter({"server": [server_pid]})
                meter.start()
                times, errors = await hammer(session, base, paths, args.seconds, args.connections)
                cpu = meter.stop()
                row = totals[name]
                row["requests"] += len(times)
                row["errors"] += errors
                row["wall"] += cpu["wall"] or 0.0
                row["server"] += cpu["server"] or 0.0
                row["client"] += cpu["client"] or 0.0
                latencies[name] += times
    results = {}
    for name, row in totals.items():
        times = sorted(latencies[name])
        results[name] = {
            "requests": row["requests"],
            "errors": row["errors"],
            "rps": row["requests"] / row["wall"],
            "p50_ms": percentile(times, 0.5),
            "p99_ms": percentile(times, 0.99),
            "server_us_per_request": 1e6 * row["server"] / max(1, row["requests"]),
            "server_cores": row["server"] / row["wall"],
            "client_cores": row["client"] / row["wall"],
        }
    return results


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> dict[str, float]:
    print(
        f"\n{'target':<12} {'requests':>9} {'errors':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'server us/req':>13} {'server cores':>12} {'client cores':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:<12} {r['requests']:>9.0f} {r['errors']:>6.0f} {r['rps']:>8.0f} {r['p50_ms']:>7.1f} "
            f"{r['p99_ms']:>7.1f} {r['server_us_per_request']:>13.0f} {r['server_cores']:>12.2f} "
            f"{r['client_cores']:>12.2f}"
        )
    ratios = {
        "room page / json room (req/s)": results["room page"]["rps"] / results["json room"]["rps"],
        "search page / json search (req/s)": results["search page"]["rps"] / results["json search"]["rps"],
        "json room / room page (server CPU per request)": (
            results["json room"]["server_us_per_request"] / results["room page"]["server_us_per_request"]
        ),
    }
    print()
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    met = ratios["room page / json room (req/s)"] >= ROOM_PAGE_TARGET
    print(
        f"target (room page >= {ROOM_PAGE_TARGET:.0%} of the JSON room endpoint's req/s): {'met' if met else 'NOT met'}"
    )
    print(
        f"{args.rounds} round(s) of {args.seconds:g} s per target, {args.connections} connections, "
        f"{os.cpu_count()} cores shared by the client and the server"
    )
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32, help="requests in flight")
    parser.add_argument("--rooms", type=int, default=200, help="demo rooms of the server it starts")
    parser.add_argument("--host", help="an already running server (its CPU is then not measured)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.host:
        results = asyncio.run(measure(args.host.rstrip("/"), -1, args))
    else:
        with served(args.rooms) as (base, pid):
            results = asyncio.run(measure(base, pid, args))
    ratios = report(results, args)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
