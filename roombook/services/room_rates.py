"""Changing a room's rate calendar: a compare-and-set on the room's stored rates, retried.

Two admins changing different ranges of one room at once both land: each change is applied to
the rates as stored and written only if they are still stored so (else it is applied again to
the newer ones). A change that is there already writes nothing, so a PUT sent twice is one.
"""

from __future__ import annotations

import asyncio
import decimal
import random

import msgspec

from roombook.domain.errors import StoreUnavailable, UnknownRoom
from roombook.domain.rates import RateOverride, RatePlan, Weekday
from roombook.domain.rooms import Room, RoomPatch
from roombook.storage.ports import AvailabilityStore

MAX_ATTEMPTS = 32  # each lost race means another change landed: N racing changes need at most N


class RateChange(msgspec.Struct, frozen=True, kw_only=True):
    """Either a range override to put in place, or the standing weekday prices to replace."""

    override: RateOverride | None = None
    standing_weekdays: dict[Weekday, decimal.Decimal] | None = None

    def applied_to(self, plan: RatePlan) -> RatePlan:
        if self.override is not None:
            plan = plan.replaced(self.override)
        if self.standing_weekdays is not None:
            plan = msgspec.structs.replace(plan, weekdays=dict(sorted(self.standing_weekdays.items())))
        return plan


async def change_rates(catalogue: AvailabilityStore, room_id: int, change: RateChange) -> Room:
    """The room once `change` is in its stored rates (UnknownRoom: no such room)."""
    for _ in range(MAX_ATTEMPTS):
        room = await catalogue.room(room_id)
        if room is None:
            raise UnknownRoom(f"no room {room_id}")
        wanted = change.applied_to(room.rates)
        if wanted == room.rates:
            return room
        after = await catalogue.update_room(room_id, RoomPatch(rates=wanted), expected=RoomPatch(rates=room.rates))
        if after is None:
            raise UnknownRoom(f"no room {room_id}")
        if after.rates == wanted:
            return after
        await asyncio.sleep(random.uniform(0, 0.005))  # lost a race: let the winners' writes pass first
    raise StoreUnavailable(f"the rates of room {room_id} kept changing while this change was applied: send it again")
