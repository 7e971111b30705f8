"""The global room catalogue."""

from __future__ import annotations

import decimal

import msgspec


class Location(msgspec.Struct, frozen=True, kw_only=True):
    city: str
    country: str  # ISO 3166-1 alpha-2, e.g. "FR"
    address: str = ""
    lat: float = 0.0
    lon: float = 0.0
    timezone: str = "UTC"


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
    images: list[str] = []
