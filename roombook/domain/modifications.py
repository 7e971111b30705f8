"""Changing a confirmed booking: new dates, guests or room, atomic from its guest's point of view.

A modification is recorded PENDING (unique on booking + Idempotency-Key) and ends APPLIED (the
booking has the new stay and price) or REFUSED (the booking is as it was). Its id keys the
payment of a higher price; a lower price, or a charge whose change was refused, is refunded
once the outcome is recorded (refund_amount, refund_id).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
from typing import Annotated

import msgspec

from roombook.domain.bookings import (
    MAX_GUESTS,
    Booking,
    BookingStatus,
    Refusal,
    quoted_total,
)
from roombook.domain.errors import BookingNotModifiable, InvalidBooking
from roombook.domain.rates import NightPrice, Quote
from roombook.domain.rooms import MAX_ROOM_ID, Room
from roombook.domain.stay_rules import local_today, stay_refusal
from roombook.domain.stays import Stay

MODIFICATION_ID_PREFIX = "bm_"


class ModificationStatus(enum.StrEnum):
    PENDING = "PENDING"
    APPLIED = "APPLIED"
    REFUSED = "REFUSED"


class BookingChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a guest asks to change; a field left out keeps the booking's value."""

    room_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ROOM_ID)] | None = None
    check_in: dt.date | None = None
    check_out: dt.date | None = None
    guests: Annotated[int, msgspec.Meta(ge=1, le=MAX_GUESTS)] | None = None
    card_token: str | None = None  # pays a higher price (the simulated card by default)


class Target(msgspec.Struct, frozen=True, kw_only=True):
    room_id: int
    stay: Stay
    guests: int


def plan_change(booking: Booking, change: BookingChange, *, room: Room, now_s: float) -> Target | None:
    """Where the booking goes, or None if the change changes nothing. Raises BookingNotModifiable
    unless it is CONFIRMED and not being changed already, StayRefused for a changed stay the
    room's stay rules refuse (as a new booking's), InvalidBooking (or InvalidStay) for another
    change the booking rules refuse. Nights already slept cannot move: a stay under way may only
    change its check-out (an early check-out frees the rest), and never to before today, the
    property's."""
    if booking.status is not BookingStatus.CONFIRMED:
        raise BookingNotModifiable(f"a {booking.status} booking cannot be changed")
    if booking.modifying is not None:
        raise BookingNotModifiable("another change of this booking is under way; retry shortly")
    stay = Stay(check_in=change.check_in or booking.check_in, check_out=change.check_out or booking.check_out)
    target = Target(room_id=room.id, stay=stay, guests=change.guests or booking.guests)
    if (target.room_id, stay.check_in, stay.check_out, target.guests) == (
        booking.room_id,
        booking.check_in,
        booking.check_out,
        booking.guests,
    ):
        return None
    today = local_today(room, now_s)
    if booking.check_out <= today:
        raise InvalidBooking("this stay is over; it cannot be changed")
    moves_arrival = stay.check_in != booking.check_in or target.room_id != booking.room_id
    if moves_arrival and booking.check_in < today:
        raise InvalidBooking("a stay's arrival or room can change only before it starts")
    if stay.check_out < today:
        raise InvalidBooking(f"check_out {stay.check_out} is in the past")
    # the room's rules, on what the change changes: a stay under way keeps its arrival unjudged
    moves_dates = moves_arrival or stay.check_out != booking.check_out
    refusal = stay_refusal(
        room, stay.check_in, stay.check_out, target.guests, now_s, arrival=moves_arrival, length=moves_dates
    )
    if refusal is not None:
        raise refusal
    if room.currency != booking.currency:
        raise InvalidBooking(f"a booking paid in {booking.currency} can move only to a room priced in it")
    return target


class Modification(msgspec.Struct, frozen=True, kw_only=True):
    """One change of one booking; (booking_id, idempotency_key) is unique."""

    id: str
    booking_id: str
    user_id: int
    idempotency_key: str
    request_hash: str
    status: ModificationStatus
    from_room_id: int
    from_check_in: dt.date
    from_check_out: dt.date
    from_guests: int
    from_total: decimal.Decimal
    to_room_id: int
    to_check_in: dt.date
    to_check_out: dt.date
    to_guests: int
    to_total: decimal.Decimal
    to_night_prices: list[NightPrice] = []  # the new stay's nights as priced (price_stay) when asked
    card_token: str  # a token (tok_...), never card data: it pays the difference on a retry too
    charge_id: str | None = None  # the payment of a higher price
    refund_amount: decimal.Decimal | None = None  # to give back once the outcome is recorded
    refund_id: str | None = None
    refusal: Refusal | None = None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def difference(self) -> decimal.Decimal:
        """What the guest pays more (positive) or gets back (negative)."""
        return self.to_total - self.from_total

    @property
    def to_stay(self) -> Stay:
        return Stay(check_in=self.to_check_in, check_out=self.to_check_out)


_ENCODER = msgspec.json.Encoder()


def change_hash(booking_id: str, change: BookingChange) -> str:
    """sha256 hex of the change's canonical JSON and its booking: what a key was first used for."""
    return hashlib.sha256(booking_id.encode() + b"\0" + _ENCODER.encode(change)).hexdigest()


def pending_modification(
    *,
    modification_id: str,
    booking: Booking,
    target: Target,
    quote: Quote,
    idempotency_key: str,
    request_hash: str,
    card_token: str,
    now: dt.datetime,
) -> Modification:
    """The change's first record, PENDING, priced night by night as `quote` (price_stay) has it."""
    stay = target.stay
    if (quote.room_id, quote.check_in, quote.check_out) != (target.room_id, stay.check_in, stay.check_out):
        raise ValueError("the quote is for another stay")
    return Modification(
        id=modification_id,
        booking_id=booking.id,
        user_id=booking.user_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        status=ModificationStatus.PENDING,
        from_room_id=booking.room_id,
        from_check_in=booking.check_in,
        from_check_out=booking.check_out,
        from_guests=booking.guests,
        from_total=booking.total_price,
        to_room_id=target.room_id,
        to_check_in=target.stay.check_in,
        to_check_out=target.stay.check_out,
        to_guests=target.guests,
        to_total=quoted_total(quote),
        to_night_prices=quote.nights,
        card_token=card_token,
        created_at=now,
        updated_at=now,
    )


def applied_to(booking: Booking, modification: Modification, *, now: dt.datetime) -> Booking:
    """The booking once the modification is applied."""
    return msgspec.structs.replace(
        booking,
        room_id=modification.to_room_id,
        check_in=modification.to_check_in,
        check_out=modification.to_check_out,
        guests=modification.to_guests,
        nights=modification.to_stay.night_count,
        total_price=modification.to_total,
        night_prices=modification.to_night_prices,
        modifying=None,
        modified_at=now,
        updated_at=now,
    )


def change_quote(booking: Booking, target: Target, fresh: Quote) -> Quote:
    """What the changed stay costs: `fresh` (the rate calendar's price of the target stay), except
    that a night the booking keeps, in the same room for the same guests, costs what was paid for
    it. An early check-out refunds the nights given up at their price, and keeps the rest as
    they were; an extension pays today's rates for its new nights only."""
    if target.room_id != booking.room_id or target.guests != booking.guests or fresh.currency != booking.currency:
        return fresh
    paid = {night.date: night.price for night in booking.night_prices}
    nights = [NightPrice(date=night.date, price=paid.get(night.date, night.price)) for night in fresh.nights]
    return msgspec.structs.replace(fresh, nights=nights, total=sum((n.price for n in nights), decimal.Decimal(0)))
