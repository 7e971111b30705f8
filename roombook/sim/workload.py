"""Guests, the reconciler's shard-side step, calendar readers and the fault schedule.

A guest places a hold (a new hold id per attempt) on a seeded random stay, thinks, then confirms
or releases it, and now and then cancels a booking later. An answer that does not settle a
command (the shard unavailable or fenced, the outcome unknown) is retried as it was, as the
booking API asks its clients to: every command is idempotent by hold id. Some guests walk away
mid-attempt; the reconciler settles their holds as BookingService._settle_stale does, with one
release whose answer says whether the hold had been booked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable

import msgspec

from roombook.actors.client import AvailabilityClient
from roombook.domain.calendar import HoldView
from roombook.domain.errors import (
    HoldExpired,
    HoldMismatch,
    InvalidStay,
    NightsUnavailable,
    RoombookError,
    UnknownHold,
)
from roombook.domain.stays import Stay
from roombook.sim.cluster import Cluster, Owner
from roombook.sim.model import HoldRecord, Model
from roombook.sim.network import SimNetwork
from roombook.sim.store import SimStore

FIRST_NIGHT = dt.date(2030, 1, 1)
_SETTLED_BY = (NightsUnavailable, HoldExpired, UnknownHold, HoldMismatch, InvalidStay)  # definite refusals


class Shape(msgspec.Struct, frozen=True, kw_only=True):
    """One seed's workload."""

    rooms: list[int]
    nights: int  # the calendar window guests pick stays from
    guests: int
    hold_ttl_s: float
    confirm_p: float
    cancel_p: float
    walk_away_p: float
    fault_gap_s: float  # mean time between scheduled faults (crash, duplicate owner, outage, reset)


class Workload:
    """Drives guests until `budget` commands have been sent, then lets them finish."""

    def __init__(
        self,
        rng: random.Random,
        shape: Shape,
        clients: list[AvailabilityClient],
        reconciler_client: AvailabilityClient,
        cluster: Cluster,
        model: Model,
        trace: Callable[..., None],
        budget: int,
    ) -> None:
        self.rng = rng
        self.shape = shape
        self.commands = 0
        self.fronts = clients
        self._reconciler = reconciler_client
        self._cluster = cluster
        self._model = model
        self._trace = trace
        self._budget = budget
        self.budget_spent = asyncio.Event()
        self._walked_away: list[tuple[float, HoldRecord]] = []
        self._strays: set[asyncio.Task[object]] = set()
        self.guests_done = 0

    @property
    def winding_down(self) -> bool:
        return self.commands >= self._budget

    def _count(self) -> None:
        self.commands += 1
        if self.commands >= self._budget:
            self.budget_spent.set()

    # -- guests ----------------------------------------------------------------------------------

    async def guest(self, number: int) -> None:
        attempt = 0
        while not self.winding_down:
            attempt += 1
            await self._attempt(f"g{number}a{attempt}")
            await asyncio.sleep(self.rng.expovariate(1 / 0.2))
        self.guests_done += 1

    def _front(self) -> AvailabilityClient:
        """Each request may reach another front process, with its own connections to the shards."""
        return self.rng.choice(self.fronts)

    async def _attempt(self, hold_id: str) -> None:
        rng, shape = self.rng, self.shape
        room_id = rng.choice(shape.rooms)
        check_in = FIRST_NIGHT + dt.timedelta(days=rng.randrange(shape.nights - 1))
        stay = Stay(check_in=check_in, check_out=check_in + dt.timedelta(days=rng.randint(1, 3)))
        record = self._model.records[hold_id] = HoldRecord(hold_id, room_id, stay.nights())
        place = lambda: self._front().place_hold(room_id=room_id, hold_id=hold_id, stay=stay, ttl_s=shape.hold_ttl_s)  # noqa: E731
        if rng.random() < shape.walk_away_p / 2:  # walks away before the hold is answered
            self._walk_away(record, place())
            return
        reply = await self._settle(record, "place", place)
        if not isinstance(reply, HoldView):
            self._settled(record, "refused" if isinstance(reply, NightsUnavailable) else None, reply)
            return
        self._settled(record, "held" if reply.status == "held" else None, reply)
        record.expires_at_s = reply.expires_at_s or 0.0
        await asyncio.sleep(rng.expovariate(1 / 0.3) if rng.random() < 0.9 else shape.hold_ttl_s * rng.uniform(1, 2))
        confirm = lambda: self._front().confirm(room_id=room_id, hold_id=hold_id)  # noqa: E731
        if rng.random() < shape.walk_away_p / 2:  # walks away with the hold, maybe mid-confirm
            self._walk_away(record, confirm() if rng.random() < 0.5 else None)
            return
        if rng.random() >= shape.confirm_p:
            reply = await self._settle(
                record, "release", lambda: self._front().release(room_id=room_id, hold_id=hold_id)
            )
            self._settled(record, "released" if _status(reply) == "released" else None, reply)
            return
        reply = await self._settle(record, "confirm", confirm)
        if isinstance(reply, HoldExpired | UnknownHold):
            self._settled(record, "expired", reply)
            return
        self._settled(record, "booked" if _status(reply) == "booked" else None, reply)
        if record.state != "booked" or rng.random() >= shape.cancel_p:
            return
        await asyncio.sleep(rng.expovariate(1 / 0.5))
        reply = await self._settle(record, "cancel", lambda: self._front().cancel(room_id=room_id, booking_id=hold_id))
        self._settled(record, "cancelled" if _status(reply) == "cancelled" else None, reply)

    async def _settle(self, record: HoldRecord, command: str, send: Callable[[], Awaitable[HoldView]]) -> object:
        """Send until the answer settles the command: a view, or a definite refusal."""
        record.in_flight = command
        record.sends += 1
        while True:
            self._count()
            try:
                reply: object = await send()
            except _SETTLED_BY as exc:
                reply = exc
            except RoombookError as exc:  # unavailable, fenced, outcome unknown: ask again
                self._trace("unsettled", record.hold_id, command, type(exc).__name__)
                await asyncio.sleep(self.rng.uniform(0.02, 0.3))
                continue
            record.in_flight = None
            self._trace("answered", record.hold_id, command, _brief(reply))
            return reply

    def _settled(self, record: HoldRecord, state: str | None, reply: object) -> None:
        if state is None:
            self._model.violate(f"{record.hold_id}: answer {_brief(reply)} makes no sense for {record.state}")
            state = "abandoned"
        record.state = state
        if state == "booked":
            self._model.check_double_booking(record)

    def _walk_away(self, record: HoldRecord, pending: Awaitable[object] | None) -> None:
        """The guest leaves; what it sent still travels. The reconciler settles the hold later."""
        if pending is not None:
            stray = asyncio.ensure_future(pending)
            self._strays.add(stray)
            stray.add_done_callback(self._stray_done)
            self._count()
        record.state, record.in_flight = "abandoned", None
        record.sends += 1
        loop = asyncio.get_running_loop()
        self._walked_away.append((loop.time() + self.shape.hold_ttl_s + 1.0, record))
        self._trace("walked_away", record.hold_id)

    def _stray_done(self, task: asyncio.Task[object]) -> None:
        self._strays.discard(task)
        if not task.cancelled():
            task.exception()  # a refusal nobody waits for is expected

    # -- the reconciler and the readers ----------------------------------------------------------

    async def reconciler(self) -> None:
        """Every second, settle the holds walked away from more than a hold TTL ago."""
        loop = asyncio.get_running_loop()
        while not (self.guests_done == self.shape.guests and not self._walked_away):
            await asyncio.sleep(1.0)
            due = [(at, record) for at, record in self._walked_away if at <= loop.time()]
            self._walked_away = [(at, record) for at, record in self._walked_away if at > loop.time()]
            for _, record in due:
                hold_id, room_id = record.hold_id, record.room_id
                release = lambda h=hold_id, r=room_id: self._reconciler.release(room_id=r, hold_id=h)  # noqa: E731
                reply = await self._settle(record, "release", release)
                record.by_guest = False
                status = _status(reply)
                self._settled(record, status if status in ("booked", "released") else None, reply)

    async def reader(self, client: AvailabilityClient) -> None:
        """Reads a room's whole window now and then and checks it against the model, when one
        owner served the shard throughout (a deposed owner that still runs answers reads from its
        memory as it was: stale, which the model does not judge)."""
        loop = asyncio.get_running_loop()
        end = FIRST_NIGHT + dt.timedelta(days=self.shape.nights)
        while self.guests_done < self.shape.guests:
            await asyncio.sleep(self.rng.expovariate(1 / 0.3))
            room_id = self.rng.choice(self.shape.rooms)
            acked, sent_s = self._model.settled(room_id), loop.time()
            shard_id = self._cluster.ring.shard_of(room_id)
            owner = self._cluster.sole_owner(shard_id)
            self._count()
            try:
                nights = await client.calendar(room_id=room_id, start=FIRST_NIGHT, end=end)
            except RoombookError:
                continue
            if owner is None or self._cluster.sole_owner(shard_id) is not owner:
                continue
            self._model.check_read(room_id, [(n.date, n.status.value) for n in nights], sent_s, acked)


class Chaos:
    """Scheduled faults until `stop`: store outages, crashed and duplicate owners, resets."""

    def __init__(
        self, rng: random.Random, shape: Shape, store: SimStore, network: SimNetwork, cluster: Cluster
    ) -> None:
        self._rng = rng
        self._shape = shape
        self._store = store
        self._network = network
        self._cluster = cluster
        self._tasks: set[asyncio.Task[object]] = set()
        self.stopped = False
        self.faults = 0

    async def run(self) -> None:
        rng, loop = self._rng, asyncio.get_running_loop()
        while not self.stopped:
            await asyncio.sleep(rng.expovariate(1 / self._shape.fault_gap_s))
            if self.stopped:
                return
            shard_id = rng.randrange(self._cluster.ring.shard_count)
            kind = rng.choice(("outage", "crash", "duplicate", "reset", "reset"))
            self.faults += 1
            if kind == "outage":
                self._store.outage(loop.time() + rng.uniform(0.05, 2.0))
            elif kind == "reset":
                self._network.kill_one()
            elif shard_id not in self._cluster.starting and (owner := self._cluster.newest(shard_id)) is not None:
                self._spawn(self._replace(shard_id, owner, crash_first=kind == "crash"))

    async def _replace(self, shard_id: int, owner: Owner, *, crash_first: bool) -> None:
        cluster = self._cluster
        if crash_first:
            cluster.crash(owner)
            await asyncio.sleep(self._rng.uniform(0.05, 1.0))  # Ray notices and restarts the actor
        await cluster.start_owner(shard_id)
        if not crash_first:  # the old incarnation serves on until it is found and ended
            await asyncio.sleep(self._rng.uniform(0.05, 3.0))
            cluster.crash(owner)

    async def stop(self) -> None:
        """No new faults; the replacements under way finish (a crashed shard must come back)."""
        self.stopped = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _status(reply: object) -> str | None:
    return reply.status if isinstance(reply, HoldView) else None


def _brief(reply: object) -> str:
    if isinstance(reply, HoldView):
        return reply.status
    return type(reply).__name__
