"""The booking saga across the user's regional store, the room's shard and the payment service.

    stay check in the shard (nights already taken: 409, nothing stored unless the key was)
    -> PENDING row (unique on user + Idempotency-Key)  ->  hold in the shard (hold id = booking id)
    -> simulated payment -> confirm in the shard -> CONFIRMED
    nights taken: CANCELLED (409) | payment declined: release, CANCELLED (402)

A key's PENDING row is stored before its hold is placed, so an attempt whose check finds a night
taken by a saga of the same key (a repeat sent to another process) finds that row and answers
its outcome.

Every outcome is read back from the stored row, so a replayed key answers exactly as the first
request did, without touching the shard or the payment service again. A request whose outcome is
not known (a store or the shard failed mid-way: the write may have happened) is answered
OutcomeUnknown, never as failed, and its row stays PENDING: a replay of the same key finishes the
saga (each step is idempotent by booking id) and answers its real outcome. A process that dies
mid-saga leaves a PENDING row too: the reconciler settles it from the shard's truth once it is
older than the hold TTL (booked there: CONFIRMED; otherwise its hold is released: EXPIRED). The
hold must reach the shard within the hold TTL of the booking's creation or it is refused, so a
booking the reconciler gave up can never be booked behind its back.

    cancel: CANCELLED with its fee and refund (the policy it was booked under) + its pending
    release (one transaction) -> free the nights in the shard -> release done
    -> refund through the payment service (idempotent by key) -> refund noted + booking.refunded

No night is freed before its booking is CANCELLED; a failure after that leaves the release for a
retry or the reconciler's next round.
Each status change writes its booking.* event into the regional outbox in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import msgspec

from roombook.domain.accounts import Region
from roombook.domain.bookings import (
    Booking,
    BookingIds,
    BookingPage,
    BookingRequest,
    BookingStatus,
    Refusal,
    ensure_same_request,
    pending_booking,
    request_hash,
)
from roombook.domain.calendar import HoldStatus
from roombook.domain.errors import (
    BookingInProgress,
    HoldExpired,
    NightsUnavailable,
    OutcomeUnknown,
    PaymentDeclined,
    ShardUnavailable,
    StoreUnavailable,
    UnknownBooking,
    UnknownHold,
    UnknownRoom,
)
from roombook.domain.events import BookingEvent, booking_event
from roombook.domain.modifications import BookingChange
from roombook.domain.rates import price_stay
from roombook.domain.stay_rules import local_today, stay_refusal
from roombook.services.modifications import BookingChanges
from roombook.services.outcomes import UNKNOWN_AFTER as _UNKNOWN_AFTER
from roombook.services.outcomes import unknown_on_failure as _unknown_on_failure
from roombook.services.payments import check_card_token
from roombook.services.ports import Catalogue, Payments, RoomShards
from roombook.services.request_context import current_request_id
from roombook.storage.ports import BookingStore

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_CARD_TOKEN = "tok_visa"  # the simulated card used when a request names none
# The reconciler gives a PENDING booking up this long after its hold's deadline, so that clocks
# of different processes that disagree by less than this cannot let a hold arrive after it.
CLOCK_SKEW_S = 1.0
Sleep = Callable[[float], Awaitable[None]]


class BookingService:
    """Books, lists and cancels; at most one booking per (user, Idempotency-Key), ever."""

    def __init__(
        self,
        *,
        availability: RoomShards,
        catalogue: Catalogue,
        regions: Mapping[Region, BookingStore],
        payments: Payments,
        hold_ttl_s: float,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        reconcile_every_s: float = 30.0,
        duplicate_wait_s: float = 2.0,
        claim_ttl_s: float = 1.0,
        checks_at_once: int = 0,
    ) -> None:
        """clock: unix seconds, the only time the service reads (it waits with sleep), so that a
        test can run hours in an instant. duplicate_wait_s: how long a replay of a key lets a
        PENDING booking of it be (since its creation) before finishing the saga itself; a live
        saga normally ends in milliseconds, so a booking still PENDING by then was left by a
        failure, a stall or a dead process. claim_ttl_s: how long an attempt's claim on a free
        stay keeps racing attempts off it if its hold never comes (ShardCalendar.claim_stay).
        checks_at_once: attempts checked against their shard at the same time (0: no bound)."""
        self._availability = availability
        self._catalogue = catalogue
        self._regions = dict(regions)
        self._payments = payments
        self._hold_ttl_s = hold_ttl_s
        self._clock = clock
        self._sleep = sleep
        self._reconcile_every_s = reconcile_every_s
        self._duplicate_wait_s = duplicate_wait_s
        self._claim_ttl_s = claim_ttl_s
        self._checking: contextlib.AbstractAsyncContextManager[object] = (
            asyncio.Semaphore(checks_at_once) if checks_at_once > 0 else contextlib.nullcontext()
        )
        self._ending_claims: set[asyncio.Future[None]] = set()
        self._ids = BookingIds()
        self._changes = BookingChanges(
            availability=availability,
            catalogue=catalogue,
            regions=regions,
            payments=payments,
            hold_ttl_s=hold_ttl_s,
            clock=clock,
            default_card_token=DEFAULT_CARD_TOKEN,
            sleep=sleep,
            duplicate_wait_s=duplicate_wait_s,
        )
        # (region, user, key) -> the saga of this process using it, until it ends
        self._in_flight: dict[tuple[Region, int, str], asyncio.Future[Booking]] = {}
        self._reconciler: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Settle what a previous process left PENDING, then keep doing so in the background."""
        await self._reconcile_logged()
        self._reconciler = asyncio.create_task(self._reconcile_forever(), name="booking-reconciler")

    async def stop(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
            self._reconciler = None

    # -- booking -------------------------------------------------------------------------------

    async def book(self, *, user_id: int, region: Region, idempotency_key: str, request: BookingRequest) -> Booking:
        """The CONFIRMED booking, or the domain error of its outcome (NightsUnavailable,
        PaymentDeclined, ...). The same key with the same request gives the same answer."""
        flight_key = (region, user_id, idempotency_key)
        # One saga per key at a time in this process; the others then read its outcome.
        while (flight := self._in_flight.get(flight_key)) is not None and not flight.done():
            await asyncio.wait([flight])  # whatever its outcome, it is read from the row next
        saga = asyncio.ensure_future(self._book(user_id, region, idempotency_key, request))
        self._in_flight[flight_key] = saga
        # The key stays taken until the saga itself ends, even if its caller has gone.
        saga.add_done_callback(lambda _: self._in_flight.pop(flight_key, None))
        # shielded: a client that hangs up must not leave the saga half done
        return await asyncio.shield(saga)

    async def _book(self, user_id: int, region: Region, key: str, request: BookingRequest) -> Booking:
        check_card_token(request.card_token or DEFAULT_CARD_TOKEN)
        store = self._regions[region]
        # Most attempts on a popular room find a night already taken. The shard says so at once
        # (before its batch commits); such an attempt is refused with nothing read or written
        # but its key, which only a replay finds stored. A free stay is claimed for this key
        # until its hold is placed, so the attempts racing it for the same nights are refused
        # here too, not after each has stored a PENDING row (ShardCalendar.claim_stay).
        claim = _claim_of(region, user_id, key) if self._claim_ttl_s > 0 else None
        # Only so many attempts are checked at once; the others wait here, costing nothing. Under
        # a storm on a popular room the checks are nearly all the work, and without a bound the
        # bookings that got past theirs would wait behind every new attempt at each of their
        # steps (one event loop serves both).
        # The bound covers the shard's answer alone: a refusal's key lookup waits on the regional
        # store, and holding a place through it would bound the attempts by that store's latency.
        try:
            async with self._checking:
                await self._availability.check_stay(
                    room_id=request.room_id, stay=request.stay, claim=claim, claim_ttl_s=self._claim_ttl_s
                )
        except NightsUnavailable:
            stored = await _unknown_on_failure(store.booking_by_key(user_id, key))
            if stored is None:
                raise
            return await self._replay(store, stored, request)
        except (ShardUnavailable, OutcomeUnknown):
            claim = None  # a read changed nothing: the saga below meets the fault again and records it
        holding = False
        try:
            # both at once, one wait less: a stay the rules then refuse has read its policy for nothing
            room, policy = await asyncio.gather(
                self._catalogue.room(request.room_id), self._catalogue.cancellation_policy(request.room_id)
            )
            if room is None:
                raise UnknownRoom(f"no room {request.room_id}")
            now_s = self._clock()
            # The room's stay rules, in its own time zone, before anything is stored; a key used
            # before answers as it did then, though the rules (or the date) may refuse its stay now.
            refusal = stay_refusal(room, request.check_in, request.check_out, request.guests, now_s)
            if refusal is not None and await _unknown_on_failure(store.booking_by_key(user_id, key)) is None:
                raise refusal
            quote = price_stay(room, request.check_in, request.check_out, request.guests)
            candidate = pending_booking(
                booking_id=self._ids.next(int(now_s * 1000)),
                user_id=user_id,
                request=request,
                quote=quote,
                idempotency_key=key,
                now=_utc(now_s),
                cancellation_policy=policy,
            )
            event = self._event(store, candidate, previous=None)
            stored = await _unknown_on_failure(store.insert_booking(candidate, event))
            if stored.id != candidate.id:  # the key was used before
                return await self._replay(store, stored, request)
            holding = True  # its hold, placed or refused, ends the claim
            return _outcome(await _unknown_on_failure(self._run_saga(store, stored, request)))
        finally:
            if claim is not None and not holding:
                self._end_claim(request, claim)

    def _end_claim(self, request: BookingRequest, claim: str) -> None:
        """Free the stay this attempt claimed but will not hold (in the background: a claim also
        ends by itself within claim_ttl_s, so a failure here delays others by that at most)."""

        async def end() -> None:
            with contextlib.suppress(NightsUnavailable, *_UNKNOWN_AFTER):
                await self._availability.check_stay(room_id=request.room_id, stay=request.stay, claim=claim)

        task = asyncio.ensure_future(end())
        self._ending_claims.add(task)
        task.add_done_callback(self._ending_claims.discard)

    async def _replay(self, store: BookingStore, stored: Booking, request: BookingRequest) -> Booking:
        """The answer to a key already stored: its outcome once it has one; a booking left
        PENDING by a failure or a dead process is finished here (every step is idempotent)."""
        ensure_same_request(stored, request_hash(request))
        stored = await _unknown_on_failure(self._settled(store, stored))
        if stored.status is not BookingStatus.PENDING:
            return _outcome(stored)
        return _outcome(await _unknown_on_failure(self._run_saga(store, stored, request)))

    async def _run_saga(self, store: BookingStore, booking: Booking, request: BookingRequest) -> Booking:
        try:
            await self._availability.place_hold(
                room_id=booking.room_id,
                hold_id=booking.id,
                stay=request.stay,
                ttl_s=self._hold_ttl_s,
                not_after_s=booking.created_at.timestamp() + self._hold_ttl_s,
            )
        except NightsUnavailable as exc:
            return await self._settle(store, booking, BookingStatus.CANCELLED, refusal=Refusal.of(exc))
        except HoldExpired:  # past its deadline: no hold of it exists, and none ever will
            return await self._settle(store, booking, BookingStatus.EXPIRED, refusal=_EXPIRED)
        except ShardUnavailable:
            # The hold may have been placed before the shard failed: free it, or leave the row
            # PENDING for the reconciler if even that fails.
            await self._availability.release(room_id=booking.room_id, hold_id=booking.id)
            return await self._settle(store, booking, BookingStatus.CANCELLED, refusal=_SHARD_FAILED)
        intent = await self._payments.authorize(
            booking.total_price, booking.currency, request.card_token or DEFAULT_CARD_TOKEN, booking.id
        )
        if not intent.authorized:
            await self._availability.release(room_id=booking.room_id, hold_id=booking.id)
            return await self._settle(
                store,
                booking,
                BookingStatus.CANCELLED,
                payment_intent_id=intent.id,
                refusal=Refusal.of(PaymentDeclined(intent.decline_code or "declined")),
            )
        try:
            await self._availability.confirm(room_id=booking.room_id, hold_id=booking.id)
        except (HoldExpired, UnknownHold):  # ran out (or the reconciler released it) before payment came back
            return await self._settle(
                store, booking, BookingStatus.EXPIRED, payment_intent_id=intent.id, refusal=_EXPIRED
            )
        settled = await self._settle(store, booking, BookingStatus.CONFIRMED, payment_intent_id=intent.id)
        if settled.status is not BookingStatus.CONFIRMED:
            # The reconciler gave this booking up (it stalled past the hold TTL before its hold was
            # placed) while we went on to book the nights: free them, or no booking would own them.
            # Noted first, so that if the shard fails now the reconciler frees them later.
            await store.record_release(booking.id, _utc(self._clock()))
            try:
                await self._release_nights(store, settled)
            except _UNKNOWN_AFTER as exc:
                log.warning("booking %s given up; its nights are freed later: %r", booking.id, exc)
        return settled

    async def _settle(
        self,
        store: BookingStore,
        booking: Booking,
        to: BookingStatus,
        *,
        payment_intent_id: str | None = None,
        refusal: Refusal | None = None,
    ) -> Booking:
        """Move a PENDING booking to `to`; if someone settled it first, theirs stands."""
        now = _utc(self._clock())
        after = msgspec.structs.replace(
            booking,
            status=to,
            updated_at=now,
            payment_intent_id=payment_intent_id or booking.payment_intent_id,
            refusal=refusal or booking.refusal,
        )
        changed = await store.transition_booking(
            booking.id,
            expected=BookingStatus.PENDING,
            to=to,
            now=now,
            payment_intent_id=payment_intent_id,
            refusal=refusal,
            event=self._event(store, after, previous=BookingStatus.PENDING),
        )
        if changed:
            return after
        return await _read_back(store, booking)

    async def _settled(self, store: BookingStore, booking: Booking) -> Booking:
        """The booking once it has left PENDING (another process may still be working on it), or
        still PENDING once it is duplicate_wait_s old."""
        created_s = booking.created_at.timestamp()
        delay_s = 0.01
        while booking.status is BookingStatus.PENDING and self._clock() - created_s < self._duplicate_wait_s:
            await self._sleep(min(delay_s, max(created_s + self._duplicate_wait_s - self._clock(), 0.0)))
            delay_s = min(delay_s * 2, 0.2)
            booking = await _read_back(store, booking)
        return booking

    # -- changing ------------------------------------------------------------------------------

    async def modify(
        self, *, user_id: int, region: Region, booking_id: str, idempotency_key: str, change: BookingChange
    ) -> Booking:
        """Change a confirmed booking's dates, guests or room (see services.modifications): the
        booking after the change, or the domain error of its refusal with the booking untouched."""
        flight_key = (region, user_id, f"{booking_id}\0{idempotency_key}")
        while (flight := self._in_flight.get(flight_key)) is not None and not flight.done():
            await asyncio.wait([flight])  # one run per key in this process; the others read its outcome
        run = asyncio.ensure_future(
            self._changes.modify(
                user_id=user_id, region=region, booking_id=booking_id, idempotency_key=idempotency_key, change=change
            )
        )
        self._in_flight[flight_key] = run
        run.add_done_callback(lambda _: self._in_flight.pop(flight_key, None))
        return await asyncio.shield(run)  # a client that hangs up must not leave the change half done

    # -- reading and cancelling ----------------------------------------------------------------

    async def bookings_of(self, *, user_id: int, region: Region, page: int, per_page: int) -> BookingPage:
        return await self._regions[region].bookings_of(user_id, page=page, per_page=per_page)

    async def booking(self, *, user_id: int, region: Region, booking_id: str) -> Booking:
        booking = await self._regions[region].booking(booking_id, user_id)
        if booking is None:
            raise UnknownBooking(f"no booking {booking_id!r}")
        return booking

    async def cancel(self, *, user_id: int, region: Region, booking_id: str) -> Booking:
        """Cancel a confirmed booking under the policy it was booked with: it is CANCELLED, with
        its fee and refund, and its nights are free once this returns, its refund made (if the
        shard or the payment service is not answering, a retry or the reconciler's next round
        finishes both). Idempotent. OutcomeUnknown: the store failed, the booking may be
        CANCELLED already."""
        store = self._regions[region]
        booking = await self.booking(user_id=user_id, region=region, booking_id=booking_id)
        if booking.status is BookingStatus.PENDING:
            raise BookingInProgress("this booking is still being made; retry shortly")
        if booking.modifying is not None:
            raise BookingInProgress("this booking is being changed; retry shortly")
        if booking.status is BookingStatus.CONFIRMED:
            # The row first, with its pending release in the same transaction: a failure after it
            # leaves nights booked for a cancelled booking (freed later), never a confirmed
            # booking whose nights someone else can book.
            # the room's today only matters under a policy: a free cancel does not read the catalogue
            now_s = self._clock()
            today = await self._today(booking.room_id, now_s) if booking.cancellation_policy is not None else None
            terms = booking.cancellation_terms(today=today or _utc(now_s).date())
            now = _utc(now_s)
            after = msgspec.structs.replace(
                booking,
                status=BookingStatus.CANCELLED,
                updated_at=now,
                cancellation_fee=terms.fee,
                refund_amount=terms.refund,
            )
            event = self._event(store, after, previous=BookingStatus.CONFIRMED)
            if await _unknown_on_failure(store.cancel_booking(booking.id, now=now, terms=terms, event=event)):
                booking = after
            else:  # a concurrent cancel got there first, or a change began
                booking = await self.booking(user_id=user_id, region=region, booking_id=booking_id)
                if booking.status is BookingStatus.CONFIRMED:
                    raise BookingInProgress("this booking is being changed; retry shortly")
        if booking.status is BookingStatus.CANCELLED:
            try:
                await self._release_nights(store, booking)
            except _UNKNOWN_AFTER as exc:
                log.warning("booking %s cancelled; its nights are freed later: %r", booking.id, exc)
            try:
                booking = await self._refund(store, booking)
            except Exception as exc:  # the payment service or the store: the reconciler retries
                log.warning("booking %s cancelled; its refund is made later: %r", booking.id, exc)
        return booking

    async def _today(self, room_id: int, now_s: float) -> dt.date:
        """The property's today (a room gone from the catalogue counts days in UTC)."""
        room = await self._catalogue.room(room_id)
        return local_today(room, now_s) if room is not None else _utc(now_s).date()

    async def _refund(self, store: BookingStore, booking: Booking) -> Booking:
        """Give a cancelled booking's refund back through the payment service, once: the
        payment's key makes a retry get the first refund back, and the row notes it (with its
        booking.refunded event) only if no refund was noted before."""
        if not booking.refund_amount or booking.refund_id is not None or booking.payment_intent_id is None:
            return booking
        refund = await self._payments.refund(
            booking.payment_intent_id, booking.refund_amount, booking.currency, f"refund:{booking.id}"
        )
        now = _utc(self._clock())
        after = msgspec.structs.replace(booking, refund_id=refund.id, updated_at=now)
        event = booking_event(
            after, region=store.region.value, previous=booking.status, now_s=self._clock(), refunded=True
        )
        if await store.record_refund(booking.id, refund.id, now=now, event=event):
            return after
        return await _read_back(store, booking)

    async def _release_nights(self, store: BookingStore, booking: Booking) -> None:
        """Free a cancelled booking's nights in the shard (idempotent: nothing if already free)."""
        await self._availability.cancel(room_id=booking.room_id, booking_id=booking.id)
        await store.release_done(booking.id)

    def _event(self, store: BookingStore, booking: Booking, *, previous: BookingStatus | None) -> BookingEvent:
        """The event recorded with the change that brings `booking` to its status (same transaction),
        naming the request it was made for (none for the reconciler's own changes)."""
        return booking_event(
            booking,
            region=store.region.value,
            previous=previous,
            now_s=self._clock(),
            request_id=current_request_id(),
        )

    # -- the reconciler ------------------------------------------------------------------------

    async def reconcile(self, now_s: float | None = None, *, batch: int = 100) -> int:
        """Make every refund a cancellation left due, free the nights of every cancelled booking
        still holding them, and settle every PENDING
        booking created more than
        the hold TTL (and CLOCK_SKEW_S) before now_s from the shard's truth: booked there ->
        CONFIRMED, else its hold is released -> EXPIRED. Returns how many were settled."""
        now_s = self._clock() if now_s is None else now_s
        cutoff = _utc(now_s - self._hold_ttl_s - CLOCK_SKEW_S)
        settled = 0
        for store in self._regions.values():
            refunds = await store.refunds_due(limit=batch)
            refunded = await asyncio.gather(*(self._refund(store, b) for b in refunds), return_exceptions=True)
            for booking, outcome in zip(refunds, refunded, strict=True):
                if isinstance(outcome, BaseException):
                    log.warning("reconciler: refund of cancelled %s not made yet: %r", booking.id, outcome)
            settled += sum(1 for outcome in refunded if not isinstance(outcome, BaseException))
            releases = await store.pending_releases(limit=batch)
            results = await asyncio.gather(*(self._release_nights(store, b) for b in releases), return_exceptions=True)
            for booking, result in zip(releases, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("reconciler: nights of cancelled %s not freed yet: %r", booking.id, result)
            settled += sum(1 for result in results if not isinstance(result, BaseException))
            while True:
                pending = await store.pending_bookings_before(cutoff, limit=batch)
                results = await asyncio.gather(*(self._settle_stale(store, b) for b in pending), return_exceptions=True)
                for booking, result in zip(pending, results, strict=True):
                    if isinstance(result, BaseException):
                        log.warning("reconciler: booking %s left PENDING: %r", booking.id, result)
                settled += sum(1 for result in results if not isinstance(result, BaseException))
                if len(pending) < batch or any(isinstance(result, BaseException) for result in results):
                    break  # done, or a shard is down: the next round retries
            settled += await self._changes.reconcile(store, now_s=now_s, skew_s=CLOCK_SKEW_S, batch=batch)
        return settled

    async def _settle_stale(self, store: BookingStore, booking: Booking) -> None:
        # release is idempotent and never frees a booking: its reply tells which the shard has
        view = await self._availability.release(room_id=booking.room_id, hold_id=booking.id)
        if view.status is HoldStatus.BOOKED:
            await self._settle(store, booking, BookingStatus.CONFIRMED)
        else:
            await self._settle(store, booking, BookingStatus.EXPIRED, refusal=_EXPIRED)

    async def _reconcile_logged(self) -> None:
        try:
            if count := await self.reconcile():
                log.info("reconciler settled %d stale PENDING bookings", count)
        except Exception:
            log.exception("reconciler round failed; retrying in %.0f s", self._reconcile_every_s)

    async def _reconcile_forever(self) -> None:
        while True:
            await self._sleep(self._reconcile_every_s)
            await self._reconcile_logged()


# How the saga records the refusals it makes itself (the others are the shard's or the payment's)
_EXPIRED = Refusal(kind=HoldExpired.kind)  # not completed within the hold TTL
_SHARD_FAILED = Refusal(kind=ShardUnavailable.kind)  # a fenced shard's too: the same to the guest


def _claim_of(region: Region, user_id: int, key: str) -> str:
    """The shard's name for an attempt's claim: the same for every request of one key (a repeat
    sent to another process is not refused by its own first request's claim), and no key in it."""
    return hashlib.blake2b(f"{region}\0{user_id}\0{key}".encode(), digest_size=16).hexdigest()


def _utc(unix_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_s, dt.UTC)


def _outcome(booking: Booking) -> Booking:
    """The booking if its request succeeded; else the error the first answer carried."""
    if booking.status is BookingStatus.PENDING:
        raise BookingInProgress("a request with this Idempotency-Key is still in progress; retry shortly")
    if booking.status is BookingStatus.EXPIRED:
        raise (booking.refusal or _EXPIRED).error(booking)
    if booking.status is BookingStatus.CANCELLED and booking.refusal is not None:
        raise booking.refusal.error(booking)
    return booking  # CONFIRMED, or CANCELLED later by its guest: the request itself succeeded


async def _read_back(store: BookingStore, booking: Booking) -> Booking:
    found = await store.booking(booking.id, booking.user_id)
    if found is None:  # bookings are never deleted, and this one was written before
        raise StoreUnavailable(f"booking {booking.id} is missing from its store")
    return found
