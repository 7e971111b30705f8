"""bench.core's workload: the aged start puts each room where a long run finds it, and the refill
counts the aged bookings."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

import pytest

from bench.core.workload import WINDOW_NIGHTS, BookedStay, HotRooms, aged_start, full_at

ROOMS = range(1, 1001)


def nights_by_room(bookings: list[BookedStay]) -> dict[int, list[dt.date]]:
    nights: dict[int, list[dt.date]] = defaultdict(list)
    for booking in bookings:
        nights[booking.room_id].extend(booking.nights())
    return nights


def test_the_aged_bookings_fit_the_first_windows_without_overlapping_or_filling_them():
    aged = aged_start(ROOMS, refill_at=0.9, seed=7)
    first, end = HotRooms.window_start(0), HotRooms.window_start(1)
    assert all(first <= b.check_in < b.check_out <= end and 1 <= len(b.nights()) <= 5 for b in aged)
    assert len({b.key for b in aged}) == len(aged)
    for nights in nights_by_room(aged).values():
        assert len(nights) == len(set(nights)), "two aged bookings share a night"
        assert len(nights) < full_at(0.9), "a room starts due for a refill"


def test_the_same_rooms_and_seed_give_the_same_start_and_another_seed_another():
    assert aged_start(range(1, 51), seed=3) == aged_start(range(1, 51), seed=3)
    assert aged_start(range(1, 51), seed=3) != aged_start(range(1, 51), seed=4)
    # a room's start does not depend on which other rooms are hot
    assert [b for b in aged_start(range(1, 51), seed=3) if b.room_id == 9] == aged_start([9], seed=3)


def test_most_rooms_start_nearly_full_as_a_long_run_finds_them():
    """Sequential random 1-5-night stays fill a window to about three quarters quickly and then
    take many attempts for the last gaps, so a moment of a long run mostly finds a room in that
    slow part: the start is neither empty nor uniform in fill (whose median would be 45%)."""
    booked = nights_by_room(aged_start(ROOMS, refill_at=0.9, seed=1))
    fill = [len(booked.get(room_id, [])) / WINDOW_NIGHTS for room_id in ROOMS]
    assert statistics.median(fill) >= 0.7
    assert min(fill) < 0.3, "some rooms are drawn early in their fill"


def test_a_room_started_aged_is_refilled_once_its_remaining_nights_are_booked():
    start = HotRooms.window_start(0)
    aged = [BookedStay("aged-1-0", 1, start, start + dt.timedelta(days=50))]
    refills: list[tuple[int, int]] = []
    rooms = HotRooms(
        [1, 2], refill_at=0.9, on_refill=lambda room, window: refills.append((room, window)), already_booked=aged
    )
    rooms.booked(1, 0, 3)
    assert refills == []
    rooms.booked(1, 0, 1)  # 54 of 60 nights
    assert refills == [(1, 1)]
    rooms.booked(2, 0, 4)
    assert refills == [(1, 1)], "room 2 started empty"


def test_aged_bookings_outside_the_first_window_or_already_due_are_refused():
    late = HotRooms.window_start(1)
    with pytest.raises(ValueError, match="first window"):
        HotRooms([1], already_booked=[BookedStay("k", 1, late, late + dt.timedelta(days=1))])
    start = HotRooms.window_start(0)
    with pytest.raises(ValueError, match="refill"):
        HotRooms([1], already_booked=[BookedStay("k", 1, start, start + dt.timedelta(days=54))])
