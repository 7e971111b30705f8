"""What the services need of the parts around them: the shards, the catalogue, the payments.

Narrow on purpose: a service names only the calls it makes, so a test can hand it a fake of a few
lines, and any adapter that has those calls fits (actors.client.AvailabilityClient, an
AvailabilityStore, SimulatedPayments).
"""

from __future__ import annotations

import decimal
from typing import Protocol

from roombook.domain.calendar import HoldView
from roombook.domain.cancellation import CancellationPolicy
from roombook.domain.rooms import Room
from roombook.domain.stays import Stay
from roombook.services.payments import PaymentIntent, PaymentRefund


class RoomShards(Protocol):
    """The room shards' commands the booking saga sends. Each is idempotent by hold id (a booking
    keeps its hold's id) and raises the domain error of a refusal (NightsUnavailable, ...)."""

    async def place_hold(
        self, *, room_id: int, hold_id: str, stay: Stay, ttl_s: float, not_after_s: float | None = None
    ) -> HoldView: ...

    async def check_stay(self, *, room_id: int, stay: Stay, claim: str | None = None, claim_ttl_s: float = 0.0) -> None:
        """Raise NightsUnavailable if a night of the stay is held, booked or claimed by another
        claim now; else claim it for claim_ttl_s (0: end the claim). Nothing is stored."""
        ...

    async def confirm(self, *, room_id: int, hold_id: str) -> HoldView: ...

    async def release(self, *, room_id: int, hold_id: str) -> HoldView: ...

    async def cancel(self, *, room_id: int, booking_id: str) -> HoldView: ...

    async def move_booking(self, *, room_id: int, booking_id: str, to_room_id: int, stay: Stay) -> HoldView:
        """Move a booking to `stay` on to_room_id in one step (both rooms on one shard)."""
        ...

    def shares_shard(self, room_id: int, other_room_id: int) -> bool: ...


class Catalogue(Protocol):
    async def room(self, room_id: int) -> Room | None: ...

    async def cancellation_policy(self, room_id: int) -> CancellationPolicy | None: ...


class Payments(Protocol):
    async def authorize(
        self, amount: decimal.Decimal, currency: str, card_token: str, idempotency_key: str
    ) -> PaymentIntent: ...

    async def refund(
        self, payment_intent_id: str, amount: decimal.Decimal, currency: str, idempotency_key: str
    ) -> PaymentRefund: ...
