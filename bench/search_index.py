"""The embedded search index on 100,000 demo rooms: build time, then latency per query type.

    python -m bench.search_index [--rooms 100000] [--queries 300] [--seed 1]

Every query comes from one seeded random.Random, drawn from the rooms themselves (cities and
their centres, words of real titles), so two runs ask the same questions. The queries of a type
run one after another: an embedded search never awaits, so this is its latency with nothing
else on the loop, page 1 of 20. Printed: build time, resident memory, and per type p50, p99 and
max latency and the mean number of matches.
"""

from __future__ import annotations

import argparse
import asyncio
import decimal
import random
import resource
import statistics
import time
from collections.abc import Callable

import msgspec

from roombook.domain.rooms import Room
from roombook.domain.search import RoomQuery, SearchSort, tokenize
from roombook.ops.demo_catalogue import AMENITIES, demo_rooms
from roombook.storage.search.memory_search import MemorySearchIndex

QueryMaker = Callable[[random.Random], RoomQuery]
_SORTS = (SearchSort.PRICE, SearchSort.PRICE_DESC, SearchSort.CAPACITY, SearchSort.CAPACITY_DESC, SearchSort.DISTANCE)


def query_makers(rooms: list[Room]) -> dict[str, QueryMaker]:
    cities: dict[str, list[Room]] = {}
    for room in rooms:
        cities.setdefault(room.location.city, []).append(room)
    centres = {
        name: (statistics.fmean(r.location.lat for r in rs), statistics.fmean(r.location.lon for r in rs))
        for name, rs in cities.items()
    }
    names = sorted(cities)

    def text(rng: random.Random) -> RoomQuery:
        words = [w for w in tokenize(rng.choice(rooms).title) if len(w) > 3]
        return RoomQuery(text=" ".join(rng.sample(words, min(2, len(words)))))

    def city_price(rng: random.Random) -> RoomQuery:
        low = rng.randrange(50, 250)
        return RoomQuery(
            city=rng.choice(names),
            min_price=decimal.Decimal(low),
            max_price=decimal.Decimal(low + 80),
            sort=SearchSort.PRICE,
        )

    def radius(rng: random.Random) -> RoomQuery:
        lat, lon = centres[rng.choice(names)]
        return RoomQuery(lat=lat, lon=lon, radius_km=rng.uniform(0.5, 3.0))

    def amenities(rng: random.Random) -> RoomQuery:
        return RoomQuery(amenities=",".join(rng.sample(AMENITIES, rng.randint(1, 3))), sort=SearchSort.PRICE)

    def combined_sorted(rng: random.Random) -> RoomQuery:
        name = rng.choice(names)
        lat, lon = centres[name]
        return RoomQuery(
            city=name,
            lat=lat,
            lon=lon,
            guests=rng.randint(2, 4),
            amenities=rng.choice(("wifi", "kitchen", "heating")),
            max_price=decimal.Decimal(rng.randrange(150, 400)),
            sort=rng.choice(_SORTS),
        )

    return {
        "text": text,
        "city+price": city_price,
        "radius": radius,
        "amenities": amenities,
        "combined+sort": combined_sorted,
    }


async def run(room_count: int, queries: int, seed: int) -> None:
    t0 = time.perf_counter()
    rooms = [msgspec.structs.replace(r, id=i) for i, r in enumerate(demo_rooms(room_count), 1)]
    print(f"{room_count:,} demo rooms generated in {time.perf_counter() - t0:.1f} s")
    async with MemorySearchIndex() as index:
        t0 = time.perf_counter()
        await index.reindex(rooms)
        build_s = time.perf_counter() - t0
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"index built in {build_s:.2f} s ({room_count / build_s:,.0f} rooms/s); max RSS {rss_mib:,.0f} MiB")
        t0 = time.perf_counter()
        await index.upsert(rooms[:1_000])
        print(f"upsert of 1,000 indexed rooms: {(time.perf_counter() - t0) * 1000:.0f} ms")
        print(f"\n{'query type':<15} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean matches':>13}")
        for name, make in query_makers(rooms).items():
            rng = random.Random(f"{seed}:{name}")
            latencies, totals = [], []
            for _ in range(queries):
                query = make(rng)
                start = time.perf_counter()
                page = await index.search(query)
                latencies.append((time.perf_counter() - start) * 1000)
                totals.append(page.total)
            q = statistics.quantiles(latencies, n=100, method="inclusive")
            print(f"{name:<15} {q[49]:8.2f} {q[98]:8.2f} {max(latencies):8.2f} {statistics.fmean(totals):13,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300, help="per query type")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(run(args.rooms, args.queries, args.seed))


if __name__ == "__main__":
    main()
