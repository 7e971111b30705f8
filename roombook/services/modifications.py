"""Changing a confirmed booking (new dates, guests or room): a saga that leaves the booking whole.

    PENDING modification + the booking marked as being changed (one transaction, unique on
    booking + Idempotency-Key)
    one shard owns both rooms (the same room, or two rooms of one shard):
        pay a higher price -> MoveBooking (the new nights taken and the old ones freed in one step)
    the rooms are on two shards (a compensating saga; the hold keeps the booking's id):
        hold the new nights -> pay a higher price -> confirm them -> free the old nights
    -> APPLIED: the booking gets its new stay and price, with booking.modified (one transaction)
    -> refund a lower price
    refused (nights taken, payment declined, the new hold ran out): the new hold released, a
    charge already made refunded, REFUSED: the booking is as it was

The new nights are always the booking's before its old ones are freed, so the guest never has
fewer nights than before, and a refusal frees only what the change took. Every step is
idempotent (the shards' by booking id, the payments' by the modification's id), so a change whose
outcome is unknown (a failure or a dead process mid-way, recorded PENDING) is finished by a
replay of the same key, or by the reconciler once it is older than the hold TTL, by running the
same steps again: none is done twice. An outcome is recorded before anything is given back, and
a refund it leaves due is made later if the payment service is not answering (the reconciler).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping

import msgspec

from roombook.domain.accounts import Region
from roombook.domain.bookings import Booking, BookingIds, Refusal
from roombook.domain.errors import (
    BookingInProgress,
    BookingNotModifiable,
    HoldExpired,
    IdempotencyKeyReused,
    NightsUnavailable,
    PaymentDeclined,
    UnknownBooking,
    UnknownHold,
    UnknownRoom,
)
from roombook.domain.events import booking_event, booking_modified
from roombook.domain.modifications import (
    MODIFICATION_ID_PREFIX,
    BookingChange,
    Modification,
    ModificationStatus,
    applied_to,
    change_hash,
    change_quote,
    pending_modification,
    plan_change,
)
from roombook.domain.rates import price_stay
from roombook.services.outcomes import unknown_on_failure as _unknown_on_failure
from roombook.services.payments import check_card_token
from roombook.services.ports import Catalogue, Payments, RoomShards
from roombook.services.request_context import current_request_id
from roombook.storage.ports import BookingStore

log = logging.getLogger(__name__)


class BookingChanges:
    """Applies changes to confirmed bookings; at most one per (booking, Idempotency-Key), ever,
    and one at a time per booking."""

    def __init__(
        self,
        *,
        availability: RoomShards,
        catalogue: Catalogue,
        regions: Mapping[Region, BookingStore],
        payments: Payments,
        hold_ttl_s: float,
        clock: Callable[[], float],
        default_card_token: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        duplicate_wait_s: float = 2.0,
    ) -> None:
        """duplicate_wait_s: how long a replay lets a PENDING change of its key be (since it was
        made) before running its steps itself, as for a booking: a live run ends in milliseconds,
        and two runs at once could disagree (one refused, the other through)."""
        self._availability = availability
        self._catalogue = catalogue
        self._regions = dict(regions)
        self._payments = payments
        self._hold_ttl_s = hold_ttl_s
        self._clock = clock
        self._default_card_token = default_card_token
        self._sleep = sleep
        self._duplicate_wait_s = duplicate_wait_s
        self._ids = BookingIds()

    async def modify(
        self, *, user_id: int, region: Region, booking_id: str, idempotency_key: str, change: BookingChange
    ) -> Booking:
        """The booking after the change (as it was, if the change changes nothing); the domain
        error of a refused change, with the booking untouched. The same key with the same change
        answers the same."""
        store = self._regions[region]
        booking = await _booking(store, booking_id, user_id)
        attempted = change_hash(booking_id, change)
        found = await store.modification_by_key(booking_id, idempotency_key)
        if found is not None:
            found = await self._settled(store, found)
        if found is None:
            check_card_token(change.card_token or self._default_card_token)
            room = await self._catalogue.room(change.room_id or booking.room_id)
            if room is None:
                raise UnknownRoom(f"no room {change.room_id}")
            now_s = self._clock()
            target = plan_change(booking, change, room=room, now_s=now_s)
            if target is None:
                return booking
            candidate = pending_modification(
                modification_id=MODIFICATION_ID_PREFIX + self._ids.next(int(now_s * 1000))[3:],
                booking=booking,
                target=target,
                quote=change_quote(
                    booking, target, price_stay(room, target.stay.check_in, target.stay.check_out, target.guests)
                ),
                idempotency_key=idempotency_key,
                request_hash=attempted,
                card_token=change.card_token or self._default_card_token,
                now=_utc(now_s),
            )
            found = await _unknown_on_failure(store.begin_modification(candidate))
            if found is None:  # taken by another change meanwhile, or cancelled
                raise BookingNotModifiable("this booking is being changed or is no longer confirmed; retry shortly")
        if found.request_hash != attempted:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different change")
        if found.status is ModificationStatus.PENDING:
            found = await _unknown_on_failure(self._run(store, found))
        return await self._outcome(store, found)

    async def _settled(self, store: BookingStore, m: Modification) -> Modification:
        """The change once settled (another process may be running it), or still PENDING once it
        is duplicate_wait_s old."""
        created_s = m.created_at.timestamp()
        delay_s = 0.01
        while m.status is ModificationStatus.PENDING and self._clock() - created_s < self._duplicate_wait_s:
            await self._sleep(min(delay_s, max(created_s + self._duplicate_wait_s - self._clock(), 0.0)))
            delay_s = min(delay_s * 2, 0.2)
            m = await _modification(store, m.id)
        return m

    async def _outcome(self, store: BookingStore, modification: Modification) -> Booking:
        if modification.status is ModificationStatus.PENDING:
            raise BookingInProgress("a change with this Idempotency-Key is still in progress; retry shortly")
        if modification.status is ModificationStatus.REFUSED and modification.refusal is not None:
            raise modification.refusal.error(await _booking(store, modification.booking_id, modification.user_id))
        return await _booking(store, modification.booking_id, modification.user_id)

    # -- the saga ----------------------------------------------------------------------------------

    async def _run(self, store: BookingStore, m: Modification) -> Modification:
        """Run (or run again) every step of a PENDING modification; its recorded outcome."""
        currency = (await _booking(store, m.booking_id, m.user_id)).currency
        one_shard = m.from_room_id == m.to_room_id or self._availability.shares_shard(m.from_room_id, m.to_room_id)
        if not one_shard:
            try:
                await self._availability.place_hold(
                    room_id=m.to_room_id, hold_id=m.booking_id, stay=m.to_stay, ttl_s=self._hold_ttl_s
                )
            except NightsUnavailable as exc:
                return await self._refuse(store, m, Refusal.of(exc))
        charge_id = None
        if m.difference > 0:
            intent = await self._payments.authorize(m.difference, currency, m.card_token, m.id)
            if not intent.authorized:
                if not one_shard:
                    await self._availability.release(room_id=m.to_room_id, hold_id=m.booking_id)
                refusal = Refusal.of(PaymentDeclined(intent.decline_code or "declined"))
                return await self._refuse(store, m, refusal)
            charge_id = intent.id
        try:
            if one_shard:
                await self._availability.move_booking(
                    room_id=m.from_room_id, booking_id=m.booking_id, to_room_id=m.to_room_id, stay=m.to_stay
                )
            else:
                await self._availability.confirm(room_id=m.to_room_id, hold_id=m.booking_id)
                await self._availability.cancel(room_id=m.from_room_id, booking_id=m.booking_id)
        except (NightsUnavailable, HoldExpired, UnknownHold) as exc:
            refused = await self._refuse(store, m, Refusal.of(exc), charge_id=charge_id)
            if not one_shard:  # what is left of the new hold goes now (a release never frees a booking)
                try:
                    await self._availability.release(room_id=m.to_room_id, hold_id=m.booking_id)
                except Exception as release_failed:  # it runs out by its TTL anyway
                    log.warning("modification %s refused; its hold runs out: %r", m.id, release_failed)
            return refused
        return await self._apply(store, m, charge_id)

    async def _apply(self, store: BookingStore, m: Modification, charge_id: str | None) -> Modification:
        now_s = self._clock()
        booking = await _booking(store, m.booking_id, m.user_id)
        refund = -m.difference if m.difference < 0 else None
        done = msgspec.structs.replace(
            m, status=ModificationStatus.APPLIED, charge_id=charge_id, refund_amount=refund, updated_at=_utc(now_s)
        )
        after = applied_to(booking, m, now=_utc(now_s))
        event = booking_modified(
            after, region=store.region.value, difference=m.difference, now_s=now_s, request_id=current_request_id()
        )
        if not await store.finish_modification(done, after=after, event=event):
            return await _modification(store, m.id)
        await self._refund_logged(store, done, after)
        return done

    async def _refuse(
        self, store: BookingStore, m: Modification, refusal: Refusal, *, charge_id: str | None = None
    ) -> Modification:
        """Record the refusal, then give back a charge made for it (the booking is as it was)."""
        done = msgspec.structs.replace(
            m,
            status=ModificationStatus.REFUSED,
            charge_id=charge_id,
            refund_amount=m.difference if charge_id is not None else None,
            refusal=refusal,
            updated_at=_utc(self._clock()),
        )
        if not await store.finish_modification(done):
            return await _modification(store, m.id)
        if done.refund_amount:
            await self._refund_logged(store, done, await _booking(store, m.booking_id, m.user_id))
        return done

    async def _refund_logged(self, store: BookingStore, m: Modification, booking: Booking) -> None:
        try:
            await self._refund(store, m, booking)
        except Exception as exc:  # the payment service or the store: the reconciler retries
            log.warning("modification %s settled; its refund is made later: %r", m.id, exc)

    async def _refund(self, store: BookingStore, m: Modification, booking: Booking) -> None:
        if not m.refund_amount or m.refund_id is not None:
            return
        paid_with = m.charge_id if m.status is ModificationStatus.REFUSED else booking.payment_intent_id
        if paid_with is None:
            return
        refund = await self._payments.refund(paid_with, m.refund_amount, booking.currency, f"refund:{m.id}")
        event = booking_event(  # the booking as it stands, with what this refund gave back
            msgspec.structs.replace(booking, refund_amount=m.refund_amount, refund_id=refund.id),
            region=store.region.value,
            previous=booking.status,
            now_s=self._clock(),
            refunded=True,
        )
        await store.record_modification_refund(m.id, refund.id, now=_utc(self._clock()), event=event)

    # -- the reconciler ----------------------------------------------------------------------------

    async def reconcile(self, store: BookingStore, *, now_s: float, skew_s: float, batch: int) -> int:
        """Finish every PENDING modification older than the hold TTL (its process died or failed
        mid-way) and make every refund a settled one left due. Returns how many it settled."""
        settled = 0
        for m in await store.modification_refunds_due(limit=batch):
            try:
                await self._refund(store, m, await _booking(store, m.booking_id, m.user_id))
                settled += 1
            except Exception as exc:
                log.warning("reconciler: refund of modification %s not made yet: %r", m.id, exc)
        cutoff = _utc(now_s - self._hold_ttl_s - skew_s)
        for m in await store.pending_modifications_before(cutoff, limit=batch):
            try:
                await self._run(store, m)
                settled += 1
            except Exception as exc:
                log.warning("reconciler: modification %s left PENDING: %r", m.id, exc)
        return settled


async def _booking(store: BookingStore, booking_id: str, user_id: int) -> Booking:
    booking = await store.booking(booking_id, user_id)
    if booking is None:
        raise UnknownBooking(f"no booking {booking_id!r}")
    return booking


async def _modification(store: BookingStore, modification_id: str) -> Modification:
    found = await store.modification(modification_id)
    if found is None:  # never deleted, and this one was written before
        raise UnknownBooking(f"modification {modification_id} is missing from its store")
    return found


def _utc(unix_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_s, dt.UTC)
