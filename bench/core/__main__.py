"""The contention core side by side with a conventional row-lock booking flow, in one invocation.

    python -m bench.core --quick                          # every setting once, a few minutes
    python -m bench.core --clients 64,256 --hot 1,10,1000 --seconds 10 --rounds 3

Systems (each round on a fresh database on the same MariaDB):
  A        roombook: AvailabilityClient -> shard actors on Ray -> group commit
  A-local  the same shard code in this process
  B-pool   the row-lock flow (SELECT ... FOR UPDATE, held, payment, booked + INSERT),
           64 pooled connections shared by the clients
  B-conn   the same with one connection per client
  C        A with group commit off
N clients each loop booking attempts (1-5 nights inside a room's 60-night window, the room picked
uniformly from H hot rooms) for --seconds; a window that is 90% booked is replaced by the next 60
nights, and every room starts where a long run would find it (--start aged; see
bench/core/workload.py). Every round is verified (bench/core/verification.py); a failed
verification makes the exit status non-zero. Only 127.0.0.1 services are used unless
--mysql-dsn / --ray-address say otherwise; every round stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

from bench.core.report import (
    ROUND_HEADER,
    comparison_rows,
    comparison_table,
    evaluate_targets,
    round_line,
    summarize,
    write_results,
)
from bench.core.rounds import EXTRA_SYSTEMS, RAY_SYSTEMS, STARTS, SYSTEMS, RoundResult, run_round
from bench.databases import DEFAULT_MYSQL_DSN, max_connections_at_least, scratch_mysql
from bench.local_ray import ray_for_benchmark

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.core", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mysql-dsn", default=DEFAULT_MYSQL_DSN, help="server to use (a database per round)")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    parser.add_argument("--quick", action="store_true", help="one short round per setting (3 s unless --seconds)")
    parser.add_argument("--clients", type=_ints, default=[64, 256], help="comma-separated, e.g. 64,256")
    parser.add_argument("--hot", type=_ints, default=[1, 10, 1000], help="hot-set sizes, e.g. 1,10,1000")
    parser.add_argument("--seconds", type=float, help="measured time per round (default 10, --quick 3)")
    parser.add_argument("--rounds", type=int, help="rounds per setting (default 3, --quick 1)")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help=f"subset of {','.join([*SYSTEMS, *EXTRA_SYSTEMS])}"
    )
    parser.add_argument("--shards", type=int, default=4, help="shards for A, A-local and C")
    parser.add_argument(
        "--calls-in-flight", type=int, help="AvailabilityClient max_calls_in_flight for A/A-local/C (default: its own)"
    )
    parser.add_argument("--pool-size", type=int, default=64, help="B-pool's shared connections")
    parser.add_argument("--refill-at", type=float, default=0.9, help="booked share of a window that replaces it")
    parser.add_argument(
        "--start",
        choices=STARTS,
        default="aged",
        help="the rooms' first windows at the start of a round: as a long run finds them (default), or empty",
    )
    parser.add_argument("--ray-address", help="an existing Ray cluster (default: a private local one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = set(args.systems) - set(SYSTEMS) - set(EXTRA_SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}")
    args.out = args.out or RESULTS / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return args


def _meta(args: argparse.Namespace) -> dict[str, object]:
    """What the run is, taken as it starts: the code may be changed or committed while it runs.
    The commit ends in "-dirty" when tracked files differed from it."""
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=7"],
        capture_output=True,
        text=True,
        check=False,
        cwd=RESULTS.parent,
    ).stdout.strip()
    return {
        "started": dt.datetime.now().isoformat(timespec="milliseconds"),
        "commit": commit or None,
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "loop": type(asyncio.get_running_loop()).__module__,
        "argv": sys.argv[1:],
        "seconds": args.seconds,
        "rounds": args.rounds,
        "clients": args.clients,
        "hot": args.hot,
        "systems": args.systems,
        "shards": args.shards,
        "pool_size": args.pool_size,
        "calls_in_flight": args.calls_in_flight or "AvailabilityClient default",
        "refill_at": args.refill_at,
        "start": args.start,
        "ray_address": args.ray_address or "private local Ray (num_cpus=2)",
    }


async def run(args: argparse.Namespace) -> int:
    meta = _meta(args)
    notes: list[str] = []
    results: list[RoundResult] = []
    failures: list[str] = []
    needed = max(args.clients) + args.pool_size + 100 if "B-conn" in args.systems else 0
    async with max_connections_at_least(args.mysql_dsn, needed) as changed:
        if changed:
            notes.append(changed)
            print(changed, flush=True)
        print(ROUND_HEADER, flush=True)
        for round_no in range(args.rounds):
            for clients in args.clients:
                for hot in args.hot:
                    for system in args.systems:
                        try:
                            async with scratch_mysql(args.mysql_dsn, prefix="rb_core") as dsn:
                                result = await run_round(
                                    system,
                                    dsn,
                                    clients=clients,
                                    hot=hot,
                                    seconds=args.seconds,
                                    round_no=round_no,
                                    shards=args.shards,
                                    pool_size=args.pool_size,
                                    refill_at=args.refill_at,
                                    seed=args.seed,
                                    calls_in_flight=args.calls_in_flight,
                                    start=args.start,
                                )
                        except Exception as exc:  # one broken setting must not hide the others
                            failures.append(f"{system} N={clients} H={hot} round {round_no}: {exc!r}")
                            print(f"{system:<8} {clients:>4} {hot:>5}  FAILED to run: {exc!r}", flush=True)
                            continue
                        results.append(result)
                        print(round_line(result), flush=True)
                        for problem in result.verdict.problems:
                            print(f"    verification: {problem}", flush=True)
    summaries = summarize(results)
    rows = comparison_rows(summaries)
    targets = evaluate_targets(summaries, rows)
    meta |= {"finished": dt.datetime.now().isoformat(timespec="milliseconds"), "notes": notes + failures}
    write_results(args.out, meta, results, summaries, rows, targets)
    print(f"\n{args.seconds:g} s x {args.rounds} round(s) per setting, {args.shards} shards; bookings/s (p99 ms):")
    print(comparison_table(rows))
    print("\nTargets:")
    for target in targets:
        mark = {True: "met", False: "MISSED", None: "not run"}[target.met]
        print(f"  [{mark:>7}] {target.name}: {target.measured}")
    print(f"\nResults: {args.out}")
    verified = all(r.verdict.ok for r in results) and not failures
    if not verified:
        print("VERIFICATION FAILED (or a setting could not run): see above", file=sys.stderr)
    return 0 if verified else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    needs_ray = any(system in RAY_SYSTEMS for system in args.systems)
    ray = ray_for_benchmark(args.ray_address, namespace="roombook-bench-core") if needs_ray else nullcontext()
    with ray:  # one Ray for the whole run
        try:
            import uvloop
        except ImportError:  # not on Windows
            return asyncio.run(run(args))
        return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
