"""The resources an app holds, each opened and closed by one cleanup_ctx generator in app.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from roombook.accounts import AccountService
from roombook.actors.client import AvailabilityClient
from roombook.config import Settings
from roombook.payments import SimulatedPayments
from roombook.storage.ports import AvailabilityStore

SETTINGS = web.AppKey("settings", Settings)
AVAILABILITY = web.AppKey("availability", AvailabilityClient)  # the room shards
CATALOGUE = web.AppKey("catalogue", AvailabilityStore)  # the global store: rooms (reads, admin writes)
REGIONS = web.AppKey("regions", dict)  # Region -> RegionalStore
ACCOUNTS = web.AppKey("accounts", AccountService)
PAYMENTS = web.AppKey("payments", SimulatedPayments)
BOOKINGS = web.AppKey("bookings", Any)  # roombook.bookings.BookingService
EVENTS = web.AppKey("events", Any)  # roombook.event_worker.EventWorker, when events run in-process
