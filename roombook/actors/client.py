"""What the HTTP layer calls: room-night operations routed to the owning shard, as typed results.

Each call to a shard actor is a round trip whose cost hardly depends on how many commands it
carries, so the client coalesces: commands bound for one shard that arrive while that shard's
calls are in flight ride together in its next call (at most `max_calls_in_flight` calls per shard
at once). Inside the shard they still run one at a time, in order. Refusals the shard sends ahead,
while it commits the rest of a call's batch, reach their callers at once; the next call still
leaves only with the whole answer, so that it carries everything that arrived during the commit.

When the shards are resized, a shard refuses what an older ring routed (ring_changed): the client
reads the current ring from the transport, routes the command again and sends it to its owner now.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from roombook.actors.shard import EarlyReplies, ShardStatus
from roombook.domain.calendar import HoldView
from roombook.domain.commands import (
    CalendarView,
    CancelBooking,
    CheckStay,
    Command,
    ConfirmHold,
    Failure,
    FreeRooms,
    MoveBooking,
    NightView,
    PlaceHold,
    ReadCalendar,
    ReadFreeRooms,
    ReleaseHold,
    Reply,
    failure_of,
    raise_failure,
)
from roombook.domain.errors import RingChanged, ShardUnavailable
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing


class ShardTransport(Protocol):
    """Carries a batch of commands to one shard and brings back one reply per command.

    `early`, where the transport supports it, hears of refusals the shard sends ahead of the answer
    while it commits (see shard.EarlyReplies).

    `calls_in_flight`: how many calls per shard at once suit this transport. A call with a fixed
    cost whatever it carries (Ray, the shard's socket) wants 1, so the commands arriving meanwhile
    ride in the next call; an in-process call costs nothing, so more is fine.
    """

    calls_in_flight: int

    async def apply(
        self,
        shard_id: int,
        commands: list[Command],
        early: EarlyReplies | None = None,
        ring_version: int | None = None,
    ) -> list[Reply]: ...

    async def statuses(self) -> list[ShardStatus]: ...

    async def current_ring(self) -> ShardRing:
        """The deployment's ring now (after a resize, a newer one)."""
        ...

    def use_ring(self, ring: ShardRing) -> None:
        """Reach the shards of `ring` from now on."""
        ...


# Told of every call to a shard: (shard id, commands carried, seconds taken, whether it raised).
CallObserver = Callable[[int, int, float, bool], None]


class AvailabilityClient:
    """Typed room-night operations; raises the domain errors (NightsUnavailable, HoldExpired, ...)."""

    def __init__(
        self,
        transport: ShardTransport,
        ring: ShardRing,
        *,
        max_calls_in_flight: int | None = None,  # default: what the transport asks for
        max_commands_per_call: int = 512,
        observer: CallObserver | None = None,
        early_refusals: bool = True,  # False: a refusal reaches its caller with the rest of its call
    ) -> None:
        self.ring = ring
        self._transport = transport
        self._lane_options = (max_calls_in_flight or transport.calls_in_flight, max_commands_per_call, observer)
        self._early_refusals = early_refusals
        self._lanes = self._make_lanes(ring)
        self._ring_read: asyncio.Task[None] | None = None
        self._rerouted: dict[asyncio.Future[Reply], float] = {}  # -> when first refused as misrouted
        self._rerouting: set[asyncio.Task[None]] = set()
        self.ring_changes = 0  # rings this client moved to

    def _make_lanes(self, ring: ShardRing) -> list[_Lane]:
        max_calls, max_commands, observer = self._lane_options
        return [
            _Lane(
                self._transport,
                ring,
                shard_id,
                max_calls,
                max_commands,
                observer,
                early_refusals=self._early_refusals,
                reroute=self._reroute,
            )
            for shard_id in range(ring.shard_count)
        ]

    async def place_hold(
        self, *, room_id: int, hold_id: str, stay: Stay, ttl_s: float, not_after_s: float | None = None
    ) -> HoldView:
        command = PlaceHold(room_id=room_id, hold_id=hold_id, stay=stay, ttl_s=ttl_s, not_after_s=not_after_s)
        return _hold(await self._send(command))

    async def check_stay(self, *, room_id: int, stay: Stay, claim: str | None = None, claim_ttl_s: float = 0.0) -> None:
        """Raise NightsUnavailable if a night of the stay is held, booked or (with a claim)
        claimed by another claim now; else, with a claim, claim it (see CheckStay)."""
        command = CheckStay(room_id=room_id, stay=stay, claim=claim, claim_ttl_s=claim_ttl_s)
        reply = raise_failure(await self._send(command))
        if not isinstance(reply, FreeRooms):
            raise ShardUnavailable(f"shard answered a stay check with {type(reply).__name__}")

    async def confirm(self, *, room_id: int, hold_id: str) -> HoldView:
        return _hold(await self._send(ConfirmHold(room_id=room_id, hold_id=hold_id)))

    async def release(self, *, room_id: int, hold_id: str) -> HoldView:
        return _hold(await self._send(ReleaseHold(room_id=room_id, hold_id=hold_id)))

    async def cancel(self, *, room_id: int, booking_id: str) -> HoldView:
        return _hold(await self._send(CancelBooking(room_id=room_id, booking_id=booking_id)))

    async def move_booking(self, *, room_id: int, booking_id: str, to_room_id: int, stay: Stay) -> HoldView:
        """Move a booking to `stay` on to_room_id in one step of their shard (see shares_shard)."""
        command = MoveBooking(room_id=room_id, booking_id=booking_id, to_room_id=to_room_id, stay=stay)
        return _hold(await self._send(command))

    def shares_shard(self, room_id: int, other_room_id: int) -> bool:
        """Whether one shard owns both rooms (by the ring this client routes by now)."""
        return self.ring.shard_of(room_id) == self.ring.shard_of(other_room_id)

    async def calendar(self, *, room_id: int, start: dt.date, end: dt.date) -> list[NightView]:
        """Nights [start, end) of one room as its owning shard sees them now."""
        reply = raise_failure(await self._send(ReadCalendar(room_id=room_id, start=start, end=end)))
        if not isinstance(reply, CalendarView):
            raise ShardUnavailable(f"shard answered a calendar read with {type(reply).__name__}")
        return reply.nights

    async def free_rooms(
        self, room_ids: Sequence[int], *, start: dt.date, end: dt.date, room_nights_per_command: int = 50_000
    ) -> list[int]:
        """The rooms free every night [start, end), in the order given: one ReadFreeRooms per shard
        (cut so that none checks more than room_nights_per_command nights, which keeps a shard's
        writes from waiting long behind a read), all shards at once. A command refused because the
        ring changed is routed again by the new ring, here, since its rooms may now be on several
        shards."""
        per_command = max(1, room_nights_per_command // max(1, (end - start).days))
        free: set[int] = set()
        pending = list(room_ids)
        for _ in range(_BATCH_READ_ATTEMPTS):
            by_shard: dict[int, list[int]] = {}
            for room_id in pending:
                by_shard.setdefault(self.ring.shard_of(room_id), []).append(room_id)
            commands = [
                ReadFreeRooms(room_id=ids[i], room_ids=ids[i : i + per_command], start=start, end=end)
                for ids in by_shard.values()
                for i in range(0, len(ids), per_command)
            ]
            routed_by = self.ring
            replies = await asyncio.gather(*(self._send(c) for c in commands))
            pending = []
            for command, reply in zip(commands, replies, strict=True):
                if isinstance(reply, Failure) and reply.kind == RingChanged.kind:
                    pending += command.room_ids
                    continue
                reply = raise_failure(reply)
                if not isinstance(reply, FreeRooms):
                    raise ShardUnavailable(f"shard answered a free-rooms read with {type(reply).__name__}")
                free.update(reply.room_ids)
            if not pending:
                return [room_id for room_id in room_ids if room_id in free]
            if self.ring == routed_by:
                await self._read_ring()
        raise ShardUnavailable("the shards' ring kept changing during a free-rooms read")

    async def statuses(self) -> list[ShardStatus]:
        return await self._transport.statuses()

    def _send(self, command: Command) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._submit(command, future)
        return future

    def _submit(self, command: Command, future: asyncio.Future[Reply]) -> None:
        self._lanes[self.ring.shard_of(command.room_id)].submit(command, future)

    def _reroute(self, command: Command, future: asyncio.Future[Reply], refusal: Reply, routed_by: ShardRing) -> None:
        """A shard refused `command` as routed by another ring than its own: read the ring, then send it
        again, for as long as _REROUTE_FOR_S (after that the refusal stands)."""
        if isinstance(command, ReadFreeRooms):  # its rooms may be on several shards now: free_rooms routes it
            future.set_result(refusal)
            return
        if future not in self._rerouted:
            self._rerouted[future] = time.monotonic()
            future.add_done_callback(self._forget_rerouted)
        if time.monotonic() - self._rerouted[future] > _REROUTE_FOR_S:
            future.set_result(refusal)
            return
        task = asyncio.get_running_loop().create_task(self._reroute_later(command, future, routed_by))
        self._rerouting.add(task)  # the loop keeps only a weak reference: an unreferenced task may vanish
        task.add_done_callback(self._rerouting.discard)

    async def _reroute_later(self, command: Command, future: asyncio.Future[Reply], routed_by: ShardRing) -> None:
        if self.ring == routed_by:
            if self._ring_read is None or self._ring_read.done():
                self._ring_read = asyncio.get_running_loop().create_task(self._read_ring())
            # a transport that cannot tell now: wait a little, as for an unchanged ring
            with contextlib.suppress(Exception):
                await asyncio.shield(self._ring_read)
        if self.ring == routed_by:  # not changed yet (a shard still on the older ring): wait for it
            await asyncio.sleep(0.01)
        if not future.done():
            self._submit(command, future)

    def _forget_rerouted(self, future: asyncio.Future[Reply]) -> None:
        self._rerouted.pop(future, None)

    async def _read_ring(self) -> None:
        ring = await self._transport.current_ring()
        if ring != self.ring and ring.version >= self.ring.version:
            self._transport.use_ring(ring)
            self.ring, self._lanes = ring, self._make_lanes(ring)
            self.ring_changes += 1


_BATCH_READ_ATTEMPTS = 5  # rings a free-rooms read follows before it gives up (a resize is rare)

# How long a command refused as routed by an old ring is routed again (a resize pauses the shards
# for a fraction of a second).
_REROUTE_FOR_S = 30.0

Reroute = Callable[[Command, "asyncio.Future[Reply]", Reply, ShardRing], None]


class _Lane:
    """The queue of commands bound for one shard (by one ring) and the calls carrying them."""

    def __init__(
        self,
        transport: ShardTransport,
        ring: ShardRing,
        shard_id: int,
        max_calls: int,
        max_commands: int,
        observer: CallObserver | None = None,
        *,
        early_refusals: bool = True,
        reroute: Reroute | None = None,
    ) -> None:
        self._transport = transport
        self._ring = ring
        self._reroute = reroute
        self._observer = observer
        self._early_refusals = early_refusals
        self._shard_id = shard_id
        self._max_calls = max_calls
        self._max_commands = max_commands
        self._waiting: list[tuple[Command, asyncio.Future[Reply]]] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._scheduled = False

    def submit(self, command: Command, future: asyncio.Future[Reply]) -> None:
        self._waiting.append((command, future))
        self._schedule(asyncio.get_running_loop())

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # call_soon, not now: commands submitted in this same turn of the loop join one call
        if not self._scheduled and len(self._calls) < self._max_calls:
            self._scheduled = True
            loop.call_soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._calls) < self._max_calls:
            batch = self._waiting[: self._max_commands]
            del self._waiting[: self._max_commands]
            task = asyncio.get_running_loop().create_task(self._call(batch))
            self._calls.add(task)
            task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._calls.discard(task)
        if self._waiting:
            self._schedule(asyncio.get_running_loop())

    async def _call(self, batch: list[tuple[Command, asyncio.Future[Reply]]]) -> None:
        started = time.perf_counter()

        def early(refusals: list[tuple[int, Reply]]) -> None:
            for index, reply in refusals:
                future = batch[index][1]
                if not future.done():
                    future.set_result(reply)

        try:
            commands = [command for command, _ in batch]
            replies = await self._transport.apply(
                self._shard_id, commands, early if self._early_refusals else None, self._ring.version
            )
        except RingChanged as exc:  # the shard is no longer in the ring (a resize shrank it)
            replies = [failure_of(exc)] * len(batch)
            failed = False
        except Exception as exc:
            failure = failure_of(ShardUnavailable(f"shard {self._shard_id}: {exc}"))
            replies = [failure] * len(batch)
            failed = True
        else:
            failed = False
        if self._observer is not None:
            self._observer(self._shard_id, len(batch), time.perf_counter() - started, failed)
        for (command, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if self._reroute is not None and isinstance(reply, Failure) and reply.kind == RingChanged.kind:
                self._reroute(command, future, reply, self._ring)
            else:
                future.set_result(reply)


def _hold(reply: Reply) -> HoldView:
    reply = raise_failure(reply)
    if not isinstance(reply, HoldView):
        raise ShardUnavailable(f"shard answered a hold command with {type(reply).__name__}")
    return reply
