"""The resources an app holds, each opened and closed by one cleanup_ctx generator in app.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from roombook.actors.client import AvailabilityClient
from roombook.config import Settings
from roombook.services.accounts import AccountService
from roombook.services.payments import SimulatedPayments
from roombook.services.room_search import RoomFinder
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.ports import AvailabilityStore, SearchIndex

SETTINGS = web.AppKey("settings", Settings)
AVAILABILITY = web.AppKey("availability", AvailabilityClient)  # the room shards
CATALOGUE = web.AppKey("catalogue", AvailabilityStore)  # the global store: rooms (reads, admin writes)
REGIONS = web.AppKey("regions", dict)  # Region -> RegionalStore
ACCOUNTS = web.AppKey("accounts", AccountService)
PAYMENTS = web.AppKey("payments", SimulatedPayments)
BOOKINGS = web.AppKey("bookings", Any)  # roombook.services.bookings.BookingService
EVENTS = web.AppKey("events", Any)  # roombook.events.worker.EventWorker, when events run in-process
SEARCH = web.AppKey("search", SearchIndex)  # rooms by filters (HLD: OpenSearch)
CACHE = web.AppKey("cache", ResilientCache)  # views of rooms and availability (HLD: Redis)
ROOMS = web.AppKey("rooms", RoomFinder)  # searches and details through SEARCH and CACHE
