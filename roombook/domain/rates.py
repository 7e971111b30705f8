"""A room's rate calendar and the one function that prices a stay.

A night's price is, first match wins: the date-range override covering it (its weekday price if
it has one for that weekday, else its price), the room's standing weekday price, the room's base
price (`Room.price_per_night`). Every price is in the room's currency, at most two decimals.

Overrides are kept sorted and disjoint: replacing [from, to) cuts whatever overlapped it, so a
PUT of the same change twice leaves the same calendar (idempotent), and the latest change of a
date wins.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from typing import TYPE_CHECKING

import msgspec

from roombook.domain.stays import Stay

if TYPE_CHECKING:
    from roombook.domain.rooms import Room

MAX_OVERRIDES = 400  # ranges per room: a year of daily prices fits, a calendar stays small


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, date: dt.date) -> Weekday:
        return _WEEKDAYS[date.weekday()]


_WEEKDAYS = list(Weekday)


class RateOverride(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The nights [from, to) priced apart from the standing rules."""

    start: dt.date = msgspec.field(name="from")
    end: dt.date = msgspec.field(name="to")
    price: decimal.Decimal | None = None  # None: the standing rules, except for `weekdays`
    weekdays: dict[Weekday, decimal.Decimal] = {}

    def price_of(self, date: dt.date) -> decimal.Decimal | None:
        return self.weekdays.get(Weekday.of(date), self.price)


class RatePlan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The standing weekday prices and the overrides, sorted by date and disjoint."""

    weekdays: dict[Weekday, decimal.Decimal] = {}
    overrides: list[RateOverride] = []

    def nightly_price(self, base: decimal.Decimal, date: dt.date) -> decimal.Decimal:
        for override in self.overrides:  # a few ranges: a scan beats an index
            if override.start <= date < override.end:
                if (price := override.price_of(date)) is not None:
                    return price
                break
        return self.weekdays.get(Weekday.of(date), base)

    def replaced(self, change: RateOverride) -> RatePlan:
        """The plan with [change.start, change.end) priced by `change` alone (a change with no
        price and no weekdays clears the range back to the standing rules)."""
        if change.end <= change.start:
            raise ValueError("a rate change needs `to` after `from`")
        kept: list[RateOverride] = []
        for old in self.overrides:
            if old.end <= change.start or old.start >= change.end:
                kept.append(old)
                continue
            if old.start < change.start:
                kept.append(msgspec.structs.replace(old, end=change.start))
            if old.end > change.end:
                kept.append(msgspec.structs.replace(old, start=change.end))
        if change.price is not None or change.weekdays:
            kept.append(change)
        kept.sort(key=lambda o: o.start)
        if len(kept) > MAX_OVERRIDES:
            raise ValueError(f"a room has at most {MAX_OVERRIDES} rate ranges: merge some")
        return RatePlan(weekdays=self.weekdays, overrides=kept)


class NightPrice(msgspec.Struct, frozen=True, kw_only=True):
    date: dt.date
    price: decimal.Decimal


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """What a stay costs: `total` is the sum of the nights, in `currency`."""

    room_id: int
    check_in: dt.date
    check_out: dt.date
    guests: int
    currency: str
    total: decimal.Decimal
    nights: list[NightPrice]

    @property
    def average_nightly(self) -> decimal.Decimal:
        return self.total / len(self.nights)


def price_stay(room: Room, check_in: dt.date, check_out: dt.date, guests: int) -> Quote:
    """The price of each night of the stay in `room` from its rate calendar, and their total.

    The one place a stay is priced: quotes, bookings and their changes all call it. Prices are
    per room and night, whatever the guests (who are checked against the capacity elsewhere).
    Raises InvalidStay for a stay that is none."""
    stay = Stay(check_in=check_in, check_out=check_out)
    nights = [NightPrice(date=d, price=room.rates.nightly_price(room.price_per_night, d)) for d in stay.nights()]
    return Quote(
        room_id=room.id,
        check_in=check_in,
        check_out=check_out,
        guests=guests,
        currency=room.currency,
        total=sum((n.price for n in nights), decimal.Decimal(0)),
        nights=nights,
    )


def flat_quote(
    room_id: int, check_in: dt.date, check_out: dt.date, guests: int, *, price_per_night: decimal.Decimal, currency: str
) -> Quote:
    """The quote of a stay at one price every night (a room with no rate calendar)."""
    stay = Stay(check_in=check_in, check_out=check_out)
    nights = [NightPrice(date=d, price=price_per_night) for d in stay.nights()]
    return Quote(
        room_id=room_id,
        check_in=check_in,
        check_out=check_out,
        guests=guests,
        currency=currency,
        total=price_per_night * len(nights),
        nights=nights,
    )
