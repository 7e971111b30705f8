"""A room's stay rules and the property's clock: which stays it accepts, decided in its own zone.

"Today", the same-day cut-off and the booking horizon are read in the property's IANA time zone
(`Location.timezone`), never the server's: at 23:30 in Honolulu it is already tomorrow in UTC, and
a guest arriving tonight must still be able to book. A stay's nights are the local dates
[check_in, check_out), so a DST change (a 23- or 25-hour night) is one night like any other.

The rules, each refused with StayRefused naming it (`StayRule`):
- check_in_in_past: arrival before the property's today;
- same_day_cutoff: arriving today after the property's cut-off time;
- booking_horizon: arrival more than horizon_days after today;
- min_stay / max_stay: length of stay, the arrival date's rule if one covers it, else the room's;
- closed_to_arrival / closed_to_departure: dates no stay may start or end on;
- capacity: more guests than the room sleeps.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import zoneinfo
from typing import TYPE_CHECKING, Annotated

import msgspec

from roombook.domain.errors import InvalidBooking

if TYPE_CHECKING:
    from roombook.domain.rooms import Room

MAX_STAY_NIGHTS = 30  # a booking never holds more nights than this, whatever a room's rules say
DEFAULT_HORIZON_DAYS = 548  # about 18 months
MAX_HORIZON_DAYS = 1100  # about 3 years
MAX_DATES = 400  # closed dates and arrival rules per room
Nights = Annotated[int, msgspec.Meta(ge=1, le=MAX_STAY_NIGHTS)]


class StayRule(enum.StrEnum):
    PAST = "check_in_in_past"
    CUTOFF = "same_day_cutoff"
    HORIZON = "booking_horizon"
    MIN_STAY = "min_stay"
    MAX_STAY = "max_stay"
    CLOSED_TO_ARRIVAL = "closed_to_arrival"
    CLOSED_TO_DEPARTURE = "closed_to_departure"
    CAPACITY = "capacity"


class StayRefused(InvalidBooking, problem="stay-refused", title="The room's rules refuse this stay"):
    """A stay the room does not take; `rule` names the rule (a StayRule value)."""

    def __init__(self, rule: StayRule, detail: str) -> None:
        self.rule = rule
        super().__init__(detail)


class ArrivalRule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """The length of stay allowed for arrivals on [from, to)."""

    start: dt.date = msgspec.field(name="from")
    end: dt.date = msgspec.field(name="to")
    min_nights: Nights | None = None
    max_nights: Nights | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("an arrival rule needs `to` after `from`")


class StayRules(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """The stays a room accepts; the defaults accept 1 to 30 nights, up to 18 months ahead."""

    min_nights: Nights = 1
    max_nights: Nights = MAX_STAY_NIGHTS
    arrivals: Annotated[list[ArrivalRule], msgspec.Meta(max_length=MAX_DATES)] = []
    closed_to_arrival: Annotated[list[dt.date], msgspec.Meta(max_length=MAX_DATES)] = []
    closed_to_departure: Annotated[list[dt.date], msgspec.Meta(max_length=MAX_DATES)] = []
    # None: no horizon (a room that takes bookings however far ahead)
    horizon_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_HORIZON_DAYS)] | None = DEFAULT_HORIZON_DAYS
    same_day_cutoff: dt.time | None = None  # local time; None: same-day arrivals all day

    def __post_init__(self) -> None:
        if self.min_nights > self.max_nights:
            raise ValueError("min_nights is above max_nights")
        if self.same_day_cutoff is not None and self.same_day_cutoff.tzinfo is not None:
            raise ValueError("same_day_cutoff is a local time of the property: no offset")

    def nights_allowed(self, check_in: dt.date) -> tuple[int, int]:
        """(min, max) nights for an arrival on check_in."""
        for rule in self.arrivals:
            if rule.start <= check_in < rule.end:
                return (rule.min_nights or self.min_nights, rule.max_nights or self.max_nights)
        return self.min_nights, self.max_nights


@functools.lru_cache(maxsize=1024)
def property_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone of that name (raises ValueError for one that does not exist)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Paris)") from exc


def local_now(room: Room, now_s: float) -> dt.datetime:
    """The property's wall clock at unix time now_s."""
    return _wall_clock(room.location.timezone, now_s)


@functools.lru_cache(maxsize=256)
def _wall_clock(zone: str, now_s: float) -> dt.datetime:
    # a dated search asks for every candidate at one now_s: the few zones among them are computed once
    return dt.datetime.fromtimestamp(now_s, property_zone(zone))


def local_today(room: Room, now_s: float) -> dt.date:
    """The property's today: the one place "today" is decided for a room's stays, bookings,
    changes and cancellations."""
    return local_now(room, now_s).date()


def stay_refusal(
    room: Room,
    check_in: dt.date,
    check_out: dt.date,
    guests: int,
    now_s: float,
    *,
    arrival: bool = True,
    length: bool = True,
) -> StayRefused | None:
    """Why the room refuses this stay at now_s, or None if it takes it (the stay must be one).

    A change of a booking checks only what it changes: arrival=False skips the rules of the
    arrival (past, cut-off, horizon, closed to arrival) for a stay whose arrival and room stay
    the same (an early check-out of a stay under way); length=False skips the length of stay and
    the departure for a stay whose dates stay the same (more guests)."""
    now = local_now(room, now_s)
    today, rules = now.date(), room.stay_rules
    if arrival:
        if check_in < today:
            return StayRefused(StayRule.PAST, f"check_in {check_in} is in the past (it is {today} at the property)")
        if check_in == today and rules.same_day_cutoff is not None and now.time() >= rules.same_day_cutoff:
            return StayRefused(
                StayRule.CUTOFF, f"arrivals today close at {rules.same_day_cutoff.isoformat('minutes')} property time"
            )
        if rules.horizon_days is not None and (check_in - today).days > rules.horizon_days:
            return StayRefused(StayRule.HORIZON, f"the room takes bookings up to {rules.horizon_days} days ahead")
    if length:
        nights = (check_out - check_in).days
        low, high = rules.nights_allowed(check_in)
        if nights < low:
            return StayRefused(StayRule.MIN_STAY, f"arrivals on {check_in} stay at least {low} nights")
        if nights > min(high, MAX_STAY_NIGHTS):
            return StayRefused(
                StayRule.MAX_STAY, f"arrivals on {check_in} stay at most {min(high, MAX_STAY_NIGHTS)} nights"
            )
    if arrival and check_in in rules.closed_to_arrival:
        return StayRefused(StayRule.CLOSED_TO_ARRIVAL, f"the room takes no arrivals on {check_in}")
    if length and check_out in rules.closed_to_departure:
        return StayRefused(StayRule.CLOSED_TO_DEPARTURE, f"the room takes no departures on {check_out}")
    if guests > room.capacity:
        return StayRefused(StayRule.CAPACITY, f"the room sleeps at most {room.capacity} guests")
    return None


def check_stay(room: Room, check_in: dt.date, check_out: dt.date, guests: int, now_s: float) -> None:
    """Raise StayRefused unless the room takes this stay at now_s."""
    if (refusal := stay_refusal(room, check_in, check_out, guests, now_s)) is not None:
        raise refusal
