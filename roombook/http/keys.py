"""The resources an app holds, each opened and closed by one cleanup_ctx generator in app.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from roombook.accounts import AccountService
from roombook.actors.client import AvailabilityClient
from roombook.caching import ResilientCache
from roombook.config import Settings
from roombook.payments import SimulatedPayments
from roombook.room_search import RoomFinder
from roombook.storage.ports import AvailabilityStore, SearchIndex

SETTINGS = web.AppKey("settings", Settings)
AVAILABILITY = web.AppKey("availability", AvailabilityClient)  # the room shards
CATALOGUE = web.AppKey("catalogue", AvailabilityStore)  # the global store: rooms (reads, admin writes)
REGIONS = web.AppKey("regions", dict)  # Region -> RegionalStore
ACCOUNTS = web.AppKey("accounts", AccountService)
PAYMENTS = web.AppKey("payments", SimulatedPayments)
BOOKINGS = web.AppKey("bookings", Any)  # roombook.bookings.BookingService
EVENTS = web.AppKey("events", Any)  # roombook.event_worker.EventWorker, when events run in-process
SEARCH = web.AppKey("search", SearchIndex)  # rooms by filters (HLD: OpenSearch)
CACHE = web.AppKey("cache", ResilientCache)  # views of rooms and availability (HLD: Redis)
ROOMS = web.AppKey("rooms", RoomFinder)  # searches and details through SEARCH and CACHE
