"""The aiohttp application: its resources, opened in order and closed in reverse by cleanup_ctx.

Nothing here connects at import time: create_app only builds the app; the stores, the shard
client and the services open when the app starts (web.run_app, or a test client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from roombook import bootstrap
from roombook.config import Settings
from roombook.domain.cancellation import CancellationPolicy
from roombook.domain.rooms import Room
from roombook.http import (
    analytics_routes,
    auth_routes,
    bookings_routes,
    calendar_routes,
    docs_routes,
    images_routes,
    ops_routes,
    rates_routes,
    rooms_routes,
    waitlist_routes,
)
from roombook.http.endpoints import Endpoints
from roombook.http.headers import add_security_headers
from roombook.http.images_routes import MEDIA_PATH
from roombook.http.keys import (
    ACCOUNTS,
    AVAILABILITY,
    BOOKINGS,
    CACHE,
    CATALOGUE,
    EVENTS,
    OBJECTS,
    PAYMENTS,
    PHOTOS,
    REGIONS,
    ROOMS,
    SEARCH,
    SETTINGS,
)
from roombook.http.metrics import metrics_middleware, observe_shard_call, start_shard_series
from roombook.http.openapi import openapi_document
from roombook.http.pages import setup_pages
from roombook.http.problems import problem_middleware
from roombook.http.request_log import add_request_log, log_shard_call, request_log_middleware
from roombook.services.accounts import AccountService, AuthSettings
from roombook.services.bookings import BookingService
from roombook.services.payments import PaymentSettings, SimulatedPayments
from roombook.services.ports import Catalogue
from roombook.services.room_images import RoomImages
from roombook.services.room_search import RoomFinder, catalogue_rooms
from roombook.storage.cache.keys import SEARCH_NAMESPACE, room_details_key
from roombook.storage.ports import SearchIndex

log = logging.getLogger(__name__)

# Every route table of the JSON API; the OpenAPI document is derived from exactly these.
API_TABLES: tuple[Endpoints, ...] = (
    auth_routes.api,
    rooms_routes.api,
    images_routes.api,
    rates_routes.api,
    calendar_routes.api,
    waitlist_routes.api,
    bookings_routes.api,
    analytics_routes.api,
    ops_routes.api,
)


def create_app(
    settings: Settings,
    *,
    auth: AuthSettings | None = None,
    payments: PaymentSettings | None = None,
) -> web.Application:
    """The API app for `settings`; `auth` and `payments` override what settings derive (tests)."""
    # The request log and metrics outside the problem middleware, so they see the status it settled on.
    app = web.Application(
        middlewares=[request_log_middleware, metrics_middleware, problem_middleware], client_max_size=64 * 1024
    )
    app[SETTINGS] = settings
    add_security_headers(app)
    add_request_log(app)
    for table in API_TABLES:
        table.add_to(app)
    app.router.add_routes(ops_routes.routes)
    app.router.add_routes(docs_routes.routes)  # Swagger UI at /docs, from an installed package
    app.router.add_routes(images_routes.routes)  # the embedded object store's photos at /media
    app[ops_routes.OPENAPI_DOCUMENT] = msgspec.json.encode(openapi_document(API_TABLES))
    setup_pages(app)  # the web pages, over the same services
    app.cleanup_ctx.extend(
        [
            _catalogue,
            _regional_stores,
            _accounts(auth),
            _payments(payments),
            _availability,
            _search_index,
            _cache,
            _photos,
            _room_finder,
            _bookings,
            _events,
        ]
    )
    return app


async def _catalogue(app: web.Application) -> AsyncIterator[None]:
    async with bootstrap.global_store(app[SETTINGS]) as store:
        await store.migrate()
        app[CATALOGUE] = store
        yield


async def _regional_stores(app: web.Application) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        stores = {}
        for region in app[SETTINGS].regions:  # only the regions this process serves
            store = await stack.enter_async_context(bootstrap.regional_store(app[SETTINGS], region))
            await store.migrate()
            stores[region] = store
        app[REGIONS] = stores
        yield


def _accounts(auth: AuthSettings | None):
    async def accounts(app: web.Application) -> AsyncIterator[None]:
        settings = auth or bootstrap.auth_settings(app[SETTINGS])
        directory = bootstrap.email_directory(app[SETTINGS])  # in the global store
        async with bootstrap.shared_limits(app[SETTINGS]) as limits, directory.store:  # limits: Redis, if cache
            await directory.store.migrate()
            limit = dict(max_failures=settings.login_max_failures, window_s=settings.login_window_s)
            throttle = bootstrap.login_throttle(limits, **limit)
            service = AccountService(app[REGIONS], settings, throttle=throttle, directory=directory)
            app[ACCOUNTS] = service
            settler = asyncio.create_task(_settle_directory(service, app[SETTINGS].reconcile_every_s))
            try:
                yield
            finally:
                settler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await settler

    return accounts


async def _settle_directory(accounts: AccountService, every_s: float) -> None:
    """Settle the email directory claims registrations left pending (a crash mid-registration)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await accounts.settle_directory()
        except Exception:  # the next round tries again
            log.exception("email directory settling failed")


def _payments(settings: PaymentSettings | None):
    async def payments(app: web.Application) -> AsyncIterator[None]:
        chosen = settings or bootstrap.payment_settings(app[SETTINGS])
        async with bootstrap.shared_limits(app[SETTINGS]) as limits:  # Redis, with ROOMBOOK_CACHE=redis
            app[PAYMENTS] = SimulatedPayments(chosen, keys=bootstrap.payment_keys(limits, chosen))
            yield

    return payments


def _observe_shard_call(shard_id: int, commands: int, seconds: float, failed: bool) -> None:
    observe_shard_call(shard_id, commands, seconds, failed)
    log_shard_call(shard_id, commands, seconds, failed)


async def _availability(app: web.Application) -> AsyncIterator[None]:
    start_shard_series(app[SETTINGS].shards)
    async with bootstrap.availability_service(app[SETTINGS], observer=_observe_shard_call) as client:
        app[AVAILABILITY] = client
        yield  # on exit: local shards drain and persist what is queued before the store closes


async def _search_index(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with bootstrap.search_index(settings) as index:
        app[SEARCH] = index
        if settings.search != "memory":  # OpenSearch is kept as it is: `roombook search reindex`
            yield
            return
        await index.reindex(await catalogue_rooms(app[CATALOGUE]))
        if settings.runs_events_in_process:  # room.updated events keep it current
            yield
            return
        # No events reach this process (another worker consumes them): rebuild now and then, so
        # that its private index is never more than search_refresh_s behind the catalogue.
        refresher = asyncio.create_task(_refresh_views(app, index, settings.search_refresh_s))
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher


async def _refresh_views(app: web.Application, index: SearchIndex, every_s: float) -> None:
    """Rebuild the index from the catalogue, then drop what this process may have cached from the
    old one (search pages, room details): what the missed room.updated events would have done."""
    while True:
        await asyncio.sleep(every_s)
        try:
            rooms = await catalogue_rooms(app[CATALOGUE])
            await index.reindex(rooms)
            await app[CACHE].bump_generation(SEARCH_NAMESPACE)
            await app[CACHE].delete([room_details_key(room.id) for room in rooms])
        except Exception:  # the next round tries again; search keeps answering from the old index
            log.exception("embedded search index refresh failed")


async def _cache(app: web.Application) -> AsyncIterator[None]:
    async with bootstrap.open_cache(bootstrap.cache_settings(app[SETTINGS])) as cache:  # connects on first use
        app[CACHE] = cache
        yield


async def _photos(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with bootstrap.object_store(settings) as objects:
        app[OBJECTS] = objects
        app[PHOTOS] = RoomImages(
            catalogue=app[CATALOGUE], objects=objects, limits=bootstrap.image_limits(settings), media_path=MEDIA_PATH
        )
        yield


async def _room_finder(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[ROOMS] = RoomFinder(
        index=app[SEARCH],
        cache=app[CACHE],
        catalogue=app[CATALOGUE],
        availability=app[AVAILABILITY],
        ttls=bootstrap.cache_settings(settings),
        candidate_limit=settings.search_candidate_limit,
        candidate_page=settings.search_candidate_page,
        conversion=settings.conversion,
        photos=app[PHOTOS],
    )
    yield


class _CachedRooms:
    """A booking's catalogue reads: the room through the details cache, its cancellation policy
    (read only when it has one to apply) from the catalogue."""

    def __init__(self, rooms: RoomFinder, catalogue: Catalogue) -> None:
        self._rooms, self._catalogue = rooms, catalogue

    async def room(self, room_id: int) -> Room | None:
        return await self._rooms.room(room_id)

    async def cancellation_policy(self, room_id: int) -> CancellationPolicy | None:
        return await self._catalogue.cancellation_policy(room_id)


async def _bookings(app: web.Application) -> AsyncIterator[None]:
    regions = app[REGIONS]  # typed by its key: inline, mypy solves the key for the parameter's type, invariantly
    # Through the room-details cache (room.updated events drop a changed room) the catalogue read
    # every booking makes costs no store round trip; off: straight from the catalogue.
    catalogue: Catalogue = (
        _CachedRooms(app[ROOMS], app[CATALOGUE]) if app[SETTINGS].booking_room_cache else app[CATALOGUE]
    )
    service = BookingService(
        availability=app[AVAILABILITY],
        catalogue=catalogue,
        regions=regions,
        payments=app[PAYMENTS],
        hold_ttl_s=app[SETTINGS].hold_ttl_s,
        reconcile_every_s=app[SETTINGS].reconcile_every_s,
        claim_ttl_s=app[SETTINGS].booking_claim_ttl_s,
        checks_at_once=app[SETTINGS].booking_checks_at_once,
    )
    await service.start()
    app[BOOKINGS] = service
    try:
        yield
    finally:
        await service.stop()


async def _events(app: web.Application) -> AsyncIterator[None]:
    """The outbox relay and the bus's consumers, in this process if the settings say so."""
    if not app[SETTINGS].runs_events_in_process:
        yield
        return
    worker = bootstrap.event_worker(
        app[SETTINGS], catalogue=app[CATALOGUE], regions=app[REGIONS], cache=app[CACHE], index=app[SEARCH]
    )
    async with worker:
        app[EVENTS] = worker
        yield
