"""Booking records as a user's region keeps them, their lifecycle, and their ids.

A booking is created PENDING (the saga's first step) and ends CONFIRMED, CANCELLED or EXPIRED.
Its id is also the id of its hold in the room's shard.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import secrets
from collections.abc import Callable
from typing import Annotated

import msgspec

from roombook.domain.errors import (
    IdempotencyKeyReused,
    InvalidBookingTransition,
    NightsUnavailable,
    PaymentDeclined,
    RoombookError,
    error_of_kind,
)
from roombook.domain.ids import CROCKFORD, crockford_base32
from roombook.domain.pages import MAX_PER_PAGE
from roombook.domain.rates import NightPrice, Quote, flat_quote
from roombook.domain.rooms import MAX_ROOM_ID
from roombook.domain.stay_rules import MAX_STAY_NIGHTS
from roombook.domain.stays import Stay

BOOKING_ID_PREFIX = "bk_"
MAX_GUESTS = 50
MAX_BOOKING_NIGHTS = MAX_STAY_NIGHTS
_CENT = decimal.Decimal("0.01")


class BookingStatus(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


# A pending booking is settled once; a confirmed one can still be cancelled by its guest.
_NEXT: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.PENDING: frozenset({BookingStatus.CONFIRMED, BookingStatus.CANCELLED, BookingStatus.EXPIRED}),
    BookingStatus.CONFIRMED: frozenset({BookingStatus.CANCELLED}),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.EXPIRED: frozenset(),
}


def check_transition(current: BookingStatus, new: BookingStatus) -> None:
    """Raise InvalidBookingTransition unless the lifecycle allows current -> new."""
    if new not in _NEXT[current]:
        raise InvalidBookingTransition(f"a {current} booking cannot become {new}")


class BookingRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a guest asks for. Decoding validates the stay (InvalidStay is a ValueError)."""

    room_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ROOM_ID)]
    check_in: dt.date
    check_out: dt.date
    guests: Annotated[int, msgspec.Meta(ge=1, le=MAX_GUESTS)]
    card_token: str | None = None

    def __post_init__(self) -> None:
        Stay(check_in=self.check_in, check_out=self.check_out)

    @property
    def stay(self) -> Stay:
        return Stay(check_in=self.check_in, check_out=self.check_out)


_REQUEST_ENCODER = msgspec.json.Encoder()


def request_hash(request: BookingRequest) -> str:
    """sha256 hex of the request's canonical JSON: field order is fixed by the Struct, so two
    bodies that differ only in key order or whitespace hash the same."""
    return hashlib.sha256(_REQUEST_ENCODER.encode(request)).hexdigest()


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why a booking request was refused, kept with its booking so that a replay of its key is
    refused exactly as the first answer was. kind is the refusing error's (RoombookError.kind)."""

    kind: str
    nights: list[dt.date] = []  # nights_unavailable: the nights someone else has
    decline_code: str | None = None  # payment_declined

    @classmethod
    def of(cls, exc: RoombookError) -> Refusal:
        match exc:
            case NightsUnavailable(nights=nights):
                return cls(kind=exc.kind, nights=sorted(nights))
            case PaymentDeclined(decline_code=code):
                return cls(kind=exc.kind, decline_code=code)
        return cls(kind=exc.kind)

    def error(self, booking: Booking) -> RoombookError:
        """The error the refused request was answered with."""
        error = error_of_kind(self.kind)
        if error is NightsUnavailable:
            return NightsUnavailable(booking.room_id, list(self.nights))
        if error is PaymentDeclined:
            return PaymentDeclined(self.decline_code or "declined")
        return error(f"booking {booking.id} was refused ({error.title.lower()}); nothing is booked")


class Booking(msgspec.Struct, frozen=True, kw_only=True):
    """One booking row. (user_id, idempotency_key) is unique; request_hash pins what the key meant."""

    id: str
    user_id: int
    room_id: int
    check_in: dt.date
    check_out: dt.date
    guests: int
    nights: int
    status: BookingStatus
    total_price: decimal.Decimal
    currency: str
    idempotency_key: str
    request_hash: str
    payment_intent_id: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    refusal: Refusal | None = None  # why its request was refused (CANCELLED or EXPIRED by the saga)
    night_prices: list[NightPrice] = []  # what each night cost (the rate calendar's, when booked)


class BookingPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a user's bookings, newest first; `total` counts all of them."""

    items: list[Booking]
    total: int
    page: int
    per_page: int


def page_offset(page: int, per_page: int) -> int:
    """Rows to skip for a page counted from 1; raises ValueError outside 1..MAX_PER_PAGE."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"page must be >= 1 and per_page within 1..{MAX_PER_PAGE}")
    return (page - 1) * per_page


def pending_booking(
    *,
    booking_id: str,
    user_id: int,
    request: BookingRequest,
    quote: Quote,
    idempotency_key: str,
    now: dt.datetime,
) -> Booking:
    """The saga's first record: PENDING, priced night by night as `quote` (price_stay) has it."""
    if (quote.room_id, quote.check_in, quote.check_out) != (request.room_id, request.check_in, request.check_out):
        raise ValueError("the quote is for another stay")
    return Booking(
        id=booking_id,
        user_id=user_id,
        room_id=request.room_id,
        check_in=request.check_in,
        check_out=request.check_out,
        guests=request.guests,
        nights=len(quote.nights),
        status=BookingStatus.PENDING,
        total_price=quote.total.quantize(_CENT, rounding=decimal.ROUND_HALF_UP),
        currency=quote.currency,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        created_at=now,
        updated_at=now,
        night_prices=quote.nights,
    )


def stay_quote(request: BookingRequest, *, price_per_night: decimal.Decimal, currency: str) -> Quote:
    """The requested stay at one price every night (a room with no rate calendar)."""
    return flat_quote(
        request.room_id,
        request.check_in,
        request.check_out,
        request.guests,
        price_per_night=price_per_night,
        currency=currency,
    )


def ensure_same_request(stored: Booking, attempted_hash: str) -> None:
    """A replayed Idempotency-Key must carry the body it was first used with."""
    if not secrets.compare_digest(stored.request_hash, attempted_hash):
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")


# -- ids ----------------------------------------------------------------------------------------

_RANDOM_BITS = 80
_TIME_BITS = 48


class BookingIds:
    """Makes booking ids: "bk_" + 26 lower-case Crockford base32 characters, a ULID (48-bit
    milliseconds, then 80 random bits). Each id is greater than the previous one this instance
    made, even within one millisecond or if the clock steps back, so ids sort by creation.
    """

    def __init__(self, randbits: Callable[[int], int] = secrets.randbits) -> None:
        self._randbits = randbits
        self._last_ms = -1
        self._last_random = 0

    def next(self, now_ms: int) -> str:
        if now_ms <= self._last_ms:
            now_ms, random = self._last_ms, self._last_random + 1
            if random >> _RANDOM_BITS:  # 2**80 ids in one millisecond: borrow the next one
                now_ms, random = now_ms + 1, self._randbits(_RANDOM_BITS)
        else:
            random = self._randbits(_RANDOM_BITS)
        if now_ms >> _TIME_BITS or now_ms < 0:
            raise ValueError("time out of the ULID range")
        self._last_ms, self._last_random = now_ms, random
        return BOOKING_ID_PREFIX + crockford_base32((now_ms << _RANDOM_BITS) | random, 26)


def booking_id_time_ms(booking_id: str) -> int:
    """The millisecond a booking id was made in (raises ValueError for a malformed id)."""
    body = booking_id.removeprefix(BOOKING_ID_PREFIX)
    if len(body) != 26 or body == booking_id:
        raise ValueError("not a booking id")
    value = 0
    for char in body:
        digit = CROCKFORD.find(char)
        if digit < 0:
            raise ValueError("not a booking id")
        value = value * 32 + digit
    return value >> _RANDOM_BITS
