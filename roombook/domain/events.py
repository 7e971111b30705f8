"""What happened, told to whoever listens: the events roombook publishes, and their one wire format.

Every event has a unique, time-ordered `id` (a ULID: consumers deduplicate by it), the time it
`occurred_at` (aware UTC), the version of its `schema`, its `type`, the tag of the union, and as
metadata the `request_id` of the API request it was made for (None for the system's own changes):

    booking.created       a PENDING booking was recorded (the saga's first step)
    booking.confirmed     a booking became CONFIRMED
    booking.cancelled     a booking became CANCELLED or EXPIRED (`previous_status` tells which case);
                          a guest's cancellation carries its `cancellation_fee` and `refund`
    booking.refunded      the refund of a cancelled booking was made (`refund`, `refund_id`)
    booking.modified      a confirmed booking's stay, guests or room changed (the booking after it;
                          `difference`: what its guest paid more, or is refunded if negative)
    availability.updated  nights of one room changed: their final state and version after one commit
    room.updated          a room was added to the catalogue or changed

Events carry ids, never personal data: a booking event names its user by id and region, and the
consumer that needs the email address reads it from that region's store (data stays resident;
an event sits in a global outbox and a global topic). Never a token, a password or card data.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import random
import secrets
import threading

import msgspec

from roombook.domain.bookings import Booking, BookingStatus, Refusal
from roombook.domain.ids import crockford_base32

SCHEMA_VERSION = 1
EVENT_ID_PREFIX = "ev_"


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    id: str
    occurred_at: dt.datetime
    schema: int = SCHEMA_VERSION
    request_id: str | None = None  # metadata: the API request (X-Request-ID) the change was made for

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)  # every event type sets its tag, a string

    @property
    def family(self) -> str:
        """`booking`, `availability` or `room`: the topic the event is published on."""
        return self.type.partition(".")[0]


class _BookingEvent(_Event, frozen=True, kw_only=True):
    booking_id: str
    user_id: int
    region: str
    room_id: int
    check_in: dt.date
    check_out: dt.date
    nights: int
    guests: int
    total: decimal.Decimal
    currency: str
    status: BookingStatus
    previous_status: BookingStatus | None = None  # None for booking.created
    refusal: Refusal | None = None  # why the booking's request was refused, if it was
    cancellation_fee: decimal.Decimal | None = None  # kept when its guest cancelled
    refund: decimal.Decimal | None = None  # given back when its guest cancelled
    refund_id: str | None = None  # the payment service's refund, once made


class BookingCreated(_BookingEvent, frozen=True, kw_only=True, tag="booking.created"):
    pass


class BookingConfirmed(_BookingEvent, frozen=True, kw_only=True, tag="booking.confirmed"):
    pass


class BookingCancelled(_BookingEvent, frozen=True, kw_only=True, tag="booking.cancelled"):
    """status CANCELLED (by its guest, or a failed attempt) or EXPIRED (never completed)."""


class BookingRefunded(_BookingEvent, frozen=True, kw_only=True, tag="booking.refunded"):
    """The refund of a cancelled booking reached the payment service (status CANCELLED)."""


class BookingModified(_BookingEvent, frozen=True, kw_only=True, tag="booking.modified"):
    """A change of a confirmed booking was applied: the event describes the booking after it."""

    difference: decimal.Decimal = decimal.Decimal(0)


class NightState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    date: dt.date
    status: str  # available | held | booked
    version: int


class AvailabilityUpdated(_Event, frozen=True, kw_only=True, tag="availability.updated"):
    """The nights of one room one commit changed, as stored after it (versions only grow)."""

    room_id: int
    nights: list[NightState]


class RoomUpdated(_Event, frozen=True, kw_only=True, tag="room.updated"):
    room_id: int


Event = (
    BookingCreated
    | BookingConfirmed
    | BookingCancelled
    | BookingRefunded
    | BookingModified
    | AvailabilityUpdated
    | RoomUpdated
)
BookingEvent = BookingCreated | BookingConfirmed | BookingCancelled | BookingRefunded | BookingModified
EVENT_TYPES: frozenset[str] = frozenset(str(t.__struct_config__.tag) for t in Event.__args__)

_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    """Raises msgspec.DecodeError (a ValueError) for anything that is not a known event."""
    return _decoder.decode(data)


# -- ids --------------------------------------------------------------------------------------------


class _EventIds:
    """ULIDs (48-bit milliseconds, 80 random bits), strictly increasing within this process.

    The random bits only keep processes apart (uniqueness, not secrecy), so they come from a
    PRNG seeded from the OS, and seeded again in a forked child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a Ray actor or a store thread may make ids too
        self._last = 0
        self._random = random.Random(secrets.randbits(128))
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._random.seed(secrets.randbits(128))

    def next(self, now_ms: int) -> str:
        with self._lock:
            value = max((now_ms << 80) | self._random.getrandbits(80), self._last + 1)
            self._last = value
        return EVENT_ID_PREFIX + crockford_base32(value, 26)


_ids = _EventIds()


def new_event_id(now_s: float) -> str:
    return _ids.next(int(now_s * 1000))


def _utc(now_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now_s, dt.UTC)


# -- factories ----------------------------------------------------------------------------------------

_BOOKING_EVENT_BY_STATUS: dict[BookingStatus, type[BookingEvent]] = {
    BookingStatus.PENDING: BookingCreated,
    BookingStatus.CONFIRMED: BookingConfirmed,
    BookingStatus.CANCELLED: BookingCancelled,
    BookingStatus.EXPIRED: BookingCancelled,
}


def booking_event(
    booking: Booking,
    *,
    region: str,
    previous: BookingStatus | None,
    now_s: float,
    request_id: str | None = None,
    refunded: bool = False,
) -> BookingEvent:
    """The event telling that `booking` (as it is after the change) reached its status, or with
    refunded=True that its refund was made."""
    kind = BookingRefunded if refunded else _BOOKING_EVENT_BY_STATUS[booking.status]
    return kind(
        id=new_event_id(now_s),
        occurred_at=_utc(now_s),
        request_id=request_id,
        booking_id=booking.id,
        user_id=booking.user_id,
        region=region,
        room_id=booking.room_id,
        check_in=booking.check_in,
        check_out=booking.check_out,
        nights=booking.nights,
        guests=booking.guests,
        total=booking.total_price,
        currency=booking.currency,
        status=booking.status,
        previous_status=previous,
        refusal=booking.refusal,
        cancellation_fee=booking.cancellation_fee,
        refund=booking.refund_amount,
        refund_id=booking.refund_id,
    )


def booking_modified(
    booking: Booking, *, region: str, difference: decimal.Decimal, now_s: float, request_id: str | None = None
) -> BookingModified:
    """The event telling that a change brought `booking` to what it is now."""
    event = booking_event(booking, region=region, previous=BookingStatus.CONFIRMED, now_s=now_s, request_id=request_id)
    return BookingModified(difference=difference, **msgspec.structs.asdict(event))


def availability_updated(room_id: int, nights: list[NightState], *, now_s: float) -> AvailabilityUpdated:
    return AvailabilityUpdated(id=new_event_id(now_s), occurred_at=_utc(now_s), room_id=room_id, nights=nights)


def room_updated(room_id: int, *, now_s: float) -> RoomUpdated:
    return RoomUpdated(id=new_event_id(now_s), occurred_at=_utc(now_s), room_id=room_id)
