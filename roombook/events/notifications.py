"""The notification service: emails a guest about their booking, from booking events.

Which events mail someone:
    booking.confirmed                            "your booking is confirmed"
    booking.cancelled after CONFIRMED            "your booking is cancelled" (the guest cancelled)
    booking.cancelled with status EXPIRED        "your booking was not completed" (nobody answered
                                                 the guest: the process died mid-saga)
A booking that failed while the guest waited (taken nights, declined payment) was answered
then, with the error: no email.

The address is read from the guest's regional store when the email is made (events carry ids,
not personal data; see domain/events.py). A message holds the booking's details and nothing
secret: no token, no card data (bookings store none), no payment intent.
"""

from __future__ import annotations

import email.header
import email.utils
import html
import logging
from collections.abc import Mapping
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32

import msgspec

from roombook.domain.accounts import Region, User
from roombook.domain.bookings import BookingStatus
from roombook.domain.events import BookingCancelled, BookingConfirmed, BookingEvent, Event
from roombook.domain.rooms import Room
from roombook.storage.ports import AvailabilityStore, MailSender, RegionalStore

log = logging.getLogger(__name__)

CONSUMER = "email-notifications"

_SUBJECTS = {
    "confirmed": "Your booking {id} is confirmed",
    "cancelled": "Your booking {id} is cancelled",
    "expired": "Your booking {id} was not completed",
}
_LEADS = {
    "confirmed": "Your booking is confirmed. We look forward to your stay.",
    "cancelled": "Your booking has been cancelled. The nights are free again and nothing more is charged.",
    "expired": "Your booking could not be completed in time, so nothing is booked and nothing is charged.",
}


def mail_kind(event: Event) -> str | None:
    """Which email an event calls for, if any (see the module docstring)."""
    match event:
        case BookingConfirmed():
            return "confirmed"
        case BookingCancelled(previous_status=BookingStatus.CONFIRMED):
            return "cancelled"
        case BookingCancelled(status=BookingStatus.EXPIRED):
            return "expired"
    return None


class _MailPolicy(Compat32):
    """The classic policy, but a header that is already one ASCII line within the line length is
    written as it is, which is what the classic folding makes of it, without splitting and joining
    it again."""

    def _line(self, name: str, value: object) -> str | None:
        if not isinstance(value, str) or not value.isascii() or "\n" in value or "\r" in value:
            return None
        line = f"{name}: {value}"
        return line + self.linesep if self.max_line_length is None or len(line) <= self.max_line_length else None

    def fold(self, name: str, value: str) -> str:
        line = self._line(name, value)
        return line if line is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        line = self._line(name, value)
        return line.encode("ascii") if line is not None else super().fold_binary(name, value)


_POLICY = _MailPolicy()


class EmailContent(msgspec.Struct, frozen=True, kw_only=True):
    """What a booking email says: its subject, its plain text and its HTML alternative."""

    subject: str
    text: str
    page: str


def mails_someone(event: Event) -> bool:
    return mail_kind(event) is not None


def booking_email_content(event: BookingEvent, kind: str, *, user: User, room: Room | None) -> EmailContent:
    name = user.first_name or "guest"
    place = f"{room.title}, {room.location.city}" if room is not None else f"room {event.room_id}"
    details = [
        ("Booking", event.booking_id),
        ("Room", place),
        ("Check-in", event.check_in.isoformat()),
        ("Check-out", event.check_out.isoformat()),
        ("Nights", str(event.nights)),
        ("Guests", str(event.guests)),
        ("Total", f"{event.total} {event.currency}"),
    ]
    lines = [f"Hello {name},", "", _LEADS[kind], ""]
    lines += [f"{label + ':':<11}{value}" for label, value in details]
    lines += ["", "-- roombook"]
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in details)
    return EmailContent(
        subject=_SUBJECTS[kind].format(id=event.booking_id),
        text="\n".join(lines) + "\n",
        page=f"<html><body><p>Hello {html.escape(name)},</p><p>{html.escape(_LEADS[kind])}</p>"
        f"<table>{rows}</table><p>&mdash; roombook</p></body></html>\n",
    )


def booking_email(event: BookingEvent, kind: str, *, user: User, room: Room | None, sender: str) -> Message:
    """A plain-text message with a short HTML alternative. Its Message-ID derives from the event
    id, so every copy of one notification is recognisably the same message.

    Built from the classic MIME classes with a fixed boundary: the header registry of
    `EmailMessage` parses every header as it is set and again as it is written, and a generated
    boundary compiles a regular expression of its own, which made a message cost several times as
    much CPU (bench/mail_build.py), once per booking on the serving process. Both parts are
    base64, whose alphabet has no "-", so the boundary cannot occur in them."""
    content = booking_email_content(event, kind, user=user, room=room)
    message = MIMEMultipart("alternative", boundary=f"roombook-{event.id}", policy=_POLICY)
    message["Subject"] = content.subject
    message["From"] = _address(sender)
    message["To"] = _address(user.email)
    message["Date"] = email.utils.format_datetime(event.occurred_at)
    message["Message-ID"] = f"<{event.id}@roombook>"
    message.attach(MIMEText(content.text, "plain", "utf-8", policy=_POLICY))
    message.attach(MIMEText(content.page, "html", "utf-8", policy=_POLICY))
    return message


def _address(text: str) -> str:
    """An address header's value, ASCII as headers are: a non-ASCII display name or local part
    encoded as an RFC 2047 word (what `EmailMessage` writes), the domain as given."""
    if text.isascii():
        return text
    name, address = email.utils.parseaddr(text)
    local, at, domain = address.rpartition("@")
    if not local.isascii():
        address = f"{email.header.Header(local, 'utf-8').encode()}{at}{domain}"
    return email.utils.formataddr((name, address), charset="utf-8")


class BookingNotifier:
    """The email-notifications handler. Not idempotent by itself: run it behind
    IdempotentHandler (the worker does), so a redelivered event mails nobody twice."""

    def __init__(
        self,
        *,
        regions: Mapping[Region, RegionalStore],
        catalogue: AvailabilityStore | None,
        mail: MailSender,
        sender: str,
    ) -> None:
        self._regions = dict(regions)
        self._catalogue = catalogue
        self._mail = mail
        self._sender = sender

    async def __call__(self, event: Event) -> None:
        kind = mail_kind(event)
        if kind is None or not isinstance(event, BookingConfirmed | BookingCancelled):
            return
        store = self._regions.get(Region(event.region))
        user = await store.user(event.user_id) if store is not None else None
        if user is None:  # deleted since (or a region this deployment does not serve): nobody to tell
            log.warning("%s %s: no user %d in region %s; no email", event.type, event.id, event.user_id, event.region)
            return
        room = await self._catalogue.room(event.room_id) if self._catalogue is not None else None
        await self._mail.send(booking_email(event, kind, user=user, room=room, sender=self._sender), key=event.id)
        log.info("%s: %s email for booking %s sent", event.id, kind, event.booking_id)
