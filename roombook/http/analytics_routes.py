"""/admin/analytics: the daily booking counts the analytics consumer keeps, for admins."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from aiohttp import web

from roombook.domain.analytics import MAX_ANALYTICS_DAYS, DailyBookingCounts
from roombook.domain.rooms import MAX_ROOM_ID
from roombook.http.authn import require_admin
from roombook.http.endpoints import Endpoints, json_response, read_query
from roombook.http.keys import CATALOGUE

api = Endpoints()


class CountsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The UTC days [from, to), at most a year of them; one room and one region where given."""

    from_: dt.date = msgspec.field(name="from")
    to: dt.date
    room_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ROOM_ID)] | None = None
    region: Annotated[str, msgspec.Meta(pattern=r"^(eu|us)$")] | None = None

    def __post_init__(self) -> None:
        days = (self.to - self.from_).days
        if not 1 <= days <= MAX_ANALYTICS_DAYS:
            raise ValueError(f"to must be 1 to {MAX_ANALYTICS_DAYS} days after from")


class BookingCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Rows in (date, room_id, region) order; a day, room and region without bookings has none."""

    items: list[DailyBookingCounts]
    created: int
    confirmed: int
    cancelled: int


@api.get(
    "/admin/analytics/bookings",
    summary="Bookings created, confirmed and cancelled per UTC day, room and region",
    query=CountsQuery,
    response=BookingCounts,
    auth="admin",
    errors=(401, 403, 422),
)
async def booking_counts(request: web.Request) -> web.Response:
    require_admin(request)
    query = read_query(request, CountsQuery)
    rows = await request.app[CATALOGUE].booking_counts(
        query.from_, query.to, room_id=query.room_id, region=query.region
    )
    return json_response(
        BookingCounts(
            items=rows,
            created=sum(r.created for r in rows),
            confirmed=sum(r.confirmed for r in rows),
            cancelled=sum(r.cancelled for r in rows),
        )
    )
