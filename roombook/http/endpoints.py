"""A route table that also knows each route's types, so the OpenAPI document is derived, not written.

    api = Endpoints()

    @api.post("/bookings", summary="Book a room", request=BookingRequest, response=BookingOut, status=201)
    async def create_booking(request: web.Request) -> web.Response:
        body = await read_body(request, BookingRequest)
        ...
        return json_response(out, status=201)

Request structs should be `forbid_unknown_fields=True`; every type is a msgspec Struct.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from roombook.domain.errors import InvalidCardToken
from roombook.payments import looks_like_card_number

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIX = "/api/v1"


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str  # below /api/v1, aiohttp syntax: /rooms/{room_id}
    handler: Any
    summary: str
    request: Any = None  # body type
    body_required: bool = True  # False: the body may be left out (or empty)
    query: Any = None  # query-string struct
    path_params: dict[str, Any] = {}  # a path parameter's type, when it is not str
    headers: dict[str, Any] = {}  # request headers the handler reads: name -> type (`| None`: optional)
    response: Any = None
    status: int = 200
    auth: str = "user"  # "none" | "user" | "admin" (documentation; handlers enforce it)
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()


class Endpoints:
    def __init__(self) -> None:
        self.items: list[Endpoint] = []

    def route(self, method: str, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.items.append(Endpoint(method=method, path=path, handler=handler, **meta))
            return handler

        return register

    def get(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **meta)

    def post(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **meta)

    def patch(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **meta)

    def add_to(self, app: web.Application) -> None:
        for e in self.items:
            app.router.add_route(e.method, API_PREFIX + e.path, e.handler)


_encoder = msgspec.json.Encoder(decimal_format="number")


def json_response(obj: object, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(obj), status=status, content_type="application/json", headers=headers)


@functools.cache
def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(type_)


_any_json = msgspec.json.Decoder()
_NO_FIELDS: frozenset[str] = frozenset()


async def read_body(request: web.Request, type_: type[T], *, secret_fields: frozenset[str] = _NO_FIELDS) -> T:
    """Decode the JSON body strictly (msgspec errors become 400/422 problems in the middleware).
    A card number in any of its strings, keys or numbers is refused first (422), before an error
    message could repeat it; `secret_fields` (a password: hashed, never stored) are left alone."""
    raw = await request.read()
    refuse_card_numbers(_any_json.decode(raw), secret_fields=secret_fields)
    return _decoder(type_).decode(raw)


def read_query(request: web.Request, type_: type[T]) -> T:
    """Convert the query string into a struct; strings are coerced to the field types. A card
    number in any name or value is refused (422)."""
    refuse_card_numbers([*request.query.keys(), *request.query.values()])
    return msgspec.convert(dict(request.query), type_, strict=False)


def refuse_card_numbers(value: object, *, secret_fields: frozenset[str] = _NO_FIELDS) -> None:
    """Raise InvalidCardToken (422) if a card number hides anywhere in a decoded JSON value."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if looks_like_card_number(item):
                raise InvalidCardToken("send a card token (tok_...), never a card number")
        elif isinstance(item, dict):
            for key, inner in item.items():
                pending.append(key)
                if key not in secret_fields:
                    pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            pending.append(str(item))
