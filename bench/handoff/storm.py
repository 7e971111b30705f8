"""The booking storm of bench.handoff: N clients, each booking one night of a random room at a time
(place_hold, then confirm) through one AvailabilityClient, recording when each attempt started and
ended and how it ended. A booking refused NightsUnavailable is a refusal; any other exception is a
failed request."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import random
import sys
import time

from bench.core.workload import BookedStay
from bench.latency import percentile
from roombook.actors.client import AvailabilityClient
from roombook.domain.errors import NightsUnavailable
from roombook.domain.stays import Stay

START = dt.date(2031, 1, 1)
DAY = dt.timedelta(days=1)
BOOKED, REFUSED, FAILED = "booked", "refused", "failed"
STOP_TIMEOUT_S = 60.0  # longer than any call's own time-out


class Storm:
    """Clients booking until stop(); what they were told is kept for the verification."""

    def __init__(self, client: AvailabilityClient, rooms: list[int], *, clients: int, nights: int, ttl_s: float):
        self.client = client
        self.rooms = rooms
        self.nights = nights
        self.ttl_s = ttl_s
        self.samples: list[tuple[float, float, int, str]] = []  # (started, ended, room, outcome), monotonic
        self.acknowledged: list[BookedStay] = []
        self.failed: dict[str, tuple[int, str]] = {}  # hold id -> (room, what was raised)
        self.unanswered = 0  # attempts still without an answer STOP_TIMEOUT_S after stop()
        self._stopping = asyncio.Event()
        self._tasks = [asyncio.create_task(self._book(n)) for n in range(clients)]

    async def _book(self, n: int) -> None:
        rng = random.Random(n)
        attempt = 0
        while not self._stopping.is_set():
            room = rng.choice(self.rooms)
            night = START + rng.randrange(self.nights) * DAY
            hold_id = f"c{n}-{attempt}"
            attempt += 1
            started = time.monotonic()
            try:
                stay = Stay(check_in=night, check_out=night + DAY)
                await self.client.place_hold(room_id=room, hold_id=hold_id, stay=stay, ttl_s=self.ttl_s)
                await self.client.confirm(room_id=room, hold_id=hold_id)
            except NightsUnavailable:
                outcome = REFUSED
            except asyncio.CancelledError:  # stop() gave up waiting for it
                self.failed[hold_id] = (room, "no answer")
                self.samples.append((started, time.monotonic(), room, FAILED))
                raise
            except Exception as exc:
                outcome = FAILED
                self.failed[hold_id] = (room, _why(exc))
            else:
                outcome = BOOKED
                self.acknowledged.append(BookedStay(hold_id, room, night, night + DAY))
            self.samples.append((started, time.monotonic(), room, outcome))

    async def stop(self) -> None:
        """Let every client finish its attempt under way, then release the holds of failed attempts
        (an attempt that failed may have left its hold placed)."""
        self._stopping.set()
        _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        lanes = [t for t in asyncio.all_tasks() if "_Lane._call" in repr(t.get_coro())]
        for task in lanes[:3]:  # the calls the stuck attempts wait on, down to what they await
            print(f"stuck: {' <- '.join(_awaiting(task.get_coro()))}", file=sys.stderr)
        for task in stuck:  # an attempt with no answer at all: a failure, its hold released below
            task.cancel()
        self.unanswered = len(stuck)
        for hold_id, (room, _) in list(self.failed.items()):
            with contextlib.suppress(Exception):  # e.g. it was booked after all: the verification counts that
                await self.client.release(room_id=room, hold_id=hold_id)


def window(samples: list[tuple[float, float, int, str]], lo: float, hi: float) -> dict[str, float]:
    """Figures of the attempts that ended in [lo, hi): latency of every attempt whatever its outcome."""
    inside = [s for s in samples if lo <= s[1] < hi]
    latencies = sorted(s[1] - s[0] for s in inside)
    return {
        "attempts": len(inside),
        "booked": sum(1 for s in inside if s[3] == BOOKED),
        "refused": sum(1 for s in inside if s[3] == REFUSED),
        "failed": sum(1 for s in inside if s[3] == FAILED),
        "per_s": len(inside) / (hi - lo) if hi > lo else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
    }


def longest_gap_s(samples: list[tuple[float, float, int, str]], lo: float, hi: float) -> float:
    """The longest time in [lo, hi) in which no attempt got any answer (bookings, refusals, failures)."""
    ends = sorted(s[1] for s in samples if lo <= s[1] < hi)
    marks = [lo, *ends, hi]
    return max(b - a for a, b in itertools.pairwise(marks))


def _awaiting(coro: object) -> list[str]:
    """file:line of each coroutine in the chain `coro` awaits, outermost first."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


def _why(exc: Exception) -> str:
    """The failure in a line: its type and first line, and, for an error raised in an actor, the
    last line of the remote traceback (the cause), not the traceback's head."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    if len(lines) > 1:
        text += f" ... {lines[-1]}"
    return text[:400]
