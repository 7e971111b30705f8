"""Cancellation policies and a guest's history, in the pure domain."""

from __future__ import annotations

import datetime as dt
import decimal
import zoneinfo

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roombook.domain.bookings import Booking, BookingState, BookingStatus, Refusal, shown_state
from roombook.domain.cancellation import CancellationFee, CancellationPolicy, cancellation_terms
from roombook.domain.rates import NightPrice
from roombook.domain.rooms import Location, Room
from roombook.domain.stay_rules import local_today

D = decimal.Decimal
TOTAL, FIRST = D("300.00"), D("100.00")
WEEK_NOTICE = CancellationPolicy(free_until_days=7, fee=CancellationFee.PERCENT, fee_percent=D("50"))


def _at(iso: str, zone: str = "UTC") -> float:
    return dt.datetime.fromisoformat(iso).replace(tzinfo=zoneinfo.ZoneInfo(zone)).timestamp()


def test_with_no_policy_cancelling_is_free():
    terms = cancellation_terms(None, total=TOTAL, first_night=FIRST, days_before=-3)
    assert (terms.fee, terms.refund) == (D("0.00"), TOTAL)


@pytest.mark.parametrize(("days_before", "fee"), [(30, "0.00"), (7, "0.00"), (6, "150.00"), (0, "150.00")])
def test_a_percent_fee_applies_from_the_day_the_free_period_ends(days_before, fee):
    terms = cancellation_terms(WEEK_NOTICE, total=TOTAL, first_night=FIRST, days_before=days_before)
    assert terms.fee == D(fee) and terms.fee + terms.refund == TOTAL


def test_a_first_night_fee_keeps_the_price_of_the_first_night():
    policy = CancellationPolicy(free_until_days=2, fee=CancellationFee.FIRST_NIGHT)
    terms = cancellation_terms(policy, total=TOTAL, first_night=FIRST, days_before=1)
    assert (terms.fee, terms.refund) == (FIRST, D("200.00"))


def test_a_non_refundable_rate_refunds_nothing_even_months_ahead():
    policy = CancellationPolicy(free_until_days=7, non_refundable=True)
    terms = cancellation_terms(policy, total=TOTAL, first_night=FIRST, days_before=200)
    assert (terms.fee, terms.refund) == (TOTAL, D("0.00"))


@given(
    total_cents=st.integers(min_value=1, max_value=10**9),
    nights=st.integers(min_value=1, max_value=30),
    days_before=st.integers(min_value=-30, max_value=400),
    free_until=st.integers(min_value=0, max_value=365),
    percent_cents=st.integers(min_value=0, max_value=10_000),
    fee=st.sampled_from(CancellationFee),
    non_refundable=st.booleans(),
)
def test_the_fee_and_the_refund_add_up_to_what_was_paid_and_neither_is_negative(
    total_cents, nights, days_before, free_until, percent_cents, fee, non_refundable
):
    total = D(total_cents) / 100
    first = (total / nights).quantize(D("0.01"))
    policy = CancellationPolicy(
        free_until_days=free_until, fee=fee, fee_percent=D(percent_cents) / 100, non_refundable=non_refundable
    )
    terms = cancellation_terms(policy, total=total, first_night=first, days_before=days_before)
    assert terms.fee + terms.refund == total
    assert D(0) <= terms.fee <= total and terms.refund >= 0
    assert terms.fee == terms.fee.quantize(D("0.01"))


def _room_in(zone: str) -> Room:
    return Room(
        id=7,
        title="Double",
        location=Location(city="X", country="JP", timezone=zone),
        price_per_night=FIRST,
        capacity=2,
    )


def test_days_before_arrival_count_from_the_propertys_own_today():
    # 08:00 on the 10th in Tokyo is still 23:00 on the 9th in UTC: in Tokyo the day of the fee has come
    policy = CancellationPolicy(free_until_days=2, fee=CancellationFee.FIRST_NIGHT)
    booking = msgspec.structs.replace(_BOOKING, check_in=dt.date(2031, 3, 12), cancellation_policy=policy)
    now_s = _at("2031-03-10T08:00", "Asia/Tokyo")
    fees = {
        zone: booking.cancellation_terms(today=local_today(_room_in(zone), now_s)).fee
        for zone in ("Asia/Tokyo", "UTC", "Pacific/Honolulu")
    }
    assert fees == {"Asia/Tokyo": D("0.00"), "UTC": D("0.00"), "Pacific/Honolulu": D("0.00")}
    late = booking.cancellation_terms(today=local_today(_room_in("Asia/Tokyo"), _at("2031-03-11T00:30", "Asia/Tokyo")))
    still_free = booking.cancellation_terms(today=local_today(_room_in("UTC"), _at("2031-03-11T00:30", "Asia/Tokyo")))
    assert (late.fee, still_free.fee) == (FIRST, D("0.00"))  # the 11th in Tokyo, still the 10th in UTC


def test_a_first_night_fee_is_the_stored_price_of_the_first_night():
    # a weekend-priced first night: not the stay's average night
    nights = [
        NightPrice(date=dt.date(2031, 3, 10), price=D("150.00")),
        NightPrice(date=dt.date(2031, 3, 11), price=D("75.00")),
        NightPrice(date=dt.date(2031, 3, 12), price=D("75.00")),
    ]
    policy = CancellationPolicy(free_until_days=1, fee=CancellationFee.FIRST_NIGHT)
    booking = msgspec.structs.replace(_BOOKING, night_prices=nights, cancellation_policy=policy)
    assert booking.first_night_price() == D("150.00")
    terms = booking.cancellation_terms(today=dt.date(2031, 3, 10))
    assert (terms.fee, terms.refund) == (D("150.00"), D("150.00"))
    # a booking made before per-night prices: its average night
    assert msgspec.structs.replace(booking, night_prices=[]).first_night_price() == D("100.00")


@pytest.mark.parametrize(
    "body",
    [
        b'{"fee_percent": 101}',
        b'{"fee_percent": -1}',
        b'{"fee_percent": 1.234}',
        b'{"free_until_days": -1}',
        b'{"free_until_days": 366}',
        b'{"fee": "all"}',
        b'{"refund": 1}',
    ],
)
def test_a_policy_out_of_its_bounds_is_refused_when_decoded(body):
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body, type=CancellationPolicy)


# -- a guest's history ------------------------------------------------------------------------------

_NOW = dt.datetime(2031, 3, 1, tzinfo=dt.UTC)
_BOOKING = Booking(
    id="bk_1",
    user_id=1,
    room_id=7,
    check_in=dt.date(2031, 3, 10),
    check_out=dt.date(2031, 3, 13),
    guests=2,
    nights=3,
    status=BookingStatus.CONFIRMED,
    total_price=TOTAL,
    currency="EUR",
    idempotency_key="k",
    request_hash="h",
    created_at=_NOW,
    updated_at=_NOW,
)


@pytest.mark.parametrize(
    ("status", "refusal", "shown"),
    [
        (BookingStatus.CONFIRMED, None, (BookingState.CONFIRMED, None)),
        (BookingStatus.PENDING, None, (BookingState.PENDING, None)),
        (BookingStatus.CANCELLED, None, (BookingState.CANCELLED, "cancelled_by_guest")),
        (BookingStatus.CANCELLED, Refusal(kind="payment_declined"), (BookingState.REFUSED, "payment_declined")),
        (BookingStatus.CANCELLED, Refusal(kind="nights_unavailable"), (BookingState.REFUSED, "nights_unavailable")),
        (BookingStatus.EXPIRED, Refusal(kind="hold_expired"), (BookingState.EXPIRED, "hold_expired")),
    ],
)
def test_the_history_tells_a_refused_attempt_from_a_cancelled_or_expired_booking(status, refusal, shown):
    booking = msgspec.structs.replace(_BOOKING, status=status, refusal=refusal)
    assert shown_state(booking) == shown


def test_a_booking_is_cancelled_under_the_policy_it_was_booked_with():
    booking = msgspec.structs.replace(_BOOKING, cancellation_policy=WEEK_NOTICE)
    terms = booking.cancellation_terms(today=dt.date(2031, 3, 5))
    assert (terms.fee, terms.refund) == (D("150.00"), D("150.00"))
    early = booking.cancellation_terms(today=dt.date(2031, 3, 1))
    assert early.fee == D("0.00")
