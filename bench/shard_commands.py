"""What one command costs inside a room shard, before any write: microseconds per command, one core.

    python -m bench.shard_commands [--commands 20000] [--repeat 5]

The shard's Python between the socket and the store, stage by stage, with no store and no event
loop: decoding a call's frame of 256 commands, running commands through RoomShard's own per-command
code (the ownership check, the calendar, a refusal turned into its Failure reply), and encoding the
replies. Calendar scenarios:
- refused, window full: holds on a room whose 60 nights are all booked (the commonest command on
  a hot room: about 95% of them are refused);
- refused, 75% booked: the same on windows three quarters booked by random 1-5-night stays, where
  some stays still fit (those are placed and undone again, which is counted in);
- hold placed: holds on free nights, each on a room of its own;
- hold confirmed: confirming those holds.
Printed: the best of --repeat timings (the least disturbed) in µs per command, and commands per
second on one core. bench/README.md says what the figures are used for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import msgspec

from roombook.actors.shard import RoomShard
from roombook.actors.shard_wire import _Answer
from roombook.domain.calendar import ShardCalendar
from roombook.domain.commands import Command, ConfirmHold, Failure, PlaceHold, Reply
from roombook.domain.errors import RoombookError
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.sqlite_availability import SqliteAvailabilityStore

WINDOW = 60
FIRST = dt.date(2031, 1, 1)
DAY = dt.timedelta(days=1)
RING = ShardRing(1)
NOW_S = 2_000_000_000.0
CALL = 256  # commands per call, about a wave of 256 clients on one room
T = TypeVar("T")


def _stay(rng: random.Random) -> Stay:
    nights = rng.randint(1, 5)
    check_in = FIRST + DAY * rng.randrange(WINDOW - nights + 1)
    return Stay(check_in=check_in, check_out=check_in + DAY * nights)


def _booked_window(calendar: ShardCalendar, room_id: int, rng: random.Random, *, share: float) -> None:
    """Book random 1-5-night stays in a room's window until `share` of its nights are booked
    (share=1: every night, in 5-night stays)."""
    if share >= 1:
        for i in range(0, WINDOW, 5):
            stay = Stay(check_in=FIRST + DAY * i, check_out=FIRST + DAY * (i + 5))
            calendar.place_hold(hold_id=f"r{room_id}-{i}", room_id=room_id, stay=stay, ttl_s=600, now_s=NOW_S)
            calendar.confirm(hold_id=f"r{room_id}-{i}", room_id=room_id, now_s=NOW_S)
        return
    booked = n = 0
    while booked < share * WINDOW:
        n += 1
        stay = _stay(rng)
        try:
            calendar.place_hold(hold_id=f"r{room_id}-{n}", room_id=room_id, stay=stay, ttl_s=600, now_s=NOW_S)
        except RoombookError:
            continue
        calendar.confirm(hold_id=f"r{room_id}-{n}", room_id=room_id, now_s=NOW_S)
        booked += stay.night_count


def shard_on(calendar: ShardCalendar) -> RoomShard:
    """A shard that is never started, running commands on `calendar` with its own `_execute`: the
    code the command loop runs, without the loop or the store (whose unopened stand-in is never
    touched)."""
    shard = RoomShard(SqliteAvailabilityStore(":memory:"), RING, 0, owner="bench.shard_commands")
    shard._calendar = calendar
    return shard


def run_batch(calendar: ShardCalendar, commands: list[Command], *, undo: bool) -> list[Reply]:
    """Every command's reply; undo=True takes each change back at once, so the batch can run again."""
    shard = shard_on(calendar)
    replies = []
    for command in commands:
        reply, change = shard._execute(command, NOW_S)
        if undo and change is not None and change.after:
            calendar.undo(change)
        replies.append(reply)
    return replies


def _best(repeat: int, count: int, body: Callable[[], T]) -> tuple[float, T]:
    """The best of `repeat` timings of body() in µs per command, and body()'s last result."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = body()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / count, result


class Scenario(NamedTuple):
    calendar: ShardCalendar
    commands: list[Command]
    again: bool  # the calendar is the same after a run (changes are undone), so it can be repeated


def scenarios(commands: int, seed: int = 1) -> dict[str, Scenario]:
    """Each calendar scenario of the module docstring, with `commands` commands."""
    rng = random.Random(seed)
    rooms = 16
    full, jammed = ShardCalendar(), ShardCalendar()
    for room_id in range(1, rooms + 1):
        _booked_window(full, room_id, rng, share=1.0)
        _booked_window(jammed, room_id, rng, share=0.75)

    def holds() -> list[Command]:
        return [
            PlaceHold(room_id=rng.randint(1, rooms), hold_id=f"h{i}", stay=_stay(rng), ttl_s=600)
            for i in range(commands)
        ]

    free = ShardCalendar()
    return {
        "refused, window full": Scenario(full, holds(), again=True),
        "refused, 75% booked": Scenario(jammed, holds(), again=True),
        "hold placed": Scenario(
            free,
            [PlaceHold(room_id=1000 + i, hold_id=f"p{i}", stay=_stay(rng), ttl_s=600) for i in range(commands)],
            again=False,
        ),
        "hold confirmed": Scenario(
            free, [ConfirmHold(room_id=1000 + i, hold_id=f"p{i}") for i in range(commands)], again=False
        ),
    }


def measure(commands: int, repeat: int) -> list[tuple[str, float, dict[str, int]]]:
    """(stage, µs per command, its replies by kind) for every stage, in the order a command meets them."""
    cases = scenarios(commands)
    wave = cases["refused, 75% booked"].commands
    calls = [wave[i : i + CALL] for i in range(0, commands, CALL)]
    frames = [msgspec.msgpack.encode((n, call)) for n, call in enumerate(calls)]
    decode = msgspec.msgpack.Decoder(tuple[int, list[Command]]).decode
    results: list[tuple[str, float, dict[str, int]]] = [
        ("decode a call's frame", _best(repeat, commands, lambda: [decode(f) for f in frames])[0], {})
    ]
    refusals: list[Reply | None] = []  # as an answer carries them (None: a reply that went ahead)
    for name, case in cases.items():
        micros, replies = _best(
            repeat if case.again else 1,
            len(case.commands),
            functools.partial(run_batch, case.calendar, case.commands, undo=case.again),
        )
        results.append((name, micros, _kinds(replies)))
        if name == "refused, 75% booked":
            refusals = list(replies)
    answers = [_Answer(n, refusals[i : i + CALL]) for n, i in enumerate(range(0, commands, CALL))]
    encode = msgspec.msgpack.Encoder().encode
    results.append(("encode the replies", _best(repeat, commands, lambda: [encode(a) for a in answers])[0], {}))
    return results


def _kinds(replies: list[Reply]) -> dict[str, int]:
    """How many replies of each kind: a refusal's kind, or the status of a hold or booking."""
    return dict(Counter(r.kind if isinstance(r, Failure) else getattr(r, "status", type(r).__name__) for r in replies))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shard_commands", description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{'stage':<24} {'µs/command':>10} {'commands/s':>11}  replies")
    for name, micros, kinds in measure(args.commands, args.repeat):
        outcome = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        print(f"{name:<24} {micros:>10.2f} {1e6 / micros:>11,.0f}  {outcome}")


if __name__ == "__main__":
    main()
