"""What the per-request JSON log line costs, side by side in one run.

    python -m bench.request_log --seconds 5 --clients 32 --rounds 2

Serves the real app (embedded stack, in-process shards) on loopback and drives `GET /healthz` from
`--clients` concurrent aiohttp clients in this same process for `--seconds`, twice per round: with
the `roombook.access` line written as JSON to /dev/null (what a container does), and with that logger
turned off. The order alternates by round. Also prints the cost of formatting and scrubbing one
access record alone (µs). Prints requests/s per run and the ratio off / on of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from typing import IO

import aiohttp
from aiohttp import web

from roombook.config import Settings
from roombook.http.app import create_app
from roombook.logs import ACCESS_LOGGER, configure_logging
from roombook.services.accounts import AuthSettings


async def drive(base: str, clients: int, seconds: float) -> float:
    """Requests per second answered 200 by `clients` looping clients for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.get(base + "/healthz") as resp:
                await resp.read()
                done += resp.status == 200

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return done / (time.perf_counter() - started)


def record_cost_us(handler: logging.Handler, repeat: int = 20_000) -> float:
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "%s %s %d %.1fms", None, None)
    record.args = ("GET", "/api/v1/rooms/{room_id}", 200, 1.2)
    for key, value in {"method": "GET", "route": "/api/v1/rooms/{room_id}", "status": 200}.items():
        setattr(record, key, value)
    record.request_id, record.duration_ms, record.user_id = "req_0123456789abcdef01234567", 1.2, "42"
    started = time.perf_counter()
    for _ in range(repeat):
        handler.format(record)
    return (time.perf_counter() - started) / repeat * 1e6


async def run(args: argparse.Namespace, sink: IO[str]) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        handler = configure_logging("json", stream=sink)
        settings = Settings(data_dir=data_dir, runtime="local", shards=2, jwt_secret="b" * 40)
        auth = AuthSettings(jwt_secret="b" * 40, argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
        runner = web.AppRunner(create_app(settings, auth=auth), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        access = logging.getLogger(ACCESS_LOGGER)
        results: dict[str, list[float]] = {"on": [], "off": []}
        try:
            await drive(base, args.clients, 1.0)  # warm-up
            for round_ in range(args.rounds):
                for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                    access.disabled = mode == "off"
                    rate = await drive(base, args.clients, args.seconds)
                    results[mode].append(rate)
                    print(f"round {round_ + 1} access log {mode:>3}: {rate:8.0f} requests/s", flush=True)
        finally:
            access.disabled = False
            await runner.cleanup()
        on, off = statistics.median(results["on"]), statistics.median(results["off"])
        print(f"median: on {on:.0f}/s, off {off:.0f}/s, off/on {off / on:.3f}")
        print(f"one access record formatted as JSON and scrubbed: {record_cost_us(handler):.1f} us")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    with open(os.devnull, "w") as sink:  # what the lines cost to make, not to store
        asyncio.run(run(parser.parse_args(argv), sink))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
