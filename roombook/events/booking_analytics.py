"""The analytics consumer: booking.created, booking.confirmed and booking.cancelled counted per UTC
day, room and region in the global store (BookingAnalytics), for the admins' reports.

Each event counts once: the store records its id in the same transaction as the count, so a
redelivery, a second worker racing for the same message, or a retry after a commit whose answer
was lost adds nothing (no separate claim is taken: the count is its own claim). Counters only add
up, so the order in which events arrive does not matter either.
"""

from __future__ import annotations

import datetime as dt
import logging

from roombook.domain.analytics import BookingCountKind
from roombook.domain.events import BookingCancelled, BookingConfirmed, BookingCreated, Event
from roombook.storage.ports import BookingAnalytics

CONSUMER = "analytics"

log = logging.getLogger(__name__)


class BookingCounter:
    """Once the handler returns, the event is counted in its day's counters exactly once."""

    def __init__(self, analytics: BookingAnalytics) -> None:
        self._analytics = analytics

    async def __call__(self, event: Event) -> None:
        match event:
            case BookingCreated():
                kind = BookingCountKind.CREATED
            case BookingConfirmed():
                kind = BookingCountKind.CONFIRMED
            case BookingCancelled():
                kind = BookingCountKind.CANCELLED
            case _:
                return
        day = event.occurred_at.astimezone(dt.UTC).date()
        counted = await self._analytics.count_booking_event(
            event.id, kind, day=day, room_id=event.room_id, region=event.region
        )
        if not counted:
            log.info("%s: %s %s counted already; acknowledged", CONSUMER, event.type, event.id)
