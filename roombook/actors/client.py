"""What the HTTP layer calls: room-night operations routed to the owning shard, as typed results.

Each call to a shard actor is a round trip whose cost hardly depends on how many commands it
carries, so the client coalesces: commands bound for one shard that arrive while that shard's
calls are in flight ride together in its next call (at most `max_calls_in_flight` calls per shard
at once). Inside the shard they still run one at a time, in order. Refusals the shard sends ahead,
while it commits the rest of a call's batch, reach their callers at once; the next call still
leaves only with the whole answer, so that it carries everything that arrived during the commit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Protocol

from roombook.actors.shard import EarlyReplies, ShardStatus
from roombook.domain.calendar import HoldView
from roombook.domain.commands import (
    CalendarView,
    CancelBooking,
    Command,
    ConfirmHold,
    NightView,
    PlaceHold,
    ReadCalendar,
    ReleaseHold,
    Reply,
    failure_of,
    raise_failure,
)
from roombook.domain.errors import ShardUnavailable
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

    async def apply(self, shard_id: int, commands: list[Command], early: EarlyReplies | None = None) -> list[Reply]: ...

    async def statuses(self) -> list[ShardStatus]: ...


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
        self._lanes = [
            _Lane(
                transport,
                shard_id,
                max_calls_in_flight or transport.calls_in_flight,
                max_commands_per_call,
                observer,
                early_refusals=early_refusals,
            )
            for shard_id in range(ring.shard_count)
        ]
        self._transport = transport

    async def place_hold(
        self, *, room_id: int, hold_id: str, stay: Stay, ttl_s: float, not_after_s: float | None = None
    ) -> HoldView:
        command = PlaceHold(room_id=room_id, hold_id=hold_id, stay=stay, ttl_s=ttl_s, not_after_s=not_after_s)
        return _hold(await self._send(command))

    async def confirm(self, *, room_id: int, hold_id: str) -> HoldView:
        return _hold(await self._send(ConfirmHold(room_id=room_id, hold_id=hold_id)))

    async def release(self, *, room_id: int, hold_id: str) -> HoldView:
        return _hold(await self._send(ReleaseHold(room_id=room_id, hold_id=hold_id)))

    async def cancel(self, *, room_id: int, booking_id: str) -> HoldView:
        return _hold(await self._send(CancelBooking(room_id=room_id, booking_id=booking_id)))

    async def calendar(self, *, room_id: int, start: dt.date, end: dt.date) -> list[NightView]:
        """Nights [start, end) of one room as its owning shard sees them now."""
        reply = raise_failure(await self._send(ReadCalendar(room_id=room_id, start=start, end=end)))
        if not isinstance(reply, CalendarView):
            raise ShardUnavailable(f"shard answered a calendar read with {type(reply).__name__}")
        return reply.nights

    async def statuses(self) -> list[ShardStatus]:
        return await self._transport.statuses()

    def _send(self, command: Command) -> asyncio.Future[Reply]:
        return self._lanes[self.ring.shard_of(command.room_id)].submit(command)


class _Lane:
    """The queue of commands bound for one shard and the calls carrying them."""

    def __init__(
        self,
        transport: ShardTransport,
        shard_id: int,
        max_calls: int,
        max_commands: int,
        observer: CallObserver | None = None,
        *,
        early_refusals: bool = True,
    ) -> None:
        self._transport = transport
        self._observer = observer
        self._early_refusals = early_refusals
        self._shard_id = shard_id
        self._max_calls = max_calls
        self._max_commands = max_commands
        self._waiting: list[tuple[Command, asyncio.Future[Reply]]] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._scheduled = False

    def submit(self, command: Command) -> asyncio.Future[Reply]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._waiting.append((command, future))
        self._schedule(loop)
        return future

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
            replies = await self._transport.apply(self._shard_id, commands, early if self._early_refusals else None)
        except Exception as exc:
            failure = failure_of(ShardUnavailable(f"shard {self._shard_id}: {exc}"))
            replies = [failure] * len(batch)
            failed = True
        else:
            failed = False
        if self._observer is not None:
            self._observer(self._shard_id, len(batch), time.perf_counter() - started, failed)
        for (_, future), reply in zip(batch, replies, strict=True):
            if not future.done():
                future.set_result(reply)


def _hold(reply: Reply) -> HoldView:
    reply = raise_failure(reply)
    if not isinstance(reply, HoldView):
        raise ShardUnavailable(f"shard answered a hold command with {type(reply).__name__}")
    return reply
