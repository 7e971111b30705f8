"""When a watch of some nights is told, in the pure domain."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from roombook.domain.nights import Night, NightStatus
from roombook.domain.waitlist import RoomWatch, WatchRequest, freed_for

D = dt.date(2031, 7, 1)
WATCH = RoomWatch(
    room_id=5,
    check_in=D,
    check_out=D + dt.timedelta(days=2),
    user_id=1,
    region="eu",
    created_at=dt.datetime.now(dt.UTC),
)


def night(n: int, status: NightStatus, expires_s: float | None = None) -> Night:
    holder = None if status is NightStatus.AVAILABLE else "h"
    return Night(
        room_id=5, date=D + dt.timedelta(days=n), status=status, holder=holder, hold_expires_at_s=expires_s, version=2
    )


def test_a_watch_is_told_when_a_change_frees_one_of_its_nights_and_all_are_free():
    assert freed_for(WATCH, {D}, [night(0, NightStatus.AVAILABLE)], now_s=0)


def test_a_watch_is_not_told_while_another_of_its_nights_is_taken():
    assert not freed_for(WATCH, {D}, [night(0, NightStatus.AVAILABLE), night(1, NightStatus.BOOKED)], now_s=0)
    assert not freed_for(WATCH, {D}, [night(1, NightStatus.HELD, expires_s=100.0)], now_s=50.0)


def test_a_hold_past_its_time_counts_as_free():
    assert freed_for(WATCH, {D}, [night(1, NightStatus.HELD, expires_s=100.0)], now_s=150.0)


def test_a_change_to_other_nights_tells_nobody():
    assert not freed_for(WATCH, {D + dt.timedelta(days=2)}, [], now_s=0)


@pytest.mark.parametrize(
    "body",
    [
        b'{"check_in": "2031-07-03", "check_out": "2031-07-01"}',
        b'{"check_in": "2031-07-01", "check_out": "2031-09-01"}',
    ],
)
def test_a_watch_of_no_nights_or_too_many_is_refused(body):
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body, type=WatchRequest)
