"""bench.mail_build times the product's booking email against the same message made through
EmailMessage: the two must be the same message to a reader, or the ratio means nothing."""

from __future__ import annotations

from bench.mail_build import SENDER, as_email_message, read, sample
from roombook.events.notifications import booking_email


def test_both_ways_make_what_a_reader_sees_as_the_same_message():
    events, user, room = sample()
    for kind in ("confirmed", "cancelled", "expired"):
        ours = read(bytes(booking_email(events[0], kind, user=user, room=room, sender=SENDER)))
        theirs = read(bytes(as_email_message(events[0], kind, user=user, room=room, sender=SENDER)))
        assert ours == theirs
        headers, bodies = ours
        assert events[0].booking_id in headers[0] and all(events[0].booking_id in body for body in bodies)
