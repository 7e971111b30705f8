"""Specifications of ShardCalendar.move_booking: a booking's nights change in one step."""

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_calendar import ROOM, booking, day, hold, holders, snapshot, statuses, stay

from roombook.domain.calendar import HoldStatus, ShardCalendar
from roombook.domain.commands import MoveBooking, command_batch
from roombook.domain.errors import NightsUnavailable, UnknownHold
from roombook.domain.nights import NightStatus

OTHER_ROOM = 9
AVAILABLE, BOOKED = NightStatus.AVAILABLE, NightStatus.BOOKED


def move(calendar, booking_id, first, check_out, *, room=ROOM, to_room=ROOM, now=0.0):
    return calendar.move_booking(
        booking_id=booking_id, room_id=room, to_room_id=to_room, stay=stay(first, check_out), now_s=now
    )


def test_a_later_check_out_takes_the_new_nights_and_keeps_the_old_ones():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 4)

    change = move(calendar, "bk", 2, 6)

    assert change.view.nights == [day(n) for n in range(2, 6)] and change.view.status is HoldStatus.BOOKED
    assert holders(calendar, 1, 7) == [None, "bk", "bk", "bk", "bk", None]
    assert {n.date for n in change.after} == {day(4), day(5)}  # the kept nights are not rewritten


def test_an_early_check_out_frees_the_remaining_nights():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 6)

    change = move(calendar, "bk", 2, 3)

    assert holders(calendar, 2, 6) == ["bk", None, None, None]
    assert [(n.date, n.status) for n in change.after] == [(day(n), AVAILABLE) for n in (3, 4, 5)]
    hold(calendar, "next", 3, 6)  # someone else can have them at once


def test_a_move_to_nights_someone_holds_is_refused_and_changes_nothing():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 4)
    hold(calendar, "theirs", 5, 6)
    before = snapshot(calendar, ["bk", "theirs"])

    with pytest.raises(NightsUnavailable) as refused:
        move(calendar, "bk", 3, 7)

    assert refused.value.nights == [day(5)]
    assert snapshot(calendar, ["bk", "theirs"]) == before


def test_a_move_to_another_room_of_the_shard_frees_the_old_room_in_the_same_step():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 4)

    change = move(calendar, "bk", 2, 4, to_room=OTHER_ROOM)

    assert statuses(calendar, 2, 4) == [AVAILABLE, AVAILABLE]
    assert holders(calendar, 2, 4, room=OTHER_ROOM) == ["bk", "bk"]
    assert change.view.room_id == OTHER_ROOM and calendar.hold("bk").room_id == OTHER_ROOM
    assert {(n.room_id, n.status) for n in change.after} == {(ROOM, AVAILABLE), (OTHER_ROOM, BOOKED)}


def test_moving_again_to_the_same_nights_changes_nothing():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 4)
    move(calendar, "bk", 3, 5)

    again = move(calendar, "bk", 3, 5)
    moved_room = move(calendar, "bk", 3, 5, to_room=ROOM)

    assert again.after == [] and moved_room.after == []


def test_only_a_booking_moves_not_a_hold_nor_what_is_gone():
    calendar = ShardCalendar()
    hold(calendar, "held", 2, 4)
    booking(calendar, "gone", 6, 7)
    calendar.cancel(booking_id="gone", room_id=ROOM, now_s=1.0)

    for booking_id in ("held", "gone", "never"):
        with pytest.raises(UnknownHold):
            move(calendar, booking_id, 2, 5)
    with pytest.raises(UnknownHold):  # a booking of another room is not this room's to move
        booking(calendar, "elsewhere", 8, 9, room=OTHER_ROOM)
        move(calendar, "elsewhere", 8, 10)


def test_an_expired_hold_on_a_new_night_ends_whole_and_the_move_goes_through():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 4)
    hold(calendar, "stale", 4, 7, now=0.0)

    move(calendar, "bk", 2, 5, now=120.0)

    assert holders(calendar, 4, 7) == ["bk", None, None]
    assert calendar.hold("stale") is None


def test_undo_puts_a_move_back_whole():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 5)
    before = snapshot(calendar, ["bk"])

    calendar.undo(move(calendar, "bk", 4, 8, to_room=OTHER_ROOM))

    assert snapshot(calendar, ["bk"]) == before


@given(
    booked=st.tuples(st.integers(0, 20), st.integers(1, 6)),
    others=st.lists(st.tuples(st.integers(0, 25), st.integers(1, 4), st.booleans()), max_size=6),
    target=st.tuples(st.integers(0, 20), st.integers(1, 8), st.booleans()),
)
def test_a_move_leaves_the_booking_the_whole_new_stay_or_the_whole_old_one_never_a_mix(booked, others, target):
    calendar = ShardCalendar()
    first, length = booked
    booking(calendar, "bk", first, first + length)
    for i, (start, size, other_room) in enumerate(others):
        with contextlib.suppress(NightsUnavailable):  # some overlap: those are simply not held
            hold(calendar, f"h{i}", start, start + size, room=OTHER_ROOM if other_room else ROOM)
    old = {(ROOM, day(n)) for n in range(first, first + length)}
    start, size, to_other = target
    to_room = OTHER_ROOM if to_other else ROOM
    new = {(to_room, day(n)) for n in range(start, start + size)}
    rows_before = sorted(calendar.rows(), key=lambda n: (n.room_id, n.date))

    try:
        move(calendar, "bk", start, start + size, to_room=to_room, now=1.0)
    except NightsUnavailable:
        assert sorted(calendar.rows(), key=lambda n: (n.room_id, n.date)) == rows_before
        owned = old
    else:
        owned = new
    mine = {(n.room_id, n.date) for n in calendar.rows() if n.holder == "bk"}
    assert mine == owned
    assert all(n.status is BOOKED for n in calendar.rows() if n.holder == "bk")
    others_before = {(n.room_id, n.date, n.holder) for n in rows_before if n.holder not in (None, "bk")}
    others_after = {(n.room_id, n.date, n.holder) for n in calendar.rows() if n.holder not in (None, "bk")}
    assert others_after == others_before  # nobody else's night was taken


def test_a_move_bumps_each_changed_night_once():
    calendar = ShardCalendar()
    booking(calendar, "bk", 2, 4)
    versions = {n.date: n.version for n in calendar.rows()}

    change = move(calendar, "bk", 3, 5)

    assert [(n.date, n.version) for n in change.after] == [(day(2), versions[day(2)] + 1), (day(4), 1)]
    assert msgspec.structs.asdict(calendar.night(ROOM, day(3)))["version"] == versions[day(3)]


def test_a_move_travels_to_the_shard_as_itself():
    command = MoveBooking(room_id=ROOM, booking_id="bk", to_room_id=OTHER_ROOM, stay=stay(1, 3))
    assert command_batch.decode(msgspec.msgpack.encode([command])) == [command]
