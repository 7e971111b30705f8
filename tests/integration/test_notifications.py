"""The notification service over a real regional store, a real SMTP server (aiosmtpd) and .eml files."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import email
import email.policy

import msgspec
import pytest

from roombook.domain.accounts import NewUser, Region
from roombook.domain.bookings import Booking, BookingStatus
from roombook.domain.errors import EventBusy
from roombook.domain.events import booking_event
from roombook.domain.rooms import Location, Room
from roombook.events.idempotent_handler import IdempotentHandler
from roombook.events.notifications import CONSUMER, BookingNotifier
from roombook.storage.mail.file_mail import FileMailSender
from roombook.storage.mail.smtp_mail import SmtpConfig, SmtpMailSender
from roombook.storage.ports import ClaimOutcome
from roombook.storage.sql import connect

NOW = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def stores(tmp_path):
    async with contextlib.AsyncExitStack() as stack:
        catalogue = await stack.enter_async_context(connect.availability_store(f"sqlite:///{tmp_path}/global.db"))
        await catalogue.migrate()
        regions = {}
        for region in Region:
            store = connect.regional_store(f"sqlite:///{tmp_path}/{region}.db", region)
            regions[region] = await stack.enter_async_context(store)
            await regions[region].migrate()
        yield catalogue, regions


async def confirmed_event(catalogue, regions, *, previous=BookingStatus.PENDING, status=BookingStatus.CONFIRMED):
    user = await regions[Region.US].create_user(
        NewUser(email="grace@example.org", password_hash="$x", first_name="Grace", region=Region.US, created_at=NOW)
    )
    lisbon = Location(city="Lisbon", country="PT")
    [room_id] = await catalogue.add_rooms(
        [Room(title="Quiet double", location=lisbon, price_per_night=decimal.Decimal("120.50"), capacity=2)]
    )
    booking = Booking(
        id="bk_01hzzzzzzzzzzzzzzzzzzzzzzz",
        user_id=user.id,
        room_id=room_id,
        check_in=dt.date(2030, 6, 1),
        check_out=dt.date(2030, 6, 3),
        guests=1,
        nights=2,
        status=status,
        total_price=decimal.Decimal("241.00"),
        currency="EUR",
        idempotency_key="k",
        request_hash="0" * 64,
        created_at=NOW,
        updated_at=NOW,
    )
    return booking_event(booking, region="us", previous=previous, now_s=NOW.timestamp())


async def test_a_confirmed_booking_is_mailed_over_smtp_to_the_guests_address(stores, smtp):
    catalogue, regions = stores
    event = await confirmed_event(catalogue, regions)
    mail = SmtpMailSender(SmtpConfig(host="127.0.0.1", port=smtp.port, tls="none"))
    notifier = BookingNotifier(
        regions=regions, catalogue=catalogue, mail=mail, sender="roombook <no-reply@example.org>"
    )
    await notifier(event)
    [message] = smtp.messages
    assert message["To"] == "grace@example.org"
    assert message["From"] == "roombook <no-reply@example.org>"
    assert message["Subject"] == f"Your booking {event.booking_id} is confirmed"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Hello Grace" in text and "Quiet double, Lisbon" in text and "241.00 EUR" in text
    assert "<table>" in message.get_body(preferencelist=("html",)).get_content()


async def test_a_redelivered_event_sends_one_email(stores, smtp):
    catalogue, regions = stores
    event = await confirmed_event(catalogue, regions)
    mail = SmtpMailSender(SmtpConfig(host="127.0.0.1", port=smtp.port, tls="none"))
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=mail, sender="r@example.org")
    handler = IdempotentHandler(CONSUMER, notifier, catalogue)
    for _ in range(3):
        await handler(event)
    assert len(smtp.messages) == 1


async def test_a_failed_send_is_retried_on_the_next_delivery(stores, smtp):
    catalogue, regions = stores
    event = await confirmed_event(catalogue, regions)
    down = SmtpMailSender(SmtpConfig(host="127.0.0.1", port=1, tls="none", timeout_s=2))  # nothing listens there
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=down, sender="r@example.org")
    with pytest.raises(OSError):
        await IdempotentHandler(CONSUMER, notifier, catalogue)(event)
    up = SmtpMailSender(SmtpConfig(host="127.0.0.1", port=smtp.port, tls="none"))
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=up, sender="r@example.org")
    await IdempotentHandler(CONSUMER, notifier, catalogue)(event)  # the claim was given back
    assert len(smtp.messages) == 1


async def test_the_file_sender_writes_one_eml_per_event_and_a_duplicate_replaces_it(stores, tmp_path):
    catalogue, regions = stores
    event = await confirmed_event(catalogue, regions)
    mail = FileMailSender(tmp_path / "mail")
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=mail, sender="r@example.org")
    await notifier(event)
    await notifier(event)  # no claim table in front: the file name still makes it one message
    [path] = mail.paths()
    assert path.name == f"{event.id}.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "grace@example.org"
    assert not list((tmp_path / "mail").glob(".*"))  # no temporary file left behind


async def test_a_failed_attempt_mails_nobody_and_a_guest_cancellation_does(stores, tmp_path):
    catalogue, regions = stores
    refused = await confirmed_event(catalogue, regions, status=BookingStatus.CANCELLED)  # PENDING -> CANCELLED
    cancelled = msgspec.structs.replace(refused, id="ev_cancelled", previous_status=BookingStatus.CONFIRMED)
    mail = FileMailSender(tmp_path / "mail")
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=mail, sender="r@example.org")
    await notifier(refused)
    assert mail.paths() == []
    await notifier(cancelled)
    assert [p.name for p in mail.paths()] == ["ev_cancelled.eml"]


async def test_a_guest_who_is_gone_gets_no_email_and_the_event_is_done(stores, tmp_path):
    catalogue, regions = stores
    event = await confirmed_event(catalogue, regions)
    await regions[Region.US].delete_user(event.user_id)
    mail = FileMailSender(tmp_path / "mail")
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=mail, sender="r@example.org")
    await notifier(event)
    assert mail.paths() == []


async def test_a_copy_that_arrives_while_another_worker_sends_it_is_deferred_not_sent(stores, smtp):
    catalogue, regions = stores
    event = await confirmed_event(catalogue, regions)
    assert await catalogue.claim_event(CONSUMER, event.id, lease_s=60) is ClaimOutcome.NEW  # the other worker
    mail = SmtpMailSender(SmtpConfig(host="127.0.0.1", port=smtp.port, tls="none"))
    notifier = BookingNotifier(regions=regions, catalogue=catalogue, mail=mail, sender="r@example.org")
    with pytest.raises(EventBusy) as busy:
        await IdempotentHandler(CONSUMER, notifier, catalogue, lease_s=60)(event)
    assert busy.value.retry_after_s == 60
    assert smtp.messages == []
