"""The resources an app holds, each opened and closed by one cleanup_ctx generator in app.py."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from roombook.actors.client import AvailabilityClient
from roombook.config import Settings
from roombook.domain.accounts import Region
from roombook.events.worker import EventWorker
from roombook.services.accounts import AccountService
from roombook.services.bookings import BookingService
from roombook.services.payments import SimulatedPayments
from roombook.services.room_images import RoomImages
from roombook.services.room_search import RoomFinder
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.ports import AvailabilityStore, ObjectStore, RegionalStore, SearchIndex

SETTINGS = web.AppKey("settings", Settings)
AVAILABILITY = web.AppKey("availability", AvailabilityClient)  # the room shards
CATALOGUE = web.AppKey("catalogue", AvailabilityStore)  # the global store: rooms (reads, admin writes)
REGIONS = web.AppKey("regions", Mapping[Region, RegionalStore])  # the regions this process serves
ACCOUNTS = web.AppKey("accounts", AccountService)
PAYMENTS = web.AppKey("payments", SimulatedPayments)
BOOKINGS = web.AppKey("bookings", BookingService)
EVENTS = web.AppKey("events", EventWorker)  # when events run in-process
SEARCH = web.AppKey("search", SearchIndex)  # rooms by filters
CACHE = web.AppKey("cache", ResilientCache)  # views of rooms and availability
ROOMS = web.AppKey("rooms", RoomFinder)  # searches and details through SEARCH and CACHE
OBJECTS = web.AppKey("objects", ObjectStore)  # room photos
PHOTOS = web.AppKey("photos", RoomImages)  # uploads, their variants and where they are served
