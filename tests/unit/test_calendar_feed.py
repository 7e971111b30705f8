"""A room's calendar as iCalendar, and the links that share it."""

from __future__ import annotations

import datetime as dt

import icalendar

from roombook.domain.commands import NightView
from roombook.domain.nights import NightStatus
from roombook.services.calendar_feed import CalendarLinks, room_calendar

D = dt.date(2031, 5, 1)
NOW = dt.datetime(2031, 4, 20, 9, tzinfo=dt.UTC)
A, H, B = NightStatus.AVAILABLE, NightStatus.HELD, NightStatus.BOOKED


def nights(*statuses: NightStatus) -> list[NightView]:
    return [NightView(date=D + dt.timedelta(days=i), status=s) for i, s in enumerate(statuses)]


def events(ics: bytes) -> list[tuple[str, dt.date, dt.date, str]]:
    calendar = icalendar.Calendar.from_ical(ics)
    return [
        (str(e["summary"]), e.decoded("dtstart"), e.decoded("dtend"), str(e["status"])) for e in calendar.walk("VEVENT")
    ]


def test_each_run_of_booked_or_held_nights_is_one_all_day_event_ending_on_the_check_out_day():
    ics = room_calendar(7, "Loft", nights(A, B, B, H, A, B), now=NOW)

    assert events(ics) == [
        ("Booked", D + dt.timedelta(days=1), D + dt.timedelta(days=3), "CONFIRMED"),
        ("Held", D + dt.timedelta(days=3), D + dt.timedelta(days=4), "TENTATIVE"),
        ("Booked", D + dt.timedelta(days=5), D + dt.timedelta(days=6), "CONFIRMED"),
    ]


def test_the_feed_is_a_valid_rfc_5545_calendar_with_stable_uids_and_no_guest_data():
    ics = room_calendar(7, "Loft", nights(B, B), now=NOW)
    again = room_calendar(7, "Loft", nights(B, B), now=NOW + dt.timedelta(hours=5))
    calendar = icalendar.Calendar.from_ical(ics)

    assert ics.startswith(b"BEGIN:VCALENDAR\r\n") and ics.endswith(b"END:VCALENDAR\r\n")
    assert str(calendar["version"]) == "2.0" and "roombook" in str(calendar["prodid"])
    [event] = calendar.walk("VEVENT")
    [later] = icalendar.Calendar.from_ical(again).walk("VEVENT")
    assert str(event["uid"]) == str(later["uid"]) == "room-7-2031-05-01-booked@roombook"
    assert event.decoded("dtstamp") == NOW
    assert b"bk_" not in ics and b"@example" not in ics


def test_a_calendar_with_nothing_taken_has_no_events():
    assert events(room_calendar(7, "Loft", nights(A, A, A), now=NOW)) == []


def test_a_link_is_valid_for_its_room_until_its_expiry_only():
    links = CalendarLinks(b"k" * 32)
    signature = links.signature(7, 2_000_000_000)

    assert links.valid(7, 2_000_000_000, signature, now_s=1_900_000_000)
    assert not links.valid(7, 2_000_000_000, signature, now_s=2_000_000_000)  # expired
    assert not links.valid(8, 2_000_000_000, signature, now_s=1_900_000_000)  # another room
    assert not links.valid(7, 2_100_000_000, signature, now_s=1_900_000_000)  # a later expiry
    assert not CalendarLinks(b"x" * 32).valid(7, 2_000_000_000, signature, now_s=1_900_000_000)
