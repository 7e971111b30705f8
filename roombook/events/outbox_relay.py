"""The relay: moves committed events from the stores' outboxes to the event bus.

Per round and per outbox (global, EU, US): read up to `batch` pending events in seq order,
publish them, then mark them published. Publish-then-mark is at least once: a relay that dies
(or is cancelled) between the two publishes those events again on its next round, and consumers
deduplicate by event id. Nothing is marked that was not published, so nothing is lost.

Order: one outbox's events are published in seq order, which for one booking or one room is the
order of its commits (each is written by one transaction after the previous one committed). The
bus does not keep that order (SQS standard queues do not), so consumers rely on the versions and
statuses events carry, never on arrival order. Run one relay per deployment: a second one is
safe (it only causes duplicates) but wasted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from roombook.storage.ports import EventBus, EventOutbox

log = logging.getLogger(__name__)


class OutboxRelay:
    """Publishes every committed event at least once; see the module docstring."""

    def __init__(
        self,
        outboxes: Mapping[str, EventOutbox],
        bus: EventBus,
        *,
        batch: int = 100,
        idle_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._outboxes = dict(outboxes)
        self._bus = bus
        self._batch = batch
        self._idle_s = idle_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.published = 0

    async def relay_once(self) -> int:
        """One round over every outbox; returns how many events were published."""
        count = 0
        for name, outbox in self._outboxes.items():
            pending = await outbox.pending_events(self._batch)
            if not pending:
                continue
            await self._bus.publish([event for _, event in pending])
            await outbox.mark_published([seq for seq, _ in pending])
            count += len(pending)
            log.debug("relayed %d events from the %s outbox", len(pending), name)
        self.published += count
        return count

    async def run(self) -> None:
        """Relay until stop() (or cancellation); sleeps only when every outbox was drained."""
        failures = 0
        while not self._stopping.is_set():
            try:
                busy = await self.relay_once() > 0
                failures = 0
            except Exception:
                failures += 1
                log.exception("relay round failed; retrying")
                busy = False
            if not busy:
                delay_s = min(self._idle_s * 2**failures, self._max_backoff_s) if failures else self._idle_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay_s)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self, *, timeout_s: float = 5.0) -> None:
        """Finish the round in progress (so what it published gets marked), then stop; a round
        still stuck after timeout_s is cancelled (its events stay pending and go out next time)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            log.warning("relay round still running after %.1f s: cancelled", timeout_s)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
