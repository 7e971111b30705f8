"""What a search with dates costs the RoomFinder itself, with a warm cache.

    python -m bench.dated_search [--rooms 5000] [--queries 400] [--seed 1]

Demo rooms in the embedded index and cache; every room free (an in-process calendar stands in
for the shards, so this is the finder's own work: the index's candidates, room details and
calendars from the cache, the stay rules and prices of each candidate). One pass warms the cache,
then the same seeded queries run one after another: a city and a 1-7 night stay, half of them
sorted by price and a third with a max_price. Printed: p50, p99, mean candidates and results.
The same file runs against another checkout with PYTHONPATH=<checkout> (it uses only the
RoomFinder's constructor and search, which both have), for a side-by-side comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import decimal
import gc
import random
import statistics
import time

import msgspec

from roombook.domain.commands import NightView
from roombook.domain.nights import NightStatus
from roombook.domain.rooms import Room
from roombook.domain.search import RoomQuery, SearchSort
from roombook.ops.demo_catalogue import demo_rooms
from roombook.services.room_search import RoomFinder
from roombook.storage.cache.keys import CacheSettings
from roombook.storage.cache.memory_cache import MemoryCache
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.search.memory_search import MemorySearchIndex


class _Catalogue:
    def __init__(self, rooms: list[Room]) -> None:
        self._rooms = {room.id: room for room in rooms}

    async def room(self, room_id: int) -> Room | None:
        return self._rooms.get(room_id)


class _AllFree:
    async def free_rooms(self, room_ids: list[int], *, start: dt.date, end: dt.date) -> list[int]:
        return list(room_ids)

    async def calendar(self, *, room_id: int, start: dt.date, end: dt.date) -> list[NightView]:
        days = (end - start).days
        return [NightView(date=start + dt.timedelta(days=i), status=NightStatus.AVAILABLE) for i in range(days)]


def queries(rooms: list[Room], count: int, seed: int) -> list[RoomQuery]:
    rng = random.Random(seed)
    cities = sorted({room.location.city for room in rooms})
    start = dt.date.today() + dt.timedelta(days=30)
    made = []
    for n in range(count):
        check_in = start + dt.timedelta(days=rng.randrange(200))
        made.append(
            RoomQuery(
                city=rng.choice(cities),
                check_in=check_in,
                check_out=check_in + dt.timedelta(days=rng.randint(1, 7)),
                sort=SearchSort.PRICE if n % 2 else None,
                max_price=decimal.Decimal(rng.randrange(80, 400)) if n % 3 == 0 else None,
            )
        )
    return made


async def run(room_count: int, query_count: int, seed: int, *, freeze: bool) -> None:
    rooms = [msgspec.structs.replace(room, id=n + 1) for n, room in enumerate(demo_rooms(room_count))]
    index = MemorySearchIndex()
    await index.reindex(rooms)
    finder = RoomFinder(
        index=index,
        cache=ResilientCache(MemoryCache()),
        catalogue=_Catalogue(rooms),  # type: ignore[arg-type]
        availability=_AllFree(),  # type: ignore[arg-type]
        ttls=CacheSettings(),
        candidate_limit=1000,
    )
    asked = queries(rooms, query_count, seed)
    for query in asked:  # warm: room details and calendars cached
        await finder.search(query)
    if freeze:  # as a server does after its start (ROOMBOOK_GC_FREEZE): collections skip the warm heap
        gc.freeze()
    latencies, totals = [], []
    for query in asked:
        started = time.perf_counter()
        page = await finder.search(query)
        latencies.append((time.perf_counter() - started) * 1000)
        totals.append(page.total)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"rooms={room_count} queries={query_count} p50={statistics.median(latencies):.2f}ms p99={p99:.2f}ms"
        f" mean_total={statistics.fmean(totals):.1f} gc_freeze={freeze}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gc-freeze", action="store_true", help="freeze the warm heap out of the GC first")
    args = parser.parse_args()
    asyncio.run(run(args.rooms, args.queries, args.seed, freeze=args.gc_freeze))


if __name__ == "__main__":
    main()
