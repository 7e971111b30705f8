"""A room's calendar as iCalendar (RFC 5545), and the signed links that share it without a session.

The feed has one all-day event per run of consecutive nights in one state (booked, or held by an
unexpired hold), DTEND exclusive as RFC 5545 has all-day events: the check-out day, as a night
is [check_in, check_out). It names no guest and no booking, so a link can be handed to a channel
manager. Each event's UID is the room, the run's first night and its state: a run that keeps
them keeps its UID across refreshes.

A link is the room, an expiry (unix seconds) and an HMAC-SHA256 of both, under a key only the
deployment knows: it can be checked by any process, and one for another room or a later expiry
cannot be made from it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools

import icalendar

from roombook.domain.commands import NightView
from roombook.domain.nights import NightStatus

PRODUCT_ID = "-//roombook//room calendar//EN"
_SUMMARY = {NightStatus.BOOKED: "Booked", NightStatus.HELD: "Held"}
_STATUS = {NightStatus.BOOKED: "CONFIRMED", NightStatus.HELD: "TENTATIVE"}


def room_calendar(room_id: int, title: str, nights: list[NightView], *, now: dt.datetime) -> bytes:
    """The room's booked and held nights (`nights` in date order, as the shard reads them)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"{title} (room {room_id})")
    taken = [n for n in nights if n.status is not NightStatus.AVAILABLE]
    # runs of consecutive dates in one state
    for (_, status), run in itertools.groupby(
        enumerate(taken), key=lambda pair: (pair[1].date.toordinal() - pair[0], pair[1].status)
    ):
        dates = [night.date for _, night in run]
        event = icalendar.Event()
        event.add("uid", f"room-{room_id}-{dates[0].isoformat()}-{status.value}@roombook")
        event.add("dtstamp", now)
        event.add("dtstart", dates[0])
        event.add("dtend", dates[-1] + dt.timedelta(days=1))
        event.add("summary", _SUMMARY[status])
        event.add("status", _STATUS[status])
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical()


class CalendarLinks:
    """Signs and checks the query that lets a room's calendar be read without a session."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, room_id: int, expires_s: int) -> str:
        return hmac.new(self._key, f"room-calendar:{room_id}:{expires_s}".encode(), hashlib.sha256).hexdigest()

    def valid(self, room_id: int, expires_s: int, signature: str, *, now_s: float) -> bool:
        """Whether the signature is this room's and expiry's, and the expiry has not passed."""
        return now_s < expires_s and hmac.compare_digest(self.signature(room_id, expires_s), signature)
