"""Commands a room shard accepts and the replies it sends: tagged msgspec unions, matched with `match`."""

from __future__ import annotations

import datetime as dt

import msgspec

from roombook.domain.calendar import HoldView
from roombook.domain.errors import (
    HoldExpired,
    HoldMismatch,
    InvalidStay,
    NightsUnavailable,
    OutcomeUnknown,
    RoombookError,
    ShardFenced,
    ShardUnavailable,
    UnknownHold,
)
from roombook.domain.nights import NightStatus
from roombook.domain.stays import Stay


class PlaceHold(msgspec.Struct, frozen=True, kw_only=True, tag="place_hold", gc=False):
    room_id: int
    hold_id: str
    stay: Stay
    ttl_s: float
    not_after_s: float | None = None  # refused (hold_expired) if it reaches the shard later than this


class ConfirmHold(msgspec.Struct, frozen=True, kw_only=True, tag="confirm_hold", gc=False):
    room_id: int
    hold_id: str


class ReleaseHold(msgspec.Struct, frozen=True, kw_only=True, tag="release_hold", gc=False):
    room_id: int
    hold_id: str


class CancelBooking(msgspec.Struct, frozen=True, kw_only=True, tag="cancel_booking", gc=False):
    room_id: int
    booking_id: str


class ReadCalendar(msgspec.Struct, frozen=True, kw_only=True, tag="read_calendar"):
    """Nights [start, end) of one room."""

    room_id: int
    start: dt.date
    end: dt.date


Command = PlaceHold | ConfirmHold | ReleaseHold | CancelBooking | ReadCalendar


class NightView(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    date: dt.date
    status: NightStatus


class CalendarView(msgspec.Struct, frozen=True, kw_only=True, tag="calendar"):
    room_id: int
    nights: list[NightView]


class Failure(msgspec.Struct, frozen=True, kw_only=True, tag="failure"):
    """A command that was refused. kind names the domain error (see FAILURE_KINDS)."""

    kind: str
    message: str
    room_id: int | None = None
    nights: list[dt.date] = []


Reply = HoldView | CalendarView | Failure

# A refusal crosses the wire as Failure(kind=...) and is raised again on the other side: one table.
_FAILURE_KINDS: dict[str, type[RoombookError]] = {
    "nights_unavailable": NightsUnavailable,
    "hold_expired": HoldExpired,
    "unknown_hold": UnknownHold,
    "hold_mismatch": HoldMismatch,
    "invalid_stay": InvalidStay,
    "shard_fenced": ShardFenced,
    "shard_unavailable": ShardUnavailable,
    "outcome_unknown": OutcomeUnknown,
}
_KIND_OF = {error: kind for kind, error in _FAILURE_KINDS.items()}


def failure_of(exc: RoombookError) -> Failure:
    """The Failure reply for a refused command."""
    kind = _KIND_OF.get(type(exc), "invalid")
    if isinstance(exc, NightsUnavailable):  # rebuilt from room_id and nights on the other side
        return Failure(kind=kind, message="nights not available", room_id=exc.room_id, nights=exc.nights)
    return Failure(kind=kind, message=str(exc))


def raise_failure(reply: Reply) -> Reply:
    """Raise the error a Failure stands for; any other reply passes through."""
    if isinstance(reply, Failure):
        if reply.kind == "nights_unavailable":
            raise NightsUnavailable(reply.room_id or 0, reply.nights)
        raise _FAILURE_KINDS.get(reply.kind, RoombookError)(reply.message)
    return reply


command_batch = msgspec.msgpack.Decoder(list[Command])
reply_batch = msgspec.msgpack.Decoder(list[Reply])
