"""What a shard's start costs in reading the availability store: every shard's load, side by side
with the full-table scan each shard used to do.

    python -m bench.shard_start [--rooms 2000] [--nights 365] [--shards 4,16] [--stores sqlite,mysql]
                                [--mysql-dsn mysql://root@127.0.0.1:3306/test]

A shard that starts (or restarts after a crash) rebuilds its calendar from the store with
`load_nights(ring, shard_id)`: the stored room ids (a loose index scan), then its own rooms' nights
by primary key. Until then every shard read the whole table and kept its rooms' rows, so S shards
starting read the table S times. Both run here on the same table, one after the other, for every
shard of each ring: `full scan` is that earlier code, kept in this file as it was. Printed per store
and ring size: rows in the table, the rows one shard loads, the median time of one shard's load
each way and the ratio, and the time for all S shards to load. Each store is a fresh one (SQLite in
a temp dir, a scratch MariaDB database) filled with `--rooms` x `--nights` booked rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

from asyncmy.cursors import SSCursor

from bench.databases import DEFAULT_MYSQL_DSN, scratch_mysql
from roombook.domain.nights import Night, NightStatus
from roombook.routing.ring import ShardRing
from roombook.storage.ports import AvailabilityStore
from roombook.storage.sql import mysql_availability, sqlite_availability
from roombook.storage.sql.availability_schema import NIGHT_COLUMNS
from roombook.storage.sql.connect import availability_store

FIRST = dt.date(2031, 1, 1)
DAY = dt.timedelta(days=1)
FILL_BATCH = 20_000


async def full_scan(store: AvailabilityStore, ring: ShardRing, shard_id: int) -> list[Night]:
    """A shard's load before the loose index scan: read every row, keep the shard's rooms' rows."""
    owned: dict[int, bool] = {}  # a room has many nights: hash each room once
    nights: list[Night] = []
    if isinstance(store, mysql_availability.MysqlAvailabilityStore):
        async with store._transaction(SSCursor) as cur:
            await cur.execute(f"SELECT {NIGHT_COLUMNS} FROM availability")
            while rows := await cur.fetchmany(10_000):
                _keep_owned(rows, ring, shard_id, mysql_availability._night, owned, nights)
        return nights
    assert isinstance(store, sqlite_availability.SqliteAvailabilityStore)

    def load() -> list[Night]:
        rows = store._db.conn.execute(f"SELECT {NIGHT_COLUMNS} FROM availability")
        _keep_owned(rows, ring, shard_id, sqlite_availability._night, owned, nights)
        return nights

    return await store._db.run(load)


def _keep_owned(
    rows: Iterable[tuple],
    ring: ShardRing,
    shard_id: int,
    decode: Callable[[tuple], Night],
    owned: dict[int, bool],
    nights: list[Night],
) -> None:
    for row in rows:
        room_id = row[0]
        if room_id not in owned:
            owned[room_id] = ring.shard_of(room_id) == shard_id
        if owned[room_id]:
            nights.append(decode(row))


async def fill(store: AvailabilityStore, rooms: int, nights: int) -> int:
    """rooms x nights booked rows, written by the shards of a ring of one (each row version 1)."""
    epoch = await store.acquire_shard(0, "bench.shard_start")
    rows = (
        Night(room_id=room, date=FIRST + DAY * d, status=NightStatus.BOOKED, holder=f"b{room}-{d // 5}", version=1)
        for room in range(1, rooms + 1)
        for d in range(nights)
    )
    batch: list[Night] = []
    written = 0
    for row in rows:
        batch.append(row)
        if len(batch) == FILL_BATCH:
            await store.write_nights(0, epoch, batch)
            written += len(batch)
            batch = []
    if batch:
        await store.write_nights(0, epoch, batch)
        written += len(batch)
    return written


async def _timed(load: Awaitable[list[Night]]) -> tuple[float, int]:
    started = time.perf_counter()
    nights = await load
    return time.perf_counter() - started, len(nights)


@contextlib.asynccontextmanager
async def _store(kind: str, mysql_dsn: str) -> AsyncIterator[AvailabilityStore]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="rb-shard-start-") as tmp:
            async with availability_store(f"sqlite:///{Path(tmp) / 'global.db'}") as store:
                await store.migrate()
                yield store
        return
    async with scratch_mysql(mysql_dsn, prefix="rb_shard_start") as dsn, availability_store(dsn) as store:
        await store.migrate()
        yield store


async def run(args: argparse.Namespace) -> list[dict]:
    results = []
    for kind in args.stores:
        async with _store(kind, args.mysql_dsn) as store:
            started = time.perf_counter()
            total = await fill(store, args.rooms, args.nights)
            print(
                f"{kind}: {total:,} rows ({args.rooms:,} rooms x {args.nights} nights) written in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            for shard_count in args.shards:
                ring = ShardRing(shard_count)
                new, old, rows = [], [], []
                for shard_id in range(shard_count):  # alternate, so drift in the machine hits both
                    new_s, loaded = await _timed(store.load_nights(ring, shard_id))
                    old_s, scanned = await _timed(full_scan(store, ring, shard_id))
                    if loaded != scanned:
                        raise AssertionError(f"shard {shard_id}: load_nights {loaded} rows, full scan {scanned}")
                    new.append(new_s)
                    old.append(old_s)
                    rows.append(loaded)
                results.append(
                    {
                        "store": kind,
                        "shards": shard_count,
                        "table_rows": total,
                        "shard_rows": statistics.median(rows),
                        "load_ms": statistics.median(new) * 1000,
                        "full_scan_ms": statistics.median(old) * 1000,
                        "all_shards_load_s": sum(new),
                        "all_shards_full_scan_s": sum(old),
                    }
                )
                print(_row(results[-1]), flush=True)
    return results


HEADER = (
    f"{'store':<7} {'S':>3} {'table rows':>11} {'shard rows':>11} {'load ms':>9} {'full scan ms':>13} "
    f"{'ratio':>6} {'all S: load s':>14} {'full scan s':>12}"
)


def _row(r: dict) -> str:
    return (
        f"{r['store']:<7} {r['shards']:>3} {r['table_rows']:>11,} {r['shard_rows']:>11,.0f} {r['load_ms']:>9.0f} "
        f"{r['full_scan_ms']:>13.0f} {r['full_scan_ms'] / r['load_ms']:>5.1f}x {r['all_shards_load_s']:>14.2f} "
        f"{r['all_shards_full_scan_s']:>12.2f}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--nights", type=int, default=365)
    parser.add_argument("--shards", default="4,16", help="ring sizes, comma-separated")
    parser.add_argument("--stores", default="sqlite,mysql", help="sqlite, mysql or both")
    parser.add_argument("--mysql-dsn", default=DEFAULT_MYSQL_DSN, help="server for the scratch database")
    args = parser.parse_args(argv)
    args.shards = [int(s) for s in args.shards.split(",") if s]
    args.stores = [s for s in args.stores.split(",") if s]
    if any(s < 2 for s in args.shards):
        parser.error("--shards: ring sizes of 2 or more (a ring of one reads the whole table either way)")
    if set(args.stores) - {"sqlite", "mysql"}:
        parser.error("--stores: sqlite and/or mysql")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(HEADER)
    results = asyncio.run(run(args))
    print()
    print(HEADER)
    for r in results:
        print(_row(r))
    print("\nratio: one shard's full scan over its load_nights (medians over the ring's shards)")


if __name__ == "__main__":
    main()
