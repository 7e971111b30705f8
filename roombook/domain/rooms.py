"""The global room catalogue."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Annotated

import msgspec

from roombook.domain.images import Photo
from roombook.domain.rates import RatePlan
from roombook.domain.stay_rules import StayRules

MAX_ROOM_ID = 2**63 - 1  # ids are signed 64-bit columns: a larger id names no room
MAX_PRICE = decimal.Decimal("100000000")  # every price is below it: the stores keep DECIMAL(10,2)
CityName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Location(msgspec.Struct, frozen=True, kw_only=True):
    city: str
    country: str  # ISO 3166-1 alpha-2, e.g. "FR"
    address: str = ""
    lat: float = 0.0
    lon: float = 0.0
    timezone: str = "UTC"  # IANA: the property's "today", cut-off and check-in/out are in it
    check_in_time: dt.time = dt.time(15, 0)  # local: from when the room is ready on check_in
    check_out_time: dt.time = dt.time(11, 0)  # local: by when it is left on check_out


class Room(msgspec.Struct, frozen=True, kw_only=True):
    """A bookable room. id is 0 until the store assigns one."""

    id: int = 0
    title: str
    description: str = ""
    location: Location
    price_per_night: decimal.Decimal
    currency: str = "EUR"
    capacity: int
    amenities: list[str] = []
    images: list[str] = []  # in display order: uploads as img:<id> where stored, their URLs where served
    photos: list[Photo] = []  # each image's variants, filled in where rooms are served (RoomFinder)
    rates: RatePlan = RatePlan()  # nights priced apart from price_per_night (domain/rates.py)
    stay_rules: StayRules = StayRules()


class RoomPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fields of a room to change; an UNSET field keeps its stored value."""

    title: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    location: Location | msgspec.UnsetType = msgspec.UNSET
    price_per_night: decimal.Decimal | msgspec.UnsetType = msgspec.UNSET
    currency: str | msgspec.UnsetType = msgspec.UNSET
    capacity: int | msgspec.UnsetType = msgspec.UNSET
    amenities: list[str] | msgspec.UnsetType = msgspec.UNSET
    images: list[str] | msgspec.UnsetType = msgspec.UNSET
    rates: RatePlan | msgspec.UnsetType = msgspec.UNSET
    stay_rules: StayRules | msgspec.UnsetType = msgspec.UNSET

    def set_fields(self) -> dict[str, object]:
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not msgspec.UNSET}
