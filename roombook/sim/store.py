"""The global availability store, in memory, with the faults a real one has.

The semantics follow the SQL adapters: `acquire_shard` bumps the lease's epoch (renew=True only
for the owner that holds it); `write_nights` is one transaction that commits only if the lease
still carries the writer's epoch and every row's stored version is one below the new one, else it
raises ShardFenced or ShardDiverged and writes nothing. A transaction takes effect at one instant.

Faults, drawn per call while `faults_on`: a call fails before it commits; stalls; commits and
then loses the acknowledgement (the caller sees StoreUnavailable for a write that happened);
commits late (the caller sees the error now, the COMMIT lands a little later, as when a cut
connection's COMMIT had already reached the server). A lease change waits for such late commits
of its shard first, as the lease row's lock makes a real one wait. `outage(until_s)` refuses every
call until then (a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable, Sequence

import msgspec

from roombook.domain.errors import ShardDiverged, ShardFenced, StoreUnavailable
from roombook.domain.events import Event
from roombook.domain.nights import Night
from roombook.routing.ring import ShardRing, rooms_to_load
from roombook.storage.ports import ShardLease

Key = tuple[int, dt.date]  # (room_id, date)


class StoreFaults(msgspec.Struct, frozen=True, kw_only=True):
    """Probabilities per call (a write draws one fault at most) and the delays they add."""

    fail_p: float = 0.0  # raise before committing
    lost_ack_p: float = 0.0  # commit, then raise
    late_commit_p: float = 0.0  # raise now, commit after late_commit_s (unless fenced by then)
    stall_p: float = 0.0  # add stall_s before the call takes effect
    latency_s: tuple[float, float] = (0.0002, 0.002)
    stall_s: tuple[float, float] = (0.05, 1.5)
    late_commit_s: tuple[float, float] = (0.001, 0.3)


_SIM_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # leases carry no wall-clock time in a simulation


class _Lease:
    __slots__ = ("commits", "epoch", "owner")

    def __init__(self, epoch: int, owner: str) -> None:
        self.epoch, self.owner, self.commits = epoch, owner, 0


class SimStore:
    """The AvailabilityStore methods a RoomShard calls, plus `rows` for the checker to read."""

    def __init__(self, rng: random.Random, faults: StoreFaults, trace: Callable[..., None]) -> None:
        self.rows: dict[Key, Night] = {}
        self.leases: dict[int, _Lease] = {}
        self.faults = faults
        self.faults_on = True
        self.commits = 0
        self.lost_acks = 0
        self.after_commit: Callable[[], None] = lambda: None
        self._rng = rng
        self._trace = trace
        self._down_until_s = 0.0
        self._late: dict[int, list[asyncio.Future[None]]] = {}

    def outage(self, until_s: float) -> None:
        self._down_until_s = max(self._down_until_s, until_s)
        self._trace("store_outage", until_s)

    def calm(self) -> None:
        """Faults off from now on (the outage in progress too): the run quiesces."""
        self.faults_on = False
        self._down_until_s = 0.0

    # -- the port ------------------------------------------------------------------------------

    async def acquire_shard(
        self,
        shard_id: int,
        owner: str,
        *,
        renew: bool = False,
        deployment: str = "",
        actor: str = "",
        lease_s: float = 0.0,
    ) -> int:
        """One deployment runs in a simulation: `deployment`, `actor` and `lease_s` change nothing."""
        await self._enter("acquire", shard_id)
        for late in self._late.pop(shard_id, []):
            await asyncio.shield(late)
        lease = self.leases.get(shard_id)
        if renew and (lease is None or lease.owner != owner):
            raise ShardFenced(f"shard {shard_id}: another owner took it over")
        epoch = (lease.epoch if lease else 0) + 1
        new = self.leases[shard_id] = _Lease(epoch, owner)
        if lease is not None:
            new.commits = lease.commits
        self._trace("acquired", shard_id, owner, epoch)
        if self._draw(self.faults.lost_ack_p):
            self._trace("acquire_ack_lost", shard_id, epoch)
            raise StoreUnavailable("sim: the store's answer was lost")
        return epoch

    async def renew_lease(self, shard_id: int, epoch: int) -> bool:
        await self._enter("renew", shard_id)
        lease = self.leases.get(shard_id)
        return lease is not None and lease.epoch == epoch

    async def lease(self, shard_id: int) -> ShardLease | None:
        lease = self.leases.get(shard_id)
        if lease is None:
            return None
        return ShardLease(
            shard_id=shard_id, epoch=lease.epoch, owner=lease.owner, acquired_at=_SIM_TIME, commits=lease.commits
        )

    async def ring(self, default_shard_count: int | None = None) -> ShardRing | None:
        """A simulation's ring never changes."""
        return None if default_shard_count is None else ShardRing(default_shard_count, version=1)

    async def change_ring(self, expected_version: int, shard_count: int) -> ShardRing:
        raise NotImplementedError("a simulation's ring never changes")

    async def load_nights(
        self, ring: ShardRing, shard_id: int, *, unless_owned_by: ShardRing | None = None
    ) -> list[Night]:
        await self._enter("load", shard_id)
        rooms = set(rooms_to_load({n.room_id for n in self.rows.values()}, ring, shard_id, unless_owned_by))
        return [night for night in self.rows.values() if night.room_id in rooms]

    async def write_nights(
        self, shard_id: int, epoch: int, nights: Sequence[Night], events: Sequence[Event] = ()
    ) -> None:
        await self._enter("write", shard_id)
        faults, rows = self.faults, list(nights)
        if self._draw(faults.late_commit_p):
            late = asyncio.get_running_loop().create_future()
            self._late.setdefault(shard_id, []).append(late)
            delay_s = self._uniform(faults.late_commit_s)
            asyncio.get_running_loop().call_later(delay_s, self._late_commit, late, shard_id, epoch, rows)
            self._trace("write_late", shard_id, epoch, len(rows))
            raise StoreUnavailable("sim: connection lost during COMMIT")
        self._commit(shard_id, epoch, rows)
        if self._draw(faults.lost_ack_p):
            self.lost_acks += 1
            self._trace("write_ack_lost", shard_id, epoch, len(rows))
            raise StoreUnavailable("sim: the COMMIT's acknowledgement was lost")

    # -- internals -----------------------------------------------------------------------------

    def _commit(self, shard_id: int, epoch: int, rows: list[Night]) -> None:
        lease = self.leases.get(shard_id)
        if lease is None or lease.epoch != epoch:
            self._trace("write_fenced", shard_id, epoch)
            raise ShardFenced(f"shard {shard_id}: epoch {epoch} is no longer the current one")
        for night in rows:
            stored = self.rows.get((night.room_id, night.date))
            if (stored.version if stored else 0) != night.version - 1:
                self._trace("write_diverged", shard_id, epoch, night.room_id, night.date.toordinal())
                raise ShardDiverged(f"shard {shard_id}: stale version in a batch of {len(rows)} rows")
        lease.commits += 1
        for night in rows:
            self.rows[night.room_id, night.date] = night
        self.commits += 1
        self._trace("committed", shard_id, epoch, len(rows))
        self.after_commit()

    def _late_commit(self, late: asyncio.Future[None], shard_id: int, epoch: int, rows: list[Night]) -> None:
        waiting = self._late.get(shard_id, [])
        if late in waiting:
            waiting.remove(late)
        with contextlib.suppress(ShardFenced, ShardDiverged):  # traced: it found a newer epoch, wrote nothing
            self._commit(shard_id, epoch, rows)
        if not late.done():
            late.set_result(None)

    async def _enter(self, what: str, shard_id: int) -> None:
        """The call's round trip; raises for an outage or a failure drawn before it commits."""
        loop = asyncio.get_running_loop()
        faults = self.faults
        delay_s = self._uniform(faults.latency_s)
        if self._draw(faults.stall_p):
            delay_s += self._uniform(faults.stall_s)
            self._trace("store_stall", what, shard_id, delay_s)
        await asyncio.sleep(delay_s)
        if loop.time() < self._down_until_s:
            raise StoreUnavailable("sim: the store refused the connection")
        if what != "load" and self._draw(faults.fail_p):
            self._trace("store_failed", what, shard_id)
            raise StoreUnavailable(f"sim: {what} failed before it committed")

    def _draw(self, p: float) -> bool:
        return self.faults_on and p > 0 and self._rng.random() < p

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self._rng.uniform(*bounds)
