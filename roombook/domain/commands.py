"""Commands a room shard accepts and the replies it sends: tagged msgspec unions, matched with `match`."""

from __future__ import annotations

import datetime as dt

import msgspec

from roombook.domain.calendar import HoldView
from roombook.domain.errors import NightsUnavailable, RoombookError, error_of_kind
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


class MoveBooking(msgspec.Struct, frozen=True, kw_only=True, tag="move_booking", gc=False):
    """Move a booking of room_id to `stay` on to_room_id (room_id itself, or another room of the
    same shard) in one step. Routed by room_id."""

    room_id: int
    booking_id: str
    to_room_id: int
    stay: Stay


class ReadCalendar(msgspec.Struct, frozen=True, kw_only=True, tag="read_calendar"):
    """Nights [start, end) of one room."""

    room_id: int
    start: dt.date
    end: dt.date


class ReadFreeRooms(msgspec.Struct, frozen=True, kw_only=True, tag="read_free_rooms", gc=False):
    """Which of many rooms of one shard are free every night [start, end): one command for a
    dated search's candidates, however many. `room_id` (the first of them) routes it."""

    room_id: int
    room_ids: list[int]
    start: dt.date
    end: dt.date


class CheckStay(msgspec.Struct, frozen=True, kw_only=True, tag="check_stay", gc=False):
    """Whether every night of a stay is free now: FreeRooms([room_id]) if so, else the
    NightsUnavailable a hold would get (a refusal, so sent ahead of the batch's commit). With a
    claim, a free stay is claimed for claim_ttl_s and nights claimed by another claim count as
    taken (ShardCalendar.claim_stay); nothing is stored either way."""

    room_id: int
    stay: Stay
    claim: str | None = None
    claim_ttl_s: float = 0.0


Command = PlaceHold | ConfirmHold | ReleaseHold | CancelBooking | MoveBooking | ReadCalendar | ReadFreeRooms | CheckStay


class NightView(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    date: dt.date
    status: NightStatus


class CalendarView(msgspec.Struct, frozen=True, kw_only=True, tag="calendar"):
    room_id: int
    nights: list[NightView]


class FreeRooms(msgspec.Struct, frozen=True, kw_only=True, tag="free_rooms", gc=False):
    """The rooms of a ReadFreeRooms free every night, in the order asked."""

    room_ids: list[int]


class Failure(msgspec.Struct, frozen=True, kw_only=True, tag="failure"):
    """A command that was refused. kind names the domain error (errors.error_of_kind)."""

    kind: str
    message: str
    room_id: int | None = None
    nights: list[dt.date] = []


Reply = HoldView | CalendarView | FreeRooms | Failure


def failure_of(exc: RoombookError) -> Failure:
    """The Failure reply for a refused command: it carries the error's kind (see RoombookError)."""
    if isinstance(exc, NightsUnavailable):  # rebuilt from room_id and nights on the other side
        return Failure(kind=exc.kind, message="nights not available", room_id=exc.room_id, nights=exc.nights)
    return Failure(kind=exc.kind, message=str(exc))


def raise_failure(reply: Reply) -> Reply:
    """Raise the error a Failure stands for; any other reply passes through."""
    if isinstance(reply, Failure):
        error = error_of_kind(reply.kind)
        if error is NightsUnavailable:
            raise NightsUnavailable(reply.room_id or 0, reply.nights)
        raise error(reply.message)
    return reply


command_batch = msgspec.msgpack.Decoder(list[Command])
reply_batch = msgspec.msgpack.Decoder(list[Reply])
