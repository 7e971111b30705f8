"""The rate calendar: which price each night takes, and replacing a range of it."""

from __future__ import annotations

import datetime as dt
import decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given

from roombook.domain.errors import InvalidStay
from roombook.domain.rates import RateOverride, RatePlan, Weekday, price_stay
from roombook.domain.rooms import Location, Room

D = decimal.Decimal
MONDAY = dt.date(2031, 6, 2)


def room(rates: RatePlan | None = None, price: str = "100.00") -> Room:
    location = Location(city="Lyon", country="FR", timezone="Europe/Paris")
    plan = rates or RatePlan()
    return Room(id=7, title="Double", location=location, price_per_night=D(price), capacity=2, rates=plan)


def day(n: int) -> dt.date:
    return MONDAY + dt.timedelta(days=n)


def override(first: int, last: int, price: str | None, **weekdays: str) -> RateOverride:
    return RateOverride(
        start=day(first),
        end=day(last),
        price=None if price is None else D(price),
        weekdays={Weekday(k): D(v) for k, v in weekdays.items()},
    )


def test_a_room_without_rates_costs_its_base_price_every_night():
    quote = price_stay(room(), day(0), day(3), 2)

    assert [n.price for n in quote.nights] == [D("100.00")] * 3
    assert (quote.total, quote.currency, quote.guests) == (D("300.00"), "EUR", 2)
    assert [n.date for n in quote.nights] == [day(0), day(1), day(2)]


def test_an_override_beats_a_standing_weekday_price_which_beats_the_base_price():
    plan = RatePlan(weekdays={Weekday.SAT: D("150.00"), Weekday.SUN: D("150.00")}, overrides=[override(6, 8, "90.00")])

    quote = price_stay(room(plan), day(4), day(9), 1)  # Fri .. Tue (Sun and Mon overridden)

    assert [n.price for n in quote.nights] == [D("100.00"), D("150.00"), D("90.00"), D("90.00"), D("100.00")]
    assert quote.total == D("530.00")


def test_an_override_can_price_its_own_weekdays_and_otherwise_falls_back_to_the_standing_rules():
    plan = RatePlan(weekdays={Weekday.TUE: D("80.00")}, overrides=[override(0, 7, None, sat="200.00")])

    prices = [n.price for n in price_stay(room(plan), day(0), day(7), 1).nights]

    assert prices == [D("100.00"), D("80.00"), D("100.00"), D("100.00"), D("100.00"), D("200.00"), D("100.00")]


def test_replacing_a_range_cuts_the_overrides_it_overlaps_and_keeps_the_rest():
    plan = RatePlan(overrides=[override(0, 10, "50.00")])

    changed = plan.replaced(override(3, 5, "70.00"))

    assert changed.overrides == [override(0, 3, "50.00"), override(3, 5, "70.00"), override(5, 10, "50.00")]


def test_replacing_a_range_with_no_price_clears_it_back_to_the_standing_rules():
    plan = RatePlan(overrides=[override(0, 10, "50.00")])

    changed = plan.replaced(override(0, 10, None))

    assert changed == RatePlan()


def test_a_range_that_is_none_is_refused():
    with pytest.raises(ValueError, match="after"):
        RatePlan().replaced(override(3, 3, "10.00"))


def test_a_stay_that_is_none_cannot_be_priced():
    with pytest.raises(InvalidStay):
        price_stay(room(), day(3), day(3), 1)


prices = st.decimals(min_value=D("1.00"), max_value=D("999.99"), places=2)
changes = st.lists(
    st.tuples(st.integers(0, 60), st.integers(1, 30), st.one_of(st.none(), prices.map(str))), min_size=1, max_size=12
)


@given(changes=changes)
def test_every_night_costs_what_the_latest_change_covering_it_says_and_a_change_replayed_changes_nothing(changes):
    plan = RatePlan()
    latest: dict[dt.date, D | None] = {}
    for first, length, price in changes:
        change = override(first, first + length, price)
        plan = plan.replaced(change)
        assert plan.replaced(change) == plan  # idempotent
        for n in range(first, first + length):
            latest[day(n)] = None if price is None else D(price)

    quote = price_stay(room(plan), day(0), day(30), 1)

    assert [n.price for n in quote.nights] == [latest.get(n.date) or D("100.00") for n in quote.nights]
    assert quote.total == sum(n.price for n in quote.nights)
    starts = [o.start for o in plan.overrides]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in zip(plan.overrides, plan.overrides[1:], strict=False))
