"""/rooms: the global catalogue (search, details, a room's calendar) and its admin writes."""

from __future__ import annotations

import datetime as dt
import decimal
import time
from typing import Annotated

import msgspec
from aiohttp import web

from roombook.domain.bookings import MAX_GUESTS
from roombook.domain.commands import NightView
from roombook.domain.errors import UnknownRoom
from roombook.domain.rooms import MAX_PRICE, MAX_ROOM_ID, CityName, Location, Room, RoomPatch
from roombook.domain.search import RoomPage, RoomQuery
from roombook.domain.stay_rules import StayRules, local_today, property_zone
from roombook.http.authn import require_admin
from roombook.http.endpoints import Endpoints, json_response, read_body, read_query
from roombook.http.keys import AVAILABILITY, CATALOGUE, ROOMS

api = Endpoints()

MAX_CALENDAR_DAYS = 366
RoomId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ROOM_ID)]
ROOM_ID = {"room_id": RoomId}
# msgspec cannot bound a Decimal (_check_price does), but the document can say the bounds
Price = Annotated[
    decimal.Decimal,
    msgspec.Meta(
        extra_json_schema={"exclusiveMinimum": 0, "exclusiveMaximum": int(MAX_PRICE)},
        description="at most two decimal places",
    ),
]


def check_price(name: str, price: object) -> None:
    # msgspec cannot bound a Decimal in Meta, so the bounds are checked here; the upper one before
    # quantize, which raises InvalidOperation (not a ValueError) past the context's precision
    if not isinstance(price, decimal.Decimal):
        return
    if not price.is_finite() or price <= 0:
        raise ValueError(f"{name} must be a positive number")
    if price >= MAX_PRICE:
        raise ValueError(f"{name} must be below {MAX_PRICE}")
    if price != price.quantize(decimal.Decimal("0.01")):
        raise ValueError(f"{name} has at most two decimal places")


class CalendarQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The nights [from, to) of one room, at most a year of them."""

    from_: dt.date = msgspec.field(name="from")
    to: dt.date

    def __post_init__(self) -> None:
        days = (self.to - self.from_).days
        if not 1 <= days <= MAX_CALENDAR_DAYS:
            raise ValueError(f"to must be 1 to {MAX_CALENDAR_DAYS} days after from")


class NightDay(msgspec.Struct, frozen=True, kw_only=True):
    date: dt.date
    status: str  # available | held | booked | past (before the property's today: not bookable)


class RoomCalendar(msgspec.Struct, frozen=True, kw_only=True):
    room_id: int
    nights: list[NightDay]


Text = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Capacity = Annotated[int, msgspec.Meta(ge=1, le=MAX_GUESTS)]
Amenities = Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=50)]], msgspec.Meta(max_length=50)]
Images = Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]], msgspec.Meta(max_length=20)]


class LocationIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A room's location as an admin sends it: every field bounded, nothing unknown."""

    city: CityName
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    address: Annotated[str, msgspec.Meta(max_length=255)] = ""
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] = 0.0
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] = 0.0
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="IANA, e.g. Europe/Paris")] = "UTC"
    check_in_time: dt.time = dt.time(15, 0)  # the property's wall clock
    check_out_time: dt.time = dt.time(11, 0)

    def __post_init__(self) -> None:
        property_zone(self.timezone)  # ValueError for a zone that does not exist
        if self.check_in_time.tzinfo is not None or self.check_out_time.tzinfo is not None:
            raise ValueError("check-in and check-out times are the property's wall clock: no offset")

    def location(self) -> Location:
        return Location(**msgspec.structs.asdict(self))


class NewRoom(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: Text
    description: Description = ""
    location: LocationIn
    price_per_night: Price
    currency: Currency = "EUR"
    capacity: Capacity
    amenities: Amenities = []
    images: Images = []
    stay_rules: StayRules = StayRules()

    def __post_init__(self) -> None:
        check_price("price_per_night", self.price_per_night)

    def room(self) -> Room:
        return Room(**(msgspec.structs.asdict(self) | {"location": self.location.location()}))


class RoomChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """PATCH body: only the fields sent change; a location is replaced whole."""

    title: Text | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    location: LocationIn | msgspec.UnsetType = msgspec.UNSET
    price_per_night: Price | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    capacity: Capacity | msgspec.UnsetType = msgspec.UNSET
    amenities: Amenities | msgspec.UnsetType = msgspec.UNSET
    images: Images | msgspec.UnsetType = msgspec.UNSET
    stay_rules: StayRules | msgspec.UnsetType = msgspec.UNSET  # replaced whole

    def __post_init__(self) -> None:
        check_price("price_per_night", self.price_per_night)

    def patch(self) -> RoomPatch:
        sent = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not msgspec.UNSET}
        if isinstance(self.location, LocationIn):
            sent["location"] = self.location.location()
        return RoomPatch(**sent)


def room_id_of(request: web.Request) -> int:
    raw = request.match_info["room_id"]
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ROOM_ID:
        raise UnknownRoom("no such room")
    return int(raw)


@api.get("/rooms", summary="Search rooms", query=RoomQuery, response=RoomPage, auth="none", errors=(422,))
async def search_rooms(request: web.Request) -> web.Response:
    query = read_query(request, RoomQuery)
    return json_response(await request.app[ROOMS].search(query))


@api.get("/rooms/{room_id}", summary="A room's details", path_params=ROOM_ID, response=Room, auth="none", errors=(404,))
async def get_room(request: web.Request) -> web.Response:
    room_id = room_id_of(request)
    room = await request.app[ROOMS].room(room_id)
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    return json_response(room)


@api.get(
    "/rooms/{room_id}/availability",
    summary="A room's nights [from, to), as its shard sees them now",
    path_params=ROOM_ID,
    query=CalendarQuery,
    response=RoomCalendar,
    auth="none",
    errors=(404, 422, 503),
)
async def room_availability(request: web.Request) -> web.Response:
    room_id = room_id_of(request)
    query = read_query(request, CalendarQuery)
    if (room := await request.app[ROOMS].room(room_id)) is None:
        raise UnknownRoom(f"no room {room_id}")
    nights = await request.app[AVAILABILITY].calendar(room_id=room_id, start=query.from_, end=query.to)
    today = local_today(room, time.time())
    return json_response(RoomCalendar(room_id=room_id, nights=[_day(n, today) for n in nights]))


def _day(night: NightView, today: dt.date) -> NightDay:
    return NightDay(date=night.date, status="past" if night.date < today else night.status.value)


@api.post(
    "/rooms",
    summary="Add a room",
    request=NewRoom,
    response=Room,
    status=201,
    auth="admin",
    errors=(401, 403, 415, 422),
)
async def create_room(request: web.Request) -> web.Response:
    require_admin(request)
    new = await read_body(request, NewRoom)
    catalogue = request.app[CATALOGUE]
    (room_id,) = await catalogue.add_rooms([new.room()])
    return json_response(await catalogue.room(room_id), status=201)


@api.patch(
    "/rooms/{room_id}",
    summary="Change some fields of a room",
    path_params=ROOM_ID,
    request=RoomChanges,
    response=Room,
    auth="admin",
    errors=(401, 403, 404, 415, 422),
)
async def patch_room(request: web.Request) -> web.Response:
    require_admin(request)
    room_id = room_id_of(request)
    changes = await read_body(request, RoomChanges)
    room = await request.app[CATALOGUE].update_room(room_id, changes.patch())
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    return json_response(room)
