"""Exactly-once effects on an at-least-once bus, as far as a handler can have them.

The bus may deliver an event twice (the relay re-publishes after a crash, SQS redelivers after a
visibility timeout, two copies race in two workers). IdempotentHandler claims (consumer, event
id) in the durable processed_events table first: a handled event is acknowledged without running
the effect again; one another worker is handling right now raises EventBusy, so the bus brings it
back once that claim is done or expired (`lease_s`: a claim whose holder died is then taken
over). A handler that fails gives its claim back, so the retry runs at once.

Why a table and not an in-memory set: the duplicates that matter come from restarts (a relay or a
consumer that died mid-way), which a set forgets; and the embedded default has a durable store to
put it in anyway (SQLite). Idempotent-by-nature effects (deleting a cache key, reindexing a room
from the store) need no claim at all and should not pay for one; nor should the events of its
queue that a handler ignores (`acts_on`, a test of the event alone): most availability updates
free no night and have no watcher to tell, and their claim was two transactions for nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from roombook.domain.errors import EventBusy
from roombook.domain.events import Event
from roombook.storage.ports import ClaimOutcome, EventHandler, ProcessedEvents

log = logging.getLogger(__name__)


class IdempotentHandler:
    """Runs `handler` at most once per event id per consumer (unless it dies after the effect)."""

    def __init__(
        self,
        consumer: str,
        handler: EventHandler,
        processed: ProcessedEvents,
        *,
        lease_s: float = 60.0,
        acts_on: Callable[[Event], bool] | None = None,
    ):
        """`acts_on(event)` False says the handler does nothing with that event, however often it
        comes: it is acknowledged without a claim."""
        self.consumer = consumer
        self._handler = handler
        self._processed = processed
        self._lease_s = lease_s
        self._acts_on = acts_on

    async def __call__(self, event: Event) -> None:
        if self._acts_on is not None and not self._acts_on(event):
            return
        outcome = await self._processed.claim_event(self.consumer, event.id, lease_s=self._lease_s)
        if outcome is ClaimOutcome.DONE:
            log.info("%s: %s %s handled already; acknowledged", self.consumer, event.type, event.id)
            return
        if outcome is ClaimOutcome.BUSY:
            # its holder finishes, or its lease runs out, within lease_s: try again then
            raise EventBusy(f"{self.consumer}: {event.id} is being handled elsewhere", retry_after_s=self._lease_s)
        try:
            await self._handler(event)
        except BaseException:
            await self._processed.release_event(self.consumer, event.id)
            raise
        await self._processed.complete_event(self.consumer, event.id)
