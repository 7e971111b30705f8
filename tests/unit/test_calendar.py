"""Specifications of ShardCalendar: holds, bookings, expiry, versions, undo and recovery.

The clock is explicit: every command gets `now_s`. Holds default to a 60 s TTL placed at t=0.
"""

import datetime as dt

import pytest

from roombook.domain.calendar import ShardCalendar
from roombook.domain.errors import HoldExpired, HoldMismatch, NightsUnavailable, UnknownHold
from roombook.domain.nights import Night, NightStatus
from roombook.domain.stays import Stay

JUNE_1 = dt.date(2025, 6, 1)
ROOM = 7
TTL_S = 60.0


def day(n: int) -> dt.date:
    """The n-th night after June 1st (day(0) is June 1st)."""
    return JUNE_1 + dt.timedelta(days=n)


def stay(first: int, check_out: int) -> Stay:
    return Stay(check_in=day(first), check_out=day(check_out))


def hold(calendar, hold_id, first, check_out, *, room=ROOM, now=0.0, ttl=TTL_S):
    return calendar.place_hold(hold_id=hold_id, room_id=room, stay=stay(first, check_out), ttl_s=ttl, now_s=now)


def booking(calendar, booking_id, first, check_out, *, room=ROOM, now=0.0):
    hold(calendar, booking_id, first, check_out, room=room, now=now)
    return calendar.confirm(hold_id=booking_id, room_id=room, now_s=now)


def statuses(calendar, first, check_out, *, room=ROOM):
    return [calendar.night(room, day(n)).status for n in range(first, check_out)]


def holders(calendar, first, check_out, *, room=ROOM):
    return [calendar.night(room, day(n)).holder for n in range(first, check_out)]


def snapshot(calendar, hold_ids):
    """A calendar's rows and holds. (next_deadline_s is left out: it may be an early, stale wake-up.)"""
    rows = sorted(calendar.rows(), key=lambda night: (night.room_id, night.date))
    return rows, {hold_id: calendar.hold(hold_id) for hold_id in hold_ids}


HELD, BOOKED, FREE = NightStatus.HELD, NightStatus.BOOKED, NightStatus.AVAILABLE


# -- placing a hold ----------------------------------------------------------------------------


def test_a_hold_covers_the_nights_from_check_in_up_to_but_not_including_check_out():
    calendar = ShardCalendar()

    change = hold(calendar, "h1", 1, 4)

    assert change.view.status == "held"
    assert change.view.nights == [day(1), day(2), day(3)]
    assert change.view.expires_at_s == TTL_S
    assert statuses(calendar, 0, 5) == [FREE, HELD, HELD, HELD, FREE]


def test_a_hold_ending_on_a_check_in_day_does_not_collide_with_the_next_stay():
    calendar = ShardCalendar()
    hold(calendar, "first", 1, 3)

    hold(calendar, "second", 3, 5)

    assert holders(calendar, 1, 5) == ["first", "first", "second", "second"]


def test_hold_fails_when_any_night_is_taken():
    calendar = ShardCalendar()
    hold(calendar, "h1", 3, 4)

    with pytest.raises(NightsUnavailable):
        hold(calendar, "h2", 1, 5)


def test_a_refused_hold_holds_no_night():
    calendar = ShardCalendar()
    hold(calendar, "h1", 3, 4)
    rows_before = calendar.rows()

    with pytest.raises(NightsUnavailable):
        hold(calendar, "h2", 1, 5)

    assert calendar.rows() == rows_before
    assert calendar.hold("h2") is None


def test_nights_unavailable_lists_exactly_the_taken_nights():
    calendar = ShardCalendar()
    hold(calendar, "held", 1, 2)
    booking(calendar, "booked", 3, 5)

    with pytest.raises(NightsUnavailable) as refused:
        hold(calendar, "h3", 0, 6)

    assert refused.value.room_id == ROOM
    assert refused.value.nights == [day(1), day(3), day(4)]


def test_the_same_night_of_another_room_is_not_taken():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3, room=1)

    change = hold(calendar, "h2", 1, 3, room=2)

    assert change.view.room_id == 2
    assert holders(calendar, 1, 3, room=1) == ["h1", "h1"]


def test_replaying_a_hold_returns_it_unchanged_and_writes_no_rows():
    calendar = ShardCalendar()
    first = hold(calendar, "h1", 1, 3, now=0.0)

    replay = hold(calendar, "h1", 1, 3, now=30.0)

    assert replay.view == first.view
    assert replay.after == replay.before == []
    assert calendar.night(ROOM, day(1)).version == 1


def test_replaying_a_confirmed_hold_returns_the_booking():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 3)

    replay = hold(calendar, "b1", 1, 3, now=10.0)

    assert replay.view.status == "booked"
    assert replay.after == []


@pytest.mark.parametrize(
    ("room", "first", "check_out"),
    [(ROOM, 1, 4), (ROOM, 2, 4), (ROOM, 5, 6), (ROOM + 1, 1, 3)],
    ids=["more-nights", "fewer-nights", "other-nights", "other-room"],
)
def test_reusing_a_live_hold_id_for_other_nights_is_a_mismatch(room, first, check_out):
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    with pytest.raises(HoldMismatch):
        hold(calendar, "h1", first, check_out, room=room, now=10.0)

    assert holders(calendar, 1, 3) == ["h1", "h1"]


def test_reusing_a_booking_id_for_other_nights_is_a_mismatch():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 3)

    with pytest.raises(HoldMismatch):
        hold(calendar, "b1", 4, 6, now=1_000.0)


# -- confirming --------------------------------------------------------------------------------


def test_confirm_turns_a_live_hold_into_a_booking():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    change = calendar.confirm(hold_id="h1", room_id=ROOM, now_s=59.0)

    assert change.view.status == "booked"
    assert change.view.expires_at_s is None
    assert statuses(calendar, 1, 3) == [BOOKED, BOOKED]
    assert holders(calendar, 1, 3) == ["h1", "h1"]


def test_confirm_is_idempotent():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    first = calendar.confirm(hold_id="h1", room_id=ROOM, now_s=10.0)

    again = calendar.confirm(hold_id="h1", room_id=ROOM, now_s=10_000.0)

    assert again.view == first.view
    assert again.after == []
    assert calendar.night(ROOM, day(1)).version == 2


def test_a_booking_never_expires():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 3)

    assert calendar.expire_due(1e12) == []
    with pytest.raises(NightsUnavailable):
        hold(calendar, "h2", 1, 2, now=1e12)


def test_an_expired_hold_cannot_be_confirmed():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    with pytest.raises(HoldExpired):
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=61.0)

    assert statuses(calendar, 1, 3) == [HELD, HELD]


def test_a_hold_cannot_be_confirmed_exactly_at_its_deadline():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    with pytest.raises(HoldExpired):
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=TTL_S)


def test_an_expired_hold_cannot_be_confirmed_after_the_sweep_ended_it():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    calendar.expire_due(61.0)

    with pytest.raises(HoldExpired):
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=61.0)


def test_an_expired_hold_cannot_be_confirmed_after_another_hold_took_its_nights():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    hold(calendar, "h2", 2, 3, now=61.0)

    with pytest.raises(HoldExpired):
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=61.0)


def test_an_expired_hold_released_late_still_reports_expired_on_confirm():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    calendar.release(hold_id="h1", room_id=ROOM, now_s=61.0)

    with pytest.raises(HoldExpired):
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=61.0)


def test_confirming_an_unknown_id_fails():
    calendar = ShardCalendar()

    with pytest.raises(UnknownHold):
        calendar.confirm(hold_id="nobody", room_id=ROOM, now_s=0.0)


def test_confirming_a_hold_on_the_wrong_room_fails():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    with pytest.raises(UnknownHold):
        calendar.confirm(hold_id="h1", room_id=ROOM + 1, now_s=0.0)


def test_a_released_hold_cannot_be_confirmed():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    calendar.release(hold_id="h1", room_id=ROOM, now_s=1.0)

    with pytest.raises(UnknownHold):
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=2.0)


# -- releasing and cancelling ------------------------------------------------------------------


def test_release_frees_every_night_of_a_hold():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 4)

    change = calendar.release(hold_id="h1", room_id=ROOM, now_s=1.0)

    assert change.view.status == "released"
    assert statuses(calendar, 1, 4) == [FREE, FREE, FREE]
    assert calendar.hold("h1") is None


def test_release_is_idempotent():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    calendar.release(hold_id="h1", room_id=ROOM, now_s=1.0)
    rows_before = calendar.rows()

    again = calendar.release(hold_id="h1", room_id=ROOM, now_s=2.0)

    assert again.view.status == "released"
    assert again.after == []
    assert calendar.rows() == rows_before


def test_releasing_an_unknown_id_changes_nothing():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    change = calendar.release(hold_id="nobody", room_id=ROOM, now_s=1.0)

    assert change.after == []
    assert holders(calendar, 1, 3) == ["h1", "h1"]


def test_releasing_a_hold_on_the_wrong_room_changes_nothing():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    change = calendar.release(hold_id="h1", room_id=ROOM + 1, now_s=1.0)

    assert change.after == []
    assert holders(calendar, 1, 3) == ["h1", "h1"]


def test_release_never_frees_a_booking():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 3)

    change = calendar.release(hold_id="b1", room_id=ROOM, now_s=1.0)

    assert change.view.status == "booked"
    assert change.after == []
    assert statuses(calendar, 1, 3) == [BOOKED, BOOKED]


def test_cancel_frees_every_night_of_a_booking():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 4)

    change = calendar.cancel(booking_id="b1", room_id=ROOM, now_s=1.0)

    assert change.view.status == "cancelled"
    assert statuses(calendar, 1, 4) == [FREE, FREE, FREE]
    assert hold(calendar, "h2", 1, 4, now=1.0).view.status == "held"


def test_cancel_is_idempotent():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 3)
    calendar.cancel(booking_id="b1", room_id=ROOM, now_s=1.0)
    rows_before = calendar.rows()

    again = calendar.cancel(booking_id="b1", room_id=ROOM, now_s=2.0)

    assert again.view.status == "cancelled"
    assert again.after == []
    assert calendar.rows() == rows_before


def test_cancel_also_frees_a_hold_that_was_never_confirmed():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    calendar.cancel(booking_id="h1", room_id=ROOM, now_s=1.0)

    assert statuses(calendar, 1, 3) == [FREE, FREE]


def test_a_cancelled_booking_cannot_be_confirmed_again():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 3)
    calendar.cancel(booking_id="b1", room_id=ROOM, now_s=1.0)

    with pytest.raises(UnknownHold):
        calendar.confirm(hold_id="b1", room_id=ROOM, now_s=2.0)


# -- expiry ------------------------------------------------------------------------------------


def test_a_held_night_past_its_expiry_is_free_for_a_new_hold_before_any_sweep():
    calendar = ShardCalendar()
    hold(calendar, "stale", 1, 3)

    change = hold(calendar, "fresh", 1, 3, now=TTL_S)

    assert change.view.status == "held"
    assert holders(calendar, 1, 3) == ["fresh", "fresh"]


def test_a_stale_hold_ends_whole_when_a_new_hold_takes_one_of_its_nights():
    calendar = ShardCalendar()
    hold(calendar, "stale", 1, 4)

    hold(calendar, "fresh", 3, 5, now=61.0)

    assert holders(calendar, 1, 5) == [None, None, "fresh", "fresh"]
    assert calendar.hold("stale") is None


def test_a_stale_hold_that_ended_is_not_swept_again():
    calendar = ShardCalendar()
    hold(calendar, "stale", 1, 3)
    hold(calendar, "fresh", 2, 3, now=61.0, ttl=1_000.0)

    assert calendar.expire_due(100.0) == []
    assert holders(calendar, 1, 3) == [None, "fresh"]


def test_an_expired_hold_id_can_hold_again_on_the_same_nights():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    change = hold(calendar, "h1", 1, 3, now=100.0)

    assert change.view.expires_at_s == 160.0
    assert calendar.confirm(hold_id="h1", room_id=ROOM, now_s=159.0).view.status == "booked"


@pytest.mark.parametrize("swept", [False, True], ids=["before-sweep", "after-sweep"])
def test_an_expired_hold_id_can_hold_other_nights_whether_or_not_the_sweep_ran(swept):
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    if swept:
        calendar.expire_due(100.0)

    change = hold(calendar, "h1", 2, 5, now=100.0)

    assert change.view.nights == [day(2), day(3), day(4)]
    assert holders(calendar, 1, 5) == [None, "h1", "h1", "h1"]


def test_expire_due_releases_holds_in_deadline_order():
    calendar = ShardCalendar()
    hold(calendar, "late", 1, 2, ttl=30.0)
    hold(calendar, "early", 2, 3, ttl=10.0)
    hold(calendar, "middle", 3, 4, ttl=20.0)

    changes = calendar.expire_due(100.0)

    assert [change.view.hold_id for change in changes] == ["early", "middle", "late"]
    assert all(change.view.status == "expired" for change in changes)
    assert statuses(calendar, 1, 4) == [FREE, FREE, FREE]


def test_expire_due_never_releases_a_hold_before_its_deadline():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    assert calendar.expire_due(TTL_S - 0.001) == []
    assert holders(calendar, 1, 3) == ["h1", "h1"]


def test_a_hold_is_due_exactly_at_its_deadline():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)

    changes = calendar.expire_due(TTL_S)

    assert [change.view.hold_id for change in changes] == ["h1"]
    assert [night.status for night in changes[0].after] == [FREE, FREE]


def test_expire_due_skips_confirmed_and_released_holds():
    calendar = ShardCalendar()
    booking(calendar, "booked", 1, 2)
    hold(calendar, "released", 2, 3)
    calendar.release(hold_id="released", room_id=ROOM, now_s=1.0)

    assert calendar.expire_due(1_000.0) == []
    assert statuses(calendar, 1, 3) == [BOOKED, FREE]


def test_a_hold_placed_again_after_expiry_is_due_at_its_new_deadline():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    hold(calendar, "h1", 1, 3, now=100.0)

    assert calendar.expire_due(159.0) == []
    assert [change.view.hold_id for change in calendar.expire_due(160.0)] == ["h1"]


def test_the_next_deadline_is_the_earliest_live_hold_deadline():
    calendar = ShardCalendar()
    assert calendar.next_deadline_s() is None
    hold(calendar, "h1", 1, 2, ttl=30.0)
    hold(calendar, "h2", 2, 3, ttl=10.0)

    assert calendar.next_deadline_s() == 10.0
    calendar.expire_due(10.0)
    assert calendar.next_deadline_s() == 30.0


def test_a_guest_sees_expired_held_nights_as_available():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    booking(calendar, "b1", 3, 4)

    seen = calendar.nights_between(ROOM, day(0), day(4), now_s=61.0)

    assert [night.status for night in seen] == [FREE, FREE, FREE, BOOKED]
    assert [night.date for night in seen] == [day(0), day(1), day(2), day(3)]


# -- versions ----------------------------------------------------------------------------------


def test_every_change_bumps_each_touched_night_version_by_one():
    calendar = ShardCalendar()

    placed = hold(calendar, "h1", 1, 3)
    confirmed = calendar.confirm(hold_id="h1", room_id=ROOM, now_s=1.0)
    cancelled = calendar.cancel(booking_id="h1", room_id=ROOM, now_s=2.0)

    for change, version in [(placed, 1), (confirmed, 2), (cancelled, 3)]:
        assert [night.version for night in change.after] == [version, version]
        assert [night.version for night in change.before] == [version - 1, version - 1]
    assert calendar.night(ROOM, day(0)).version == 0


def test_taking_over_a_stale_hold_bumps_each_night_once():
    calendar = ShardCalendar()
    hold(calendar, "stale", 1, 4)

    change = hold(calendar, "fresh", 2, 5, now=61.0)

    assert [(night.date, night.holder, night.version) for night in change.after] == [
        (day(1), None, 2),
        (day(2), "fresh", 2),
        (day(3), "fresh", 2),
        (day(4), "fresh", 1),
    ]
    assert [(night.date, night.version) for night in change.before] == [
        (day(1), 1),
        (day(2), 1),
        (day(3), 1),
        (day(4), 0),
    ]


def test_a_change_records_the_rows_it_replaced_and_the_rows_it_wrote():
    calendar = ShardCalendar()
    placed = hold(calendar, "h1", 1, 3)

    released = calendar.release(hold_id="h1", room_id=ROOM, now_s=1.0)

    assert released.before == placed.after
    assert released.after == [calendar.night(ROOM, day(1)), calendar.night(ROOM, day(2))]


# -- undo --------------------------------------------------------------------------------------


def test_undoing_a_hold_frees_its_nights_and_forgets_it():
    calendar = ShardCalendar()
    before = snapshot(calendar, ["h1"])

    calendar.undo(hold(calendar, "h1", 1, 3))

    assert snapshot(calendar, ["h1"]) == before
    assert calendar.expire_due(1_000.0) == []


def test_undoing_a_confirm_restores_a_hold_that_can_still_expire():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    before = snapshot(calendar, ["h1"])

    calendar.undo(calendar.confirm(hold_id="h1", room_id=ROOM, now_s=1.0))

    assert snapshot(calendar, ["h1"]) == before
    assert [change.view.hold_id for change in calendar.expire_due(TTL_S)] == ["h1"]


@pytest.mark.parametrize("command", ["release", "cancel", "expire"])
def test_undoing_the_end_of_a_hold_restores_it(command):
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    before = snapshot(calendar, ["h1"])

    match command:
        case "release":
            changes = [calendar.release(hold_id="h1", room_id=ROOM, now_s=1.0)]
        case "cancel":
            changes = [calendar.cancel(booking_id="h1", room_id=ROOM, now_s=1.0)]
        case "expire":
            changes = calendar.expire_due(TTL_S)
    for change in reversed(changes):
        calendar.undo(change)

    assert snapshot(calendar, ["h1"]) == before
    assert calendar.confirm(hold_id="h1", room_id=ROOM, now_s=1.0).view.status == "booked"


def test_undoing_a_cancel_restores_the_booking():
    calendar = ShardCalendar()
    booking(calendar, "b1", 1, 3)
    before = snapshot(calendar, ["b1"])

    calendar.undo(calendar.cancel(booking_id="b1", room_id=ROOM, now_s=1.0))

    assert snapshot(calendar, ["b1"]) == before
    with pytest.raises(NightsUnavailable):
        hold(calendar, "h2", 1, 2, now=2.0)


def test_undoing_a_takeover_restores_the_stale_hold_whole():
    calendar = ShardCalendar()
    hold(calendar, "stale", 1, 4)
    before = snapshot(calendar, ["stale", "fresh"])

    calendar.undo(hold(calendar, "fresh", 3, 5, now=61.0))

    assert snapshot(calendar, ["stale", "fresh"]) == before
    assert [change.view.hold_id for change in calendar.expire_due(61.0)] == ["stale"]


def test_undoing_several_changes_newest_first_restores_the_oldest_state():
    calendar = ShardCalendar()
    before = snapshot(calendar, ["h1", "h2"])
    changes = [
        hold(calendar, "h1", 1, 3),
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=1.0),
        hold(calendar, "h2", 3, 4, now=1.0),
        calendar.cancel(booking_id="h1", room_id=ROOM, now_s=2.0),
    ]

    for change in reversed(changes):
        calendar.undo(change)

    assert snapshot(calendar, ["h1", "h2"]) == before


def test_undo_restores_how_an_ended_hold_had_ended():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3)
    calendar.expire_due(TTL_S)
    changes = [hold(calendar, "h1", 4, 6, now=TTL_S), calendar.release(hold_id="h1", room_id=ROOM, now_s=TTL_S)]

    for change in reversed(changes):
        calendar.undo(change)

    with pytest.raises(HoldExpired):
        calendar.confirm(hold_id="h1", room_id=ROOM, now_s=TTL_S)


# -- recovery ----------------------------------------------------------------------------------


def test_a_calendar_rebuilt_from_its_rows_has_the_same_nights_and_holds():
    calendar = ShardCalendar()
    hold(calendar, "live", 1, 3, room=1)
    booking(calendar, "booked", 1, 3, room=2)
    hold(calendar, "released", 4, 6, room=1)
    calendar.release(hold_id="released", room_id=1, now_s=1.0)

    rebuilt = ShardCalendar(calendar.rows())

    ids = ["live", "booked", "released"]
    assert snapshot(rebuilt, ids) == snapshot(calendar, ids)


def test_a_rebuilt_calendar_still_refuses_taken_nights_and_confirms_live_holds():
    calendar = ShardCalendar()
    hold(calendar, "live", 1, 3)
    booking(calendar, "booked", 3, 4)

    rebuilt = ShardCalendar(calendar.rows())

    with pytest.raises(NightsUnavailable) as refused:
        hold(rebuilt, "h3", 0, 5, now=1.0)
    assert refused.value.nights == [day(1), day(2), day(3)]
    assert rebuilt.confirm(hold_id="live", room_id=ROOM, now_s=1.0).view.status == "booked"
    assert rebuilt.night(ROOM, day(1)).version == 2


def test_a_rebuilt_calendar_expires_the_holds_that_were_due():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 3, ttl=10.0)
    hold(calendar, "h2", 3, 4, ttl=20.0)

    rebuilt = ShardCalendar(calendar.rows())

    assert rebuilt.next_deadline_s() == 10.0
    assert [change.view.hold_id for change in rebuilt.expire_due(100.0)] == ["h1", "h2"]
    with pytest.raises(HoldExpired):
        rebuilt.confirm(hold_id="h1", room_id=ROOM, now_s=100.0)


def test_a_rebuilt_calendar_continues_the_versions_of_its_rows():
    calendar = ShardCalendar()
    hold(calendar, "h1", 1, 2)
    calendar.release(hold_id="h1", room_id=ROOM, now_s=1.0)

    rebuilt = ShardCalendar(calendar.rows())
    change = hold(rebuilt, "h2", 1, 2, now=2.0)

    assert change.after == [
        Night(room_id=ROOM, date=day(1), status=HELD, holder="h2", hold_expires_at_s=62.0, version=3)
    ]


# -- claims: advisory, in memory, they only refuse other claims ------------------------------------


def claim(calendar, name, first, check_out, *, now=0.0, ttl=1.0):
    return calendar.claim_stay(ROOM, stay(first, check_out).nights(), now, claim=name, ttl_s=ttl)


def test_a_claim_refuses_other_claims_on_its_nights_until_it_ends_but_not_its_own():
    calendar = ShardCalendar()
    assert claim(calendar, "a", 1, 3) == []

    assert claim(calendar, "b", 2, 4, now=0.5) == [day(2)]
    assert claim(calendar, "b", 3, 5, now=0.5) == []  # other nights
    assert claim(calendar, "a", 1, 3, now=0.5) == []  # its own: renewed
    assert claim(calendar, "b", 1, 2, now=1.6) == []  # "a" ran out at 1.5
    assert claim(calendar, "a", 1, 2, now=1.7) == [day(1)]


def test_a_claim_ended_with_no_time_left_frees_its_nights_for_the_next_claim():
    calendar = ShardCalendar()
    claim(calendar, "a", 1, 3)
    assert claim(calendar, "a", 1, 3, now=0.1, ttl=0.0) == []
    assert claim(calendar, "b", 1, 3, now=0.1) == []


def test_holds_ignore_claims_and_a_hold_ends_the_claims_on_its_nights():
    calendar = ShardCalendar()
    claim(calendar, "a", 1, 3)

    hold(calendar, "someone", 1, 2, now=0.1)  # a claim never decides who holds
    assert statuses(calendar, 1, 3) == [NightStatus.HELD, NightStatus.AVAILABLE]
    assert claim(calendar, "b", 1, 3, now=0.2) == [day(1), day(2)]  # day 1 held, day 2 still "a"'s
    calendar.release(hold_id="someone", room_id=ROOM, now_s=0.3)
    assert claim(calendar, "b", 1, 2, now=0.4) == []  # the hold ended "a"'s claim on day 1
    assert calendar.rows() and all(n.holder != "a" for n in calendar.rows())  # claims are not rows


def test_a_check_without_a_claim_sees_holds_and_bookings_only():
    calendar = ShardCalendar()
    claim(calendar, "a", 1, 3)
    booking(calendar, "booked", 4, 5)
    assert calendar.taken_nights(ROOM, stay(0, 6).nights(), 0.5) == [day(4)]
