"""A stay is the nights [check_in, check_out): the guest sleeps each night, leaves on check_out."""

from __future__ import annotations

import datetime as dt

import msgspec

from roombook.domain.errors import InvalidStay

MAX_NIGHTS = 366
_from_ordinal = dt.date.fromordinal


class Stay(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    check_in: dt.date
    check_out: dt.date

    def __post_init__(self) -> None:
        n = (self.check_out - self.check_in).days
        if n < 1:
            raise InvalidStay(f"check_out {self.check_out} must be after check_in {self.check_in}")
        if n > MAX_NIGHTS:
            raise InvalidStay(f"a stay has at most {MAX_NIGHTS} nights, not {n}")

    @property
    def night_count(self) -> int:
        return (self.check_out - self.check_in).days

    def nights(self) -> list[dt.date]:
        first = self.check_in.toordinal()
        return [_from_ordinal(day) for day in range(first, self.check_out.toordinal())]
