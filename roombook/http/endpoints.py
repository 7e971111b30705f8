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
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from roombook.domain.errors import InvalidCardToken
from roombook.http.problems import ProblemError
from roombook.services.payments import looks_like_card_number

S = TypeVar("S", bound=msgspec.Struct)  # bodies and query strings decode into Structs
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIX = "/api/v1"


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str  # below /api/v1, aiohttp syntax: /rooms/{room_id}
    handler: Any
    summary: str
    request: Any = None  # body type
    upload: tuple[str, ...] = ()  # media types of a binary body (a file upload; also multipart/form-data)
    body_required: bool = True  # False: the body may be left out (or empty)
    query: Any = None  # query-string struct
    path_params: dict[str, Any] = {}  # a path parameter's type, when it is not str
    headers: dict[str, Any] = {}  # request headers the handler reads: name -> type (`| None`: optional)
    response: Any = None
    media_type: str = "application/json"  # of the response body
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

    def put(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **meta)

    def delete(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **meta)

    def add_to(self, app: web.Application) -> None:
        for e in self.items:
            app.router.add_route(e.method, API_PREFIX + e.path, _checked(e))


def _checked(e: Endpoint) -> Handler:
    """e's handler behind the rules every route shares: no card number in the query, only the query
    parameters it defines, each at most once (422), and a body it takes sent as JSON (415). A body
    on a route that takes none is ignored, as HTTP gives it no meaning there."""
    known = frozenset(f.encode_name for f in msgspec.structs.fields(e.query)) if e.query is not None else frozenset()

    @functools.wraps(e.handler)
    async def handler(request: web.Request) -> web.StreamResponse:
        refuse_card_numbers([*request.query.keys(), *request.query.values()])  # before a detail names one
        unknown = sorted(set(request.query) - known)
        if unknown:
            raise ProblemError(422, "invalid-request", "Invalid request", f"unknown query parameter: {unknown[0]!r}")
        repeated = sorted(name for name in known if len(request.query.getall(name, ())) > 1)
        if repeated:
            raise ProblemError(422, "invalid-request", "Invalid request", f"query parameter given twice: {repeated[0]}")
        if e.request is not None and request.body_exists and not _is_json(request.content_type):
            raise ProblemError(
                415, "unsupported-media-type", "Unsupported Media Type", "send Content-Type: application/json"
            )
        return await e.handler(request)

    return handler


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


_encoder = msgspec.json.Encoder(decimal_format="number")


def json_response(obj: object, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(obj), status=status, content_type="application/json", headers=headers)


@functools.cache
def _decoder(type_: type[S]) -> msgspec.json.Decoder[S]:
    return msgspec.json.Decoder(type_)


_NO_FIELDS: frozenset[str] = frozenset()
_INTEGER = re.compile(r"-?[0-9]+")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        raise msgspec.ValidationError(f"the key {twice!r} is given twice in one object")
    return obj


def _any_json(raw: bytes) -> object:
    """Any JSON value, with no key twice in an object (which one would count is a guess) and no
    nesting deeper than the interpreter's recursion allows; else a 400 (422 for a repeated key)."""
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise msgspec.DecodeError(f"the body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise msgspec.DecodeError(f"malformed JSON: {exc.msg} at position {exc.pos}") from None


async def read_body(request: web.Request, type_: type[S], *, secret_fields: frozenset[str] = _NO_FIELDS) -> S:
    """Decode the JSON body strictly (msgspec errors become 400/422 problems in the middleware).
    A card number in any of its strings, keys or numbers is refused first (422), before an error
    message could repeat it; `secret_fields` (a password: hashed, never stored) are left alone."""
    raw = await request.read()
    refuse_card_numbers(_any_json(raw), secret_fields=secret_fields)
    return _decoder(type_).decode(raw)


@functools.cache
def _integer_fields(type_: type[msgspec.Struct]) -> frozenset[str]:
    """The query parameters of type_ that are integers (or integers or null)."""
    info = msgspec.inspect.type_info(type_)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"a query string is read into a Struct, not {type_!r}")
    names = set()
    for field in info.fields:
        kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        if any(isinstance(kind, msgspec.inspect.IntType) for kind in kinds):
            names.add(field.encode_name)
    return frozenset(names)


def read_query(request: web.Request, type_: type[S]) -> S:
    """Convert the query string into a struct; strings are coerced to the field types, an integer
    written as digits only (msgspec alone would take `1.0` or `1e0`)."""
    return decode_query(dict(request.query), type_)


def decode_query(query: dict[str, str], type_: type[S]) -> S:
    """read_query on parameters already picked out (a page's form leaves empty fields out)."""
    for name in _integer_fields(type_):
        if name in query and not _INTEGER.fullmatch(query[name]):
            raise msgspec.ValidationError(f"Expected `int`, got `str` - at `$.{name}`")
    return msgspec.convert(query, type_, strict=False)


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
