"""The aiohttp application: its resources, opened in order and closed in reverse by cleanup_ctx.

Nothing here connects at import time: create_app only builds the app; the stores, the shard
client and the services open when the app starts (web.run_app, or a test client).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from roombook.accounts import AccountService, AuthSettings
from roombook.actors.deployment import availability_service
from roombook.bookings import BookingService
from roombook.config import Settings
from roombook.http import auth_routes, bookings_routes, ops_routes, rooms_routes
from roombook.http.endpoints import Endpoints
from roombook.http.keys import ACCOUNTS, AVAILABILITY, BOOKINGS, CATALOGUE, EVENTS, PAYMENTS, REGIONS, SETTINGS
from roombook.http.metrics import metrics_middleware, observe_shard_call
from roombook.http.openapi import openapi_document
from roombook.http.problems import problem_middleware
from roombook.payments import PaymentSettings, SimulatedPayments
from roombook.storage.connect import availability_store, regional_store

# Every route table of the JSON API; the OpenAPI document is derived from exactly these.
API_TABLES: tuple[Endpoints, ...] = (auth_routes.api, rooms_routes.api, bookings_routes.api, ops_routes.api)


def create_app(
    settings: Settings,
    *,
    auth: AuthSettings | None = None,
    payments: PaymentSettings | None = None,
) -> web.Application:
    """The API app for `settings`; `auth` and `payments` override what settings derive (tests)."""
    # Metrics outermost, so it sees the status the problem middleware settled on.
    app = web.Application(middlewares=[metrics_middleware, problem_middleware], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    for table in API_TABLES:
        table.add_to(app)
    app.router.add_routes(ops_routes.routes)
    app[ops_routes.OPENAPI_DOCUMENT] = msgspec.json.encode(openapi_document(API_TABLES))
    app.cleanup_ctx.extend(
        [
            _catalogue,
            _regional_stores,
            _accounts(auth),
            _payments(payments),
            _availability,
            _bookings,
            _events,
        ]
    )
    return app


async def _catalogue(app: web.Application) -> AsyncIterator[None]:
    async with availability_store(app[SETTINGS].dsn("global")) as store:
        await store.migrate()
        app[CATALOGUE] = store
        yield


async def _regional_stores(app: web.Application) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        stores = {}
        for region in app[SETTINGS].regions:  # only the regions this process serves
            store = await stack.enter_async_context(regional_store(app[SETTINGS].dsn(region.value), region))
            await store.migrate()
            stores[region] = store
        app[REGIONS] = stores
        yield


def _accounts(auth: AuthSettings | None):
    async def accounts(app: web.Application) -> AsyncIterator[None]:
        app[ACCOUNTS] = AccountService(app[REGIONS], auth or app[SETTINGS].auth_settings())
        yield

    return accounts


def _payments(settings: PaymentSettings | None):
    async def payments(app: web.Application) -> AsyncIterator[None]:
        app[PAYMENTS] = SimulatedPayments(settings or app[SETTINGS].payment_settings())
        yield

    return payments


async def _availability(app: web.Application) -> AsyncIterator[None]:
    async with availability_service(app[SETTINGS], observer=observe_shard_call) as client:
        app[AVAILABILITY] = client
        yield  # on exit: local shards drain and persist what is queued before the store closes


async def _bookings(app: web.Application) -> AsyncIterator[None]:
    service = BookingService(
        availability=app[AVAILABILITY],
        catalogue=app[CATALOGUE],
        regions=app[REGIONS],
        payments=app[PAYMENTS],
        hold_ttl_s=app[SETTINGS].hold_ttl_s,
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
    from roombook.event_worker import EventWorker

    async with EventWorker(app[SETTINGS], catalogue=app[CATALOGUE], regions=app[REGIONS]) as worker:
        app[EVENTS] = worker
        yield
