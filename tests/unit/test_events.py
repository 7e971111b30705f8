"""Events: the wire format (a tagged union), ids, the booking event of each status, the routing."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import msgspec
import pytest

from roombook.domain.bookings import BookingRequest, BookingStatus, pending_booking, stay_quote
from roombook.domain.events import (
    EVENT_TYPES,
    AvailabilityUpdated,
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    NightState,
    RoomUpdated,
    availability_updated,
    booking_event,
    booking_modified,
    decode_event,
    encode_event,
    new_event_id,
    room_updated,
)
from roombook.storage.bus.event_routing import (
    ANALYTICS,
    CACHE_INVALIDATION,
    EMAIL_NOTIFICATIONS,
    QUEUE_TYPES,
    SEARCH_INDEXING,
    WAITLIST_NOTIFICATIONS,
    queues_for,
)

NOW_S = 1_900_000_000.0
REQUEST = BookingRequest(
    room_id=7, check_in=dt.date(2030, 6, 1), check_out=dt.date(2030, 6, 4), guests=2, card_token="tok_visa"
)
PENDING = pending_booking(
    booking_id="bk_01hzzzzzzzzzzzzzzzzzzzzzzz",
    user_id=42,
    request=REQUEST,
    quote=stay_quote(REQUEST, price_per_night=decimal.Decimal("99.50"), currency="EUR"),
    idempotency_key="key-1",
    now=dt.datetime.fromtimestamp(NOW_S, dt.UTC),
)


def every_kind_of_event() -> list:
    confirmed = msgspec.structs.replace(PENDING, status=BookingStatus.CONFIRMED, payment_intent_id="pi_1")
    cancelled = msgspec.structs.replace(
        PENDING,
        status=BookingStatus.CANCELLED,
        cancellation_fee=decimal.Decimal("99.50"),
        refund_amount=decimal.Decimal("99.50"),
    )
    refunded = msgspec.structs.replace(cancelled, refund_id="re_1")
    nights = [NightState(date=dt.date(2030, 6, 1), status="held", version=3)]
    return [
        booking_event(PENDING, region="eu", previous=None, now_s=NOW_S),
        booking_event(confirmed, region="eu", previous=BookingStatus.PENDING, now_s=NOW_S),
        booking_event(cancelled, region="us", previous=BookingStatus.CONFIRMED, now_s=NOW_S),
        booking_event(refunded, region="us", previous=BookingStatus.CANCELLED, now_s=NOW_S, refunded=True),
        booking_modified(confirmed, region="eu", difference=decimal.Decimal("-99.50"), now_s=NOW_S),
        availability_updated(7, nights, now_s=NOW_S),
        room_updated(7, now_s=NOW_S),
    ]


@pytest.mark.parametrize("event", every_kind_of_event(), ids=lambda e: e.type)
def test_every_event_round_trips_through_its_json(event):
    assert decode_event(encode_event(event)) == event
    assert decode_event(encode_event(event).decode()) == event  # as text, as an SQS body arrives


def test_the_type_field_tags_the_union_and_names_the_family():
    types = [e.type for e in every_kind_of_event()]
    assert types == [
        "booking.created",
        "booking.confirmed",
        "booking.cancelled",
        "booking.refunded",
        "booking.modified",
        "availability.updated",
        "room.updated",
    ]
    assert set(types) == EVENT_TYPES
    wire = json.loads(encode_event(room_updated(3, now_s=NOW_S)))
    assert wire["type"] == "room.updated" and wire["schema"] == 1 and wire["room_id"] == 3
    assert wire["occurred_at"].endswith("Z")
    assert [e.family for e in every_kind_of_event()] == ["booking"] * 5 + ["availability", "room"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "booking.exploded", "id": "ev_1", "occurred_at": "2030-01-01T00:00:00Z"}',
        b'{"type": "room.updated", "id": "ev_1", "occurred_at": "2030-01-01T00:00:00Z"}',  # no room_id
        b'{"id": "ev_1", "occurred_at": "2030-01-01T00:00:00Z", "room_id": 1}',  # no type
        b"not json",
    ],
)
def test_anything_but_a_known_complete_event_is_refused(body):
    with pytest.raises(msgspec.DecodeError):
        decode_event(body)


def test_money_travels_as_an_exact_decimal_string():
    event = booking_event(PENDING, region="eu", previous=None, now_s=NOW_S)
    assert json.loads(encode_event(event))["total"] == "298.50"
    assert decode_event(encode_event(event)).total == decimal.Decimal("298.50")


def test_event_ids_are_unique_and_sort_in_creation_order_even_within_a_millisecond():
    ids = [new_event_id(NOW_S) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert new_event_id(NOW_S + 1) > ids[-1]
    assert all(i.startswith("ev_") and len(i) == 29 for i in ids)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (BookingStatus.PENDING, BookingCreated),
        (BookingStatus.CONFIRMED, BookingConfirmed),
        (BookingStatus.CANCELLED, BookingCancelled),
        (BookingStatus.EXPIRED, BookingCancelled),
    ],
)
def test_the_booking_event_follows_the_status_reached(status, kind):
    booking = msgspec.structs.replace(PENDING, status=status)
    event = booking_event(booking, region="eu", previous=BookingStatus.PENDING, now_s=NOW_S)
    assert type(event) is kind
    assert (event.booking_id, event.user_id, event.region, event.status) == (PENDING.id, 42, "eu", status)
    assert (event.check_in, event.check_out, event.nights, event.guests) == (REQUEST.check_in, REQUEST.check_out, 3, 2)


def test_a_booking_event_carries_no_personal_or_payment_data():
    booking = msgspec.structs.replace(PENDING, status=BookingStatus.CONFIRMED, payment_intent_id="pi_secret")
    wire = encode_event(booking_event(booking, region="eu", previous=BookingStatus.PENDING, now_s=NOW_S))
    for secret in (b"tok_visa", b"pi_secret", b"key-1", b"@", PENDING.request_hash.encode()):
        assert secret not in wire


def test_each_queue_gets_exactly_the_types_its_consumer_needs():
    assert queues_for("booking.created") == [ANALYTICS]
    assert queues_for("booking.confirmed") == [EMAIL_NOTIFICATIONS, ANALYTICS]
    assert queues_for("booking.cancelled") == [EMAIL_NOTIFICATIONS, ANALYTICS]
    assert sorted(queues_for("availability.updated")) == sorted([CACHE_INVALIDATION, WAITLIST_NOTIFICATIONS])
    assert sorted(queues_for("room.updated")) == sorted([CACHE_INVALIDATION, SEARCH_INDEXING])


def test_event_structs_are_frozen():
    event = room_updated(1, now_s=NOW_S)
    with pytest.raises(AttributeError):
        event.room_id = 2  # type: ignore[misc]  # the very assignment a frozen struct refuses
    assert isinstance(availability_updated(1, [], now_s=NOW_S), AvailabilityUpdated)
    assert isinstance(event, RoomUpdated)


def test_every_queue_wants_only_event_types_that_exist():
    for queue, types in QUEUE_TYPES.items():
        assert types <= EVENT_TYPES, (queue, types - EVENT_TYPES)
