"""What one booking email costs to make, as the notifier makes it against `EmailMessage`, side by side.

    python -m bench.mail_build --messages 2000 --rounds 3

The notifier makes one message per confirmed or cancelled booking, on the process that runs the
event consumers (the serving process on the embedded default). This times, in one process and
alternating the order by round, `booking_email` and its bytes (what the file and SMTP senders
write) against the same message made with `EmailMessage` and its content manager, which parses
every header as it is set and folds it again as it is written, and whose generated boundary
compiles a regular expression per message. Prints µs per message for both, per round, and the
ratio of the medians, and checks both parse to the same headers and bodies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import email
import email.policy
import email.utils
import statistics
import time
from collections.abc import Callable
from email.message import EmailMessage, Message

from roombook.domain.accounts import Region, User
from roombook.domain.bookings import Booking, BookingStatus
from roombook.domain.events import BookingEvent, booking_event
from roombook.domain.rooms import Location, Room
from roombook.events.notifications import booking_email, booking_email_content

SENDER = "roombook <no-reply@example.org>"


def as_email_message(event: BookingEvent, kind: str, *, user: User, room: Room | None, sender: str) -> EmailMessage:
    """The same message through `EmailMessage` (set_content, add_alternative)."""
    content = booking_email_content(event, kind, user=user, room=room)
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = sender
    message["To"] = user.email
    message["Date"] = email.utils.format_datetime(event.occurred_at)
    message["Message-ID"] = f"<{event.id}@roombook>"
    message.set_content(content.text)
    message.add_alternative(content.page, subtype="html")
    return message


def sample() -> tuple[list[BookingEvent], User, Room]:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    user = User(id=42, email="ada@example.org", first_name="Ada", region=Region.EU, created_at=now)
    room = Room(
        id=7,
        title="Quiet double",
        location=Location(city="Lisbon", country="PT"),
        price_per_night=decimal.Decimal("120.50"),
        capacity=2,
    )
    events = []
    for i in range(100):
        booking = Booking(
            id=f"bk_{i:026d}",
            user_id=42,
            room_id=7,
            check_in=dt.date(2030, 6, 1),
            check_out=dt.date(2030, 6, 4),
            guests=2,
            nights=3,
            status=BookingStatus.CONFIRMED,
            total_price=decimal.Decimal("361.50"),
            currency="EUR",
            idempotency_key=f"key-{i}",
            request_hash="f" * 64,
            payment_intent_id=None,
            created_at=now,
            updated_at=now,
        )
        events.append(booking_event(booking, region="eu", previous=BookingStatus.PENDING, now_s=now.timestamp()))
    return events, user, room


def read(raw: bytes) -> tuple[list[str], list[str]]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    headers = [str(parsed[name]) for name in ("Subject", "From", "To", "Date", "Message-ID")]
    parts = [parsed.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    bodies = [part.get_content() if part is not None else "" for part in parts]
    return headers, bodies


def per_message_us(make: Callable[..., Message], events: list[BookingEvent], user: User, room: Room, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        bytes(make(events[i % len(events)], "confirmed", user=user, room=room, sender=SENDER))
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    events, user, room = sample()
    ways: dict[str, Callable[..., Message]] = {"booking_email": booking_email, "EmailMessage": as_email_message}
    same = {
        name: read(bytes(make(events[0], "confirmed", user=user, room=room, sender=SENDER)))
        for name, make in ways.items()
    }
    if same["booking_email"] != same["EmailMessage"]:
        raise SystemExit(f"the two ways do not read the same: {same}")
    figures: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(args.rounds):
        for name in list(ways) if r % 2 == 0 else list(reversed(ways)):
            figures[name].append(per_message_us(ways[name], events, user, room, args.messages))
        print(f"round {r + 1}: " + ", ".join(f"{name} {figures[name][-1]:.0f} µs" for name in ways))
    ours, theirs = (statistics.median(figures[name]) for name in ways)
    print(
        f"median per message (made and written out): booking_email {ours:.0f} µs, EmailMessage {theirs:.0f} µs, "
        f"ratio {theirs / ours:.1f}x; both read the same"
    )


if __name__ == "__main__":
    main()
