"""What must hold after a load run, as pure functions over what the clients were told (the log)
and what the API or the stores hold now. Each returns its violations; none means the rule holds.

1. No night is double-booked: no two CONFIRMED bookings of a room share a night.
2. Every 201 a client received is its owner's booking, with the same room and stay, CONFIRMED; or
   CANCELLED if that client sent a cancel for it.
3. (stores) Every `booked` availability row is held by a CONFIRMED booking whose stay covers it,
   and every night of a CONFIRMED booking is a `booked` row held by it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from bench.check.booking_log import BookingLog
from roombook.domain.nights import Night, NightStatus

DAY = dt.timedelta(days=1)


class SeenBooking(msgspec.Struct, frozen=True, kw_only=True):
    """A booking as the API or a regional store shows it now."""

    id: str
    user_id: int
    room_id: int
    check_in: dt.date
    check_out: dt.date
    nights: int
    status: str

    def dates(self) -> list[dt.date]:
        return [self.check_in + i * DAY for i in range((self.check_out - self.check_in).days)]


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    rule: str
    detail: str


def double_bookings(bookings: Iterable[SeenBooking], *, source: str) -> list[Violation]:
    owner: dict[tuple[int, dt.date], str] = {}
    found = []
    for booking in sorted(bookings, key=lambda b: b.id):
        if booking.status != "CONFIRMED":
            continue
        for date in booking.dates():
            first = owner.setdefault((booking.room_id, date), booking.id)
            if first != booking.id:
                detail = f"{source}: night {date} of room {booking.room_id} is in {first} and {booking.id}"
                found.append(Violation(rule="double-booked night", detail=detail))
    return found


def acknowledged_bookings(log: BookingLog, seen: dict[str, SeenBooking], *, source: str) -> list[Violation]:
    """Every logged 201 against the bookings `source` shows its owner."""
    found = []
    for logged in log.bookings.values():
        booking = seen.get(logged.booking_id)
        if booking is None or booking.user_id != logged.user_id:
            detail = f"{source}: {logged.booking_id} (201 to user {logged.user_id}) is not in their bookings"
            found.append(Violation(rule="acknowledged booking missing", detail=detail))
            continue
        told = (logged.room_id, logged.check_in, logged.check_out, logged.nights)
        stored = (booking.room_id, booking.check_in, booking.check_out, booking.nights)
        if told != stored:
            detail = f"{source}: {logged.booking_id} was answered as {told} but is {stored}"
            found.append(Violation(rule="acknowledged booking changed", detail=detail))
        allowed = {"CONFIRMED"}
        if logged.booking_id in log.cancelled:
            allowed = {"CANCELLED"}
        elif logged.booking_id in log.cancelling:  # sent, answer never read: either is right
            allowed = {"CONFIRMED", "CANCELLED"}
        if booking.status not in allowed:
            detail = f"{source}: {logged.booking_id} is {booking.status}, expected {' or '.join(sorted(allowed))}"
            found.append(Violation(rule="acknowledged booking in the wrong state", detail=detail))
    return found


def availability_rows(
    rows: Sequence[Night], bookings: dict[str, SeenBooking], *, foreign_ok: bool = False
) -> list[Violation]:
    """The global store's rows against the regional stores' bookings (of the logged users).
    foreign_ok: a booked row held by a booking none of them owns is not counted (someone else
    used the same server)."""
    found = []
    booked = {(n.room_id, n.date): n for n in rows if n.status is NightStatus.BOOKED}
    for (room_id, date), night in sorted(booked.items()):
        holder = bookings.get(night.holder or "")
        if holder is None:
            if not foreign_ok:
                detail = f"night {date} of room {room_id} is booked by {night.holder}, no booking of a logged user"
                found.append(Violation(rule="booked night without its booking", detail=detail))
        elif holder.status != "CONFIRMED" or holder.room_id != room_id or date not in holder.dates():
            detail = f"night {date} of room {room_id} is booked by {holder.id}: {holder.status}, room {holder.room_id}"
            detail += f", {holder.check_in}..{holder.check_out}"
            found.append(Violation(rule="booked night of a booking that does not hold it", detail=detail))
    for booking in bookings.values():
        if booking.status != "CONFIRMED":
            continue
        for date in booking.dates():
            row = booked.get((booking.room_id, date))
            if row is None or row.holder != booking.id:
                state = "not booked" if row is None else f"booked by {row.holder}"
                detail = f"{booking.id} is CONFIRMED but night {date} of room {booking.room_id} is {state}"
                found.append(Violation(rule="confirmed booking's night not booked", detail=detail))
    return found
