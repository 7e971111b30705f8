"""Every error the domain and the room-shard layer raise.

    RoombookError
    ├── InvalidStay            the stay itself is malformed (check_out <= check_in, too long)
    ├── NightsUnavailable      some nights of a stay are held or booked by someone else (.nights)
    ├── HoldExpired            the hold ran out before it was confirmed
    ├── UnknownHold            no hold or booking with that id on that room
    ├── HoldMismatch           an id reused for a different room or different nights
    └── ShardUnavailable       the owning shard cannot answer (store down, fenced, restarting)
        └── ShardFenced        a newer owner took the shard over: this actor must stop serving it
"""

from __future__ import annotations

import datetime as dt


class RoombookError(Exception):
    """Base of every roombook error."""


class InvalidStay(RoombookError, ValueError):
    """A ValueError too, so msgspec reports it as a validation error while decoding."""


class NightsUnavailable(RoombookError):
    def __init__(self, room_id: int, nights: list[dt.date]) -> None:
        self.room_id = room_id
        self.nights = nights
        super().__init__(f"room {room_id}: nights not available: {', '.join(map(str, nights))}")


class HoldExpired(RoombookError):
    pass


class UnknownHold(RoombookError):
    pass


class HoldMismatch(RoombookError):
    pass


class ShardUnavailable(RoombookError):
    pass


class ShardFenced(ShardUnavailable):
    pass
