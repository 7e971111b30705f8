"""Booking analytics: how many bookings were created, confirmed and cancelled, per day, room and region.

A count belongs to the UTC day its event occurred on. Each event counts once, whatever the bus
delivers (see BookingAnalytics), and counts only add up, so the order events arrive in does not
matter.
"""

from __future__ import annotations

import datetime as dt
import enum

import msgspec

MAX_ANALYTICS_DAYS = 366  # the widest range one query reads


class BookingCountKind(enum.StrEnum):
    CREATED = "created"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"  # cancelled by its guest, refused, or expired (booking.cancelled)


class DailyBookingCounts(msgspec.Struct, frozen=True, kw_only=True):
    """One room's bookings of one region on one UTC day."""

    date: dt.date
    room_id: int
    region: str
    created: int = 0
    confirmed: int = 0
    cancelled: int = 0
