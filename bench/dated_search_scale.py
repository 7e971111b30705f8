"""A dated search over one city of 100,000 rooms: the first page and a deep page, exact.

    python -m bench.dated_search_scale [--rooms 100000] [--shards 4] [--taken 0.3] [--searches 30] [--runtime local|ray]

One city holds every room (the worst case: every room matches), a share `--taken` of them booked
on some night of the stay. Measured in one run, each search `--searches` times, one at a time:

  exact, page 1      RoomFinder.search: every match from the index in pages, each page checked
  exact, deep page   by the shards in one ReadFreeRooms call per shard (what the API runs)
  per-room reads     what checking every match took before: one ReadCalendar per room (coalesced
                     into calls of 512 commands per shard), timed over all the matches, 3 times
  first 1000 only    what the search did before: the first 1000 matches, one ReadCalendar each
                     (fast, and wrong: `total` counts at most 1000)

Printed: p50, p99 and max per row, and the exact answer's total against the first-1000 answer's.
The shards run in this process over SQLite (`--runtime local`) or as Ray actors reached over their
sockets (`--runtime ray`, a private local Ray).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import decimal
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec

from bench.local_ray import ray_for_benchmark
from roombook.actors.client import AvailabilityClient
from roombook.actors.local_runtime import LocalShards
from roombook.domain.nights import NightStatus
from roombook.domain.rooms import Location, Room
from roombook.domain.search import RoomQuery, SearchSort
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.services.room_search import RoomFinder, catalogue_rooms
from roombook.storage.cache.keys import CacheSettings
from roombook.storage.cache.memory_cache import MemoryCache
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.ports import AvailabilityStore
from roombook.storage.search.memory_search import MemorySearchIndex
from roombook.storage.sql.connect import availability_store

START = dt.date.today() + dt.timedelta(days=30)  # within every room's booking horizon
STAY = Stay(check_in=START, check_out=START + dt.timedelta(days=3))
OLD_CANDIDATE_LIMIT = 1000


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


@contextlib.asynccontextmanager
async def shards_of(
    kind: str, store_dsn: str, store: AvailabilityStore, ring: ShardRing
) -> AsyncIterator[AvailabilityClient]:
    """The shards over the store: in this process, or Ray actors (Ray started by main)."""
    if kind == "local":
        local = LocalShards(store, ring)
        await local.start()
        try:
            yield AvailabilityClient(local, ring)
        finally:
            await local.stop()
        return
    from roombook.actors.ray_runtime import RayShards

    shards = RayShards(store_dsn=store_dsn, ring=ring, name_prefix=f"bench-dated-{uuid.uuid4().hex[:6]}")
    await shards.start()
    try:
        yield AvailabilityClient(shards, ring)
    finally:
        await shards.close()
        shards.stop()


async def run(rooms: int, shard_count: int, taken: float, searches: int, runtime: str) -> None:
    rng = random.Random(3)
    ring = ShardRing(shard_count)
    with tempfile.TemporaryDirectory(prefix="rb-dated-") as tmp:
        dsn = f"sqlite:///{Path(tmp) / 'global.db'}"
        async with availability_store(dsn) as store:
            await store.migrate()
            batch = [
                Room(
                    title=f"Room {i}",
                    location=Location(city="Metropolis", country="FR"),
                    price_per_night=decimal.Decimal(rng.randrange(4000, 40000)) / 100,
                    capacity=rng.randint(1, 6),
                )
                for i in range(rooms)
            ]
            loaded = time.perf_counter()
            for start in range(0, rooms, 10_000):
                await store.add_rooms(batch[start : start + 10_000])
            catalogue = await catalogue_rooms(store)
            ids = [room.id for room in catalogue]
            async with shards_of(runtime, dsn, store, ring) as client:
                booked = rng.sample(ids, int(len(ids) * taken))
                for start in range(0, len(booked), 5_000):
                    chunk = booked[start : start + 5_000]
                    await asyncio.gather(
                        *(client.place_hold(room_id=r, hold_id=f"h{r}", stay=STAY, ttl_s=86_400) for r in chunk)
                    )
                    await asyncio.gather(*(client.confirm(room_id=r, hold_id=f"h{r}") for r in chunk))
                index = MemorySearchIndex()
                await index.reindex(catalogue)
                finder = RoomFinder(
                    index=index,
                    cache=ResilientCache(MemoryCache()),
                    catalogue=store,
                    availability=client,
                    ttls=CacheSettings(),
                    candidate_limit=1000,
                )
                print(
                    f"{rooms} rooms in one city, {len(booked)} booked on the stay's nights, {shard_count} shards"
                    f" ({runtime}); set up in {time.perf_counter() - loaded:.1f} s"
                )
                first = RoomQuery(
                    city="metropolis", check_in=STAY.check_in, check_out=STAY.check_out, sort=SearchSort.PRICE
                )
                free = rooms - len(booked)
                deep = msgspec.structs.replace(first, per_page=100, page=max(1, free // 100 - 1))
                exact = await finder.search(first)
                deep_page = await finder.search(deep)
                assert exact.total == free and len(deep_page.items) == 100, (exact.total, free, len(deep_page.items))

                async def per_room_reads() -> None:
                    async for page in index.candidates(first, page_size=5_000):
                        await asyncio.gather(
                            *(client.calendar(room_id=r, start=STAY.check_in, end=STAY.check_out) for r in page)
                        )

                async def first_thousand() -> int:
                    hits = await index.search(first, candidate_limit=OLD_CANDIDATE_LIMIT)
                    calendars = await asyncio.gather(
                        *(client.calendar(room_id=r, start=STAY.check_in, end=STAY.check_out) for r in hits.room_ids)
                    )
                    return sum(all(n.status is NightStatus.AVAILABLE for n in c) for c in calendars)

                rows = {
                    "exact, page 1": await timed(searches, lambda: finder.search(first)),
                    f"exact, page {deep.page} (of 100)": await timed(searches, lambda: finder.search(deep)),
                    "per-room reads of every match": await timed(3, per_room_reads),
                    "first 1000 only (before)": await timed(searches, first_thousand),
                }
                old_total = await first_thousand()
    print(f"{'':36} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for name, samples in rows.items():
        print(f"{name:36} {statistics.median(samples):9.1f} {percentile(samples, 0.99):9.1f} {max(samples):9.1f}")
    exact_p50 = statistics.median(rows["exact, page 1"])
    per_room_p50 = statistics.median(rows["per-room reads of every match"])
    print(f"total: exact {exact.total}, first 1000 only {old_total}")
    print(f"batched reads against per-room reads of every match: {per_room_p50 / exact_p50:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--taken", type=float, default=0.3)
    parser.add_argument("--searches", type=int, default=30)
    parser.add_argument("--runtime", choices=("local", "ray"), default="local")
    args = parser.parse_args()
    ray = ray_for_benchmark(None, namespace="roombook-bench") if args.runtime == "ray" else contextlib.nullcontext()
    with ray:
        asyncio.run(run(args.rooms, args.shards, args.taken, args.searches, args.runtime))


if __name__ == "__main__":
    main()
