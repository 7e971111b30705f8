"""The check after every round, the same for every system: what the clients were told against
what the store holds once the round has ended.

A round passes only if
- no night of a room belongs to two bookings: neither two confirmed bookings in the store nor two
  bookings the clients were told about;
- every acknowledged booking is in the store, with the same room and nights;
- the availability rows agree with the bookings: every night of a stored booking is a `booked`
  row and every `booked` row belongs to a stored booking;
- no hold is stranded: once every attempt has ended no row is `held` (an acknowledged booking is
  `booked`; any other attempt released its hold);
- the store holds no more bookings the clients were not told about than attempts that failed (a
  confirmation that committed but whose reply was lost is the only way to get one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from bench.core.workload import BookedStay

MAX_EXAMPLES = 5


class StoredState(msgspec.Struct, frozen=True, kw_only=True):
    """What the store holds after a round: its confirmed bookings and its availability rows."""

    bookings: list[BookedStay]
    rows: list[tuple[int, dt.date, str]]  # (room_id, date, status)


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    double_booked_nights: int
    missing_acknowledged: int
    booked_rows_without_booking: int
    booking_nights_not_booked: int
    stranded_holds: int
    unacknowledged_bookings: int
    problems: list[str]


def verify_round(*, acknowledged: Sequence[BookedStay], stored: StoredState, failed_attempts: int) -> Verdict:
    problems: list[str] = []

    def note(text: str) -> None:
        if len(problems) < MAX_EXAMPLES * 6:
            problems.append(text)

    stored_owner, stored_doubles = _owners(stored.bookings)
    _, acknowledged_doubles = _owners(acknowledged)
    doubles = stored_doubles | acknowledged_doubles
    for room_id, date in sorted(doubles)[:MAX_EXAMPLES]:
        note(f"night {date} of room {room_id} belongs to two bookings")

    by_key = {booking.key: booking for booking in stored.bookings}
    missing = 0
    for booking in acknowledged:
        if by_key.get(booking.key) != booking:
            missing += 1
            if missing <= MAX_EXAMPLES:
                note(f"acknowledged booking {booking} is not in the store as acknowledged ({by_key.get(booking.key)})")

    status = {(room_id, date): state for room_id, date, state in stored.rows}
    stranded = [key for key, state in status.items() if state == "held"]
    for room_id, date in sorted(stranded)[:MAX_EXAMPLES]:
        note(f"night {date} of room {room_id} is still held after the round")
    orphans = [key for key, state in status.items() if state == "booked" and key not in stored_owner]
    for room_id, date in sorted(orphans)[:MAX_EXAMPLES]:
        note(f"night {date} of room {room_id} is booked but no booking holds it")
    unbooked = [key for key in stored_owner if status.get(key) != "booked"]
    for room_id, date in sorted(unbooked)[:MAX_EXAMPLES]:
        note(f"night {date} of room {room_id} belongs to a booking but its row is {status.get((room_id, date))}")

    unacknowledged = len(by_key.keys() - {booking.key for booking in acknowledged})
    if unacknowledged > failed_attempts:
        note(f"{unacknowledged} stored bookings nobody was told about, more than the {failed_attempts} failed attempts")
    ok = not (doubles or missing or stranded or orphans or unbooked) and unacknowledged <= failed_attempts
    return Verdict(
        ok=ok,
        double_booked_nights=len(doubles),
        missing_acknowledged=missing,
        booked_rows_without_booking=len(orphans),
        booking_nights_not_booked=len(unbooked),
        stranded_holds=len(stranded),
        unacknowledged_bookings=unacknowledged,
        problems=problems,
    )


def _owners(bookings: Iterable[BookedStay]) -> tuple[dict[tuple[int, dt.date], str], set[tuple[int, dt.date]]]:
    """night -> the booking that owns it, and the nights claimed by more than one booking."""
    owner: dict[tuple[int, dt.date], str] = {}
    doubles: set[tuple[int, dt.date]] = set()
    for booking in bookings:
        for date in booking.nights():
            night = (booking.room_id, date)
            if owner.setdefault(night, booking.key) != booking.key:
                doubles.add(night)
    return owner, doubles


def bookings_from_rows(rows: Iterable[tuple[int, dt.date, str, str | None]]) -> list[BookedStay]:
    """The bookings a store that keeps the holder on each row holds: booked rows grouped by holder.
    A booking whose nights are not contiguous comes out spanning its first to last night, so the
    row check above reports the gap."""
    nights: dict[str, tuple[int, list[dt.date]]] = {}
    for room_id, date, state, holder in rows:
        if state == "booked" and holder is not None:
            entry = nights.setdefault(holder, (room_id, []))
            if entry[0] != room_id:
                holder = f"{holder}@room{room_id}"  # one key on two rooms: keep them apart, both visible
                entry = nights.setdefault(holder, (room_id, []))
            entry[1].append(date)
    return [
        BookedStay(key, room_id, min(dates), max(dates) + dt.timedelta(days=1))
        for key, (room_id, dates) in nights.items()
    ]
