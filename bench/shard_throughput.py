"""Holds and bookings per second through the room shards, with and without group commit, side by side.

    python -m bench.shard_throughput --mysql-dsn mysql://root@127.0.0.1:3306/test --seconds 5

Each setting runs in the same invocation on a fresh database: C concurrent clients each loop
"hold one night, confirm it" on distinct nights of rooms owned by one shard, so every attempt
succeeds and the store sees two changes per booking. Printed: bookings/s, changes/s, store
transactions, changes per transaction, p50/p99 per booking, and the ratios between settings.
Only 127.0.0.1 services are used; every loop stops by itself after --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import tempfile
import time
import uuid

from bench.databases import DEFAULT_MYSQL_DSN, scratch_mysql
from bench.latency import percentile
from bench.local_ray import ray_for_benchmark
from roombook.actors.client import AvailabilityClient, ShardTransport
from roombook.actors.local_runtime import LocalShards
from roombook.actors.shard import GroupCommit
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

RING = ShardRing(1)  # one shard: the figure is what one single writer sustains
DAY = dt.timedelta(days=1)


async def run_clients(client: AvailabilityClient, clients: int, seconds: float) -> tuple[int, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    start = dt.date(2032, 1, 1)

    async def one_client(c: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            room, night = 1 + c, start + n * DAY  # client c alone books room c: no conflicts
            n += 1
            hold_id = f"b{c}-{n}"
            t0 = time.perf_counter()
            await client.place_hold(
                room_id=room, hold_id=hold_id, stay=Stay(check_in=night, check_out=night + DAY), ttl_s=600
            )
            await client.confirm(room_id=room, hold_id=hold_id)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(one_client(c) for c in range(clients)))
    return len(latencies), latencies


async def measure(name: str, runtime: str, dsn: str, group_commit: GroupCommit, clients: int, seconds: float) -> dict:
    async with availability_store(dsn) as store:
        await store.migrate()
        commits_before = sum(lease.commits for lease in await store.leases())
        transport: ShardTransport
        if runtime == "local":
            shards = LocalShards(store, RING, group_commit=group_commit)
            await shards.start()
            transport = shards
        else:
            from roombook.actors.ray_runtime import RayShards

            ray_shards = RayShards(
                store_dsn=dsn,
                ring=RING,
                name_prefix=f"bench-{uuid.uuid4().hex[:6]}",
                group_commit=group_commit,
                direct=runtime == "ray",  # "ray-calls": every command batch is a Ray actor call
            )
            await ray_shards.start()
            transport = ray_shards
        client = AvailabilityClient(transport, RING)
        t0 = time.perf_counter()
        bookings, latencies = await run_clients(client, clients, seconds)
        elapsed = time.perf_counter() - t0
        commits = sum(lease.commits for lease in await store.leases()) - commits_before
        if runtime == "local":
            await shards.stop()
        else:
            await ray_shards.close()
            ray_shards.stop()
    latencies.sort()
    return {
        "name": name,
        "bookings_per_s": bookings / elapsed,
        "changes_per_s": 2 * bookings / elapsed,
        "transactions": commits,
        "changes_per_tx": 2 * bookings / max(commits, 1),
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


async def main(args: argparse.Namespace) -> None:
    settings = [
        ("local+sqlite, group commit", "local", "sqlite", GroupCommit()),
        ("local+sqlite, one tx/change", "local", "sqlite", GroupCommit(enabled=False)),
        ("local+mariadb, group commit", "local", "mysql", GroupCommit()),
        ("local+mariadb, one tx/change", "local", "mysql", GroupCommit(enabled=False)),
    ]
    if not args.no_ray:
        settings += [
            ("ray+mariadb, group commit", "ray", "mysql", GroupCommit()),
            ("ray+mariadb, one tx/change", "ray", "mysql", GroupCommit(enabled=False)),
            ("ray-calls+mariadb, group commit", "ray-calls", "mysql", GroupCommit()),
        ]

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, runtime, kind, gc in settings:
            if kind == "sqlite":
                dsn = f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
                results.append(await measure(name, runtime, dsn, gc, args.clients, args.seconds))
            else:
                async with scratch_mysql(args.mysql_dsn) as dsn:
                    results.append(await measure(name, runtime, dsn, gc, args.clients, args.seconds))
            r = results[-1]
            print(
                f"{r['name']:<33} {r['bookings_per_s']:>9.0f} bookings/s {r['changes_per_s']:>9.0f} changes/s "
                f"{r['transactions']:>7} tx {r['changes_per_tx']:>6.1f} changes/tx "
                f"p50 {r['p50_ms']:>6.1f} ms p99 {r['p99_ms']:>7.1f} ms",
                flush=True,
            )
    by_name = {r["name"]: r for r in results}
    print(f"\n{args.clients} clients, {args.seconds:.0f} s per setting, one shard. Group commit speed-up (same run):")
    for prefix in ("local+sqlite", "local+mariadb", "ray+mariadb"):
        on, off = by_name.get(f"{prefix}, group commit"), by_name.get(f"{prefix}, one tx/change")
        if on and off:
            print(f"  {prefix:<14} {on['bookings_per_s'] / off['bookings_per_s']:>5.1f}x bookings/s")
    if "ray+mariadb, group commit" in by_name:
        ray_on, local_on = by_name["ray+mariadb, group commit"], by_name["local+mariadb, group commit"]
        print(
            f"  ray / in-process (mariadb, group commit): {ray_on['bookings_per_s'] / local_on['bookings_per_s']:.2f}"
        )
        calls_on = by_name["ray-calls+mariadb, group commit"]
        print(
            "  direct socket / Ray calls (mariadb, group commit):"
            f" {ray_on['bookings_per_s'] / calls_on['bookings_per_s']:.2f}x bookings/s"
        )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mysql-dsn", default=DEFAULT_MYSQL_DSN)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-ray", action="store_true", help="only the in-process runtime")
    args = parser.parse_args()
    with contextlib.nullcontext() if args.no_ray else ray_for_benchmark(None, namespace="roombook-bench"):
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
