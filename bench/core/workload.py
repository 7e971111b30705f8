"""The contention workload: N clients, each looping booking attempts for a fixed time, every
attempt a stay of 1-5 nights on a room picked uniformly from a hot set of H rooms.

Refill: each room offers a window of 60 nights at a time. Once the nights booked in a room's
window reach `refill_at` of it (90% by default), the room's next attempts go to the following 60
nights, which nobody has touched: fresh inventory, so the measured period is never dominated by
a full calendar. Attempts already under way finish in the old window. The rule depends only on
acknowledged bookings, so every system sees the same workload.

Aged start: a round that starts on empty windows measures a transient, and one that favours the
slower system. Filling a window's last gaps with random 1-5-night stays takes many attempts, so
most of a room's attempts are spent on nearly full windows; a system that books slowly spends a
short round on its first, empty windows, where most attempts succeed, while a fast one is already
cycling through full ones (bench/README.md, "Aged start", has the conflicts per booking of each).
`aged_start` puts every room at the point of its cycle where a long run would find it, the same
for every system, so bookings/s compares like with like from the first second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import msgspec

from roombook.domain.stays import Stay

WINDOW_NIGHTS = 60
MAX_STAY_NIGHTS = 5
FIRST_NIGHT = dt.date(2030, 1, 1)
LAST_NIGHT = dt.date(9999, 1, 1)  # DATE's range ends at 9999-12-31
ERROR_PAUSE_S = 0.001  # after a failed attempt: a broken system must not be hammered in a tight loop


class Outcome(enum.Enum):
    BOOKED = "booked"
    CONFLICT = "conflict"  # some night was taken: the system answered correctly, no booking
    ERROR = "error"  # the system failed the attempt (deadlock, lock wait timeout, shard down, ...)


class Attempt(NamedTuple):
    outcome: Outcome
    error: str | None = None  # the kind of error, for ERROR


BOOKED = Attempt(Outcome.BOOKED)
CONFLICT = Attempt(Outcome.CONFLICT)


def failed(kind: str) -> Attempt:
    return Attempt(Outcome.ERROR, kind)


class BookedStay(msgspec.Struct, frozen=True, array_like=True):
    """One confirmed booking: who (the attempt's key), which room, which nights [check_in, check_out)."""

    key: str
    room_id: int
    check_in: dt.date
    check_out: dt.date

    def nights(self) -> list[dt.date]:
        return [self.check_in + dt.timedelta(days=i) for i in range((self.check_out - self.check_in).days)]


class BookingSystem(Protocol):
    """A system under test: one booking attempt, start to end (hold, payment, confirmation)."""

    async def book(self, client: int, key: str, room_id: int, stay: Stay) -> Attempt: ...


def stay_in_window(rng: random.Random) -> tuple[int, int]:
    """A stay as the clients draw it: (its first night's offset in the window, 1-5 nights)."""
    nights = rng.randint(1, MAX_STAY_NIGHTS)
    return rng.randrange(WINDOW_NIGHTS - nights + 1), nights


class HotRooms:
    """The hot set and each room's current window. Invariant: a window is replaced once the nights
    acknowledged as booked in it reach refill_at of it; windows only move forward."""

    def __init__(
        self,
        room_ids: Sequence[int],
        *,
        refill_at: float = 0.9,
        on_refill: Callable[[int, int], None] | None = None,
        already_booked: Sequence[BookedStay] = (),
    ) -> None:
        """already_booked: bookings stored before the round, in the rooms' first windows (see
        aged_start); they count towards the refill like the round's own."""
        if not room_ids or not 0 < refill_at <= 1:
            raise ValueError("need at least one room and 0 < refill_at <= 1")
        self.room_ids = list(room_ids)
        self.refills = 0
        self._full_at = full_at(refill_at)
        self._window = dict.fromkeys(self.room_ids, 0)
        self._booked = dict.fromkeys(self.room_ids, 0)  # nights booked in the current window
        for booking in already_booked:
            if booking.check_in < FIRST_NIGHT or booking.check_out > self.window_start(1):
                raise ValueError(f"{booking} is not in its room's first window")
            self._booked[booking.room_id] += (booking.check_out - booking.check_in).days
        if any(nights >= self._full_at for nights in self._booked.values()):
            raise ValueError("a room starts with a window already due for a refill")
        self._on_refill = on_refill

    @staticmethod
    def window_start(window: int) -> dt.date:
        return FIRST_NIGHT + dt.timedelta(days=WINDOW_NIGHTS * window)

    def pick(self, rng: random.Random) -> tuple[int, int, Stay]:
        """(room, its current window, a stay of 1-5 nights inside that window)."""
        room_id = self.room_ids[rng.randrange(len(self.room_ids))] if len(self.room_ids) > 1 else self.room_ids[0]
        window = self._window[room_id]
        offset, nights = stay_in_window(rng)
        check_in = self.window_start(window) + dt.timedelta(days=offset)
        if check_in >= LAST_NIGHT:
            raise OverflowError("the hot rooms ran out of calendar: shorten the run or use more rooms")
        return room_id, window, Stay(check_in=check_in, check_out=check_in + dt.timedelta(days=nights))

    def booked(self, room_id: int, window: int, nights: int) -> None:
        if window != self._window[room_id]:
            return  # a late booking in a window already replaced
        self._booked[room_id] += nights
        if self._booked[room_id] >= self._full_at:
            self._window[room_id] = window + 1
            self._booked[room_id] = 0
            self.refills += 1
            if self._on_refill is not None:
                self._on_refill(room_id, window + 1)


def full_at(refill_at: float) -> int:
    """Booked nights of a window that replace it."""
    return math.ceil(refill_at * WINDOW_NIGHTS)


AGED_CYCLES = 4  # simulated fills per room: enough for the sampled point to land length-biased


def aged_start(room_ids: Sequence[int], *, refill_at: float = 0.9, seed: int = 1) -> list[BookedStay]:
    """Bookings that put each room's first window where a long run would find it at a random time.

    Each room's attempts are simulated one at a time, as the clients make them (stay_in_window,
    booked if every night is free), through AGED_CYCLES
    fills of a fresh window. A point is drawn uniformly over all those attempts, so a fill that
    takes more attempts is drawn more often, as a moment of a long run is; the room starts with
    the bookings its fill had made by that point. The same (rooms, refill_at, seed) give the same
    bookings, so every system of a round starts from the same calendar."""
    full = full_at(refill_at)
    start = HotRooms.window_start(0)
    aged: list[BookedStay] = []
    for room_id in room_ids:
        rng = random.Random(f"aged-{seed}-{room_id}")
        fills: list[tuple[int, list[tuple[int, int, int]]]] = []  # (first attempt, its bookings)
        attempts = 0
        for _ in range(AGED_CYCLES):
            began = attempts
            free = [True] * WINDOW_NIGHTS
            booked_nights = 0
            made: list[tuple[int, int, int]] = []  # (attempt, first night's offset, nights)
            while booked_nights < full:
                first, nights = stay_in_window(rng)
                if all(free[first : first + nights]):
                    made.append((attempts, first, nights))
                    free[first : first + nights] = [False] * nights
                    booked_nights += nights
                attempts += 1
            fills.append((began, made))
        point = rng.randrange(attempts)
        fill = next(made for began, made in reversed(fills) if began <= point)
        aged.extend(
            BookedStay(
                f"aged-{room_id}-{i}",
                room_id,
                start + dt.timedelta(days=first),
                start + dt.timedelta(days=first + nights),
            )
            for i, (made_at, first, nights) in enumerate(fill)
            if made_at < point
        )
    return aged


class RoundLog:
    """What the clients saw in one round: every outcome, latency and acknowledged booking."""

    def __init__(self) -> None:
        self.attempts = self.conflicts = 0
        self.errors: Counter[str] = Counter()
        self.acknowledged: list[BookedStay] = []
        self.attempt_latencies_s: list[float] = []
        self.booking_latencies_s: list[float] = []
        self.elapsed_s = 0.0


async def run_clients(system: BookingSystem, hot: HotRooms, *, clients: int, seconds: float, seed: int = 1) -> RoundLog:
    """`clients` loops, each starting attempts until `seconds` have passed and finishing the one
    under way; elapsed_s runs until the last one has finished."""
    log = RoundLog()
    started = time.perf_counter()
    deadline = started + seconds

    async def one_client(client: int) -> None:
        rng = random.Random(seed * 1_000_003 + client)
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            key = f"c{client}-{n}"
            room_id, window, stay = hot.pick(rng)
            t0 = time.perf_counter()
            try:
                attempt = await system.book(client, key, room_id, stay)
            except Exception as exc:  # a bug or a broken connection: count it, keep the run going
                attempt = failed(f"unexpected {type(exc).__name__}: {exc}"[:120])
            latency = time.perf_counter() - t0
            log.attempts += 1
            log.attempt_latencies_s.append(latency)
            match attempt.outcome:
                case Outcome.BOOKED:
                    log.acknowledged.append(BookedStay(key, room_id, stay.check_in, stay.check_out))
                    log.booking_latencies_s.append(latency)
                    hot.booked(room_id, window, stay.night_count)
                case Outcome.CONFLICT:
                    log.conflicts += 1
                case Outcome.ERROR:
                    log.errors[attempt.error or "error"] += 1
                    await asyncio.sleep(ERROR_PAUSE_S)

    await asyncio.gather(*(one_client(c) for c in range(clients)))
    log.elapsed_s = time.perf_counter() - started
    return log
