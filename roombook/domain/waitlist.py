"""The waitlist: a user asks to be told when given nights of a room become free.

A watch names its user by id and region (the email is read from that region's store when the
mail is made: the global store keeps no personal data). It is told once: the first time, after
a release, a cancellation or an expiry on any of its nights, that every one of them is free; then
it is done. Watchers of the same nights are told in the order they asked.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from roombook.domain.nights import Night
from roombook.domain.stays import Stay

MAX_WATCH_NIGHTS = 30


class WatchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The nights [check_in, check_out) to watch (decoding validates the stay)."""

    check_in: dt.date
    check_out: dt.date

    def __post_init__(self) -> None:
        stay = Stay(check_in=self.check_in, check_out=self.check_out)
        if stay.night_count > MAX_WATCH_NIGHTS:
            raise ValueError(f"a watch covers at most {MAX_WATCH_NIGHTS} nights")

    @property
    def stay(self) -> Stay:
        return Stay(check_in=self.check_in, check_out=self.check_out)


class RoomWatch(msgspec.Struct, frozen=True, kw_only=True):
    """One user's watch of some nights of a room; id is 0 until the store assigns one (in the
    order watches are made)."""

    id: int = 0
    room_id: int
    check_in: dt.date
    check_out: dt.date
    user_id: int
    region: str
    created_at: dt.datetime
    notified_at: dt.datetime | None = None

    @property
    def nights(self) -> list[dt.date]:
        return Stay(check_in=self.check_in, check_out=self.check_out).nights()


def freed_for(watch: RoomWatch, freed: set[dt.date], stored: list[Night], *, now_s: float) -> bool:
    """Whether a change that freed the nights `freed` of the watch's room tells this watch: it
    freed one of its nights, and every one of them is free now (`stored`: the room's stored rows
    over the watch's stay; a night with no row is free)."""
    mine = set(watch.nights)
    if not mine & freed:
        return False
    return not any(night.date in mine and night.is_taken(now_s) for night in stored)
