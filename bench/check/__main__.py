"""Check a Locust run after it ended: no night booked twice, every 201 a real booking.

    python -m bench.check --host http://127.0.0.1:8080 --booking-log 'out/bookings-*.jsonl' \
        [--data-dir ./data | --global-dsn mysql://... --eu-dsn ... --us-dsn ...]

Reads the booking logs of bench/locustfile.py (every file the patterns match), then the bookings of
every logged user through the API (GET /bookings with the logged token, logging in again if it
expired) and, given a data dir or DSNs, the global availability rows and the regional stores'
bookings. The rules are in bench/check/rules.py. The stores are read first and re-read while a
logged user has a PENDING booking (a saga the server was still finishing when Locust stopped),
up to --settle-s. Exit status: 0 every rule holds, 1 a violation (each listed), 2 nothing to
check or a source could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter

import aiohttp

from bench.check.booking_log import BookingLog, expand, read_log
from bench.check.rules import (
    SeenBooking,
    Violation,
    acknowledged_bookings,
    availability_rows,
    double_bookings,
)
from bench.check.sources import (
    SourceError,
    StoreDsns,
    api_bookings,
    missing_sqlite_files,
    store_bookings,
    store_rows,
)
from roombook.config import load_settings
from roombook.domain.accounts import Region
from roombook.domain.nights import Night, NightStatus

EXAMPLES_PER_RULE = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="the server the run targeted")
    parser.add_argument("--booking-log", action="append", required=True, help="file or glob; repeatable")
    parser.add_argument("--no-api", action="store_true", help="do not read the bookings through the API")
    parser.add_argument("--data-dir", help="check the embedded SQLite stores of this data dir")
    parser.add_argument("--global-dsn", help="the global store (default: <data-dir>/global.db)")
    parser.add_argument("--eu-dsn", help="the EU store (default: <data-dir>/eu.db)")
    parser.add_argument("--us-dsn", help="the US store (default: <data-dir>/us.db)")
    parser.add_argument("--settle-s", type=float, default=15.0, help="wait this long for PENDING bookings")
    parser.add_argument(
        "--foreign-ok", action="store_true", help="booked nights of users not in the log are not violations"
    )
    return parser.parse_args(argv)


def store_dsns(args: argparse.Namespace) -> StoreDsns | None:
    if not (args.data_dir or args.global_dsn):
        return None
    settings = load_settings(
        {}, data_dir=args.data_dir, global_dsn=args.global_dsn, eu_dsn=args.eu_dsn, us_dsn=args.us_dsn
    )
    return StoreDsns(global_dsn=settings.dsn("global"), regional={r: settings.dsn(r.value) for r in Region})


async def read_settled_stores(
    dsns: StoreDsns, user_ids: list[int], settle_s: float
) -> tuple[list[Night], dict[str, SeenBooking]]:
    deadline = time.monotonic() + settle_s
    while True:
        rows = await store_rows(dsns)  # rows first: a booked row's booking was stored before it
        bookings = await store_bookings(dsns, user_ids)
        if time.monotonic() > deadline or all(b.status != "PENDING" for b in bookings.values()):
            return rows, bookings
        await asyncio.sleep(0.5)


async def check(args: argparse.Namespace, log: BookingLog) -> tuple[list[Violation], list[str]]:
    violations = [Violation(rule="unreadable or contradictory log", detail=p) for p in log.problems]
    mismatches = log.outcomes.get("replay_mismatch", 0)
    if mismatches:
        detail = f"{mismatches} replays with a used Idempotency-Key and the same body got another answer"
        violations.append(Violation(rule="idempotent replay answered differently", detail=detail))
    lines = []
    dsns = store_dsns(args)
    if dsns is not None:
        if missing := missing_sqlite_files(dsns):
            raise SourceError(f"no such store file: {', '.join(missing)}")
        rows, stored = await read_settled_stores(dsns, sorted(log.users), args.settle_s)
        violations += double_bookings(stored.values(), source="stores")
        violations += acknowledged_bookings(log, stored, source="stores")
        violations += availability_rows(rows, stored, foreign_ok=args.foreign_ok)
        rows_by_state = Counter(n.status for n in rows)
        lines.append(
            f"  stores: {len(rows)} availability rows ({rows_by_state[NightStatus.BOOKED]} booked, "
            f"{rows_by_state[NightStatus.HELD]} held), {_by_status(stored)} of the logged users"
        )
    else:
        lines.append("  stores: not checked (give --data-dir or --global-dsn/--eu-dsn/--us-dsn)")
    if not args.no_api:
        seen = await api_bookings(args.host, log.users.values())
        violations += double_bookings(seen.values(), source="api")
        violations += acknowledged_bookings(log, seen, source="api")
        lines.append(f"  api: {_by_status(seen)} in the logged users' GET /bookings")
    return violations, lines


def _by_status(bookings: dict[str, SeenBooking]) -> str:
    counts = Counter(b.status for b in bookings.values())
    return f"{len(bookings)} bookings ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'})"


def report(log: BookingLog, violations: list[Violation], lines: list[str]) -> None:
    unanswered = len(log.cancelling - log.cancelled)
    print(
        f"bench.check: {len(log.files)} log files, {len(log.users)} accounts, {len(log.bookings)} bookings "
        f"answered 201, {len(log.cancelled)} cancelled ({unanswered} cancels unanswered)"
    )
    answers = ", ".join(f"{k} {v}" for k, v in sorted(log.outcomes.items())) or "not logged"
    print(f"  booking answers: {answers}")
    for line in lines:
        print(line)
    if not violations:
        print("OK: no night booked twice; every 201 is its owner's booking, in the expected state")
        return
    by_rule: dict[str, list[Violation]] = {}
    for violation in violations:
        by_rule.setdefault(violation.rule, []).append(violation)
    print(f"FAILED: {len(violations)} violations")
    for rule, found in by_rule.items():
        print(f"  {rule}: {len(found)}")
        for violation in found[:EXAMPLES_PER_RULE]:
            print(f"    {violation.detail}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    files = expand(args.booking_log)
    if not files:
        print(f"bench.check: no file matches {args.booking_log}", file=sys.stderr)
        return 2
    log = read_log(files)
    if not log.users:
        print(f"bench.check: no account in {len(files)} log files: was --booking-log given to Locust?", file=sys.stderr)
        return 2
    try:
        violations, lines = asyncio.run(check(args, log))
    except (SourceError, OSError, aiohttp.ClientError) as exc:
        print(f"bench.check: cannot read back the bookings: {exc}", file=sys.stderr)
        return 2
    report(log, violations, lines)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
