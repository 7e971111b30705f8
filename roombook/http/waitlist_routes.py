"""/rooms/{id}/watch: ask to be emailed when some nights of a room become free (the waitlist)."""

from __future__ import annotations

import datetime as dt

import msgspec
from aiohttp import web

from roombook.domain.errors import InvalidBooking, UnknownRoom
from roombook.domain.stay_rules import local_today
from roombook.domain.waitlist import RoomWatch, WatchRequest
from roombook.http.authn import current_user
from roombook.http.endpoints import Endpoints, json_response, read_body
from roombook.http.keys import CATALOGUE, ROOMS
from roombook.http.rooms_routes import ROOM_ID, room_id_of

api = Endpoints()


class WatchOut(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    room_id: int
    check_in: dt.date
    check_out: dt.date
    created_at: dt.datetime


class WatchEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    watch: WatchOut


@api.post(
    "/rooms/{room_id}/watch",
    summary="Be emailed once when every night [check_in, check_out) of the room is free again (after a"
    " release, a cancellation or an expiry); watchers are told in the order they asked. Asking again"
    " for the same nights answers the same watch",
    path_params=ROOM_ID,
    request=WatchRequest,
    response=WatchEnvelope,
    status=201,
    errors=(404, 415),
    tags=("rooms",),
)
async def watch_room(request: web.Request) -> web.Response:
    claims = current_user(request)
    room_id = room_id_of(request)
    body = await read_body(request, WatchRequest)
    now = dt.datetime.now(dt.UTC)
    room = await request.app[ROOMS].room(room_id)
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    if body.check_in < (today := local_today(room, now.timestamp())):
        raise InvalidBooking(f"check_in {body.check_in} is in the past (it is {today} at the property)")
    watch = await request.app[CATALOGUE].add_watch(
        RoomWatch(
            room_id=room_id,
            check_in=body.check_in,
            check_out=body.check_out,
            user_id=claims.user_id,
            region=claims.region.value,
            created_at=now,
        )
    )
    out = WatchOut(**{f: getattr(watch, f) for f in WatchOut.__struct_fields__})
    return json_response(WatchEnvelope(watch=out), status=201)
