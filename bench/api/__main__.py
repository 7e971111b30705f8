"""The booking API end to end, side by side with the design's row-lock service, in one invocation.

    python -m bench.api                                   # 64,256 users x 1,10,1000 hot rooms, 10 s each
    python -m bench.api --users 256 --hot 1,1000 --seconds 5 [--no-core] [--no-mixed]

Systems (each round on fresh MariaDB databases, the same load driver):
  A  `roombook serve` (--workers, default 1) on MariaDB stores (global, EU, US), 4 shard actors
     on a private local Ray, the in-process event bus
  B  bench/api/baseline.py: SELECT ... FOR UPDATE, held, payment, booked + INSERT, 64 pooled
     connections, behind the same aiohttp front (same token codec, body decoding, problem shape),
     in --b-processes serving processes (default 1) that share the 64 out
The load is bench.core's workload (1-5-night stays on H hot rooms, windows refilled at 90%, aged
start) sent as POST /api/v1/bookings by an asyncio driver in this process (its CPU is reported as
`driver`). Every round is verified (bench/api/rounds.py); a failed one makes the exit status 1.
Then, unless told not to: bench.core's A on the same settings in this process (`core A`, the
share A's HTTP figure is of it), and the mixed profile's requests/s against A as a share of
GET /healthz with the same driver (bench/api/mixed.py). Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import msgspec

from bench.api.rounds import SYSTEMS, run_round
from bench.api.servers import STARTED
from bench.core.rounds import RoundResult
from bench.databases import DEFAULT_MYSQL_DSN, scratch_mysql

RESULTS = Path(__file__).resolve().parents[1] / "results"
CPU_KEYS = ("client", "server", "actors", "server_ray", "db", "other")
HEADER = (
    f"{'system':<7} {'N':>4} {'H':>5} {'attempts/s':>10} {'bookings/s':>10} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} "
    f"{'p99 ms':>7}  {'cores driver/server/actors/ray/db/other':<36} verified"
)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mysql-dsn", default=DEFAULT_MYSQL_DSN, help="server to use (databases per round)")
    parser.add_argument("--users", type=_ints, default=[64, 256], help="comma-separated, e.g. 64,256")
    parser.add_argument("--hot", type=_ints, default=[1, 10, 1000], help="hot-set sizes, e.g. 1,10,1000")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per round")
    parser.add_argument("--systems", default="A,B", help="subset of A,B")
    parser.add_argument("--workers", type=int, default=1, help="roombook serve --workers for A")
    parser.add_argument("--b-processes", type=int, default=1, help="B's serving processes (its pool shared out)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--pool-size", type=int, default=64, help="B's shared connections")
    parser.add_argument("--refill-at", type=float, default=0.9)
    parser.add_argument("--start", choices=("aged", "empty"), default="aged")
    parser.add_argument("--seed-rooms", type=int, default=1000, help="A's catalogue (at least the hot set)")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help="for A's server; repeatable"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:SPEC",
        help="also run A as A:NAME, SPEC a comma list of workers=N, events=worker (the relay and consumers in a "
        "`roombook worker` of their own) and NAME=VALUE server variables, e.g. "
        "nocache:ROOMBOOK_BOOKING_ROOM_CACHE=false or w2:workers=2 (one lever each, side by side); repeatable",
    )
    parser.add_argument(
        "--b-variant",
        action="append",
        default=[],
        metavar="NAME:processes=N",
        help="also run B as B:NAME with N serving processes, against B in the same setting; repeatable",
    )
    parser.add_argument("--profile", action="store_true", help="sample each server with py-spy (bench/api/profile.py)")
    parser.add_argument("--no-core", action="store_true", help="skip bench.core's A on the same settings")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed profile and /healthz")
    parser.add_argument("--mixed-users", type=int, default=64)
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/api-<timestamp>)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    if set(args.systems) - set(SYSTEMS):
        parser.error(f"systems are {','.join(SYSTEMS)}")
    args.server_env = dict(item.split("=", 1) for item in args.server_env)
    variants = {}
    for item in args.variant:
        name, _, spec = item.partition(":")
        settings = dict(part.split("=", 1) for part in spec.split(",") if part)
        workers = int(settings.pop("workers", args.workers))
        events = settings.pop("events", "serve")
        if events not in ("serve", "worker"):
            parser.error("events= is serve or worker")
        variants[f"A:{name}"] = (workers, args.server_env | settings, events == "worker")
    if variants and "A" not in args.systems:
        parser.error("--variant is measured against A: keep A in --systems")
    for item in args.b_variant:
        name, _, spec = item.partition(":")
        settings = dict(part.split("=", 1) for part in spec.split(",") if part)
        if set(settings) != {"processes"} or "B" not in args.systems:
            parser.error("--b-variant is NAME:processes=N, measured against B: keep B in --systems")
        variants[f"B:{name}"] = (int(settings["processes"]), {}, False)
    args.variants = variants
    args.out = args.out or RESULTS / dt.datetime.now().strftime("api-%Y%m%d-%H%M%S")
    return args


def round_line(r: RoundResult) -> str:
    cpu = "/".join("-" if (v := r.cpu_s.get(k)) is None else f"{v / r.elapsed_s:.2f}" for k in CPU_KEYS)
    return (
        f"{r.system:<7} {r.clients:>4} {r.hot:>5} {r.attempts_per_s:>10.0f} {r.bookings_per_s:>10.0f} {r.errors:>6} "
        f"{r.attempt_ms['p50']:>7.1f} {r.attempt_ms['p95']:>7.1f} {r.attempt_ms['p99']:>7.1f}  {cpu:<36} "
        f"{'ok' if r.verdict.ok else 'FAILED'}"
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _x(value: float | None, suffix: str = "x") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


class Row(msgspec.Struct, kw_only=True):
    """One setting of the side-by-side table."""

    users: int
    hot: int
    a_bookings_per_s: float | None
    b_bookings_per_s: float | None
    a_over_b_bookings: float | None
    a_over_b_attempts: float | None
    a_p99_ms: float | None
    b_p99_ms: float | None
    errors: str  # A's/B's
    core_a_bookings_per_s: float | None
    http_share_of_core: float | None  # A's HTTP bookings/s over core A's


def _rate(r: RoundResult | None, what: str) -> float | None:
    """bookings/s, attempts/s or the p99 of a round that ran; None if it did not."""
    if r is None:
        return None
    return {"bookings": r.bookings_per_s, "attempts": r.attempts_per_s, "p99": r.attempt_ms["p99"]}[what]


def comparison(results: list[RoundResult], core: dict[tuple[int, int], RoundResult]) -> list[Row]:
    by = {(r.system, r.clients, r.hot): r for r in results}
    rows = []
    for clients, hot in sorted({(r.clients, r.hot) for r in results}):
        a, b, c = by.get(("A", clients, hot)), by.get(("B", clients, hot)), core.get((clients, hot))
        rows.append(
            Row(
                users=clients,
                hot=hot,
                a_bookings_per_s=_rate(a, "bookings"),
                b_bookings_per_s=_rate(b, "bookings"),
                a_over_b_bookings=_ratio(_rate(a, "bookings"), _rate(b, "bookings")),
                a_over_b_attempts=_ratio(_rate(a, "attempts"), _rate(b, "attempts")),
                a_p99_ms=_rate(a, "p99"),
                b_p99_ms=_rate(b, "p99"),
                errors=f"{a.errors if a else '-'}/{b.errors if b else '-'}",
                core_a_bookings_per_s=_rate(c, "bookings"),
                http_share_of_core=_ratio(_rate(a, "bookings"), _rate(c, "bookings")),
            )
        )
    return rows


def _n(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row]) -> str:
    lines = [
        "| users | H | A bookings/s | B bookings/s | A/B bookings/s | A/B attempts/s | A p99 ms | B p99 ms "
        "| errors A/B | core A bookings/s | A HTTP / core A |",
        "|" + "---:|" * 11,
    ]
    for r in rows:
        share = None if r.http_share_of_core is None else 100 * r.http_share_of_core
        lines.append(
            f"| {r.users} | {r.hot} | {_n(r.a_bookings_per_s)} | {_n(r.b_bookings_per_s)} | "
            f"{_x(r.a_over_b_bookings)} | {_x(r.a_over_b_attempts)} | {_n(r.a_p99_ms, '.1f')} | "
            f"{_n(r.b_p99_ms, '.1f')} | {r.errors} | {_n(r.core_a_bookings_per_s)} | {_x(share, '%')} |"
        )
    return "\n".join(lines)


def lever_table(results: list[RoundResult]) -> str:
    """Each variant of A (or B) against A (or B) itself, in the same setting of the same run."""
    by = {(r.system, r.clients, r.hot): r for r in results}
    lines = [
        "| variant | users | H | bookings/s | its system's bookings/s | variant/system | attempts/s variant/system "
        "| p99 ms | system's p99 ms |"
    ]
    lines.append("|---|" + "---:|" * 8)
    for r in results:
        base, variant, _ = r.system.partition(":")
        a = by.get((base, r.clients, r.hot))
        if not variant or a is None:
            continue
        lines.append(
            f"| {r.system} | {r.clients} | {r.hot} | {r.bookings_per_s:,.0f} | {a.bookings_per_s:,.0f} | "
            f"{_x(_ratio(r.bookings_per_s, a.bookings_per_s))} | {_x(_ratio(r.attempts_per_s, a.attempts_per_s))} | "
            f"{r.attempt_ms['p99']:.1f} | {a.attempt_ms['p99']:.1f} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row], results: list[RoundResult]) -> list[tuple[str, bool | None, str]]:
    def ratio_at(hot: int) -> float | None:
        return next((r.a_over_b_bookings for r in rows if r.users == 256 and r.hot == hot), None)

    out: list[tuple[str, bool | None, str]] = []
    for hot, least in ((1, 5.0), (1000, 2.0)):
        ratio = ratio_at(hot)
        met = None if ratio is None else ratio >= least
        out.append((f"A/B bookings/s >= {least:g}x at 256 users, H={hot}", met, _x(ratio)))
    worst = max((r.attempt_ms["p99"] for r in results if r.system == "A" and r.clients == 256), default=None)
    out.append(
        (
            "A p99 <= 100 ms at 256 users, every H",
            None if worst is None else worst <= 100,
            f"worst {_n(worst, '.0f')} ms",
        )
    )
    bad = [r for r in results if not r.verdict.ok]
    out.append(("zero violations", not bad, f"{len(bad)} round(s) failed verification"))
    low = min((r.http_share_of_core for r in rows if r.http_share_of_core is not None), default=None)
    met = None if low is None else low >= 0.5
    out.append(
        (
            "A HTTP bookings/s >= 50% of core A, same settings",
            met,
            f"lowest {_x(None if low is None else 100 * low, '%')}",
        )
    )
    return out


async def run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "argv": sys.argv[1:],
    }
    print(f"bench.api: output in {args.out}\n{HEADER}", flush=True)
    results: list[RoundResult] = []
    failures: list[str] = []
    for clients in args.users:
        for hot in args.hot:
            for system in [*args.systems, *args.variants]:
                default = (args.workers, args.server_env, False) if system == "A" else (args.b_processes, {}, False)
                workers, server_env, event_worker = args.variants.get(system, default)
                try:
                    result = await run_round(
                        system,
                        args.mysql_dsn,
                        clients=clients,
                        hot=hot,
                        seconds=args.seconds,
                        out=args.out,
                        refill_at=args.refill_at,
                        seed=args.seed,
                        start=args.start,
                        shards=args.shards,
                        workers=workers,
                        pool_size=args.pool_size,
                        seed_rooms=args.seed_rooms,
                        server_env=server_env,
                        profile=args.profile,
                        event_worker=event_worker,
                    )
                except Exception as exc:  # one broken setting must not hide the others
                    failures.append(f"{system} N={clients} H={hot}: {exc!r}")
                    print(f"{system:<7} {clients:>4} {hot:>5}  FAILED to run: {exc!r}", flush=True)
                    continue
                results.append(result)
                print(round_line(result), flush=True)
                for problem in result.verdict.problems:
                    print(f"    verification: {problem}", flush=True)
    core = {} if args.no_core else await _core_rounds(args)
    mixed = None
    if not args.no_mixed:
        from bench.api.mixed import run_mixed

        mixed = await run_mixed(args.mysql_dsn, users=args.mixed_users, seconds=args.seconds, out=args.out)
    rows = comparison(results, core)
    checks = targets(rows, results)
    print(f"\n{args.seconds:g} s per round, one round per setting, side by side in this run:")
    print(table(rows))
    if args.variants:
        print("\nLevers, each alone against A in the same setting:")
        print(lever_table(results))
    if mixed is not None:
        print(
            f"\nmixed profile: {mixed['mixed_rps']:.0f} req/s, /healthz {mixed['healthz_rps']:.0f} req/s "
            f"(share {100 * mixed['share']:.1f}%), {mixed['users']} users, driver {mixed['driver_cores']:.2f} cores"
        )
        for route, stats in mixed["routes"].items():
            print(
                f"  {route:<28} {stats['requests']:>7} req  p50 {stats['p50_ms']:.1f} ms  "
                f"p99 {stats['p99_ms']:.1f} ms  errors {stats['errors']}"
            )
    print("\nTargets:")
    for name, met, measured in checks:
        print(f"  [{ {True: 'met', False: 'MISSED', None: 'not run'}[met]:>7}] {name}: {measured}")
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "meta": meta
                | {
                    "finished": dt.datetime.now().isoformat(timespec="seconds"),
                    "failures": failures,
                    "server_processes": STARTED,
                },
                "rounds": msgspec.to_builtins(results),
                "core": msgspec.to_builtins(list(core.values())),
                "comparison": msgspec.to_builtins(rows),
                "mixed": mixed,
                "targets": checks,
            },
            indent=2,
            default=str,
        )
    )
    (args.out / "comparison.md").write_text(table(rows) + "\n\n" + lever_table(results) + "\n")
    print(f"\nResults: {args.out}")
    ok = all(r.verdict.ok for r in results) and all(r.verdict.ok for r in core.values()) and not failures
    if not ok:
        print("VERIFICATION FAILED (or a setting could not run): see above", file=sys.stderr)
    return 0 if ok else 1


async def _core_rounds(args: argparse.Namespace) -> dict[tuple[int, int], RoundResult]:
    """bench.core's A (in this process, on its own private Ray) on every setting the HTTP rounds ran."""
    from bench.core import rounds as core_rounds
    from bench.local_ray import ray_for_benchmark

    out = {}
    print("\ncore A (bench.core, no HTTP) on the same settings:", flush=True)
    with ray_for_benchmark(None, namespace="roombook-bench-api-core"):
        for clients in args.users:
            for hot in args.hot:
                async with scratch_mysql(args.mysql_dsn, prefix="rb_api_core") as dsn:
                    r = await core_rounds.run_round(
                        "A",
                        dsn,
                        clients=clients,
                        hot=hot,
                        seconds=args.seconds,
                        shards=args.shards,
                        refill_at=args.refill_at,
                        seed=args.seed,
                        start=args.start,
                    )
                print(
                    f"core A  {clients:>4} {hot:>5} {r.attempts_per_s:>10.0f} {r.bookings_per_s:>10.0f} {r.errors:>6} "
                    f"{r.attempt_ms['p50']:>7.1f} {r.attempt_ms['p95']:>7.1f} {r.attempt_ms['p99']:>7.1f}  "
                    f"{'ok' if r.verdict.ok else 'FAILED'}",
                    flush=True,
                )
                out[(clients, hot)] = r
    return out


def _commit() -> str | None:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=7"],
        capture_output=True,
        text=True,
        check=False,
        cwd=RESULTS.parent,
    )
    return done.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
