"""The web pages: home and search, a room's page, rendered on the server from the API's services.

Pages read through the same services as the JSON API (the RoomFinder's search, its cached room
details `room:{id}:details`), so a page and `GET /api/v1/rooms` never disagree. The scripts in
static/ then take over: search filters and paging from the JSON API, the room's calendar and the
booking flow (account_pages.py has the signed-in pages).
"""

from __future__ import annotations

import decimal
import urllib.parse
from collections import OrderedDict
from typing import Any

import aiohttp_jinja2
import jinja2
import msgspec
from aiohttp import web

from roombook.domain.errors import InvalidSearchQuery, RoombookError
from roombook.domain.rooms import MAX_ROOM_ID, Room
from roombook.domain.search import RoomPage, RoomQuery, SearchSort
from roombook.http import account_pages, page_format
from roombook.http.endpoints import decode_query, refuse_card_numbers
from roombook.http.keys import ROOMS
from roombook.http.page_assets import ASSETS, add_assets
from roombook.http.page_render import PUBLIC_CACHE, error_page, not_found, page_response, render

routes = web.RouteTableDef()

SEARCH_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(RoomQuery))
SORTS = (
    ("", "Best match"),
    (SearchSort.PRICE.value, "Price, lowest first"),
    (SearchSort.PRICE_DESC.value, "Price, highest first"),
    (SearchSort.CAPACITY_DESC.value, "Most guests"),
    (SearchSort.ID.value, "Listing order"),
)
FORM_FIELDS = frozenset({"q", "city", "check_in", "check_out", "guests", "sort"})  # the search form's own inputs
DESCRIPTION_CHARS = 160


def setup_pages(app: web.Application) -> None:
    """Templates, static files and the page routes, on an app that also serves the API."""
    add_assets(app)
    app[RENDERED_ROOMS] = RenderedRooms()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("roombook.http", "templates"),
        autoescape=True,  # every template is HTML: every value is escaped unless marked safe
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # templates ship with the package: never stat them per request
    )
    env.globals.update(asset=app[ASSETS].url, money=page_format.money, day=page_format.day)
    app.router.add_routes(routes)
    app.router.add_routes(account_pages.routes)


# -- home and search ----------------------------------------------------------------------------


class ResultCard(msgspec.Struct, frozen=True, kw_only=True):
    """A search result as the page shows it (search.js draws the same from the JSON API)."""

    room: Room
    href: str
    price: str
    total: str | None  # for the stay, when dates were given


@routes.get("/")
@routes.get("/search")
async def search_page(request: web.Request) -> web.Response:
    # A form submits its empty fields too: they mean "no filter", as an absent parameter does.
    params = {k: v for k, v in request.query.items() if k in SEARCH_FIELDS and v.strip()}
    try:
        refuse_card_numbers(list(params.values()))
        query = decode_query(params, RoomQuery)
    except RoombookError as exc:  # a card number: never echoed back into the form
        return _search_error(request, {}, str(exc))
    except msgspec.ValidationError as exc:
        return _search_error(request, params, str(exc))
    try:
        page = await request.app[ROOMS].search(query)
    except InvalidSearchQuery as exc:  # past dates, a currency it cannot show
        return _search_error(request, params, str(exc))
    except RoombookError as exc:  # a shard or a store not answering (503)
        return error_page(request, exc)
    return render(request, "search.html", _search_context(params, query, page), cache=PUBLIC_CACHE)


def _search_error(request: web.Request, params: dict[str, str], error: str) -> web.Response:
    context: dict[str, Any] = {"form": params, "kept": _kept(params), "error": error, "cards": [], "page": None}
    context |= {"sorts": SORTS, "links": {}}
    return render(request, "search.html", context, status=422, cache=PUBLIC_CACHE)


def _search_context(params: dict[str, str], query: RoomQuery, page: RoomPage) -> dict[str, Any]:
    stay = query.stay
    stay_params: dict[str, str] = {k: params[k] for k in ("check_in", "check_out", "guests") if k in params}
    cards = []
    totals = {p.room_id: p.total for p in page.stay_prices}
    for room in page.items:
        country = room.location.country
        href = f"/rooms/{room.id}" + (f"?{urllib.parse.urlencode(stay_params)}" if stay_params else "")
        total = None
        if stay is not None and room.id in totals:  # priced night by night from its rate calendar
            total = page_format.money(totals[room.id], room.currency, country)
        cards.append(
            ResultCard(
                room=room, href=href, price=page_format.money(room.price_per_night, room.currency, country), total=total
            )
        )
    links = {}
    if query.page > 1:
        links["prev"] = "/search?" + urllib.parse.urlencode(params | {"page": str(query.page - 1)})
    if query.offset + len(page.items) < page.total:
        links["next"] = "/search?" + urllib.parse.urlencode(params | {"page": str(query.page + 1)})
    context = {"form": params, "kept": _kept(params), "error": None, "cards": cards, "page": page}
    return context | {"sorts": SORTS, "links": links}


def _kept(params: dict[str, str]) -> dict[str, str]:
    """Filters the form has no input for (from a link: per_page, a point, amenities): the form
    carries them on as hidden fields, so changing the sort keeps them. A new search starts at page 1."""
    return {k: v for k, v in params.items() if k not in FORM_FIELDS and k != "page"}


# -- a room -------------------------------------------------------------------------------------


def room_id_of(raw: str) -> int | None:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ROOM_ID:
        return None
    return int(raw)


class RenderedRooms:
    """Room pages already rendered, by what they are made of: the room's details as the cache
    gave them and this site's origin (for the canonical URL). A room that changes has new details,
    hence a new key: an entry is never stale, only unused, and the least recently used go first."""

    def __init__(self, capacity: int = 2048) -> None:
        self._capacity = capacity
        self._pages: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()

    def get(self, key: tuple[str, bytes]) -> bytes | None:
        body = self._pages.get(key)
        if body is not None:
            self._pages.move_to_end(key)
        return body

    def put(self, key: tuple[str, bytes], body: bytes) -> None:
        self._pages[key] = body
        if len(self._pages) > self._capacity:
            self._pages.popitem(last=False)


RENDERED_ROOMS = web.AppKey("rendered_rooms", RenderedRooms)
_room_encoder = msgspec.msgpack.Encoder()


@routes.get("/rooms/{room_id}")
async def room_page(request: web.Request) -> web.Response:
    """The page of a room: the same for every visitor. Dates carried over from a search
    (?check_in=&check_out=&guests=) are read by the page's script, so they do not change it."""
    room_id = room_id_of(request.match_info["room_id"])
    try:
        room = None if room_id is None else await request.app[ROOMS].room(room_id)
    except RoombookError as exc:  # the catalogue not answering, nothing cached (503)
        return error_page(request, exc)
    if room is None:
        return not_found(request, "room")
    origin = str(request.url.origin())
    key = (origin, _room_encoder.encode(room))
    body = request.app[RENDERED_ROOMS].get(key)
    if body is None:
        html = aiohttp_jinja2.render_string("room.html", request, _room_context(room, f"{origin}/rooms/{room.id}"))
        body = html.encode()
        request.app[RENDERED_ROOMS].put(key, body)
    return page_response(body, cache=PUBLIC_CACHE)


def _room_context(room: Room, canonical: str) -> dict[str, Any]:
    country = room.location.country
    return {
        "room": room,
        "canonical": canonical,
        "summary": _summary(room),
        "price": page_format.money(room.price_per_night, room.currency, country),
        "locale": page_format.bcp47(country),
        "ld": _json_ld(room, canonical),
    }


def _summary(room: Room) -> str:
    text = " ".join(room.description.split()) or f"{room.title} in {room.location.city}"
    return text if len(text) <= DESCRIPTION_CHARS else text[: DESCRIPTION_CHARS - 1].rsplit(" ", 1)[0] + "…"


def _json_ld(room: Room, url: str) -> dict[str, Any]:
    """schema.org HotelRoom with its Offer: what search engines read for a bookable room."""
    place = room.location
    price = str(room.price_per_night.quantize(decimal.Decimal("0.01")))
    return {
        "@context": "https://schema.org",
        "@type": "HotelRoom",
        "name": room.title,
        "description": room.description,
        "url": url,
        "image": room.images,
        "occupancy": {"@type": "QuantitativeValue", "maxValue": room.capacity, "unitText": "guests"},
        "amenityFeature": [
            {"@type": "LocationFeatureSpecification", "name": amenity, "value": True} for amenity in room.amenities
        ],
        "containedInPlace": {
            "@type": "Place",
            "address": {
                "@type": "PostalAddress",
                "streetAddress": place.address,
                "addressLocality": place.city,
                "addressCountry": place.country,
            },
            "geo": {"@type": "GeoCoordinates", "latitude": place.lat, "longitude": place.lon},
        },
        "offers": {
            "@type": "Offer",
            "url": url,
            "price": price,
            "priceCurrency": room.currency,
            "priceSpecification": {
                "@type": "UnitPriceSpecification",
                "price": price,
                "priceCurrency": room.currency,
                "unitText": "night",
            },
        },
    }
