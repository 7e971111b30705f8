"""The event side of a deployment: the outbox relay and the bus's consumers, started and stopped as one.

`roombook worker` runs an EventWorker on its own; `roombook serve` runs one inside the app when
ROOMBOOK_EVENTS_IN_PROCESS says so (the default on the memory bus, where the bus lives in the
process). `consumers()` below is the one place where a consumer is registered.

Start order: the bus and its queues first, then the consumers, then the relay, so that on the
memory bus nothing is published before the queues it is for exist. Stop order: the relay first
(its round in flight is finished and marked), then the consumers (a message being handled is not
acknowledged and comes again), then the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager

from roombook.domain.accounts import Region
from roombook.events.booking_analytics import BookingCounter
from roombook.events.catalogue_views import CACHE_CONSUMER, SEARCH_CONSUMER, CacheInvalidation, SearchIndexing
from roombook.events.idempotent_handler import IdempotentHandler
from roombook.events.notifications import CONSUMER as EMAIL_CONSUMER
from roombook.events.notifications import BookingNotifier, mails_someone
from roombook.events.outbox_relay import OutboxRelay
from roombook.events.waitlist_notifications import CONSUMER as WAITLIST_CONSUMER
from roombook.events.waitlist_notifications import WaitlistNotifier, frees_nights
from roombook.storage.bus.event_routing import (
    ANALYTICS,
    CACHE_INVALIDATION,
    EMAIL_NOTIFICATIONS,
    SEARCH_INDEXING,
    WAITLIST_NOTIFICATIONS,
    check_queue,
)
from roombook.storage.ports import (
    AvailabilityStore,
    Cache,
    EventBus,
    EventHandler,
    MailSender,
    RegionalStore,
    SearchIndex,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Consumer:
    """A handler of one queue's events (see storage/event_routing.py for which events those are)."""

    queue: str
    handler: EventHandler
    max_messages: int = 10

    def __post_init__(self) -> None:
        check_queue(self.queue)


def consumers(
    *,
    catalogue: AvailabilityStore,
    regions: Mapping[Region, RegionalStore],
    mail: MailSender,
    cache: Cache,
    index: SearchIndex,
    mail_from: str,
) -> list[Consumer]:
    """Every consumer this deployment runs: the registration point.

    `cache` is the bare cache (not ResilientCache): an invalidation that fails must raise, so the
    event comes again. Every consumer handles an event id once: the emails and the views claim it
    (IdempotentHandler), the analytics count records it with the count (booking_analytics.py).
    """
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=mail, sender=mail_from)
    waitlist = WaitlistNotifier(catalogue=catalogue, regions=regions, mail=mail, sender=mail_from)
    return [
        Consumer(
            queue=EMAIL_NOTIFICATIONS,
            handler=IdempotentHandler(EMAIL_CONSUMER, notifier, catalogue, acts_on=mails_someone),
        ),
        Consumer(
            queue=CACHE_INVALIDATION, handler=IdempotentHandler(CACHE_CONSUMER, CacheInvalidation(cache), catalogue)
        ),
        # one at a time: the watchers of some nights are told in the order they asked
        Consumer(
            queue=WAITLIST_NOTIFICATIONS,
            handler=IdempotentHandler(WAITLIST_CONSUMER, waitlist, catalogue, acts_on=frees_nights),
            max_messages=1,
        ),
        # one at a time in a worker (SearchIndexing also settles races between workers)
        Consumer(
            queue=SEARCH_INDEXING,
            handler=IdempotentHandler(SEARCH_CONSUMER, SearchIndexing(index, catalogue, cache), catalogue),
            max_messages=1,
        ),
        Consumer(queue=ANALYTICS, handler=BookingCounter(catalogue)),
    ]


class EventWorker:
    """The relay and the consumers over open stores; an async context manager.

    The worker opens the bus and every resource in `opens` (the mail sender, and the cache and
    index when they are its own rather than the app's) and closes them on exit, in reverse.
    """

    def __init__(
        self,
        *,
        bus: EventBus,
        catalogue: AvailabilityStore,
        regions: Mapping[Region, RegionalStore],
        relay: bool = True,
        consumers: Sequence[Consumer] = (),
        opens: Sequence[AbstractAsyncContextManager[object]] = (),
    ) -> None:
        self._regions = dict(regions)
        self._run_relay = relay
        self._consumers = list(consumers)
        self._opens = list(opens)
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self.bus = bus
        self.relay = OutboxRelay({"global": catalogue, **{r.value: s for r, s in self._regions.items()}}, self.bus)

    async def __aenter__(self) -> EventWorker:
        try:
            await self._stack.enter_async_context(self.bus)
            for resource in self._opens:
                await self._stack.enter_async_context(resource)
            if self._consumers:
                await self.bus.ensure_topology([c.queue for c in self._consumers])
            for c in self._consumers:
                run = self.bus.consume(c.queue, c.handler, max_messages=c.max_messages)
                task = asyncio.create_task(run, name=f"consume-{c.queue}")
                task.add_done_callback(_report_crash)
                self._tasks.append(task)
            if self._run_relay:
                self.relay.start()
        except BaseException:
            await self.__aexit__()
            raise
        log.info("event worker: relay %s, consumers %d", self._run_relay, len(self._consumers))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.relay.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._stack.aclose()


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())
