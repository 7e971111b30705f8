"""/bookings: book a room (idempotent per Idempotency-Key), list and read one's own, cancel.

Someone else's booking answers 404 exactly like one that does not exist.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Annotated

import msgspec
from aiohttp import web

from roombook.domain.bookings import Booking, BookingRequest, BookingStatus
from roombook.domain.errors import InvalidBooking, InvalidCardToken, RoombookError
from roombook.domain.pages import MAX_PER_PAGE
from roombook.domain.rates import NightPrice
from roombook.http.authn import current_user
from roombook.http.endpoints import Endpoints, json_response, read_body, read_query
from roombook.http.keys import BOOKINGS
from roombook.http.metrics import BOOKINGS as BOOKING_OUTCOMES
from roombook.services.bookings import BookingService
from roombook.services.payments import looks_like_card_number

api = Endpoints()

IDEMPOTENCY_HEADER = "Idempotency-Key"
# 1 to 255 printable ASCII characters; none at either end is a space (HTTP would strip it)
_IDEMPOTENCY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$"
IdempotencyKey = Annotated[
    str,
    msgspec.Meta(
        pattern=_IDEMPOTENCY_PATTERN,
        description="Your id for this booking attempt (e.g. a UUID): a retry with it answers the same",
    ),
]
_IDEMPOTENCY_KEY = re.compile(_IDEMPOTENCY_PATTERN)


class BookingOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    room_id: int
    check_in: dt.date
    check_out: dt.date
    guests: int
    nights: int
    status: BookingStatus
    total_price: decimal.Decimal
    currency: str
    created_at: dt.datetime
    updated_at: dt.datetime
    night_prices: list[NightPrice]  # each night's price, as the rate calendar had it when booked


class BookingEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    booking: BookingOut


class BookingList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[BookingOut]
    total: int
    page: int
    per_page: int


class PageQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=MAX_PER_PAGE)] = 20


def _out(booking: Booking) -> BookingOut:
    return BookingOut(**{field: getattr(booking, field) for field in BookingOut.__struct_fields__})


def _envelope(booking: Booking) -> BookingEnvelope:
    return BookingEnvelope(booking=_out(booking))


def _service(request: web.Request) -> BookingService:
    return request.app[BOOKINGS]


@api.post(
    "/bookings",
    summary="Book a room: hold, pay, confirm. Send an Idempotency-Key; a retry with it answers the same",
    request=BookingRequest,
    headers={IDEMPOTENCY_HEADER: IdempotencyKey},
    response=BookingEnvelope,
    status=201,
    errors=(401, 402, 404, 409, 415, 422, 503),
    tags=("bookings",),
)
async def create_booking(request: web.Request) -> web.Response:
    claims = current_user(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidBooking(f"send an {IDEMPOTENCY_HEADER} header of 1 to 255 printable ASCII characters")
    # The key is stored with the booking: card data must never be, there or anywhere in the body
    # (read_body refuses it in every string); a uuid4 key never looks like one.
    if looks_like_card_number(key):
        raise InvalidCardToken("send a card token (tok_...), never a card number")
    body = await read_body(request, BookingRequest)
    try:
        booking = await _service(request).book(
            user_id=claims.user_id, region=claims.region, idempotency_key=key, request=body
        )
    except RoombookError as exc:
        BOOKING_OUTCOMES.labels(outcome=exc.outcome).inc()
        raise
    BOOKING_OUTCOMES.labels(outcome="confirmed").inc()
    return json_response(_envelope(booking), status=201)


@api.get(
    "/bookings",
    summary="The caller's bookings, newest first",
    query=PageQuery,
    response=BookingList,
    errors=(401, 422, 503),
    tags=("bookings",),
)
async def list_bookings(request: web.Request) -> web.Response:
    claims = current_user(request)
    query = read_query(request, PageQuery)
    page = await _service(request).bookings_of(
        user_id=claims.user_id, region=claims.region, page=query.page, per_page=query.per_page
    )
    items = [_out(b) for b in page.items]
    return json_response(BookingList(items=items, total=page.total, page=page.page, per_page=page.per_page))


@api.get(
    "/bookings/{booking_id}",
    summary="One of the caller's bookings",
    response=BookingEnvelope,
    errors=(401, 404, 503),
    tags=("bookings",),
)
async def get_booking(request: web.Request) -> web.Response:
    claims = current_user(request)
    booking = await _service(request).booking(
        user_id=claims.user_id, region=claims.region, booking_id=request.match_info["booking_id"]
    )
    return json_response(_envelope(booking))


@api.post(
    "/bookings/{booking_id}/cancel",
    summary="Cancel one of the caller's bookings; its nights are free at once. Idempotent",
    response=BookingEnvelope,
    errors=(401, 404, 409, 503),
    tags=("bookings",),
)
async def cancel_booking(request: web.Request) -> web.Response:
    claims = current_user(request)
    booking = await _service(request).cancel(
        user_id=claims.user_id, region=claims.region, booking_id=request.match_info["booking_id"]
    )
    return json_response(_envelope(booking))
