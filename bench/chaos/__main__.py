"""The fault suite: one booking storm per scenario against a real `roombook serve`, one fault each.

    python -m bench.chaos [--quick] [--scenario NAME ...] [--json results.json] [--keep WORKDIR]

It starts a private MariaDB (every store; the global DSN through a fault proxy, the EU DSN through
another), a private Redis (the cache), a standalone Ray (the shard actors) and `roombook serve
--workers 2` with a 3 s hold TTL, signs up a few accounts, then per scenario: a storm over 4 rooms
of one shard (not used by any other scenario), the fault injected once into it, retries settled;
then it waits for every hold to expire, checks that /readyz answers 200 with the server the fault
left, restarts the server (a start runs a reconciler round: roombook has no setting to run its
reconciler more often than every 30 s) and checks the stores and the shards (bench/chaos/check.py).
It prints one table and exits 1 if any scenario has a violation or its fault did not happen.
Everything runs on loopback, is bounded in time, and ends only the processes it started.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import msgspec

from bench.chaos.check import check
from bench.chaos.deployment import Deployment
from bench.chaos.faults import FAULTS, Evidence, Target
from bench.chaos.storm import Account, Operation, Storm, sign_up, unavailable_s
from bench.check.rules import Violation
from roombook.domain.accounts import Region, region_of_user_id
from roombook.routing.ring import ShardRing

SHARDS = 2
HOLD_TTL_S = 3.0
ROOMS_PER_SCENARIO = 4
ACCOUNTS = 8
READY_AFTER_S = 15.0


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    clients: int
    storm_s: float
    fault_at_s: float
    lasting_s: float
    settle_s: float


QUICK = Plan(clients=32, storm_s=8.0, fault_at_s=2.0, lasting_s=2 * HOLD_TTL_S, settle_s=20.0)
FULL = Plan(clients=32, storm_s=30.0, fault_at_s=8.0, lasting_s=3 * HOLD_TTL_S, settle_s=30.0)


class Result(msgspec.Struct, kw_only=True):
    scenario: str
    rooms: list[int]
    attempts: int
    created: int
    errors: dict[str, int]
    unavailable_s: float
    evidence: Evidence
    violations: list[Violation]
    operations: list[Operation] = []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"short storms for CI ({QUICK.storm_s:.0f} s each)")
    parser.add_argument("--scenario", action="append", choices=sorted(FAULTS), help="default: every one")
    parser.add_argument("--json", type=Path, help="write every scenario's result and operations here")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (logs, data)")
    return parser.parse_args(argv)


def rooms_of_shard(shard: int, taken: set[int], catalogue: int) -> list[int]:
    ring = ShardRing(SHARDS)
    rooms = [r for r in range(1, catalogue + 1) if ring.shard_of(r) == shard and r not in taken]
    if len(rooms) < ROOMS_PER_SCENARIO:
        raise RuntimeError(f"not enough rooms on shard {shard}")
    return rooms[:ROOMS_PER_SCENARIO]


def run_scenario(name: str, deployment: Deployment, accounts: list[Account], rooms: list[int], plan: Plan) -> Result:
    shard = ShardRing(SHARDS).shard_of(rooms[0])
    if not deployment.wait_ready():
        raise RuntimeError("the server was not ready before the scenario")
    storm = Storm(
        deployment.host,
        accounts,
        rooms,
        clients=plan.clients,
        seconds=plan.storm_s,
        settle_s=plan.settle_s,
        seed=zlib.crc32(name.encode()),  # the same draws every run (str hashes are salted per process)
    )
    target = Target(
        deployment=deployment,
        shard=shard,
        shard_pid=deployment.shard_pids()[shard],
        lasting_s=plan.lasting_s,
        now=storm.now,
    )

    async def storm_with_fault() -> tuple[list[Operation], Evidence]:
        async def fault() -> Evidence:
            await asyncio.sleep(plan.fault_at_s)
            return await FAULTS[name](target)

        return await asyncio.gather(storm.run(), fault())

    operations, evidence = asyncio.run(storm_with_fault())
    if name == "regional-outage":
        evidence = _with_cancels_during(evidence, operations)
    violations: list[Violation] = []
    time.sleep(HOLD_TTL_S + 1.0)  # every hold of the storm has expired
    if not deployment.wait_ready(READY_AFTER_S):
        violations.append(Violation(rule="not serving again", detail=f"/readyz not 200 within {READY_AFTER_S} s"))
    if not deployment.restart_server():
        violations.append(Violation(rule="not serving again", detail="/readyz not 200 after a restart"))
    start = storm.first_night
    end = start + dt.timedelta(days=storm.horizon_days)
    violations += asyncio.run(
        check(operations, dsns=deployment.store_dsns(), host=deployment.host, rooms=rooms, start=start, end=end)
    )
    if not deployment.wait_ready(1.0):
        # a shard left broken (fenced) would break every later scenario on it: new actors reload
        # from the store under a new epoch, so the next scenario starts from a serving deployment
        for pid in deployment.shard_pids().values():
            os.kill(pid, signal.SIGKILL)
        deployment.wait_ready(READY_AFTER_S)
    books = [op for op in operations if op.kind == "book"]
    errors = Counter(str(op.status or "transport") for op in operations if op.status >= 400 or op.status == 0)
    return Result(
        scenario=name,
        rooms=rooms,
        attempts=len(books),
        created=sum(1 for op in books if op.status == 201),
        errors=dict(sorted(errors.items())),
        unavailable_s=unavailable_s(operations, plan.storm_s),
        evidence=evidence,
        violations=violations,
        operations=operations,
    )


def _with_cancels_during(evidence: Evidence, operations: list[Operation]) -> Evidence:
    """A regional outage during cancels: it counts only if EU cancels were sent while it lasted."""
    first, last = evidence.window
    during = [
        op
        for op in operations
        if op.kind == "cancel" and region_of_user_id(op.user_id) is Region.EU and first <= op.invoked_at <= last
    ]
    detail = f"{evidence.detail}; {len(during)} EU cancels sent meanwhile"
    return Evidence(happened=evidence.happened and bool(during), detail=detail, window=evidence.window)


def table(results: list[Result]) -> str:
    header = ["scenario", "attempts", "201s", "errors by status", "unavailable s", "violations", "fault happened"]
    rows = [header]
    for r in results:
        errors = ", ".join(f"{status}: {n}" for status, n in r.errors.items()) or "-"
        rules = Counter(v.rule for v in r.violations)
        violations = "; ".join(f"{rule}: {n}" for rule, n in rules.items()) or "0"
        happened = "yes" if r.evidence.happened else "NO"
        rows.append(
            [r.scenario, str(r.attempts), str(r.created), errors, f"{r.unavailable_s:.1f}", violations, happened]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    names = args.scenario or list(FAULTS)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="rb-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    catalogue = 3 * ROOMS_PER_SCENARIO * len(FAULTS) * SHARDS
    deployment = Deployment(workdir, shards=SHARDS, hold_ttl_s=HOLD_TTL_S, rooms=catalogue)
    results: list[Result] = []
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM, like Ctrl-C, still ends what the suite started
    try:
        deployment.start()
        if not deployment.wait_ready():
            raise RuntimeError(f"roombook serve was not ready: see {workdir / 'server.log'}")
        accounts = asyncio.run(sign_up(deployment.host, ACCOUNTS))
        taken: set[int] = set()
        for i, name in enumerate(names):
            rooms = rooms_of_shard(i % SHARDS, taken, catalogue)
            taken.update(rooms)
            started = time.monotonic()
            try:
                result = run_scenario(name, deployment, accounts, rooms, plan)
            except RuntimeError as exc:  # the server would not start or serve: the next scenario starts it again
                broken = Violation(rule="scenario could not run", detail=str(exc))
                result = Result(
                    scenario=name,
                    rooms=rooms,
                    attempts=0,
                    created=0,
                    errors={},
                    unavailable_s=plan.storm_s,
                    evidence=Evidence(happened=False, detail=str(exc)),
                    violations=[broken],
                )
                deployment.stop_server()
                deployment.start_server()
            results.append(result)
            print(
                f"{name}: {len(result.violations)} violations, fault: {result.evidence.detail} "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            for violation in result.violations[:10]:
                print(f"  {violation.rule}: {violation.detail}", flush=True)
            if args.json:  # after every scenario: a run cut short still leaves what it found
                args.json.write_bytes(msgspec.json.encode(results))
    finally:
        deployment.stop()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    failed = [r.scenario for r in results if r.violations or not r.evidence.happened]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
