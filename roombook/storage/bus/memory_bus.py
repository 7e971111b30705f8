"""EventBus inside this process: the embedded default (no broker to run).

Same routing as SNS/SQS (storage/event_routing.py), same contract: at least once, a failed
delivery is retried after `retry_delay_s`, and after `max_receives` failed deliveries (or a body
that is not an event) the message moves to the queue's dead-letter list. Messages travel encoded,
as they would on the wire, so a consumer sees exactly what it would see from SQS.

A queue exists once `ensure_topology` declares it and only holds what was published after that;
nothing outlives the process (the outbox is the durable part: an event whose publication was lost
with a crash was never marked published, so the relay sends it again). A queue holds at most
`capacity` messages: beyond that, publish waits (backpressure on the relay, not unbounded memory).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Collection, Sequence

from roombook.domain.errors import EventBusy
from roombook.domain.events import Event, decode_event, encode_event
from roombook.storage.bus.event_routing import check_queue, queues_for
from roombook.storage.ports import EventHandler

log = logging.getLogger(__name__)


class _Message:
    __slots__ = ("body", "receives")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.receives = 0


class _Queue:
    """Ready messages, messages waiting out a retry delay, and the count of both plus in flight."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ready: collections.deque[_Message] = collections.deque()
        self.delayed: list[tuple[float, int, _Message]] = []
        self.dead: list[bytes] = []
        self.size = 0  # ready + delayed + being handled
        self._order = itertools.count()
        self._changed = asyncio.Condition()

    async def put(self, message: _Message) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.size < self.capacity)
            self.size += 1
            self.ready.append(message)
            self._changed.notify_all()

    async def take(self, limit: int, wait_s: float) -> list[_Message]:
        deadline = time.monotonic() + wait_s
        async with self._changed:
            while True:
                now = time.monotonic()
                while self.delayed and self.delayed[0][0] <= now:
                    self.ready.append(heapq.heappop(self.delayed)[2])
                if self.ready:
                    return [self.ready.popleft() for _ in range(min(limit, len(self.ready)))]
                if deadline <= now:
                    return []
                timeout = deadline - now
                if self.delayed:
                    timeout = min(timeout, self.delayed[0][0] - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)

    async def settle(self, message: _Message, *, retry_after_s: float | None = None, dead: bool = False) -> None:
        """Acknowledge (default), retry after a delay, or move to the dead letters."""
        async with self._changed:
            if retry_after_s is not None and not dead:
                heapq.heappush(self.delayed, (time.monotonic() + retry_after_s, next(self._order), message))
            else:
                self.size -= 1
                if dead:
                    self.dead.append(message.body)
            self._changed.notify_all()


class MemoryEventBus:
    """EventBus in this process; see the module docstring for its guarantees."""

    def __init__(self, *, max_receives: int = 5, retry_delay_s: float = 1.0, capacity: int = 10_000) -> None:
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        self.max_receives = max_receives
        self.retry_delay_s = retry_delay_s
        self._capacity = capacity
        self._queues: dict[str, _Queue] = {}

    async def __aenter__(self) -> MemoryEventBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def ensure_topology(self, queues: Collection[str]) -> None:
        for name in queues:
            check_queue(name)
            self._queues.setdefault(name, _Queue(self._capacity))

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            body = encode_event(event)
            for name in queues_for(event.type):
                queue = self._queues.get(name)
                if queue is not None:  # an undeclared queue has no consumer in this process
                    await queue.put(_Message(body))

    async def send_raw(self, queue: str, body: bytes) -> None:
        """Put any body straight on a queue, as a foreign producer could (e.g. a malformed one)."""
        await self._queue(queue).put(_Message(body))

    def dead_letters(self, queue: str) -> list[bytes]:
        return list(self._queue(queue).dead)

    def depth(self, queue: str) -> int:
        """Messages not yet acknowledged nor dead: waiting, delayed or being handled."""
        return self._queue(queue).size

    async def consume(self, queue: str, handler: EventHandler, *, max_messages: int = 10, wait_s: float = 1.0) -> None:
        source = self._queue(queue)
        while True:
            batch = await source.take(max_messages, wait_s)
            if batch:
                await asyncio.gather(*(self._deliver(queue, source, m, handler) for m in batch))

    async def _deliver(self, name: str, queue: _Queue, message: _Message, handler: EventHandler) -> None:
        message.receives += 1
        try:
            event = decode_event(message.body)
        except ValueError:
            log.warning("%s: a message that is not an event goes to the dead letters: %.200r", name, message.body)
            await queue.settle(message, dead=True)
            return
        try:
            await handler(event)
        except asyncio.CancelledError:
            message.receives -= 1  # not a failure of the handler: the consumer is stopping
            await asyncio.shield(queue.settle(message, retry_after_s=0.0))
            raise
        except EventBusy as busy:  # not a failure either: someone else is on it
            message.receives -= 1
            log.info("%s: %s; again in %.0f s", name, busy, busy.retry_after_s)
            await queue.settle(message, retry_after_s=busy.retry_after_s)
            return
        except Exception:
            dead = message.receives >= self.max_receives
            log.exception(
                "%s: handling %s %s failed (delivery %d of %d)%s",
                name,
                event.type,
                event.id,
                message.receives,
                self.max_receives,
                "; it goes to the dead letters" if dead else "",
            )
            await queue.settle(message, retry_after_s=self.retry_delay_s, dead=dead)
            return
        await queue.settle(message)

    def _queue(self, name: str) -> _Queue:
        check_queue(name)
        queue = self._queues.get(name)
        if queue is None:
            raise ValueError(f"queue {name!r} was not declared (ensure_topology)")
        return queue
