"""A room's calendar for other platforms: iCalendar at /rooms/{id}/calendar.ics, read by an admin
or through a signed link that needs no session (what a channel manager is given)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import msgspec
from aiohttp import web

from roombook.domain.errors import UnknownRoom
from roombook.domain.stay_rules import local_today
from roombook.http.authn import require_admin
from roombook.http.endpoints import API_PREFIX, Endpoints, json_response, read_body, read_query
from roombook.http.keys import ACCOUNTS, AVAILABILITY, ROOMS
from roombook.http.problems import ProblemError
from roombook.http.rooms_routes import ROOM_ID, room_id_of
from roombook.services.calendar_feed import CalendarLinks, room_calendar

api = Endpoints()

FEED_DAYS = 366  # from today: the most one read of a shard's calendar gives
MAX_LINK_DAYS = 3650
_LINK_KEY_PURPOSE = b"roombook room calendar links"
Signature = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class FeedQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A signed link's expiry and signature; without them, the caller must be an admin."""

    expires: Annotated[int, msgspec.Meta(ge=0, le=2**40)] | None = None
    signature: Signature | None = None


class LinkRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    valid_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_LINK_DAYS)] = 365


class CalendarLink(msgspec.Struct, frozen=True, kw_only=True):
    url: str  # path and query, on this API's host
    expires_at: dt.datetime


def _links(request: web.Request) -> CalendarLinks:
    return CalendarLinks(request.app[ACCOUNTS].derived_key(_LINK_KEY_PURPOSE))


@api.get(
    "/rooms/{room_id}/calendar.ics",
    summary="The room's booked and held nights as iCalendar (RFC 5545), from today for a year: for an admin,"
    " or anyone with a signed link (expires and signature, from POST /rooms/{room_id}/calendar-link)",
    path_params=ROOM_ID,
    query=FeedQuery,
    response=str,
    media_type="text/calendar",
    auth="none",
    errors=(401, 403, 404, 503),
    tags=("rooms",),
)
async def room_calendar_feed(request: web.Request) -> web.Response:
    room_id = room_id_of(request)
    query = read_query(request, FeedQuery)
    if query.signature is None or query.expires is None:
        require_admin(request)
    elif not _links(request).valid(room_id, query.expires, query.signature, now_s=time.time()):
        raise ProblemError(403, "forbidden", "Forbidden", "this calendar link is not valid (or has expired)")
    room = await request.app[ROOMS].room(room_id)
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    now = dt.datetime.now(dt.UTC)
    today = local_today(room, now.timestamp())  # the property's
    nights = await request.app[AVAILABILITY].calendar(
        room_id=room_id, start=today, end=today + dt.timedelta(days=FEED_DAYS)
    )
    body = room_calendar(room_id, room.title, nights, now=now)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Cache-Control": "private, max-age=60",
            "Content-Disposition": f'inline; filename="room-{room_id}.ics"',
        },
    )


@api.post(
    "/rooms/{room_id}/calendar-link",
    summary="A signed link to the room's calendar.ics that needs no session, valid for valid_days (default 365)",
    path_params=ROOM_ID,
    request=LinkRequest,
    body_required=False,
    response=CalendarLink,
    status=201,
    auth="admin",
    errors=(401, 403, 404, 415, 422),
    tags=("rooms",),
)
async def create_calendar_link(request: web.Request) -> web.Response:
    require_admin(request)
    room_id = room_id_of(request)
    body = await read_body(request, LinkRequest) if request.body_exists else LinkRequest()
    if await request.app[ROOMS].room(room_id) is None:
        raise UnknownRoom(f"no room {room_id}")
    expires_s = int(time.time()) + body.valid_days * 86400
    signature = _links(request).signature(room_id, expires_s)
    url = f"{API_PREFIX}/rooms/{room_id}/calendar.ics?expires={expires_s}&signature={signature}"
    return json_response(CalendarLink(url=url, expires_at=dt.datetime.fromtimestamp(expires_s, dt.UTC)), status=201)
