"""The signed-in pages: sign in, register, the account (profile and bookings) and one booking.

They are rendered on the server from the HttpOnly `access_token` cookie; without a valid one the
visitor is sent to /login, and back to the page afterwards. Signing in and registering go through
the JSON API (static/auth.js), which sets the cookies. Cancelling is a form POST, after a
confirmation page, that must carry the `csrf_token` cookie's value: the API's double submit.
"""

from __future__ import annotations

import decimal
import hmac
import urllib.parse
from typing import Any

import msgspec
from aiohttp import web

from roombook.domain.bookings import Booking, BookingStatus
from roombook.domain.errors import InvalidToken, RoombookError, UnknownBooking
from roombook.domain.rooms import Room
from roombook.http import page_format
from roombook.http.authn import ACCESS_COOKIE, CSRF_COOKIE
from roombook.http.keys import ACCOUNTS, BOOKINGS, REGIONS, ROOMS
from roombook.http.page_render import PRIVATE, error_page, not_found, render
from roombook.services.access_tokens import AccessClaims

routes = web.RouteTableDef()

PER_PAGE = 10
CSRF_FIELD = "csrf_token"
STATUS_TEXT = {
    BookingStatus.PENDING: "Being confirmed",
    BookingStatus.CONFIRMED: "Confirmed",
    BookingStatus.CANCELLED: "Cancelled",
    BookingStatus.EXPIRED: "Expired",
}
REFUSED_TEXT = {
    "payment_declined": "not booked: the card was declined",
    "nights_unavailable": "not booked: the nights were taken",
    "hold_expired": "not booked: the hold expired",
}


class BookingRow(msgspec.Struct, frozen=True, kw_only=True):
    """A booking as the account pages show it, in its room's currency and locale."""

    booking: Booking
    room_title: str
    city: str
    check_in: str
    check_out: str
    total: str
    status: str


def _claims(request: web.Request) -> AccessClaims | None:
    cookie = request.cookies.get(ACCESS_COOKIE)
    if not cookie:
        return None
    try:
        return request.app[ACCOUNTS].verify_access_token(cookie)
    except InvalidToken:  # expired or forged: sign in again
        return None


def _signed_in(request: web.Request) -> AccessClaims:
    claims = _claims(request)
    if claims is None:
        raise web.HTTPSeeOther(location="/login?" + urllib.parse.urlencode({"next": request.path_qs}))
    return claims


def _next_of(request: web.Request) -> str:
    """Where to return after signing in: a path of this site, never another origin."""
    target = request.query.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else "/account"


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    if _claims(request) is not None:
        raise web.HTTPSeeOther(location=_next_of(request))
    return render(request, "login.html", {"next": _next_of(request)})


@routes.get("/register")
async def register_page(request: web.Request) -> web.Response:
    if _claims(request) is not None:
        raise web.HTTPSeeOther(location=_next_of(request))
    return render(request, "register.html", {"next": _next_of(request)})


@routes.get("/account")
async def account_page(request: web.Request) -> web.Response:
    claims = _signed_in(request)
    raw_page = request.query.get("page", "1")
    page_no = int(raw_page) if raw_page.isascii() and raw_page.isdigit() and 1 <= int(raw_page) <= 100_000 else 1
    try:
        user = await request.app[REGIONS][claims.region].user(claims.user_id)
        page = await request.app[BOOKINGS].bookings_of(
            user_id=claims.user_id, region=claims.region, page=page_no, per_page=PER_PAGE
        )
        rows = await _rows(request, page.items)
    except RoombookError as exc:
        return error_page(request, exc)
    if user is None:  # deleted since the token was issued
        raise web.HTTPSeeOther(location="/login")
    links: dict[str, str] = {}
    if page_no > 1:
        links["prev"] = f"/account?page={page_no - 1}"
    if page_no * PER_PAGE < page.total:
        links["next"] = f"/account?page={page_no + 1}"
    context = {"user": user, "rows": rows, "total": page.total, "links": links}
    return render(request, "account.html", context, cache=PRIVATE)


@routes.get("/account/bookings/{booking_id}")
async def booking_page(request: web.Request) -> web.Response:
    claims = _signed_in(request)
    try:
        booking = await _booking(request, claims)
        if booking is None:
            return not_found(request, "booking", cache=PRIVATE)
        (row,) = await _rows(request, [booking])
    except RoombookError as exc:
        return error_page(request, exc)
    context = {"row": row, "cancelled": request.query.get("cancelled") == "1"}
    return render(request, "booking.html", context, cache=PRIVATE)


@routes.get("/account/bookings/{booking_id}/cancel")
async def cancel_confirmation(request: web.Request) -> web.Response:
    claims = _signed_in(request)
    try:
        booking = await _booking(request, claims)
        if booking is None:
            return not_found(request, "booking", cache=PRIVATE)
        (row,) = await _rows(request, [booking])
    except RoombookError as exc:
        return error_page(request, exc)
    if booking.status is not BookingStatus.CONFIRMED:
        raise web.HTTPSeeOther(location=f"/account/bookings/{booking.id}")
    context = {"row": row, "csrf": request.cookies.get(CSRF_COOKIE, "")}
    return render(request, "cancel.html", context, cache=PRIVATE)


@routes.post("/account/bookings/{booking_id}/cancel")
async def cancel_booking(request: web.Request) -> web.Response:
    claims = _signed_in(request)
    form = await request.post()
    sent, cookie = str(form.get(CSRF_FIELD, "")), request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        context = {"title": "This form has expired", "detail": "Open the booking again and confirm.", "status": 403}
        return render(request, "error.html", context, status=403)
    try:
        booking = await request.app[BOOKINGS].cancel(
            user_id=claims.user_id, region=claims.region, booking_id=request.match_info["booking_id"]
        )
    except UnknownBooking:
        return not_found(request, "booking", cache=PRIVATE)
    except RoombookError as exc:  # in progress (409), a store down (503): nothing changed, or send again
        return error_page(request, exc)
    raise web.HTTPSeeOther(location=f"/account/bookings/{booking.id}?cancelled=1")


async def _booking(request: web.Request, claims: AccessClaims) -> Booking | None:
    try:
        return await request.app[BOOKINGS].booking(
            user_id=claims.user_id, region=claims.region, booking_id=request.match_info["booking_id"]
        )
    except UnknownBooking:  # someone else's looks the same
        return None


async def _rows(request: web.Request, bookings: list[Booking]) -> list[BookingRow]:
    ids = sorted({b.room_id for b in bookings})
    rooms: dict[int, Room | None] = dict(zip(ids, await request.app[ROOMS].rooms(ids), strict=True))
    return [_row(b, rooms.get(b.room_id)) for b in bookings]


def _row(booking: Booking, room: Room | None) -> BookingRow:
    country = room.location.country if room is not None else ""
    status = STATUS_TEXT[booking.status]
    if booking.refused and booking.refusal is not None:  # an attempt, not a cancelled booking
        status = f"Refused, {REFUSED_TEXT.get(booking.refusal.kind, 'not booked')}"
    elif booking.refusal is not None:
        status = f"{status}, {REFUSED_TEXT.get(booking.refusal.kind, 'not booked')}"
    elif booking.status is BookingStatus.CONFIRMED and booking.modified_at is not None:
        status = f"{status}, changed"
    elif booking.status is BookingStatus.CANCELLED and booking.refund_amount is not None:
        refund = page_format.money(booking.refund_amount, booking.currency, country)
        fee = page_format.money(booking.cancellation_fee or decimal.Decimal(0), booking.currency, country)
        status = f"{status}, {refund} refunded" + (f" ({fee} kept)" if booking.cancellation_fee else "")
    fields: dict[str, Any] = {
        "room_title": room.title if room is not None else f"Room {booking.room_id}",
        "city": room.location.city if room is not None else "",
    }
    return BookingRow(
        booking=booking,
        check_in=page_format.day(booking.check_in, country),
        check_out=page_format.day(booking.check_out, country),
        total=page_format.money(booking.total_price, booking.currency, country),
        status=status,
        **fields,
    )
