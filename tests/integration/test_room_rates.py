"""Changing a room's rates when the store's answer is lost: sending the change again is safe."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from roombook.domain.errors import StoreUnavailable
from roombook.domain.rates import RateOverride
from roombook.domain.rooms import Location, Room, RoomPatch
from roombook.services.room_rates import RateChange, change_rates

JULY = dt.date(2031, 7, 1)
CHANGE = RateChange(override=RateOverride(start=JULY, end=JULY + dt.timedelta(days=7), price=decimal.Decimal("80.00")))


class AnswerLost:
    """The store, except that the next `lose` updates commit and then fail as a dropped connection."""

    def __init__(self, store, lose: int) -> None:
        self._store, self.lose = store, lose

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def update_room(self, room_id: int, patch: RoomPatch, *, expected: RoomPatch | None = None) -> Room | None:
        room = await self._store.update_room(room_id, patch, expected=expected)
        if self.lose:
            self.lose -= 1
            raise StoreUnavailable("connection lost after the commit")
        return room


async def test_a_change_whose_commit_answer_was_lost_lands_once_when_sent_again(availability_store):
    location = Location(city="Lyon", country="FR")
    (room_id,) = await availability_store.add_rooms(
        [Room(title="a", location=location, price_per_night=decimal.Decimal(100), capacity=2)]
    )
    lossy = AnswerLost(availability_store, lose=1)

    with pytest.raises(StoreUnavailable):  # the API answers 503: the client does not know
        await change_rates(lossy, room_id, CHANGE)
    room = await change_rates(lossy, room_id, CHANGE)  # the same PUT again

    assert room.rates.overrides == [CHANGE.override]
    assert await availability_store.room(room_id) == room
    changes = [e for _, e in await availability_store.pending_events(100) if getattr(e, "room_id", None) == room_id]
    assert len(changes) == 2  # its creation, and the change once: the retry wrote nothing
