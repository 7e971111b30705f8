"""After a scenario, once holds have expired and a reconciler round has run: what the clients were
told against what the stores hold (read directly) and what the shards serve.

The rules of bench/check/rules.py (no night in two CONFIRMED bookings; every 201 CONFIRMED in its
owner's history, or CANCELLED after a cancel; booked rows and CONFIRMED bookings match both ways)
plus: no booking CONFIRMED whose client was told it failed; no night held by a live hold; no booking
PENDING; /readyz 200; and per room-night, the shard's calendar and the store agree on exactly one
of available, held or booked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable

import aiohttp
import msgspec

from bench.chaos.storm import Operation
from bench.check.booking_log import BookingLog, LoggedBooking
from bench.check.rules import SeenBooking, Violation, acknowledged_bookings, availability_rows, double_bookings
from bench.check.sources import StoreDsns, store_rows
from roombook.domain.accounts import region_of_user_id
from roombook.domain.bookings import Booking
from roombook.domain.nights import Night, NightStatus
from roombook.storage.sql.connect import regional_store

PER_PAGE = 100
DAY = dt.timedelta(days=1)


class _Calendar(msgspec.Struct, frozen=True):
    nights: list[dict[str, str]]


async def stored_bookings(dsns: StoreDsns, user_ids: Iterable[int]) -> list[Booking]:
    """Every booking of these users, from their regions' stores (with their Idempotency-Keys)."""
    found: list[Booking] = []
    for user_id in sorted(set(user_ids)):
        region = region_of_user_id(user_id)
        async with regional_store(dsns.regional[region], region) as store:
            page = 1
            while True:
                answer = await store.bookings_of(user_id, page=page, per_page=PER_PAGE)
                found += answer.items
                if not answer.items or page * PER_PAGE >= answer.total:
                    break
                page += 1
    return found


def _seen(booking: Booking) -> SeenBooking:
    return SeenBooking(
        id=booking.id,
        user_id=booking.user_id,
        room_id=booking.room_id,
        check_in=booking.check_in,
        check_out=booking.check_out,
        nights=booking.nights,
        status=booking.status.value,
    )


def booking_log(operations: list[Operation]) -> BookingLog:
    """The operations as bench.check's log: the 201s, the cancels sent and those answered CANCELLED."""
    log = BookingLog()
    for op in operations:
        if op.kind == "book" and op.status == 201:
            log.bookings[op.booking_id] = LoggedBooking(
                booking_id=op.booking_id,
                user_id=op.user_id,
                room_id=op.room_id,
                check_in=dt.date.fromisoformat(op.check_in),
                check_out=dt.date.fromisoformat(op.check_out),
                nights=(dt.date.fromisoformat(op.check_out) - dt.date.fromisoformat(op.check_in)).days,
                key=op.key,
            )
        elif op.kind == "cancel":
            log.cancelling.add(op.key)
            if op.status == 200 and op.booking_status == "CANCELLED":
                log.cancelled.add(op.key)
    return log


def told_failed(operations: list[Operation], bookings: list[Booking]) -> list[Violation]:
    """A CONFIRMED booking whose key's last answer was a failure that is not an unknown outcome."""
    last: dict[tuple[int, str], Operation] = {}
    for operation in operations:
        if operation.kind == "book":
            last[(operation.user_id, operation.key)] = operation
    found = []
    for booking in bookings:
        op = last.get((booking.user_id, booking.idempotency_key))
        if op is None or booking.status.value != "CONFIRMED" or op.unknown_outcome or op.status < 400:
            continue
        detail = f"{booking.id} is CONFIRMED but its client was last told {op.status} {op.problem_type} ({op.error})"
        found.append(Violation(rule="confirmed after a failure answer", detail=detail))
    return found


def leftovers(rows: list[Night], bookings: list[Booking], now_s: float) -> list[Violation]:
    found = []
    for booking in bookings:
        if booking.status.value == "PENDING":
            found.append(Violation(rule="booking left PENDING", detail=f"{booking.id} of room {booking.room_id}"))
    for night in rows:
        if night.status is NightStatus.HELD and night.is_taken(now_s):
            detail = f"night {night.date} of room {night.room_id} is held by {night.holder} after every hold expired"
            found.append(Violation(rule="night held without a live booking", detail=detail))
    return found


async def calendars(host: str, rooms: list[int], start: dt.date, end: dt.date) -> dict[int, list[dict[str, str]]]:
    async with aiohttp.ClientSession(host, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one(room_id: int) -> list[dict[str, str]]:
            url = f"/api/v1/rooms/{room_id}/availability?from={start}&to={end}"
            async with http.get(url) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET {url} answered {resp.status}: {raw[:200]!r}")
            return msgspec.json.decode(raw, type=_Calendar).nights

        return dict(zip(rooms, await asyncio.gather(*(one(r) for r in rooms)), strict=True))


def night_accounts(
    served: dict[int, list[dict[str, str]]], rows: list[Night], start: dt.date, end: dt.date, now_s: float
) -> list[Violation]:
    """Each room-night of [start, end) is exactly once available, held or booked, alike in the shard and the store."""
    stored: dict[tuple[int, dt.date], list[Night]] = {}
    for night in rows:
        stored.setdefault((night.room_id, night.date), []).append(night)
    found = []
    dates = [start + i * DAY for i in range((end - start).days)]
    for room_id, nights in served.items():
        seen: dict[dt.date, list[str]] = {}
        for served_night in nights:
            seen.setdefault(dt.date.fromisoformat(served_night["date"]), []).append(served_night["status"])
        for date in dates:
            shard = seen.get(date, [])
            store = [_status(n, now_s) for n in stored.get((room_id, date), [])] or ["available"]
            if len(shard) != 1 or len(store) != 1 or shard[0] not in ("available", "held", "booked"):
                detail = f"night {date} of room {room_id}: shard says {shard}, store {store}"
                found.append(Violation(rule="night not accounted exactly once", detail=detail))
            elif shard != store:
                detail = f"night {date} of room {room_id} is {shard[0]} in the shard, {store[0]} in the store"
                found.append(Violation(rule="shard and store disagree", detail=detail))
    return found


def _status(night: Night, now_s: float) -> str:
    if night.status is NightStatus.BOOKED:
        return "booked"
    return "held" if night.is_taken(now_s) else "available"


async def check(
    operations: list[Operation], *, dsns: StoreDsns, host: str, rooms: list[int], start: dt.date, end: dt.date
) -> list[Violation]:
    """Every violation, after the scenario (its holds expired, a reconciler round run)."""
    user_ids = {op.user_id for op in operations}
    bookings = [b for b in await stored_bookings(dsns, user_ids) if b.room_id in rooms]
    rows = [n for n in await store_rows(dsns) if n.room_id in rooms]
    seen = {b.id: _seen(b) for b in bookings}
    now_s = time.time()
    found = double_bookings(seen.values(), source="stores")
    found += acknowledged_bookings(booking_log(operations), seen, source="stores")
    found += availability_rows(rows, seen)
    found += told_failed(operations, bookings)
    found += leftovers(rows, bookings, now_s)
    try:
        served = await calendars(host, rooms, start, end)
    except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
        return [*found, Violation(rule="calendar not served", detail=str(exc)[:300])]
    found += night_accounts(served, rows, start, end, now_s)
    return found
