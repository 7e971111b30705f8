"""Booking records: pricing, the request hash behind Idempotency-Key, and the status lifecycle."""

import datetime as dt
import decimal

import msgspec
import pytest

from roombook.domain.bookings import (
    BookingRequest,
    BookingStatus,
    check_transition,
    ensure_same_request,
    page_offset,
    pending_booking,
    request_hash,
    stay_quote,
)
from roombook.domain.errors import IdempotencyKeyReused, InvalidBookingTransition

NOW = dt.datetime(2030, 5, 1, 12, tzinfo=dt.UTC)
BODY = b'{"room_id": 7, "check_in": "2030-06-01", "check_out": "2030-06-04", "guests": 2, "card_token": "tok_visa"}'
decode_request = msgspec.json.Decoder(BookingRequest)


def test_a_pending_booking_costs_nights_times_price_rounded_to_the_cent():
    booking = pending_booking(
        booking_id="bk_x",
        user_id=1,
        request=(request := decode_request.decode(BODY)),
        quote=stay_quote(request, price_per_night=decimal.Decimal("99.995"), currency="EUR"),
        idempotency_key="k1",
        now=NOW,
    )

    assert booking.status is BookingStatus.PENDING
    assert booking.nights == 3
    assert booking.total_price == decimal.Decimal("299.99")  # 299.985 rounds half up
    assert booking.created_at == booking.updated_at == NOW


def test_the_request_hash_ignores_key_order_and_whitespace():
    reordered = b'{"guests":2,"card_token":"tok_visa","check_out":"2030-06-04","check_in":"2030-06-01","room_id":7}'

    assert request_hash(decode_request.decode(BODY)) == request_hash(decode_request.decode(reordered))


def test_a_different_body_under_the_same_key_is_refused():
    first = pending_booking(
        booking_id="bk_x",
        user_id=1,
        request=(request := decode_request.decode(BODY)),
        quote=stay_quote(request, price_per_night=decimal.Decimal(100), currency="EUR"),
        idempotency_key="k1",
        now=NOW,
    )
    other = msgspec.structs.replace(decode_request.decode(BODY), guests=3)

    ensure_same_request(first, request_hash(decode_request.decode(BODY)))
    with pytest.raises(IdempotencyKeyReused):
        ensure_same_request(first, request_hash(other))


@pytest.mark.parametrize(
    "body",
    [
        b'{"room_id": 7, "check_in": "2030-06-04", "check_out": "2030-06-04", "guests": 2}',
        b'{"room_id": 7, "check_in": "2030-06-01", "check_out": "2030-06-04", "guests": 0}',
        b'{"room_id": 0, "check_in": "2030-06-01", "check_out": "2030-06-04", "guests": 1}',
        b'{"room_id": 7, "check_in": "2030-06-01", "check_out": "2030-06-04", "guests": 1, "x": 1}',
    ],
)
def test_a_malformed_booking_request_fails_to_decode(body):
    with pytest.raises(msgspec.ValidationError):
        decode_request.decode(body)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (BookingStatus.PENDING, BookingStatus.CONFIRMED),
        (BookingStatus.PENDING, BookingStatus.CANCELLED),
        (BookingStatus.PENDING, BookingStatus.EXPIRED),
        (BookingStatus.CONFIRMED, BookingStatus.CANCELLED),
    ],
)
def test_the_lifecycle_allows(current, new):
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (BookingStatus.CONFIRMED, BookingStatus.PENDING),
        (BookingStatus.CANCELLED, BookingStatus.CONFIRMED),
        (BookingStatus.EXPIRED, BookingStatus.CONFIRMED),
        (BookingStatus.CONFIRMED, BookingStatus.EXPIRED),
        (BookingStatus.PENDING, BookingStatus.PENDING),
    ],
)
def test_the_lifecycle_forbids(current, new):
    with pytest.raises(InvalidBookingTransition):
        check_transition(current, new)


def test_pages_count_from_one_and_are_bounded():
    assert page_offset(1, 20) == 0
    assert page_offset(3, 20) == 40
    for page, per_page in [(0, 20), (1, 0), (1, 101)]:
        with pytest.raises(ValueError):
            page_offset(page, per_page)
