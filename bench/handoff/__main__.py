"""Shard hand-off under a booking storm, on a multi-node Ray cluster on this machine, in one run.

    python -m bench.handoff --quick --json out.json     # CI: about a minute
    python -m bench.handoff --clients 256 --rooms 1000 [--store mysql://root@127.0.0.1:3306/test | sqlite]

This process starts a Ray cluster of its own (ray.cluster_utils.Cluster: a head with no CPU and
2 worker nodes), a fresh global store (a new MariaDB database, dropped at the end, or a SQLite
file), 4 shards (RayShards) and N clients booking one night at a time (place_hold + confirm)
over R rooms. Under that storm it runs, one after another: a baseline window; a move of shard 0;
a node added and the shards rebalanced onto it; a resize 4 -> 6 and 6 -> 3; the removal of the
worker node whose actors own the most shards. For each it prints booking latency p50/p99/max
before, during and after, the longest gap with no reply, the failed requests and the operation's
own figures (see bench/handoff/timeline.py), then verifies the store like bench.core (every
acknowledged booking booked once with its hold id, no night twice, no stranded hold) and prints
PASS/FAIL per check. Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import msgspec

from bench.core.verification import StoredState, Verdict, bookings_from_rows, verify_round
from bench.handoff.cluster import local_cluster
from bench.handoff.storm import DAY, START, Storm
from bench.handoff.timeline import Timeline
from roombook.storage.ports import AvailabilityStore
from roombook.storage.sql.connect import availability_store
from roombook.storage.sql.mysql_db import create_database, drop_database, mysql_target

NAMESPACE = "roombook-handoff"
DEFAULT_MYSQL = "mysql://root@127.0.0.1:3306/test"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.handoff", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 clients, 1 s windows (CI)")
    parser.add_argument("--clients", type=int, default=None, help="concurrent booking clients (default 256)")
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--nights", type=int, default=730, help="nights per room the clients pick from")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--window-s", type=float, default=None, help="the before/after windows (default 2 s)")
    parser.add_argument("--lease-s", type=float, default=5.0, help="each shard's store lease")
    parser.add_argument("--shard-cpus", type=float, default=0.01, help="CPU each shard actor reserves")
    parser.add_argument(
        "--store", default=DEFAULT_MYSQL, help="a MySQL server DSN (a fresh database is made) or 'sqlite'"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    args.clients = args.clients or (64 if args.quick else 256)
    args.window_s = args.window_s or (1.0 if args.quick else 2.0)
    return args


async def stored_state(store: AvailabilityStore, rooms: list[int], nights: int) -> StoredState:
    rows = []
    for room in rooms:
        rows += [
            (n.room_id, n.date, str(n.status), n.holder) for n in await store.nights(room, START, START + nights * DAY)
        ]
    return StoredState(bookings=bookings_from_rows(rows), rows=[(room, date, status) for room, date, status, _ in rows])


def checks_of(verdict: Verdict, failed: int, unanswered: int) -> dict[str, bool]:
    return {
        "every attempt got an answer": unanswered == 0,
        "every acknowledged booking is booked with its hold id": verdict.missing_acknowledged == 0,
        "no night belongs to two bookings": verdict.double_booked_nights == 0,
        "booked rows and bookings agree": verdict.booked_rows_without_booking == 0
        and verdict.booking_nights_not_booked == 0,
        "no stranded hold": verdict.stranded_holds == 0,
        "unacknowledged bookings <= failed attempts": verdict.unacknowledged_bookings <= failed,
    }


async def run(args: argparse.Namespace, dsn: str, cluster: Any) -> dict[str, Any]:
    from roombook.actors import ray_runtime
    from roombook.actors.client import AvailabilityClient
    from roombook.actors.ray_runtime import RayShards, ShardPlacement

    ray_runtime.init_ray(cluster.address, namespace=NAMESPACE)
    rooms = list(range(1, args.rooms + 1))
    async with availability_store(dsn) as store:
        await store.migrate()
        ring = await store.ring(default_shard_count=args.shards)
        assert ring is not None
        shards = RayShards(
            store_dsn=dsn,
            ring=ring,
            namespace=NAMESPACE,
            lease_s=args.lease_s,
            placement=ShardPlacement(num_cpus=args.shard_cpus),
        )
        await shards.start()
        client = AvailabilityClient(shards, ring)
        storm = Storm(client, rooms, clients=args.clients, nights=args.nights, ttl_s=120.0)
        timeline = Timeline(storm, cluster, store, namespace=NAMESPACE, window_s=args.window_s)
        placement_at_start = await timeline.placement()
        try:
            await asyncio.sleep(args.window_s)  # warm up: the first before window
            await timeline.measure("baseline", timeline.baseline)
            await timeline.measure("move shard 0", timeline.move)
            await timeline.measure("add node + rebalance", timeline.add_node_and_rebalance)
            await timeline.measure(f"resize {args.shards} -> 6", lambda: timeline.resize(6))
            await timeline.measure("resize 6 -> 3", lambda: timeline.resize(3))
            await timeline.measure("remove busiest node", timeline.remove_busiest_node)
        finally:
            storm_end = time.monotonic()
            await storm.stop()
        timeline.count_failures(storm_end)
        verdict = verify_round(
            acknowledged=storm.acknowledged,
            stored=await stored_state(store, rooms, args.nights),
            failed_attempts=len(storm.failed),
        )
        final_ring = await timeline.ring()
        await shards.close()
        await ray_runtime.stop_shards(namespace=NAMESPACE)
    for op in timeline.operations:
        op.pop("started")
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "placement_at_start": placement_at_start,
        "operations": timeline.operations,
        "final_ring": [final_ring.version, final_ring.shard_count],
        "acknowledged": len(storm.acknowledged),
        "attempts": len(storm.samples),
        "failed": len(storm.failed),
        "failed_examples": sorted({why for _, why in storm.failed.values()})[:10],
        "verdict": vars_of(verdict),
        "checks": {
            "every operation completed": not any("error" in op["figures"] for op in timeline.operations),
            **checks_of(verdict, len(storm.failed), storm.unanswered),
        },
        "unanswered": storm.unanswered,
    }


def vars_of(verdict: Verdict) -> dict[str, Any]:
    return {field: getattr(verdict, field) for field in verdict.__struct_fields__}


def fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.0f}"


def print_report(results: dict[str, Any]) -> None:
    header = (
        f"{'operation':<22} {'before p50/p99/max ms':>22} {'during p50/p99/max ms':>22} "
        f"{'after p50/p99/max ms':>22} {'/s during':>9} {'gap s':>6} {'failed':>6}  operation's figures"
    )
    print(header)
    print("-" * len(header))
    for op in results["operations"]:
        cells = []
        for name in ("before", "during", "after"):
            w = op["windows"][name]
            cells.append(f"{fmt(w['p50_ms'])}/{fmt(w['p99_ms'])}/{fmt(w['max_ms'])}")
        figures = op["figures"]
        own = []
        if "pause_s" in figures:
            own.append(f"pause {figures['pause_s']:.3f} s")
        if "pause_parts_s" in figures:
            own.append("(" + ", ".join(f"{k} {v:.3f}" for k, v in figures["pause_parts_s"].items()) + ")")
        if "to_ring" in figures:
            own.append(f"ring {figures['from_ring']} -> {figures['to_ring']}")
        if "moves" in figures:
            own.append(f"moves {len(figures['moves'])}")
        if "recovery_s" in figures:
            own.append(
                f"shards {figures['shards_on_it']} recovered in "
                + ", ".join("-" if v is None else f"{v:.2f}" for v in figures["recovery_s"].values())
                + " s"
            )
        if "error" in figures:
            own.append(f"ERROR {figures['error']}")
        own.append(f"took {op['took_s']:.2f} s")
        print(
            f"{op['operation']:<22} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} "
            f"{op['windows']['during']['per_s']:>9.0f} {op['longest_gap_s']:>6.2f} {op['failed']:>6}  {'; '.join(own)}"
        )
    print(
        f"\n{results['attempts']} attempts, {results['acknowledged']} acknowledged bookings, "
        f"{results['failed']} failed; final ring (version, shards) {results['final_ring']}"
    )
    for why in results["failed_examples"]:
        print(f"  failed: {why}")
    for check, ok in results["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {check}")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


async def with_store(args: argparse.Namespace, cluster: Any) -> dict[str, Any]:
    if args.store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="rbho-") as tmp:
            return await run(args, f"sqlite:///{tmp}/global.db", cluster)
    target = msgspec.structs.replace(mysql_target(args.store), database=f"rb_handoff_{secrets.token_hex(4)}")
    await create_database(target)
    try:
        dsn = urllib.parse.urlsplit(args.store)._replace(path=f"/{target.database}").geturl()
        return await run(args, dsn, cluster)
    finally:
        await drop_database(target)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with local_cluster(2) as cluster:
        results = asyncio.run(with_store(args, cluster))
    results["run"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "seconds": round(time.monotonic() - started, 1),
    }
    print_report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(results["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
