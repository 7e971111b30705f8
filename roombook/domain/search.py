"""Room search: one query, from the query string of GET /rooms to every search index, and its pages.

A `RoomQuery` is normal once built (decoded or constructed): text stripped (empty -> None), city
case-folded, country upper-case, amenities lower-case, sorted and unique, `sort` the order its
results come in (the default for the query if none was given). Invalid combinations raise
InvalidSearchQuery (a ValueError, so msgspec reports it as a validation error while decoding); the
bounds in the field types are checked by msgspec while decoding, and are what the API documents.

Text matches rooms containing any of its terms in title, description or city (OpenSearch's `match`),
scored by BM25. Every order breaks ties by room id, ascending, so pages never overlap. A search index
answers the filters; a stay (check_in, check_out) is for its caller, who keeps the rooms free on
every night of it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import re
from typing import Annotated

import msgspec

from roombook.domain.bookings import MAX_GUESTS
from roombook.domain.errors import InvalidSearchQuery
from roombook.domain.pages import MAX_PER_PAGE
from roombook.domain.rooms import MAX_PRICE, CityName, Room
from roombook.domain.stays import Stay

MAX_TEXT_CHARS = 200
MAX_RESULT_WINDOW = 10_000  # OpenSearch's index.max_result_window: deepest from + size served
MAX_RADIUS_KM = 20_000.0  # about half the Earth's circumference: anything wider is "everywhere"
EARTH_RADIUS_KM = 6371.0088  # mean radius, the one OpenSearch's arc distance uses

# Close to Lucene's standard tokenizer for Latin text: words and numbers, with inner apostrophes
# and dots kept ("d'or", "129.99"), lower-cased. Accents are kept, as the standard analyzer does;
# unlike it, a typographic apostrophe counts as a straight one.
_TOKEN = re.compile(r"\w+(?:['.]\w+)*")

# msgspec cannot bound a Decimal (RoomQuery checks it), but the document can say the bounds
PriceFilter = Annotated[
    decimal.Decimal, msgspec.Meta(extra_json_schema={"minimum": 0, "exclusiveMaximum": int(MAX_PRICE)})
]


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class SearchSort(enum.StrEnum):
    RELEVANCE = "relevance"  # needs text; the default when text is given
    DISTANCE = "distance"  # needs a point; the default for a point without text
    PRICE = "price"  # the default for a blank text (an empty search box) without a point
    PRICE_DESC = "-price"
    CAPACITY = "capacity"
    CAPACITY_DESC = "-capacity"
    ID = "id"  # the catalogue's order, oldest room first; the default otherwise


class RoomQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """GET /rooms filters. amenities is comma-separated; dates come both or neither; lat and lon
    too, and radius_km needs them. sort defaults to relevance with q, distance with a point, else id."""

    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)] | None = msgspec.field(default=None, name="q")
    city: CityName | None = None
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}$")] | None = None  # ISO 3166-1 alpha-2, any case
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None  # needs lat and lon
    check_in: dt.date | None = None
    check_out: dt.date | None = None
    guests: Annotated[int, msgspec.Meta(ge=1, le=MAX_GUESTS)] | None = None  # capacity >= guests
    min_price: PriceFilter | None = None  # inclusive, a night's price in `currency` (the stay's average with dates)
    max_price: PriceFilter | None = None  # inclusive
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")] | None = None  # the buyer's; default: the site's
    amenities: Annotated[str, msgspec.Meta(max_length=1000)] | None = None  # a room must have all of them
    sort: SearchSort | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=MAX_PER_PAGE)] = 20

    def __post_init__(self) -> None:
        for name in ("min_price", "max_price"):
            _check_price_filter(name, getattr(self, name))
        if (self.check_in is None) != (self.check_out is None):
            raise InvalidSearchQuery("give both check_in and check_out, or neither")
        if self.check_in is not None and self.check_out is not None:
            Stay(check_in=self.check_in, check_out=self.check_out)  # InvalidStay (a ValueError) if it is none
        text_given = self.text is not None
        text = self.text.strip() if self.text is not None else None
        set_ = msgspec.structs.force_setattr  # normalising a frozen struct, once, while it is built
        if text is not None and len(text) > MAX_TEXT_CHARS:
            raise InvalidSearchQuery(f"text is limited to {MAX_TEXT_CHARS} characters")
        set_(self, "text", text or None)
        if self.city is not None:
            set_(self, "city", self.city.strip().casefold() or None)
        if self.country is not None:
            set_(self, "country", self.country.strip().upper() or None)
        if self.currency is not None:
            set_(self, "currency", self.currency.upper())
        if self.amenities is not None:
            names = sorted({a.strip().lower() for a in self.amenities.split(",") if a.strip()})
            set_(self, "amenities", ",".join(names) or None)
        self._check_point()
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise InvalidSearchQuery("min_price is above max_price")
        if self.guests is not None and self.guests < 1:
            raise InvalidSearchQuery("guests must be at least 1")
        if self.page < 1:
            raise InvalidSearchQuery("page counts from 1")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise InvalidSearchQuery(f"per_page must be between 1 and {MAX_PER_PAGE}")
        # a dated search checks every match itself (and so pages on), an undated one pages the index
        if self.check_in is None and self.offset + self.per_page > MAX_RESULT_WINDOW:
            raise InvalidSearchQuery(f"pages end at result {MAX_RESULT_WINDOW}: narrow the search")
        set_(self, "sort", self._resolved_sort(text_given=text_given))

    def _check_point(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise InvalidSearchQuery("lat and lon go together")
        if self.lat is not None and not -90.0 <= self.lat <= 90.0:
            raise InvalidSearchQuery("lat must be between -90 and 90")
        if self.lon is not None and not -180.0 <= self.lon <= 180.0:
            raise InvalidSearchQuery("lon must be between -180 and 180")
        if self.radius_km is not None:
            if self.lat is None:
                raise InvalidSearchQuery("a radius needs a point (lat and lon)")
            if not 0.0 < self.radius_km <= MAX_RADIUS_KM:
                raise InvalidSearchQuery(f"radius_km must be above 0 and at most {MAX_RADIUS_KM:g}")

    def _resolved_sort(self, *, text_given: bool) -> SearchSort:
        match self.sort:
            case None if self.text is not None:
                return SearchSort.RELEVANCE
            case None if self.has_point:
                return SearchSort.DISTANCE
            case None if text_given:
                return SearchSort.PRICE  # a blank text has no terms to rank by
            case None:
                return SearchSort.ID
            case SearchSort.RELEVANCE if self.text is None:
                raise InvalidSearchQuery("relevance order needs text")
            case SearchSort.DISTANCE if not self.has_point:
                raise InvalidSearchQuery("distance order needs a point (lat and lon)")
            case sort:
                return sort

    @property
    def order(self) -> SearchSort:
        """The order of the results: `sort`, which the query's default fills in while it is built."""
        return SearchSort.ID if self.sort is None else self.sort

    @property
    def stay(self) -> Stay | None:
        """The nights every room of the answer must be free on, if dates were given."""
        if self.check_in is None or self.check_out is None:
            return None
        return Stay(check_in=self.check_in, check_out=self.check_out)

    @property
    def compares_prices(self) -> bool:
        """Whether the answer depends on prices (a price filter or a price order)."""
        priced_order = self.order in (SearchSort.PRICE, SearchSort.PRICE_DESC)
        return priced_order or self.min_price is not None or self.max_price is not None

    @property
    def required_amenities(self) -> tuple[str, ...]:
        return tuple(self.amenities.split(",")) if self.amenities is not None else ()

    @property
    def has_point(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def _check_price_filter(name: str, price: decimal.Decimal | None) -> None:
    if price is None:
        return
    if not price.is_finite() or price < 0:
        raise InvalidSearchQuery(f"{name} must be a non-negative number")
    if price >= MAX_PRICE:
        raise InvalidSearchQuery(f"{name} must be below {MAX_PRICE}")


def result_window(query: RoomQuery, candidate_limit: int | None) -> tuple[int, int]:
    """(offset, size) of the hits to return: the query's page, or the first candidate_limit hits."""
    if candidate_limit is None:
        return query.offset, query.per_page
    if not 1 <= candidate_limit <= MAX_RESULT_WINDOW:
        raise InvalidSearchQuery(f"candidate_limit must be between 1 and {MAX_RESULT_WINDOW}")
    return 0, candidate_limit


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    room_id: int
    distance_km: float | None = None  # from the query's point, when it has one


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """Hits in the query's order; `total` counts every matching room, not only this page.
    For a search with a candidate_limit, page is 1 and per_page the limit."""

    hits: list[SearchHit]
    total: int
    page: int
    per_page: int

    @property
    def room_ids(self) -> list[int]:
        return [hit.room_id for hit in self.hits]


class StayPrice(msgspec.Struct, frozen=True, kw_only=True):
    """What the searched stay costs in one room of the page, in the room's currency."""

    room_id: int
    total: decimal.Decimal
    currency: str


class RoomPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of matching rooms; `total` counts every match, after the availability filter.
    With dates, `stay_prices` has each item's price of the stay, in the items' order."""

    items: list[Room]
    total: int
    page: int
    per_page: int
    stay_prices: list[StayPrice] = []
