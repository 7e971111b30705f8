"""How long a task waits for a MySQL connection: the stores' FairPool against asyncmy's pool alone.

    python -m bench.pool_fairness --tasks 64 --connections 4 --seconds 5 --rounds 2

Every MySQL store takes its connections from `create_pool` (roombook/storage/sql/mysql_db.py),
asyncmy's pool behind a first-come-first-served gate. This runs `--tasks` tasks, each looping
acquire, one short query, release, on a pool of `--connections`, against the same pool without the
gate, on a real MariaDB, alternating the order by round. Prints, per round, the queries answered
per second, the wait for a connection at p50 and its maximum, and the fewest queries any one task
got answered (a task starved for the whole round got none); then the medians side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from bench.databases import DEFAULT_MYSQL_DSN
from bench.latency import percentile
from roombook.storage.sql.mysql_db import create_pool, mysql_target

Acquire = Callable[[], AbstractAsyncContextManager[Any]]


async def one_round(acquire: Acquire, tasks: int, seconds: float) -> tuple[float, list[float], list[int]]:
    """(queries per second, every wait for a connection in seconds, queries answered per task)."""
    waits: list[float] = []
    answered = [0] * tasks
    deadline = time.perf_counter() + seconds

    async def loop(n: int) -> None:
        while time.perf_counter() < deadline:
            asked = time.perf_counter()
            async with acquire() as conn:
                waits.append(time.perf_counter() - asked)
                async with conn.cursor() as cur:
                    await cur.execute("SELECT 1")
                    await cur.fetchone()
                await conn.commit()
            answered[n] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(n) for n in range(tasks)))
    return len(waits) / (time.perf_counter() - started), sorted(waits), answered


async def run(dsn: str, tasks: int, connections: int, seconds: float, rounds: int) -> None:
    pool = await create_pool(mysql_target(dsn), minsize=connections, maxsize=connections)
    ways: dict[str, Acquire] = {"FairPool": pool.acquire, "asyncmy alone": pool.pool.acquire}
    figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name in ways}
    try:
        for r in range(rounds):
            for name in list(ways) if r % 2 == 0 else list(reversed(ways)):
                rate, waits, answered = await one_round(ways[name], tasks, seconds)
                p50, worst = (1000 * percentile(waits, q) for q in (0.5, 1.0))
                figures[name].append((rate, worst, min(answered)))
                print(
                    f"round {r + 1} {name:<13} {rate:7.0f} queries/s  wait p50 {p50:6.1f} ms  max {worst:7.1f} ms  "
                    f"fewest for one task {min(answered)} (most {max(answered)})",
                    flush=True,
                )
    finally:
        pool.close()
        await pool.wait_closed()
    fair, alone = ([statistics.median(f[i] for f in figures[name]) for i in range(3)] for name in ways)
    print(
        f"medians: queries/s FairPool {fair[0]:.0f}, asyncmy alone {alone[0]:.0f} ({fair[0] / alone[0]:.2f}x); "
        f"longest wait {fair[1]:.1f} ms against {alone[1]:.1f} ms; "
        f"fewest queries for one task {fair[2]:.0f} against {alone[2]:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mysql-dsn", default=DEFAULT_MYSQL_DSN)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.mysql_dsn, args.tasks, args.connections, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
