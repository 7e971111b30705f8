"""The emails the notification service sends: which events mail someone, and what a message holds."""

from __future__ import annotations

import datetime as dt
import decimal
import email
import email.policy

import msgspec
import pytest

from roombook.domain.accounts import Region, User
from roombook.domain.bookings import Booking, BookingStatus
from roombook.domain.events import availability_updated, booking_event, room_updated
from roombook.domain.rooms import Location, Room
from roombook.events.notifications import booking_email, mail_kind

NOW_S = 1_900_000_000.0
BOOKING = Booking(
    id="bk_01hzzzzzzzzzzzzzzzzzzzzzzz",
    user_id=42,
    room_id=7,
    check_in=dt.date(2030, 6, 1),
    check_out=dt.date(2030, 6, 4),
    guests=2,
    nights=3,
    status=BookingStatus.CONFIRMED,
    total_price=decimal.Decimal("361.50"),
    currency="EUR",
    idempotency_key="idem-key-secret",
    request_hash="f" * 64,
    payment_intent_id="pi_secret",
    created_at=dt.datetime.fromtimestamp(NOW_S, dt.UTC),
    updated_at=dt.datetime.fromtimestamp(NOW_S, dt.UTC),
)
USER = User(
    id=42,
    email="ada@example.org",
    first_name="Ada <script>",
    last_name=None,
    region=Region.EU,
    created_at=BOOKING.created_at,
)
ROOM = Room(
    id=7,
    title="Quiet double",
    location=Location(city="Lisbon", country="PT"),
    price_per_night=decimal.Decimal("120.50"),
    capacity=2,
)


def event_after(status: BookingStatus, previous: BookingStatus | None):
    return booking_event(msgspec.structs.replace(BOOKING, status=status), region="eu", previous=previous, now_s=NOW_S)


@pytest.mark.parametrize(
    ("status", "previous", "kind"),
    [
        (BookingStatus.PENDING, None, None),
        (BookingStatus.CONFIRMED, BookingStatus.PENDING, "confirmed"),
        (BookingStatus.CANCELLED, BookingStatus.CONFIRMED, "cancelled"),
        (BookingStatus.EXPIRED, BookingStatus.PENDING, "expired"),
        (BookingStatus.CANCELLED, BookingStatus.PENDING, None),  # refused while the guest waited
    ],
)
def test_only_outcomes_the_guest_was_not_told_of_already_send_mail(status, previous, kind):
    assert mail_kind(event_after(status, previous)) == kind


def test_other_events_send_no_mail():
    assert mail_kind(room_updated(7, now_s=NOW_S)) is None
    assert mail_kind(availability_updated(7, [], now_s=NOW_S)) is None


def read(message) -> email.message.EmailMessage:
    """The message as a mail client reads it: its bytes, parsed."""
    return email.message_from_bytes(bytes(message), policy=email.policy.default)


def test_a_confirmation_has_the_booking_details_in_text_and_html_and_nothing_secret():
    event = event_after(BookingStatus.CONFIRMED, BookingStatus.PENDING)
    raw = bytes(booking_email(event, "confirmed", user=USER, room=ROOM, sender="roombook <no-reply@example.org>"))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == "ada@example.org"
    assert message["From"] == "roombook <no-reply@example.org>"
    assert message["Subject"] == f"Your booking {BOOKING.id} is confirmed"
    assert message["Message-ID"] == f"<{event.id}@roombook>"
    assert message["Date"].datetime == event.occurred_at
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        for detail in (BOOKING.id, "Quiet double, Lisbon", "2030-06-01", "2030-06-04", "361.50 EUR"):
            assert detail in body
    assert "<script>" not in html and "Ada &lt;script&gt;" in html
    for secret in (b"pi_secret", b"idem-key-secret", b"f" * 64, b"tok_"):
        assert secret not in raw


def test_its_headers_are_written_as_the_classic_policy_folds_them():
    event = event_after(BookingStatus.CONFIRMED, BookingStatus.PENDING)
    long_sender = "The roombook reservations desk of a rather long name <no-reply@example.org>"
    for sender in ("roombook <no-reply@example.org>", long_sender, "Zoë <no-reply@example.org>"):
        message = booking_email(event, "confirmed", user=USER, room=ROOM, sender=sender)
        assert bytes(message) == message.as_bytes(policy=email.policy.compat32)
    assert max(len(line) for line in bytes(message).splitlines()) <= 78


def test_every_copy_of_one_notification_is_the_same_message():
    event = event_after(BookingStatus.CONFIRMED, BookingStatus.PENDING)
    copies = {bytes(booking_email(event, "confirmed", user=USER, room=ROOM, sender="x@example.org")) for _ in range(2)}
    assert len(copies) == 1


def test_names_and_addresses_beyond_ascii_reach_the_reader_intact():
    user = msgspec.structs.replace(USER, first_name="Zoë", email="zoë@example.org")
    room = msgspec.structs.replace(ROOM, title="Chambre à deux", location=Location(city="Málaga", country="ES"))
    event = event_after(BookingStatus.CONFIRMED, BookingStatus.PENDING)
    raw = bytes(booking_email(event, "confirmed", user=user, room=room, sender="Zoë's hotel <no-reply@example.org>"))
    assert raw.isascii()  # headers encoded, bodies base64: any mail path carries it
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"].addresses[0].display_name == "Zoë's hotel"
    assert message["From"].addresses[0].addr_spec == "no-reply@example.org"
    assert message["To"].addresses[0].domain == "example.org"
    for kind in ("plain", "html"):
        body = message.get_body(preferencelist=(kind,)).get_content()
        assert "Zoë" in body and "Chambre à deux, Málaga" in body


def test_a_room_that_is_gone_is_named_by_its_id():
    event = event_after(BookingStatus.CANCELLED, BookingStatus.CONFIRMED)
    message = read(booking_email(event, "cancelled", user=USER, room=None, sender="x@example.org"))
    assert "room 7" in message.get_body(preferencelist=("plain",)).get_content()
    assert "cancelled" in message["Subject"]
