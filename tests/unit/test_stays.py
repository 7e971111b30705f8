import datetime as dt

import msgspec
import pytest

from roombook.domain.errors import InvalidStay, RoombookError
from roombook.domain.stays import MAX_NIGHTS, Stay

JUNE_1 = dt.date(2025, 6, 1)


def test_a_stay_is_the_nights_from_check_in_up_to_but_not_including_check_out():
    stay = Stay(check_in=JUNE_1, check_out=dt.date(2025, 6, 4))

    assert stay.nights() == [dt.date(2025, 6, 1), dt.date(2025, 6, 2), dt.date(2025, 6, 3)]
    assert stay.night_count == 3


def test_a_one_night_stay_is_the_check_in_night_only():
    stay = Stay(check_in=JUNE_1, check_out=dt.date(2025, 6, 2))

    assert stay.nights() == [JUNE_1]


def test_a_stay_runs_across_month_year_and_leap_day_boundaries():
    stay = Stay(check_in=dt.date(2027, 12, 31), check_out=dt.date(2028, 3, 1))

    nights = stay.nights()

    assert nights[0] == dt.date(2027, 12, 31)
    assert nights[-1] == dt.date(2028, 2, 29)
    assert stay.night_count == len(nights) == 61


@pytest.mark.parametrize("check_out", [JUNE_1, dt.date(2025, 5, 31)], ids=["same-day", "day-before"])
def test_check_out_must_be_after_check_in(check_out):
    with pytest.raises(InvalidStay, match="must be after check_in"):
        Stay(check_in=JUNE_1, check_out=check_out)


def test_a_stay_has_at_most_366_nights():
    longest = Stay(check_in=JUNE_1, check_out=JUNE_1 + dt.timedelta(days=MAX_NIGHTS))

    assert MAX_NIGHTS == 366
    assert longest.night_count == MAX_NIGHTS
    with pytest.raises(InvalidStay, match="at most 366 nights"):
        Stay(check_in=JUNE_1, check_out=JUNE_1 + dt.timedelta(days=MAX_NIGHTS + 1))


def test_an_invalid_stay_is_both_a_roombook_error_and_a_value_error():
    assert issubclass(InvalidStay, RoombookError)
    assert issubclass(InvalidStay, ValueError)


def test_decoding_an_invalid_stay_is_a_validation_error():
    with pytest.raises(msgspec.ValidationError, match="must be after check_in"):
        msgspec.json.decode(b'{"check_in": "2025-06-02", "check_out": "2025-06-01"}', type=Stay)


def test_a_stay_decodes_from_iso_dates():
    stay = msgspec.json.decode(b'{"check_in": "2025-06-01", "check_out": "2025-06-03"}', type=Stay)

    assert stay == Stay(check_in=JUNE_1, check_out=dt.date(2025, 6, 3))
