"""Stay rules and the property's clock: every decision read in the room's own time zone."""

from __future__ import annotations

import datetime as dt
import decimal
import zoneinfo

import hypothesis.strategies as st
import pytest
from hypothesis import given

from roombook.domain.rooms import Location, Room
from roombook.domain.stay_rules import ArrivalRule, StayRefused, StayRule, StayRules, check_stay, local_today

NOW = dt.datetime(2031, 6, 2, 12, 0, tzinfo=dt.UTC)  # a Monday, noon UTC


def at(local: str, zone: str) -> float:
    """unix seconds of a wall-clock time in a zone"""
    return dt.datetime.fromisoformat(local).replace(tzinfo=zoneinfo.ZoneInfo(zone)).timestamp()


def room(rules: StayRules | None = None, zone: str = "UTC", capacity: int = 2) -> Room:
    location = Location(city="Somewhere", country="FR", timezone=zone)
    return Room(
        id=1,
        title="Double",
        location=location,
        price_per_night=decimal.Decimal(100),
        capacity=capacity,
        stay_rules=rules or StayRules(),
    )


def refused(r: Room, check_in: str, check_out: str, now_s: float, guests: int = 1) -> StayRule | None:
    try:
        check_stay(r, dt.date.fromisoformat(check_in), dt.date.fromisoformat(check_out), guests, now_s)
    except StayRefused as exc:
        return exc.rule
    return None


def test_default_rules_take_one_to_thirty_nights_from_today_up_to_eighteen_months_ahead():
    now_s = NOW.timestamp()
    assert refused(room(), "2031-06-02", "2031-06-03", now_s) is None
    assert refused(room(), "2031-06-01", "2031-06-03", now_s) is StayRule.PAST
    assert refused(room(), "2031-06-02", "2031-07-03", now_s) is StayRule.MAX_STAY
    assert refused(room(), "2032-12-01", "2032-12-02", now_s) is None  # 548 days ahead
    assert refused(room(), "2032-12-03", "2032-12-04", now_s) is StayRule.HORIZON
    assert refused(room(), "2031-06-02", "2031-06-03", now_s, guests=3) is StayRule.CAPACITY


def test_today_is_the_propertys_today_far_east_and_far_west_of_utc():
    # 2031-06-02 12:00 UTC is already 06-03 02:00 in Kiritimati (UTC+14), still 06-02 01:00 in Pago Pago (UTC-11)
    now_s = NOW.timestamp()
    kiritimati, pago_pago = room(zone="Pacific/Kiritimati"), room(zone="Pacific/Pago_Pago")

    assert (local_today(kiritimati, now_s), local_today(pago_pago, now_s)) == (dt.date(2031, 6, 3), dt.date(2031, 6, 2))
    assert refused(kiritimati, "2031-06-02", "2031-06-03", now_s) is StayRule.PAST
    assert refused(pago_pago, "2031-06-02", "2031-06-03", now_s) is None
    # half a day later it is 06-02 13:00 in Pago Pago: tonight is still bookable there, and UTC's 06-03 is not past
    assert refused(pago_pago, "2031-06-02", "2031-06-03", NOW.timestamp() + 12 * 3600) is None


def test_the_same_day_cut_off_is_the_propertys_wall_clock_across_a_dst_change():
    rules = StayRules(same_day_cutoff=dt.time(18, 0))
    paris = room(rules, zone="Europe/Paris")
    # 2031-03-30: clocks go 02:00 -> 03:00; 17:59 local is 15:59 UTC, 18:00 local is 16:00 UTC
    assert refused(paris, "2031-03-30", "2031-03-31", at("2031-03-30T17:59", "Europe/Paris")) is None
    assert refused(paris, "2031-03-30", "2031-03-31", at("2031-03-30T18:00", "Europe/Paris")) is StayRule.CUTOFF
    assert refused(paris, "2031-03-31", "2031-04-01", at("2031-03-30T23:00", "Europe/Paris")) is None
    # the day before the change it was UTC+1: 18:00 local was 17:00 UTC
    assert refused(paris, "2031-03-29", "2031-03-30", at("2031-03-29T17:30", "Europe/Paris")) is None
    assert refused(paris, "2031-03-29", "2031-03-30", dt.datetime(2031, 3, 29, 17, 0, tzinfo=dt.UTC).timestamp()) is (
        StayRule.CUTOFF
    )


def test_a_stay_across_a_dst_change_is_its_local_nights_and_past_is_decided_at_local_midnight():
    paris = room(zone="Europe/Paris")
    # 2031-10-26: clocks go 03:00 -> 02:00, the night of the 25th is 25 hours long; still one night
    assert at("2031-10-26T12:00", "Europe/Paris") - at("2031-10-25T12:00", "Europe/Paris") == 25 * 3600
    assert refused(paris, "2031-10-25", "2031-10-28", at("2031-10-25T00:00", "Europe/Paris")) is None
    # 00:30 local on the 27th (after the change, UTC+1) is 23:30 UTC on the 26th: the 26th is past there
    now_s = at("2031-10-27T00:30", "Europe/Paris")
    assert dt.datetime.fromtimestamp(now_s, dt.UTC).date() == dt.date(2031, 10, 26)
    assert refused(paris, "2031-10-26", "2031-10-27", now_s) is StayRule.PAST
    assert refused(room(zone="UTC"), "2031-10-26", "2031-10-27", now_s) is None


def test_length_of_stay_follows_the_arrival_dates_rule():
    july = ArrivalRule(start=dt.date(2031, 7, 1), end=dt.date(2031, 8, 1), min_nights=3, max_nights=7)
    r = room(StayRules(min_nights=2, arrivals=[july]))
    now_s = NOW.timestamp()

    assert refused(r, "2031-06-10", "2031-06-11", now_s) is StayRule.MIN_STAY
    assert refused(r, "2031-06-10", "2031-06-12", now_s) is None
    assert refused(r, "2031-07-31", "2031-08-02", now_s) is StayRule.MIN_STAY  # arrives in July: 3 at least
    assert refused(r, "2031-07-31", "2031-08-03", now_s) is None
    assert refused(r, "2031-07-10", "2031-07-18", now_s) is StayRule.MAX_STAY
    assert refused(r, "2031-06-30", "2031-07-02", now_s) is None  # arrives in June: the room's rule


def test_closed_to_arrival_and_departure_dates_refuse_only_stays_starting_or_ending_on_them():
    r = room(StayRules(closed_to_arrival=[dt.date(2031, 6, 10)], closed_to_departure=[dt.date(2031, 6, 12)]))
    now_s = NOW.timestamp()

    assert refused(r, "2031-06-10", "2031-06-11", now_s) is StayRule.CLOSED_TO_ARRIVAL
    assert refused(r, "2031-06-09", "2031-06-12", now_s) is StayRule.CLOSED_TO_DEPARTURE
    assert refused(r, "2031-06-09", "2031-06-13", now_s) is None  # staying through both is fine


def test_rules_that_contradict_themselves_are_refused():
    with pytest.raises(ValueError, match="min_nights"):
        StayRules(min_nights=5, max_nights=2)
    with pytest.raises(ValueError, match="after"):
        ArrivalRule(start=dt.date(2031, 7, 1), end=dt.date(2031, 7, 1))


ZONES = ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu"]


@given(zone=st.sampled_from(ZONES), now_s=st.floats(min_value=1.9e9, max_value=2.0e9))
def test_tonight_in_the_propertys_zone_is_bookable_and_last_night_never_is(zone, now_s):
    r = room(zone=zone)
    today = dt.datetime.fromtimestamp(now_s, zoneinfo.ZoneInfo(zone)).date()
    tonight = (today.isoformat(), (today + dt.timedelta(days=1)).isoformat())
    last_night = ((today - dt.timedelta(days=1)).isoformat(), today.isoformat())

    assert refused(r, *tonight, now_s) is None
    assert refused(r, *last_night, now_s) is StayRule.PAST
