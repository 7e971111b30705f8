"""Malformed requests against every route of the real app are refused with a 4xx, never a 2xx or a
5xx: unknown, repeated or mistyped query parameters, unknown or mistyped or over-long body fields,
duplicate JSON keys, bodies that are not JSON objects or not UTF-8 or not declared as JSON, deep
nesting, bad dates, bad ids, bad keys and tokens. A body on a route that takes none is ignored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random

import aiohttp
import pytest
from booking_harness import API, add_rooms, app_for, book, local_settings, night, sign_up, sign_up_admin, stay

TODAY = dt.date.today()


@dataclasses.dataclass(frozen=True)
class Call:
    """One request: what it is, and how it is sent."""

    what: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    auth: str = "user"  # "none" | "user" | "admin"


def as_json(value: object) -> bytes:
    return json.dumps(value).encode()


@dataclasses.dataclass(frozen=True)
class Route:
    """A route and one valid request of it (query, body, headers); the malformed ones derive from it."""

    method: str
    path: str
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    body: dict[str, object] | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    auth: str = "user"
    query_types: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> int | float | date | text
    body_types: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> int | text | list | object
    ids: tuple[str, ...] = ()  # path segments that are ids, as written in `path`

    def call(self, what: str, **change: object) -> Call:
        fields = {
            "what": f"{self.method} {self.path}: {what}",
            "method": self.method,
            "path": self.path,
            "query": tuple(self.query.items()),
            "body": as_json(self.body) if self.body is not None else None,
            "headers": tuple(self.headers.items()),
            "auth": self.auth,
        }
        return Call(**(fields | change))


def routes(room_id: int, booking_id: str) -> list[Route]:
    stay_body = stay(room_id, 100, 102)
    location = {"city": "Lisbon", "country": "PT", "address": "Rua 1", "lat": 38.7, "lon": -9.1}
    new_room = {"title": "Loft", "location": location, "price_per_night": 80, "capacity": 2}
    return [
        Route(
            "POST",
            "/auth/register",
            body={"email": "new@example.com", "password": "correct horse battery", "region": "eu"},
            auth="none",
            body_types={"email": "text", "password": "text", "region": "text", "first_name": "text"},
        ),
        Route(
            "POST",
            "/auth/login",
            body={"email": "x@example.com", "password": "correct horse battery"},
            auth="none",
            body_types={"email": "text", "password": "text", "region": "text"},
        ),
        Route(
            "POST", "/auth/refresh", body={"refresh_token": "eu.x"}, auth="none", body_types={"refresh_token": "text"}
        ),
        Route(
            "POST", "/auth/logout", body={"refresh_token": "eu.x"}, auth="none", body_types={"refresh_token": "text"}
        ),
        Route("GET", "/me"),
        Route(
            "GET",
            "/rooms",
            query={"city": "Lisbon", "page": "1"},
            auth="none",
            query_types={
                "q": "text",
                "city": "text",
                "country": "text",
                "lat": "float",
                "lon": "float",
                "radius_km": "float",
                "check_in": "date",
                "guests": "int",
                "min_price": "float",
                "amenities": "text",
                "sort": "text",
                "page": "int",
                "per_page": "int",
            },
        ),
        Route("GET", f"/rooms/{room_id}", auth="none", ids=(str(room_id),)),
        Route(
            "GET",
            f"/rooms/{room_id}/availability",
            query={"from": night(0), "to": night(3)},
            auth="none",
            query_types={"from": "date", "to": "date"},
            ids=(str(room_id),),
        ),
        Route(
            "POST",
            "/rooms",
            body=new_room,
            auth="admin",
            body_types={
                "title": "text",
                "description": "text",
                "location": "object",
                "price_per_night": "number",
                "currency": "text",
                "capacity": "int",
                "amenities": "list",
                "images": "list",
            },
        ),
        Route(
            "PATCH",
            f"/rooms/{room_id}",
            body={"title": "Renamed"},
            auth="admin",
            body_types={"title": "text", "description": "text", "capacity": "int", "amenities": "list"},
            ids=(str(room_id),),
        ),
        Route(
            "POST",
            "/bookings",
            body=stay_body,
            headers={"Idempotency-Key": "malformed-suite-key"},
            body_types={
                "room_id": "int",
                "check_in": "date",
                "check_out": "date",
                "guests": "int",
                "card_token": "text",
            },
        ),
        Route("GET", "/bookings", query={"page": "1"}, query_types={"page": "int", "per_page": "int"}),
        Route("GET", f"/bookings/{booking_id}", ids=(booking_id,)),
        Route("POST", f"/bookings/{booking_id}/cancel", ids=(booking_id,)),
        Route("GET", "/openapi.json", auth="none"),
    ]


BAD_VALUES = {
    "int": ["abc", "1.0", "1e0", "-1", "0", "99999999999999999999", "", " 1", "0x10", "true"],
    "float": ["nan", "inf", "-inf", "abc", "1e999", ""],
    "date": ["2027-02-30", "2027-6-1", "20270601", "tomorrow", "2027-06-01T00:00:00", ""],
    "text": ["x" * 1_001],  # longer than any text parameter takes; 8 KiB more is the HTTP parser's 400
}
WRONG_JSON = {
    "int": ["1", 1.5, True, None, [], {}, 2**64, -5],
    "number": [None, [], {}, -1, 1e400, "NaN", "eighty"],  # a decimal string ("80") is a price too
    "date": [20270601, "2027-02-30", "next week", None],
    "text": [123, True, [], {}, "x" * 10_000],
    "list": ["wifi", {}, [1], [["x"]], ["x" * 10_000], ["a"] * 1_000],
    "object": ["Lisbon", [], {"city": "Lisbon"}, {"city": "Lisbon", "country": "PT", "colour": "blue"}],
}


def malformed(route: Route, rng: random.Random) -> list[Call]:
    calls = [route.call("an unknown query parameter", query=(*route.call("").query, ("colour", "blue")))]
    for name, kind in route.query_types.items():
        for value in BAD_VALUES[kind]:
            query = dict(route.query) | {name: value}
            calls.append(route.call(f"query {name}={value[:20]!r}", query=tuple(query.items())))
    for name, value in route.query.items():
        calls.append(route.call(f"query {name} given twice", query=(*route.query.items(), (name, value))))
    if route.body is not None:
        calls += malformed_bodies(route)
    for segment in route.ids:
        for bad in ["-1", "0", "abc", "99999999999999999999", "1.0", "%20", "bk_" + "x" * 300]:
            calls.append(route.call(f"id {bad[:20]!r}", path=route.path.replace(segment, bad)))
    if route.headers:
        for bad in ["", "x" * 256, "é-not-ascii", "tab\tinside"]:  # HTTP strips spaces at either end
            calls.append(route.call(f"Idempotency-Key {bad[:20]!r}", headers=(("Idempotency-Key", bad),)))
        calls.append(route.call("no Idempotency-Key", headers=()))
    if route.auth != "none":
        for header in ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer " + "x" * 5000]:
            calls.append(
                route.call(f"Authorization {header[:20]!r}", auth="none", headers=(("Authorization", header),))
            )
    rng.shuffle(calls)
    return calls


def malformed_bodies(route: Route) -> list[Call]:
    assert route.body is not None
    body = route.body
    calls = [
        route.call("an unknown body field", body=as_json(body | {"colour": "blue"})),
        route.call("not an object", body=b"[]"),
        route.call("a JSON string", body=b'"x"'),
        route.call("null", body=b"null"),
        route.call("not JSON", body=b"email=x&password=y"),
        route.call("trailing garbage", body=as_json(body) + b" x"),
        route.call("not UTF-8", body=as_json(body)[:-1] + b', "x": "\xff\xfe"}'),
        route.call("nested too deeply", body=b"[" * 5_000 + b"]" * 5_000),
        route.call("JSON sent as text/plain", content_type="text/plain"),
        route.call("JSON sent as a form", content_type="application/x-www-form-urlencoded"),
        route.call("JSON with no content type", content_type=None),
    ]
    first = next(iter(body))
    duplicated = as_json(body)[:-1] + b", " + json.dumps(first).encode() + b": " + as_json(body[first]) + b"}"
    calls.append(route.call(f"the key {first!r} twice", body=duplicated))
    for name, kind in route.body_types.items():
        for value in WRONG_JSON[kind]:
            if kind == "number" and value == 1e400:
                raw = as_json(body | {name: 0}).replace(b'": 0', b'": 1e400')
            else:
                raw = as_json(body | {name: value})
            calls.append(route.call(f"body {name}={str(value)[:20]!r}", body=raw))
    return calls


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


@pytest.fixture
async def world(client):
    """A room, a user with a booking of it, an admin, and every route with one valid request."""
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    made = await book(client, guest, stay(room_id, 0, 2))
    assert made.status == 201, await made.text()
    admin = await sign_up_admin(client)
    headers = {"none": {}, "user": guest.headers, "admin": admin.headers}
    return routes(room_id, (await made.json())["booking"]["id"]), headers


async def send(client, call: Call, auth_headers: dict[str, dict[str, str]]) -> aiohttp.ClientResponse:
    headers = auth_headers[call.auth] | dict(call.headers)
    if call.body is not None and call.content_type is not None:
        headers["Content-Type"] = call.content_type
    return await client.request(
        call.method,
        API + call.path,
        params=list(call.query) or None,
        data=call.body,
        headers=headers,
        skip_auto_headers=["Content-Type"] if call.content_type is None else [],
    )


async def test_every_valid_request_the_suite_starts_from_is_accepted(client, world):
    # the malformed requests below are each one change away from these, so a refusal is the change's
    # (a login or refresh with made-up credentials is a 401, which the change must not turn into a 2xx)
    route_list, auth = world
    statuses = {}
    for route in route_list:
        if route.path.endswith("/cancel"):
            continue  # answered 200, but cancels the booking the other routes read
        statuses[f"{route.method} {route.path}"] = (await send(client, route.call("valid"), auth)).status
    assert all(200 <= s < 300 or (s == 401 and "auth/" in name) for name, s in statuses.items()), statuses


async def test_malformed_requests_to_every_route_are_4xx(client, world):
    route_list, auth = world
    rng = random.Random(16)
    calls = [call for route in route_list for call in malformed(route, rng)]
    assert len(calls) > 300
    wrong = []
    for call in calls:
        response = await send(client, call, auth)
        if not 400 <= response.status < 500:
            wrong.append(f"{response.status} {call.what}")
        elif response.content_type != "application/problem+json":
            wrong.append(f"{response.status} without a problem body: {call.what}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("path", ["/me", "/bookings", "/rooms", "/openapi.json"])
async def test_a_body_on_a_route_that_takes_none_is_ignored(client, world, path):
    _, auth = world
    plain = await client.get(API + path, headers=auth["user"])
    with_body = await client.get(API + path, headers=auth["user"], data=b'{"colour": "blue"}')

    assert with_body.status == plain.status == 200
    assert await with_body.read() == await plain.read()
