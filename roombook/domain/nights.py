"""The state of one room-night, as the global availability store keeps it."""

from __future__ import annotations

import datetime as dt
import enum

import msgspec


class NightStatus(enum.StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    BOOKED = "booked"


class Night(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    """One row of the availability table. `holder` is the hold id (a booking keeps its hold's id).

    gc=False: its fields are scalars, so it can never be part of a reference cycle, and a shard
    keeps one per stored night: the cyclic collector has no reason to walk them all."""

    room_id: int
    date: dt.date
    status: NightStatus
    holder: str | None = None
    hold_expires_at_s: float | None = None
    version: int = 0

    def is_taken(self, now_s: float) -> bool:
        """Booked, or held by a hold that has not expired yet (an expired hold counts as free)."""
        if self.status is NightStatus.BOOKED:
            return True
        return self.status is NightStatus.HELD and self.hold_expires_at_s is not None and self.hold_expires_at_s > now_s


def free_night(room_id: int, date: dt.date) -> Night:
    """A night with no row in the store yet: available, version 0."""
    return Night(room_id=room_id, date=date, status=NightStatus.AVAILABLE)
