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
from collections.abc import Mapping

from roombook.config import Settings
from roombook.domain.accounts import Region
from roombook.events.catalogue_views import CacheInvalidation, SearchIndexing
from roombook.events.idempotent_handler import IdempotentHandler
from roombook.events.notifications import CONSUMER as EMAIL_CONSUMER
from roombook.events.notifications import BookingNotifier
from roombook.events.outbox_relay import OutboxRelay
from roombook.services.room_search import open_search_index
from roombook.storage.bus.event_routing import CACHE_INVALIDATION, EMAIL_NOTIFICATIONS, SEARCH_INDEXING, check_queue
from roombook.storage.cache.views import ResilientCache, open_cache
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
    settings: Settings,
    *,
    catalogue: AvailabilityStore,
    regions: Mapping[Region, RegionalStore],
    mail: MailSender,
    cache: Cache,
    index: SearchIndex,
) -> list[Consumer]:
    """Every consumer this deployment runs: the registration point.

    `cache` is the bare cache (not ResilientCache): an invalidation that fails must raise, so the
    event comes again. The view consumers are idempotent by nature: no claim (catalogue_views.py).
    """
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=mail, sender=settings.mail_from)
    return [
        Consumer(queue=EMAIL_NOTIFICATIONS, handler=IdempotentHandler(EMAIL_CONSUMER, notifier, catalogue)),
        Consumer(queue=CACHE_INVALIDATION, handler=CacheInvalidation(cache)),
        # one at a time: two updates of a room handled concurrently could upsert the older last
        Consumer(queue=SEARCH_INDEXING, handler=SearchIndexing(index, catalogue, cache), max_messages=1),
    ]


def event_bus(settings: Settings) -> EventBus:
    """An unopened bus for the settings."""
    if settings.event_bus == "sns-sqs":
        from roombook.storage.bus.sns_sqs_bus import SnsSqsConfig, SnsSqsEventBus

        config = SnsSqsConfig(
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            prefix=settings.event_prefix,
            max_receives=settings.event_max_receives,
        )
        return SnsSqsEventBus(config)
    from roombook.storage.bus.memory_bus import MemoryEventBus

    return MemoryEventBus(max_receives=settings.event_max_receives)


def mail_sender(settings: Settings) -> MailSender:
    if settings.smtp_host:
        from roombook.storage.mail.smtp_mail import SmtpConfig, SmtpMailSender

        return SmtpMailSender(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                tls=settings.smtp_tls,
            )
        )
    from roombook.storage.mail.file_mail import FileMailSender

    return FileMailSender(settings.mail_directory)


class EventWorker:
    """The relay and the consumers over open stores; an async context manager.

    `cache` and `index` are the app's when it runs the worker in-process (the embedded ones live
    in its memory); otherwise the worker opens its own from the settings.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        catalogue: AvailabilityStore,
        regions: Mapping[Region, RegionalStore],
        relay: bool = True,
        consume: bool = True,
        cache: ResilientCache | None = None,
        index: SearchIndex | None = None,
    ) -> None:
        self._cache = cache
        self._index = index
        self._settings = settings
        self._catalogue = catalogue
        self._regions = dict(regions)
        self._run_relay = relay
        self._run_consumers = consume
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self.bus: EventBus = event_bus(settings)
        self.relay = OutboxRelay({"global": catalogue, **{r.value: s for r, s in self._regions.items()}}, self.bus)

    async def __aenter__(self) -> EventWorker:
        try:
            await self._stack.enter_async_context(self.bus)
            if self._run_consumers:
                mail = await self._stack.enter_async_context(mail_sender(self._settings))
                own_cache = open_cache(self._settings.cache_settings())
                cache = self._cache or await self._stack.enter_async_context(own_cache)
                index = self._index or await self._stack.enter_async_context(open_search_index(self._settings))
                registered = consumers(
                    self._settings,
                    catalogue=self._catalogue,
                    regions=self._regions,
                    mail=mail,
                    cache=cache.cache,
                    index=index,
                )
                await self.bus.ensure_topology([c.queue for c in registered])
                for c in registered:
                    run = self.bus.consume(c.queue, c.handler, max_messages=c.max_messages)
                    task = asyncio.create_task(run, name=f"consume-{c.queue}")
                    task.add_done_callback(_report_crash)
                    self._tasks.append(task)
            if self._run_relay:
                self.relay.start()
        except BaseException:
            await self.__aexit__()
            raise
        log.info("event worker: relay %s, consumers %s", self._run_relay, self._run_consumers)
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
