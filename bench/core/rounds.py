"""One round: a system on an empty database, N clients for a fixed time on H hot rooms, the CPU
of every process involved over the same interval, then the verification."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import msgspec

from bench.core.rowlock_system import rowlock_bookings
from bench.core.shard_system import shard_bookings
from bench.core.verification import StoredState, Verdict, verify_round
from bench.core.workload import BookedStay, BookingSystem, HotRooms, aged_start, run_clients
from bench.latency import percentile
from bench.process_cpu import CpuMeter, descendants, pid_of
from roombook.actors.shard import GroupCommit
from roombook.heap import frozen_heap

SYSTEMS = {
    "A": "roombook: shard actors on Ray, group commit",
    "A-local": "roombook: the same shards in-process, group commit",
    "B-pool": "row locks, one pool of 64 connections, handed out first come first served",
    "B-conn": "row locks, one connection per client",
    "C": "roombook on Ray, group commit off",
}
# asyncmy's own pool alone: a task that releases a connection can take it straight back (or a
# newcomer can) before the waiters queued for one are woken, so a few clients wait seconds
# (bench/README.md, "B-pool's tail"); not run unless named in --systems
EXTRA_SYSTEMS = {"B-pool-barging": "B-pool on asyncmy's pool alone (no first-come-first-served gate)"}
RAY_SYSTEMS = ("A", "C")
STARTS = ("aged", "empty")  # the rooms' first windows: as a long run finds them (aged_start), or empty


class SystemUnderTest(BookingSystem, Protocol):
    cpu_groups: dict[str, list[int]]

    def window_refilled(self, room_id: int, window: int) -> None: ...

    async def stored_state(self) -> StoredState: ...


class RoundResult(msgspec.Struct, kw_only=True):
    system: str
    clients: int
    hot: int
    round: int
    elapsed_s: float
    attempts: int
    bookings: int
    conflicts: int
    errors: int
    error_kinds: dict[str, int]
    lock_errors: dict[str, int]  # deadlocks and lock wait timeouts, each occurrence (B only)
    refills: int
    aged_bookings: int  # stored before the round (aged start), not counted in bookings
    attempt_ms: dict[str, float]  # p50, p95, p99
    booking_ms: dict[str, float]  # p50, p99 of the attempts that booked
    # CPU seconds over the round: client (this process), db, actors, ray_other, machine (every
    # process), other (machine less the rest: work on the machine that is not this benchmark's)
    cpu_s: dict[str, float | None]
    verdict: Verdict

    @property
    def bookings_per_s(self) -> float:
        return self.bookings / self.elapsed_s

    @property
    def attempts_per_s(self) -> float:
        return self.attempts / self.elapsed_s


@contextlib.asynccontextmanager
async def open_system(
    system: str,
    dsn: str,
    *,
    room_ids: Sequence[int],
    clients: int,
    shards: int = 4,
    pool_size: int = 64,
    calls_in_flight: int | None = None,
    aged: Sequence[BookedStay] = (),
) -> AsyncIterator[SystemUnderTest]:
    """The named system (see SYSTEMS) on the empty database at dsn, holding the `aged` bookings,
    ready for its first attempt.
    calls_in_flight: AvailabilityClient's max_calls_in_flight for A, A-local, C (None: its default)."""
    match system:
        case "A" | "C" | "A-local":
            async with shard_bookings(
                dsn,
                runtime="local" if system == "A-local" else "ray",
                shards=shards,
                group_commit=GroupCommit(enabled=system != "C"),
                calls_in_flight=calls_in_flight,
                aged=aged,
            ) as sut:
                yield sut
        case "B-pool" | "B-conn" | "B-pool-barging":
            size = None if system == "B-conn" else pool_size
            async with rowlock_bookings(
                dsn, room_ids=room_ids, clients=clients, pool_size=size, aged=aged, fifo=system != "B-pool-barging"
            ) as sut:
                yield sut
        case _:
            raise ValueError(f"unknown system {system!r}: one of {', '.join([*SYSTEMS, *EXTRA_SYSTEMS])}")


async def run_round(
    system: str,
    dsn: str,
    *,
    clients: int,
    hot: int,
    seconds: float,
    round_no: int = 0,
    shards: int = 4,
    pool_size: int = 64,
    refill_at: float = 0.9,
    seed: int = 1,
    calls_in_flight: int | None = None,
    start: str = "aged",
) -> RoundResult:
    """start: "aged" (the rooms as a long run finds them, workload.aged_start, the same for every
    system of a round) or "empty"."""
    if start not in STARTS:
        raise ValueError(f"start is one of {STARTS}, not {start!r}")
    room_ids = list(range(1, hot + 1))
    aged = _aged_start(hot, refill_at, seed + round_no) if start == "aged" else []
    async with open_system(
        system,
        dsn,
        room_ids=room_ids,
        clients=clients,
        shards=shards,
        pool_size=pool_size,
        calls_in_flight=calls_in_flight,
        aged=aged,
    ) as sut:
        rooms = HotRooms(room_ids, refill_at=refill_at, on_refill=sut.window_refilled, already_booked=aged)
        meter = CpuMeter(_cpu_groups(sut.cpu_groups))
        with frozen_heap():  # the load generator's own full collections would stall every client
            meter.start()
            log = await run_clients(sut, rooms, clients=clients, seconds=seconds, seed=seed + round_no)
            cpu = meter.stop()
        stored = await sut.stored_state()
        lock_errors = dict(getattr(sut, "lock_errors", {}))
    failed_attempts = sum(log.errors.values())
    # the aged bookings are known and stored like acknowledged ones, and must come out the same
    verdict = verify_round(acknowledged=[*aged, *log.acknowledged], stored=stored, failed_attempts=failed_attempts)
    attempts = sorted(log.attempt_latencies_s)
    booked = sorted(log.booking_latencies_s)
    return RoundResult(
        system=system,
        clients=clients,
        hot=hot,
        round=round_no,
        elapsed_s=log.elapsed_s,
        attempts=log.attempts,
        bookings=len(log.acknowledged),
        conflicts=log.conflicts,
        errors=failed_attempts,
        error_kinds=dict(log.errors),
        lock_errors=lock_errors,
        refills=rooms.refills,
        aged_bookings=len(aged),
        attempt_ms={f"p{q}": 1000 * percentile(attempts, q / 100) for q in (50, 95, 99)},
        booking_ms={f"p{q}": 1000 * percentile(booked, q / 100) for q in (50, 99)},
        cpu_s=_with_other_work(cpu),
        verdict=verdict,
    )


@functools.lru_cache(maxsize=4)
def _aged_start(hot: int, refill_at: float, seed: int) -> tuple[BookedStay, ...]:
    """Shared by every system of a round (rooms 1..hot)."""
    return tuple(aged_start(range(1, hot + 1), refill_at=refill_at, seed=seed))


def _cpu_groups(system_groups: dict[str, list[int]]) -> dict[str, list[int]]:
    """The database server (when it runs here), the system's own processes (the shard actors), and
    every other process below this one (the rest of a local Ray: raylet, GCS, idle workers)."""
    groups = dict(system_groups)
    db = pid_of("mariadbd") or pid_of("mysqld")
    groups["db"] = [db] if db else []
    own = {pid for pids in system_groups.values() for pid in pids}
    groups["ray_other"] = [pid for pid in descendants(os.getpid()) if pid not in own]
    return groups


def _with_other_work(cpu: dict[str, float | None]) -> dict[str, float | None]:
    out = {key: value for key, value in cpu.items() if key != "wall"}
    ours = sum(value or 0.0 for key, value in out.items() if key != "machine")
    out["other"] = max(0.0, (out.get("machine") or 0.0) - ours)
    return out
