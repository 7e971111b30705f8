"""Room search: one normalised query every search index answers the same way, and its result page.

A `RoomQuery` is normal once built (decoded or constructed): text stripped (empty -> None), city
case-folded, country upper-case, amenities lower-case, sorted and unique. `order` is the order its
results come in: `sort`, or the default for the query. Invalid combinations raise
InvalidSearchQuery (a ValueError, so msgspec reports it as a validation error while decoding).

Text matches rooms containing any of its terms in title, description or city (OpenSearch's `match`),
scored by BM25. Every order breaks ties by room id, ascending, so pages never overlap.
"""

from __future__ import annotations

import decimal
import enum
import math
import re

import msgspec

from roombook.domain.errors import InvalidSearchQuery

MAX_PER_PAGE = 100
MAX_TEXT_CHARS = 200
MAX_RESULT_WINDOW = 10_000  # OpenSearch's index.max_result_window: deepest from + size served
MAX_RADIUS_KM = 20_000.0  # about half the Earth's circumference: anything wider is "everywhere"
EARTH_RADIUS_KM = 6371.0088  # mean radius, the one OpenSearch's arc distance uses

# Close to Lucene's standard tokenizer for Latin text: words and numbers, with inner apostrophes
# and dots kept ("d'or", "129.99"), lower-cased. Accents are kept, as the standard analyzer does;
# unlike it, a typographic apostrophe counts as a straight one.
_TOKEN = re.compile(r"\w+(?:['.]\w+)*")


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
    PRICE = "price"  # the default otherwise
    PRICE_DESC = "-price"
    CAPACITY = "capacity"
    CAPACITY_DESC = "-capacity"
    ID = "id"  # the catalogue's order: oldest room first


class RoomQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Filters, order and page of a room search; every filter given must hold."""

    text: str | None = None
    city: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None  # needs lat and lon
    min_price: decimal.Decimal | None = None  # inclusive, in the room's own currency
    max_price: decimal.Decimal | None = None  # inclusive
    guests: int | None = None  # capacity >= guests
    amenities: tuple[str, ...] = ()  # a room must have all of them
    sort: SearchSort | None = None  # None: the default for the query (see SearchSort)
    page: int = 1
    per_page: int = 20

    def __post_init__(self) -> None:
        text = self.text.strip() if self.text is not None else None
        set_ = msgspec.structs.force_setattr  # normalising a frozen struct, once, while it is built
        if text is not None and len(text) > MAX_TEXT_CHARS:
            raise InvalidSearchQuery(f"text is limited to {MAX_TEXT_CHARS} characters")
        set_(self, "text", text or None)
        if self.city is not None:
            set_(self, "city", self.city.strip().casefold() or None)
        if self.country is not None:
            set_(self, "country", self.country.strip().upper() or None)
        set_(self, "amenities", tuple(sorted({a.strip().lower() for a in self.amenities if a.strip()})))
        self._check_point()
        self._check_prices()
        if self.guests is not None and self.guests < 1:
            raise InvalidSearchQuery("guests must be at least 1")
        if self.page < 1:
            raise InvalidSearchQuery("page counts from 1")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise InvalidSearchQuery(f"per_page must be between 1 and {MAX_PER_PAGE}")
        if self.offset + self.per_page > MAX_RESULT_WINDOW:
            raise InvalidSearchQuery(f"pages end at result {MAX_RESULT_WINDOW}: narrow the search")
        self._resolved_sort()  # refuses a sort the query cannot have

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

    def _check_prices(self) -> None:
        for name in ("min_price", "max_price"):
            price = getattr(self, name)
            if price is not None and (not price.is_finite() or price < 0):
                raise InvalidSearchQuery(f"{name} must be a price of 0 or more")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise InvalidSearchQuery("min_price is above max_price")

    def _resolved_sort(self) -> SearchSort:
        match self.sort:
            case None if self.text is not None:
                return SearchSort.RELEVANCE
            case None if self.has_point:
                return SearchSort.DISTANCE
            case None:
                return SearchSort.PRICE
            case SearchSort.RELEVANCE if self.text is None:
                raise InvalidSearchQuery("relevance order needs text")
            case SearchSort.DISTANCE if not self.has_point:
                raise InvalidSearchQuery("distance order needs a point (lat and lon)")
            case sort:
                return sort

    @property
    def order(self) -> SearchSort:
        """The order of the results: `sort`, or the query's default."""
        return self._resolved_sort()

    @property
    def has_point(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


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
