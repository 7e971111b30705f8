"""The waitlist's emails: a shard's availability.updated that frees watched nights tells their
watchers, oldest watch first, each watch once (see domain/waitlist.py).

Freed nights are those the event shows `available` (a hold released or expired, a booking
cancelled or changed). A watch is told only if every one of its nights is free in the store
right now, so a night freed and taken again in between tells nobody. The address is read from
the watcher's regional store when the email is made. A watch is marked told after its email is
sent: run behind IdempotentHandler (the worker does), an event delivered again tells nobody
twice, and the email's key (the watch) keeps an adapter that can from making a second copy.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage

from roombook.domain.accounts import Region, User
from roombook.domain.events import AvailabilityUpdated, Event
from roombook.domain.rooms import Room
from roombook.domain.waitlist import RoomWatch, freed_for
from roombook.storage.ports import AvailabilityStore, MailSender, RegionalStore

log = logging.getLogger(__name__)

CONSUMER = "waitlist-notifications"


def frees_nights(event: Event) -> bool:
    """Whether an event can tell a watcher anything: an availability update that frees a night."""
    return isinstance(event, AvailabilityUpdated) and any(night.status == "available" for night in event.nights)


def watch_email(watch: RoomWatch, *, user: User, room: Room | None, sender: str, now: dt.datetime) -> EmailMessage:
    name = user.first_name or "guest"
    place = f"{room.title}, {room.location.city}" if room is not None else f"room {watch.room_id}"
    message = EmailMessage()
    message["Subject"] = f"The nights you watched at {place} are free"
    message["From"] = sender
    message["To"] = user.email
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = f"<watch-{watch.id}@roombook>"
    link = f"/rooms/{watch.room_id}?check_in={watch.check_in.isoformat()}&check_out={watch.check_out.isoformat()}"
    message.set_content(
        f"Hello {name},\n\nEvery night you asked about at {place} is free now:\n"
        f"Check-in:  {watch.check_in.isoformat()}\nCheck-out: {watch.check_out.isoformat()}\n\n"
        f"Book them while they last: {link}\n(Others were told too; the first to book has them.)\n\n-- roombook\n"
    )
    return message


class WaitlistNotifier:
    """The waitlist-notifications handler; see the module docstring."""

    def __init__(
        self,
        *,
        catalogue: AvailabilityStore,
        regions: Mapping[Region, RegionalStore],
        mail: MailSender,
        sender: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalogue = catalogue
        self._regions = dict(regions)
        self._mail = mail
        self._sender = sender
        self._clock = clock

    async def __call__(self, event: Event) -> None:
        if not isinstance(event, AvailabilityUpdated):
            return
        freed = {night.date for night in event.nights if night.status == "available"}
        if not freed:
            return
        start, end = min(freed), max(freed) + dt.timedelta(days=1)
        watches = await self._catalogue.watches_of(event.room_id, start, end)
        room = await self._catalogue.room(event.room_id) if watches else None
        for watch in watches:  # oldest first, one after the other
            stored = await self._catalogue.nights(watch.room_id, watch.check_in, watch.check_out)
            if freed_for(watch, freed, stored, now_s=self._clock()):
                await self._tell(watch, room)

    async def _tell(self, watch: RoomWatch, room: Room | None) -> None:
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        store = self._regions.get(Region(watch.region))
        if store is None:  # a region this worker does not serve: left waiting, not marked told
            log.warning("watch %d: region %s is not served here; no email", watch.id, watch.region)
            return
        user = await store.user(watch.user_id)
        if user is not None:
            message = watch_email(watch, user=user, room=room, sender=self._sender, now=now)
            await self._mail.send(message, key=f"watch-{watch.id}")
            log.info("watch %d of room %d told", watch.id, watch.room_id)
        else:  # deleted since: nobody to tell
            log.warning("watch %d: no user %d in region %s; no email", watch.id, watch.user_id, watch.region)
        await self._catalogue.mark_watch_notified(watch.id, now)
