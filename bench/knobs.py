"""One of roombook's knobs on and off, side by side in one run, on the contention core's system A.

    python -m bench.knobs --knob gc-freeze --clients 256 --hot 1000 --seconds 10 --rounds 2
    python -m bench.knobs --knob early-refusals --clients 64 --hot 1 --seconds 10 --rounds 2
    python -m bench.knobs --knob packed-writes --clients 256 --hot 1000 --seconds 10 --rounds 4
    python -m bench.knobs --knob adaptive-linger --clients 256 --hot 1 --seconds 10 --rounds 4

Knobs (each on by default in the product):
- gc-freeze: the shard actors freeze their start-up heap out of the cyclic GC
  (`RayShards(freeze_heap=...)`, ROOMBOOK_GC_FREEZE, roombook/heap.py), and so does this process
  (the load generator) for the length of the run;
- early-refusals: refusals reach their callers while the shard commits the rest of their batch
  (`AvailabilityClient(early_refusals=...)`; off, they come with the rest of their call);
- packed-writes: a group commit's statements (lease bump, row upserts, outbox inserts) go to
  MariaDB together as one multi-statement query, then the COMMIT: two round trips (the store DSN's
  `pack_writes`; off, `?pack_writes=false`: one round trip per statement, four in all);
- adaptive-linger: an idle shard waits for company (GroupCommit.linger_s, 1 ms) only while its
  batches gather more than one call; this benchmark's one load generator is a lone caller, so the
  shards stop lingering after their first batch (off: `GroupCommit(linger_alone=True)`, they
  linger before every batch that follows an idle moment).

Each round runs system A of bench.core (4 shard actors on a private local Ray, MariaDB, group
commit) on a fresh database twice, knob on and knob off, the order alternating by round. Printed
per run: full collections (generation 2) and the longest of them in the client and in the actors,
attempts/s, bookings/s and attempt latency at p50, p99, p99.9 and max; then the ratios off / on of
the medians over rounds. Only 127.0.0.1 services are used; every round stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import msgspec

from bench.core.shard_system import shard_bookings
from bench.core.workload import HotRooms, run_clients
from bench.databases import DEFAULT_MYSQL_DSN, scratch_mysql
from bench.latency import percentile
from bench.local_ray import ray_for_benchmark
from roombook.actors.shard import GroupCommit
from roombook.heap import GcPauses, frozen_heap

KNOBS = ("gc-freeze", "early-refusals", "packed-writes", "adaptive-linger")


class Run(msgspec.Struct, kw_only=True):
    on: bool
    client_full_gcs: int
    client_longest_ms: float
    actor_full_gcs: int
    actor_longest_ms: float
    attempts_per_s: float
    bookings_per_s: float
    latency_ms: dict[str, float]  # p50, p99, p99.9, max


def _full(pauses: list[tuple[int, float]]) -> list[float]:
    return [seconds for generation, seconds in pauses if generation == 2]


async def one_run(
    dsn: str, *, knob: str, on: bool, clients: int, hot: int, seconds: float, shards: int, seed: int
) -> Run:
    frozen = on or knob != "gc-freeze"
    early_refusals = on or knob != "early-refusals"
    pack_writes = on or knob != "packed-writes"
    adaptive_linger = on or knob != "adaptive-linger"
    async with (
        scratch_mysql(dsn, prefix="rb_knob") as db,
        shard_bookings(
            db if pack_writes else db + ("&" if "?" in db else "?") + "pack_writes=false",
            runtime="ray",
            shards=shards,
            group_commit=GroupCommit(linger_alone=not adaptive_linger),
            freeze_heap=frozen,
            early_refusals=early_refusals,
        ) as sut,
    ):
        assert sut.actors is not None
        await sut.actors.gc_reports()  # the actors' pauses from here on
        rooms = HotRooms(list(range(1, hot + 1)))
        recorder = GcPauses()
        try:
            with frozen_heap(frozen):
                recorder.take()  # not the collection that freezing starts with
                started = time.perf_counter()
                log = await run_clients(sut, rooms, clients=clients, seconds=seconds, seed=seed)
                elapsed = time.perf_counter() - started
            client_full = _full(recorder.take())
        finally:
            recorder.close()
        actor_full = [s for _, pauses in await sut.actors.gc_reports() for s in _full(pauses)]
    latencies = sorted(log.attempt_latencies_s)
    return Run(
        on=on,
        client_full_gcs=len(client_full),
        client_longest_ms=1000 * max(client_full, default=0.0),
        actor_full_gcs=len(actor_full),
        actor_longest_ms=1000 * max(actor_full, default=0.0),
        attempts_per_s=log.attempts / elapsed,
        bookings_per_s=len(log.acknowledged) / elapsed,
        latency_ms={
            "p50": 1000 * percentile(latencies, 0.5),
            "p99": 1000 * percentile(latencies, 0.99),
            "p99.9": 1000 * percentile(latencies, 0.999),
            "max": 1000 * latencies[-1],
        },
    )


def _line(run: Run) -> str:
    lat = run.latency_ms
    return (
        f"{'on' if run.on else 'off':<11} {run.client_full_gcs:>6} {run.client_longest_ms:>8.1f}"
        f" {run.actor_full_gcs:>6} {run.actor_longest_ms:>8.1f} {run.attempts_per_s:>10.0f} {run.bookings_per_s:>10.0f}"
        f" {lat['p50']:>7.1f} {lat['p99']:>7.1f} {lat['p99.9']:>7.1f} {lat['max']:>7.1f}"
    )


async def run(args: argparse.Namespace) -> None:
    print(
        f"{args.knob:<11} {'client':>6} {'longest':>8} {'actors':>6} {'longest':>8} {'attempts/s':>10}"
        f" {'bookings/s':>10} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>7}"
    )
    print(f"{'':<11} {'full GCs':>15} {'full GCs':>15} {'':>21} {'latency per attempt, ms':>31}")
    runs: list[Run] = []
    for round_no in range(args.rounds):
        for on in (True, False) if round_no % 2 == 0 else (False, True):
            result = await one_run(
                args.mysql_dsn,
                knob=args.knob,
                on=on,
                clients=args.clients,
                hot=args.hot,
                seconds=args.seconds,
                shards=args.shards,
                seed=args.seed + round_no,
            )
            runs.append(result)
            print(_line(result), flush=True)

    def median(on: bool, value: Callable[[Run], float]) -> float:
        return statistics.median(value(r) for r in runs if r.on is on)

    setting = f"{args.clients} clients, {args.hot} hot rooms, {args.seconds:g} s x {args.rounds} rounds"
    print(f"\n{args.knob}, {setting}; medians, off / on:")
    for name, value in [
        ("longest full GC, client", lambda r: r.client_longest_ms),
        ("longest full GC, actors", lambda r: r.actor_longest_ms),
        ("p99 ms", lambda r: r.latency_ms["p99"]),
        ("p99.9 ms", lambda r: r.latency_ms["p99.9"]),
        ("max ms", lambda r: r.latency_ms["max"]),
        ("bookings/s", lambda r: r.bookings_per_s),
    ]:
        with_knob, without = median(True, value), median(False, value)
        ratio = f"{without / with_knob:.2f}x" if with_knob else "-"
        print(f"  {name:<24} {without:>9.1f} / {with_knob:>9.1f} = {ratio}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.knobs", description=__doc__.split("\n")[0])
    parser.add_argument("--knob", choices=KNOBS, required=True)
    parser.add_argument("--mysql-dsn", default=DEFAULT_MYSQL_DSN)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--hot", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--ray-address", help="an existing Ray cluster (default: a private local one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with ray_for_benchmark(args.ray_address, namespace="roombook-bench-knobs"):
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio works too
            asyncio.run(run(args))
        else:
            uvloop.run(run(args))


if __name__ == "__main__":
    main()
