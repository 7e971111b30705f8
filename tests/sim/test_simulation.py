"""The deterministic simulation of the core (roombook.sim): seeds keep every invariant, a seed
replays exactly, and the simulation finds the lost-commit-acknowledgement bug when a failed
write is handled as it was before the fix (undone in memory and refused)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from roombook.actors.shard import RoomShard, _Call
from roombook.domain.calendar import Change
from roombook.domain.commands import Reply
from roombook.domain.errors import ShardDiverged, ShardFenced, StoreUnavailable
from roombook.domain.events import Event
from roombook.domain.nights import Night, NightStatus
from roombook.sim.loop import VirtualTimeLoop
from roombook.sim.run import SimResult, simulate
from roombook.sim.store import SimStore, StoreFaults

CI_SEEDS = range(40)
CI_STEPS = 300
# Only lost COMMIT acknowledgements from the store: the fault of bug 1, and nothing else it does.
LOST_ACKS_ONLY = StoreFaults(lost_ack_p=0.05)


class UndoOnWriteFailure(RoomShard):
    """The shard as it was before the fix: a write that raised is taken to have written nothing,
    so the batch is undone in memory and its commands refused, even if the store committed it."""

    async def _write_failed(self, changes: list[Change], batch: list[tuple[_Call, int, Reply]], exc: Exception) -> None:
        for change in reversed(changes):
            self._calendar.undo(change)
        self._refuse(batch, exc)


def _report(result: SimResult) -> str:
    lines = [f"seed {result.seed}: {v.what}" for v in result.violations[:5]]
    lines.append(f"replay: python -m roombook.sim --seed {result.seed} --steps {CI_STEPS}")
    return "\n".join(lines)


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_a_seed_keeps_every_invariant_under_faults(seed: int) -> None:
    result = simulate(seed, steps=CI_STEPS)
    assert result.ok, _report(result)
    assert result.steps >= CI_STEPS


@pytest.mark.parametrize("seed", range(8))
def test_a_seed_keeps_every_invariant_when_commit_acknowledgements_are_lost(seed: int) -> None:
    result = simulate(seed, steps=CI_STEPS, store_faults=LOST_ACKS_ONLY)
    assert result.ok, _report(result)


class AcknowledgesFromMemory(RoomShard):
    """The shard before a batch that changed nothing had to prove its epoch: an owner a newer one
    has replaced answers a cancel from its stale memory ("nothing to cancel") and writes nothing."""

    async def _run_batch(self) -> None:
        store = self._store

        class SkipsEmptyWrites:
            def __getattr__(self, name: str) -> Any:  # the store's own, whatever it is
                return getattr(store, name)

            async def write_nights(
                self, shard_id: int, epoch: int, nights: Sequence[Night], events: Sequence[Event] = ()
            ) -> None:
                if nights:
                    await store.write_nights(shard_id, epoch, nights, events)

        self._store = SkipsEmptyWrites()
        try:
            await super()._run_batch()
        finally:
            self._store = store


def test_a_replaced_owner_never_acknowledges_a_cancel_it_did_not_apply() -> None:
    # seed 2397: a cancel reached the old owner of a shard after a newer one had booked the nights (a
    # schedule: any change to what the client or shard sends may move it to another seed)
    assert simulate(2397, steps=400).ok
    assert not simulate(2397, steps=400, shard_class=AcknowledgesFromMemory).ok


def test_the_simulation_finds_lost_commit_acknowledgements_when_failed_writes_are_undone() -> None:
    for seed in range(12):
        result = simulate(seed, steps=CI_STEPS, shard_class=UndoOnWriteFailure, store_faults=LOST_ACKS_ONLY)
        if not result.ok:
            break
    assert not result.ok, (
        "12 seeds of lost acknowledgements found nothing wrong with a shard that undoes committed writes"
    )
    assert result.lost_acks > 0  # the only store fault there was


def test_a_seed_replays_step_for_step() -> None:
    first, again, other = simulate(3, steps=200), simulate(3, steps=200), simulate(4, steps=200)
    assert first == again
    assert first.digest != other.digest


def test_the_command_replays_a_seed_whatever_the_hash_seed() -> None:
    digests = []
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-m", "roombook.sim", "--seed", "11", "--steps", "150"],
            env=os.environ | {"PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        assert "1 seeds run, 0 failed" in out
        digest = re.search(r"trace digest ([0-9a-f]+)", out)
        assert digest is not None, out
        digests.append(digest.group(1))
    assert digests[0] == digests[1]


def test_a_failing_seed_prints_its_replay_command() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "roombook.sim",
            "--seeds",
            "2",  # seed 0 fails at once; most seeds show it only 300 virtual s after their faults stop
            "--seed",
            "0",
            "--steps",
            "150",
            "--shard-class",
            "tests.sim.test_simulation:UndoOnWriteFailure",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1
    assert re.search(r"seed (\d+): FAILED", out.stdout)
    assert "replay: python -m roombook.sim --seed" in out.stdout
    assert "--shard-class tests.sim.test_simulation:UndoOnWriteFailure" in out.stdout


# -- the simulated parts themselves -----------------------------------------------------------


def test_virtual_time_jumps_to_the_next_timer() -> None:
    loop = VirtualTimeLoop()
    try:
        started = loop.time()
        loop.run_until_complete(asyncio.sleep(3600))
        assert loop.time() - started == pytest.approx(3600)
    finally:
        loop.close()


def _night(date: dt.date, version: int, holder: str | None = "h1") -> Night:
    status = NightStatus.HELD if holder else NightStatus.AVAILABLE
    return Night(room_id=1, date=date, status=status, holder=holder, hold_expires_at_s=None, version=version)


def _in_loop(run: Callable[[], Coroutine[object, object, None]]) -> None:
    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


def test_a_write_under_an_older_epoch_is_fenced_and_writes_nothing() -> None:
    store = SimStore(random.Random(1), StoreFaults(), lambda *_: None)
    date = dt.date(2030, 1, 1)

    async def run() -> None:
        old = await store.acquire_shard(0, "a")
        await store.acquire_shard(0, "b")
        with pytest.raises(ShardFenced):
            await store.write_nights(0, old, [_night(date, 1)])
        with pytest.raises(ShardFenced):
            await store.acquire_shard(0, "a", renew=True)

    _in_loop(run)
    assert store.rows == {}


def test_a_write_of_a_stale_version_diverges_and_writes_nothing() -> None:
    store = SimStore(random.Random(1), StoreFaults(), lambda *_: None)
    first, second = dt.date(2030, 1, 1), dt.date(2030, 1, 2)

    async def run() -> None:
        epoch = await store.acquire_shard(0, "a")
        await store.write_nights(0, epoch, [_night(first, 1)])
        with pytest.raises(ShardDiverged):
            await store.write_nights(0, epoch, [_night(second, 1), _night(first, 1)])

    _in_loop(run)
    assert list(store.rows) == [(1, first)]


def test_a_lost_acknowledgement_raises_for_a_write_that_committed() -> None:
    store = SimStore(random.Random(1), StoreFaults(lost_ack_p=1.0), lambda *_: None)
    date = dt.date(2030, 1, 1)

    async def run() -> None:
        store.faults_on = False
        epoch = await store.acquire_shard(0, "a")
        store.faults_on = True
        with pytest.raises(StoreUnavailable):
            await store.write_nights(0, epoch, [_night(date, 1)])

    _in_loop(run)
    assert store.rows[1, date].version == 1
    assert store.lost_acks == 1
