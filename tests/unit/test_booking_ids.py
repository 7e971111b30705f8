"""Booking ids: "bk_" + a lower-case ULID, ordered by creation time."""

import re

import pytest

from roombook.domain.bookings import BookingIds, booking_id_time_ms

T0_MS = 1_900_000_000_000


def test_a_booking_id_is_url_safe_and_26_characters_after_its_prefix():
    booking_id = BookingIds().next(T0_MS)

    assert re.fullmatch(r"bk_[0-9a-hjkmnp-tv-z]{26}", booking_id)


def test_booking_ids_sort_by_the_time_they_were_made():
    ids = BookingIds()

    made = [ids.next(T0_MS + step) for step in (0, 1, 2, 1000, 86_400_000)]

    assert made == sorted(made)
    assert [booking_id_time_ms(i) for i in made] == [T0_MS + s for s in (0, 1, 2, 1000, 86_400_000)]


def test_ids_made_in_the_same_millisecond_still_increase():
    ids = BookingIds()

    made = [ids.next(T0_MS) for _ in range(1000)]

    assert made == sorted(made) and len(set(made)) == 1000


def test_ids_keep_increasing_when_the_clock_steps_back():
    ids = BookingIds()
    first = ids.next(T0_MS)

    assert ids.next(T0_MS - 5000) > first


def test_the_random_part_overflowing_borrows_the_next_millisecond():
    ids = BookingIds(randbits=lambda bits: (1 << bits) - 1)
    first = ids.next(T0_MS)

    second = ids.next(T0_MS)

    assert second > first and booking_id_time_ms(second) == T0_MS + 1


def test_two_generators_in_one_millisecond_do_not_collide():
    assert BookingIds().next(T0_MS) != BookingIds().next(T0_MS)


@pytest.mark.parametrize("bad", ["", "bk_", "xx_01j0000000000000000000000", "bk_" + "u" * 26, "bk_" + "0" * 25])
def test_a_malformed_booking_id_has_no_time(bad):
    with pytest.raises(ValueError):
        booking_id_time_ms(bad)
