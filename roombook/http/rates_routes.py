"""A room's rate calendar (admin) and the quote of a stay (anyone).

GET /rooms/{id}/rates            the base price, standing weekday prices and date-range overrides
PUT /rooms/{id}/rates            replace the range [from, to) (or, with neither, the standing
                                 weekday prices) with the body's prices: idempotent
GET /rooms/{id}/quote?check_in=&check_out=&guests=   total and per-night breakdown
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
from typing import Annotated

import msgspec
from aiohttp import web

from roombook.domain.bookings import MAX_GUESTS
from roombook.domain.errors import UnknownRoom
from roombook.domain.rates import NightPrice, RateOverride, Weekday, price_stay
from roombook.domain.rooms import Room
from roombook.domain.stay_rules import MAX_HORIZON_DAYS, check_stay
from roombook.domain.stays import Stay
from roombook.http.authn import require_admin
from roombook.http.endpoints import Endpoints, json_response, read_body, read_query
from roombook.http.keys import CATALOGUE
from roombook.http.problems import ProblemError
from roombook.http.rooms_routes import ROOM_ID, Price, check_price, room_id_of
from roombook.services.room_rates import RateChange, change_rates

api = Endpoints()

WeekdayPrices = dict[Annotated[str, msgspec.Meta(pattern="^(mon|tue|wed|thu|fri|sat|sun)$")], Price]


class RatesChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """PUT body. With from and to: the nights [from, to) cost `price`, or their weekday's price in
    `weekdays`; neither given clears the range back to the standing rules. Without from and to:
    `weekdays` replaces the room's standing weekday prices (price is then not allowed)."""

    start: dt.date | None = msgspec.field(default=None, name="from")
    end: dt.date | None = msgspec.field(default=None, name="to")
    price: Price | None = None
    weekdays: WeekdayPrices = {}

    def __post_init__(self) -> None:
        check_price("price", self.price)
        for day, price in self.weekdays.items():
            check_price(f"weekdays.{day}", price)
        if (self.start is None) != (self.end is None):
            raise ValueError("give both from and to, or neither")
        if self.start is not None and self.end is not None:
            if not 1 <= (self.end - self.start).days <= MAX_HORIZON_DAYS:
                raise ValueError(f"to must be 1 to {MAX_HORIZON_DAYS} days after from")
        elif self.price is not None:
            raise ValueError("a price needs a range (from, to); the base price is the room's price_per_night")

    def change(self) -> RateChange:
        weekdays = {Weekday(day): price for day, price in self.weekdays.items()}
        if self.start is None or self.end is None:
            return RateChange(standing_weekdays=weekdays)
        return RateChange(override=RateOverride(start=self.start, end=self.end, price=self.price, weekdays=weekdays))


class RoomRates(msgspec.Struct, frozen=True, kw_only=True):
    room_id: int
    currency: str
    base_price: decimal.Decimal  # the room's price_per_night: a night no rule below prices
    weekdays: dict[str, decimal.Decimal]  # standing prices by weekday (mon..sun)
    overrides: list[RateOverride]  # date ranges [from, to), sorted and disjoint: they win


def _rates_of(room: Room) -> RoomRates:
    return RoomRates(
        room_id=room.id,
        currency=room.currency,
        base_price=room.price_per_night,
        weekdays={str(day): price for day, price in room.rates.weekdays.items()},
        overrides=room.rates.overrides,
    )


class QuoteQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    check_in: dt.date
    check_out: dt.date
    guests: Annotated[int, msgspec.Meta(ge=1, le=MAX_GUESTS)] = 1

    def __post_init__(self) -> None:
        Stay(check_in=self.check_in, check_out=self.check_out)  # InvalidStay (a ValueError) if it is none


class QuoteOut(msgspec.Struct, frozen=True, kw_only=True):
    room_id: int
    check_in: dt.date
    check_out: dt.date
    guests: int
    currency: str
    total: decimal.Decimal
    nights: list[NightPrice]
    timezone: str  # the property's: check-in and check-out times are its wall clock
    check_in_time: dt.time
    check_out_time: dt.time


@api.get(
    "/rooms/{room_id}/rates",
    summary="A room's rate calendar",
    path_params=ROOM_ID,
    response=RoomRates,
    auth="none",
    errors=(404,),
)
async def get_rates(request: web.Request) -> web.Response:
    room_id = room_id_of(request)
    room = await request.app[CATALOGUE].room(room_id)
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    return json_response(_rates_of(room))


@api.put(
    "/rooms/{room_id}/rates",
    summary="Price the nights [from, to) of a room (or set its standing weekday prices). Idempotent",
    path_params=ROOM_ID,
    request=RatesChange,
    response=RoomRates,
    auth="admin",
    errors=(401, 403, 404, 415, 422, 503),
)
async def put_rates(request: web.Request) -> web.Response:
    require_admin(request)
    room_id = room_id_of(request)
    body = await read_body(request, RatesChange)
    try:
        room = await change_rates(request.app[CATALOGUE], room_id, body.change())
    except ValueError as exc:  # a calendar past its size
        raise ProblemError(422, "invalid-request", "Invalid request", str(exc)) from None
    return json_response(_rates_of(room))


@api.get(
    "/rooms/{room_id}/quote",
    summary="What a stay in a room costs, night by night, if its rules take it",
    path_params=ROOM_ID,
    query=QuoteQuery,
    response=QuoteOut,
    auth="none",
    errors=(404, 422),
)
async def get_quote(request: web.Request) -> web.Response:
    room_id = room_id_of(request)
    query = read_query(request, QuoteQuery)
    room = await request.app[CATALOGUE].room(room_id)  # the store's, as a booking prices it
    if room is None:
        raise UnknownRoom(f"no room {room_id}")
    check_stay(room, query.check_in, query.check_out, query.guests, time.time())
    quote = price_stay(room, query.check_in, query.check_out, query.guests)
    location = room.location
    return json_response(
        QuoteOut(
            **msgspec.structs.asdict(quote),
            timezone=location.timezone,
            check_in_time=location.check_in_time,
            check_out_time=location.check_out_time,
        )
    )
