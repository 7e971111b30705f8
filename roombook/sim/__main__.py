"""`python -m roombook.sim --seeds N [--seed S] [--steps K]`: run seeds, report, replay failures.

Seeds S, S+1, ... S+N-1 run one after another (S defaults to a random base, printed, so repeated
runs explore new seeds); `--seed S` alone replays one seed exactly. Runs under PYTHONHASHSEED=0
(the command re-executes itself to get it), so set and dict orders of dates and strings are the
same in every process and a seed's trace digest is too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
import time

from roombook.actors.shard import RoomShard
from roombook.sim.run import SimResult, simulate


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    shard_class = _shard_class(args.shard_class)
    first = args.seed if args.seed is not None else secrets.randbelow(2**31)
    count = args.seeds if args.seeds is not None else 1
    if args.seed is None:
        print(f"seeds {first}..{first + count - 1}")
    started = time.perf_counter()
    steps = events = 0
    failed: list[SimResult] = []
    for seed in range(first, first + count):
        result = simulate(seed, steps=args.steps, shard_class=shard_class, trace=args.trace)
        steps, events = steps + result.steps, events + result.events
        if args.check_replay and simulate(seed, steps=args.steps, shard_class=shard_class).digest != result.digest:
            print(f"seed {seed}: NOT DETERMINISTIC: a second run's trace differs")
            failed.append(result)
        if count == 1:
            print(_describe(result))
        if not result.ok:
            failed.append(result)
            print(f"seed {seed}: FAILED after {result.steps} steps at {result.virtual_s:.3f} virtual s", flush=True)
            for violation in result.violations[:5]:
                print(f"  {violation.at_s - 1_000_000.0:10.3f} s  {violation.what}")
            print(f"  replay: {_replay_command(seed, args)}", flush=True)
    wall_s = time.perf_counter() - started
    print(
        f"{count} seeds run, {len(failed)} failed; {steps} steps (commands), {events} events;"
        f" {wall_s:.1f} s, {steps / wall_s:,.0f} steps/s, {events / wall_s:,.0f} events/s"
    )
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m roombook.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, help="how many seeds to run (default 1)")
    parser.add_argument("--seed", type=int, help="the first seed (default: random)")
    parser.add_argument("--steps", type=int, default=400, help="commands per seed before the run quiesces")
    parser.add_argument("--trace", action="store_true", help="print every traced step")
    parser.add_argument("--check-replay", action="store_true", help="run each seed twice, compare trace digests")
    parser.add_argument("--shard-class", help="module:Class, a RoomShard subclass to run instead of RoomShard")
    return parser


def _shard_class(spec: str | None) -> type[RoomShard]:
    if spec is None:
        return RoomShard
    module, _, name = spec.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, RoomShard)):
        raise SystemExit(f"{spec} is not a RoomShard subclass")
    return cls


def _describe(result: SimResult) -> str:
    return (
        f"seed {result.seed}: {'ok' if result.ok else 'FAILED'}; {result.steps} steps, {result.events} events,"
        f" {result.virtual_s:.1f} virtual s, {result.commits} commits, {result.lost_acks} lost acks,"
        f" {result.faults} scheduled faults; trace digest {result.digest}"
    )


def _replay_command(seed: int, args: argparse.Namespace) -> str:
    extra = f" --shard-class {args.shard_class}" if args.shard_class else ""
    return f"python -m roombook.sim --seed {seed} --steps {args.steps}{extra}"


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(
            sys.executable, [sys.executable, "-m", "roombook.sim", *sys.argv[1:]], os.environ | {"PYTHONHASHSEED": "0"}
        )
    sys.exit(main(sys.argv[1:]))
