"""The ports roombook's core talks through. Adapters are async context managers."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from email.message import Message
from typing import Protocol

import msgspec

from roombook.domain.accounts import Account, NewUser, RefreshToken, Region, Role, User
from roombook.domain.analytics import BookingCountKind, DailyBookingCounts
from roombook.domain.bookings import Booking, BookingPage, BookingStatus, Refusal
from roombook.domain.cancellation import CancellationPolicy, CancellationTerms
from roombook.domain.directory import PendingClaim
from roombook.domain.events import BookingEvent, Event
from roombook.domain.modifications import Modification
from roombook.domain.nights import Night
from roombook.domain.rooms import Room, RoomPatch
from roombook.domain.search import RoomQuery, SearchPage
from roombook.domain.waitlist import RoomWatch
from roombook.routing.ring import ShardRing


class ShardLease(msgspec.Struct, frozen=True, kw_only=True):
    """Who owns a shard now. `commits` counts the transactions written under any epoch.

    deployment: the deployment the owner belongs to (its Ray cluster and namespace); actor: the
    name its actor is found by ("" in-process); renewed_at: the owner's last commit or heartbeat,
    which tells a live owner from a dead one."""

    shard_id: int
    epoch: int
    owner: str
    acquired_at: dt.datetime
    commits: int
    deployment: str = ""
    actor: str = ""
    renewed_at: dt.datetime | None = None
    lease_s: float = 0.0  # how often the owner promised to renew it (0: it never does)
    renewed_s_ago: float | None = None  # by the store's clock, when read

    @property
    def live(self) -> bool:
        return self.lease_s > 0 and self.renewed_s_ago is not None and self.renewed_s_ago < self.lease_s


# -- events -------------------------------------------------------------------------------------


class EventOutbox(Protocol):
    """Events a store committed together with the rows they describe, waiting to be published.

    The global store and each regional store are one each. Entries come back oldest first (by
    `seq`); an entry stays pending until marked, so a relay that dies between publishing and
    marking publishes it again (consumers deduplicate by event id).
    """

    async def pending_events(self, limit: int) -> list[tuple[int, Event]]:
        """Up to `limit` unpublished (seq, event), in seq order."""
        ...

    async def mark_published(self, seqs: Sequence[int]) -> None: ...


class ClaimOutcome(enum.StrEnum):
    NEW = "new"  # the caller holds the claim: handle the event, then complete (or release) it
    DONE = "done"  # handled already: acknowledge and do nothing
    BUSY = "busy"  # someone else holds a live claim: retry later


class ProcessedEvents(Protocol):
    """Which events each consumer has handled, durably (the global store keeps the table).

    A claim is a lease: a consumer that dies holding one leaves it to expire, and the event's
    next delivery after that claims it again. So an effect runs at least once, and twice only if
    a consumer dies between the effect and `complete`.
    """

    async def claim_event(self, consumer: str, event_id: str, *, lease_s: float) -> ClaimOutcome: ...

    async def complete_event(self, consumer: str, event_id: str) -> None: ...

    async def release_event(self, consumer: str, event_id: str) -> None:
        """Give a claim back after a failed attempt, so a redelivery retries at once."""
        ...


class BookingAnalytics(Protocol):
    """Daily booking counts per room and region (the global store keeps them)."""

    async def count_booking_event(
        self, event_id: str, kind: BookingCountKind, *, day: dt.date, room_id: int, region: str
    ) -> bool:
        """Add one to the day's `kind` counter of the room and region, once per event id, in one
        transaction; False (and nothing changed) if that event was counted already."""
        ...

    async def booking_counts(
        self, start: dt.date, end: dt.date, *, room_id: int | None = None, region: str | None = None
    ) -> list[DailyBookingCounts]:
        """The counters of the days [start, end), of one room and one region where given, in
        (date, room_id, region) order; a day, room and region with no booking event has no row."""
        ...


class ShardStore(Protocol):
    """What a room shard needs of the availability store: its lease and its rooms' nights.

    Writes are fenced: `write_nights` succeeds only for the shard's current epoch (else
    ShardFenced), and only if each row's stored version is exactly one below the new row's (an
    absent row counts as 0; else ShardDiverged); a refused call writes nothing. No row locks are
    taken. A failing backend raises StoreUnavailable, after which a write may or may not have
    committed: the caller must find out from the store (a new epoch and a reload), never guess.
    """

    async def acquire_shard(
        self,
        shard_id: int,
        owner: str,
        *,
        renew: bool = False,
        deployment: str = "",
        actor: str = "",
        lease_s: float = 0.0,
    ) -> int:
        """Become the shard's owner; return the new epoch, greater than every earlier one.

        renew=True: take a new epoch only if `owner` still holds the lease (else ShardFenced). It
        waits for any write of the owner's still in flight, which the new epoch then fences: what
        the store holds afterwards is final for every earlier write.

        `deployment`, `actor` and `lease_s` are recorded with the lease: the owner promises to renew
        it (a commit or renew_lease) at least every lease_s (0: no promise). A lease of another
        deployment renewed less than its lease_s ago, by the store's clock, is live: taking it is
        refused with ShardOwnedElsewhere, changing nothing."""
        ...

    async def renew_lease(self, shard_id: int, epoch: int) -> bool:
        """Record that the owner at `epoch` is alive; False if that epoch is no longer current."""
        ...

    async def lease(self, shard_id: int) -> ShardLease | None:
        """The shard's lease as stored now, or None if no one ever took it."""
        ...

    async def ring(self, default_shard_count: int | None = None) -> ShardRing | None:
        """The deployment's ring as recorded (None if none is). With default_shard_count, a store
        that records none records that one first (version 1): the first process to start fixes
        the ring, and every later one reads it, whatever shard count it was configured with."""
        ...

    async def change_ring(self, expected_version: int, shard_count: int) -> ShardRing:
        """Record the next ring (version expected_version + 1) if the current one is still
        expected_version; else RingChanged (another resize won), changing nothing."""
        ...

    async def load_nights(
        self, ring: ShardRing, shard_id: int, *, unless_owned_by: ShardRing | None = None
    ) -> list[Night]:
        """Every stored night of every room that `ring` places on `shard_id`; with unless_owned_by,
        only of those rooms that this ring did not place on `shard_id` too (a shard resized in
        place keeps the nights it had)."""
        ...

    async def write_nights(
        self, shard_id: int, epoch: int, nights: Sequence[Night], events: Sequence[Event] = ()
    ) -> None:
        """Persist the rows, and the events into the outbox, in one transaction, durably, before
        returning (group commit). A fenced or failed write writes neither."""
        ...


class AvailabilityStore(ShardStore, EventOutbox, ProcessedEvents, BookingAnalytics, Protocol):
    """The global source of truth for rooms and room-nights (see ShardStore for the writes)."""

    async def __aenter__(self) -> AvailabilityStore: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def migrate(self) -> list[int]:
        """Apply the schema migrations not applied yet; return their version numbers."""
        ...

    async def nights(self, room_id: int, start: dt.date, end: dt.date) -> list[Night]:
        """Stored rows of one room for [start, end), date order (absent rows are available)."""
        ...

    async def leases(self) -> list[ShardLease]: ...

    async def add_rooms(self, rooms: Sequence[Room]) -> list[int]:
        """Store new rooms; a room.updated event per room goes into the outbox with them."""
        ...

    async def room(self, room_id: int) -> Room | None: ...

    async def room_count(self) -> int: ...

    async def room_ids(self) -> list[int]: ...

    async def rooms_after(self, room_id: int, *, limit: int) -> list[Room]:
        """Up to `limit` rooms with ids above `room_id`, in id order (reading the whole catalogue)."""
        ...

    async def update_room(self, room_id: int, patch: RoomPatch, *, expected: RoomPatch | None = None) -> Room | None:
        """Change the fields the patch sets, in one statement; the room after it (None: unknown).
        With `expected`, only if the fields it sets are stored as it has them (compare-and-set: the
        caller compares the room returned with what it wrote). A room.updated event goes into the
        outbox in the same transaction if the room changed."""
        ...

    async def cancellation_policy(self, room_id: int) -> CancellationPolicy | None:
        """The room's cancellation policy (None: cancelling is free)."""
        ...

    async def set_cancellation_policy(self, room_id: int, policy: CancellationPolicy | None) -> bool:
        """Replace the room's policy (None removes it); False if there is no such room."""
        ...

    async def add_watch(self, watch: RoomWatch) -> RoomWatch:
        """Store a watch (its id set, in the order watches are made); a user's watch of the same
        nights of the room that is still waiting is returned instead of a second one."""
        ...

    async def watches_of(self, room_id: int, start: dt.date, end: dt.date) -> list[RoomWatch]:
        """The room's watches still waiting whose nights meet [start, end), oldest first."""
        ...

    async def mark_watch_notified(self, watch_id: int, now: dt.datetime) -> bool:
        """The watch was told: it is done. False if it was already."""
        ...

    async def set_room_images(self, room_id: int, expected: Sequence[str], images: Sequence[str]) -> bool | None:
        """Compare-and-set of a room's `images`: replace them only if they are still `expected`,
        with a room.updated event in the same transaction. None: no such room; False: they
        had changed (nothing written)."""
        ...


class BookingStore(Protocol):
    """One region's bookings: what the booking saga and the reconciler need of a RegionalStore."""

    region: Region

    async def insert_booking(self, booking: Booking, event: BookingEvent | None = None) -> Booking:
        """Store a new PENDING booking and return it; if the user already has a booking under the
        same idempotency key, store nothing and return that one (compare ids to tell which).
        `event` goes into the outbox in the same transaction, only if the booking was stored."""
        ...

    async def booking(self, booking_id: str, user_id: int) -> Booking | None:
        """The booking, only if it belongs to that user."""
        ...

    async def booking_by_key(self, user_id: int, idempotency_key: str) -> Booking | None:
        """The user's booking made under that idempotency key, if any."""
        ...

    async def bookings_of(self, user_id: int, *, page: int, per_page: int) -> BookingPage:
        """A user's bookings newest first; page counts from 1."""
        ...

    async def transition_booking(
        self,
        booking_id: str,
        *,
        expected: BookingStatus,
        to: BookingStatus,
        now: dt.datetime,
        payment_intent_id: str | None = None,
        refusal: Refusal | None = None,
        event: BookingEvent | None = None,
    ) -> bool:
        """Compare-and-set: move the booking to `to` only if its status is `expected` (raises
        InvalidBookingTransition if the lifecycle forbids it). A given payment_intent_id or
        refusal is recorded with the change, and `event` goes into the outbox in the same
        transaction if the row changed. Returns whether the row changed."""
        ...

    async def cancel_booking(
        self, booking_id: str, *, now: dt.datetime, terms: CancellationTerms, event: BookingEvent | None = None
    ) -> bool:
        """A guest's cancellation: move a CONFIRMED booking to CANCELLED with its fee and the refund
        it is due, record its pending release, and put `event` into the outbox, all in one
        transaction. False (changing nothing) unless it was CONFIRMED."""
        ...

    async def record_refund(
        self, booking_id: str, refund_id: str, *, now: dt.datetime, event: BookingEvent | None = None
    ) -> bool:
        """Note the refund made of a cancelled booking's refund_amount, with `event` (same
        transaction). False if one was noted already (or none is due)."""
        ...

    async def refunds_due(self, *, limit: int = 100) -> list[Booking]:
        """CANCELLED bookings with a refund to give and none noted yet (for the reconciler)."""
        ...

    async def pending_bookings_before(self, cutoff: dt.datetime, *, limit: int = 100) -> list[Booking]:
        """PENDING bookings created before cutoff, oldest first (for the reconciler)."""
        ...

    async def begin_modification(self, modification: Modification) -> Modification | None:
        """Store a PENDING modification and mark its booking as being changed by it, in one
        transaction, if the booking is CONFIRMED, its user's, and not being changed already. The
        modification already stored under the same booking and key if there is one (compare ids
        to tell); None if the booking could not be taken for the change."""
        ...

    async def modification_by_key(self, booking_id: str, idempotency_key: str) -> Modification | None: ...

    async def modification(self, modification_id: str) -> Modification | None: ...

    async def finish_modification(
        self, modification: Modification, *, after: Booking | None = None, event: BookingEvent | None = None
    ) -> bool:
        """Record a PENDING modification's outcome (its status, charge, refund due and refusal)
        and free its booking for the next change, giving the booking its new stay and price if
        `after` is given, with `event`: all in one transaction, only if it was still PENDING."""
        ...

    async def record_modification_refund(
        self, modification_id: str, refund_id: str, *, now: dt.datetime, event: BookingEvent | None = None
    ) -> bool:
        """Note the refund a settled modification was due, with `event` (same transaction);
        False if one was noted already."""
        ...

    async def modification_refunds_due(self, *, limit: int = 100) -> list[Modification]:
        """Settled modifications with a refund to give and none noted yet (for the reconciler)."""
        ...

    async def pending_modifications_before(self, cutoff: dt.datetime, *, limit: int = 100) -> list[Modification]:
        """PENDING modifications created before cutoff, oldest first (for the reconciler)."""
        ...

    async def pending_releases(self, *, limit: int = 100) -> list[Booking]:
        """CANCELLED bookings whose nights the shard may still hold, oldest cancellation first:
        moving a CONFIRMED booking to CANCELLED records it, in the same transaction, until
        `release_done` (for the reconciler)."""
        ...

    async def record_release(self, booking_id: str, now: dt.datetime) -> None:
        """Note that the shard may hold nights of this settled booking that nobody owns (its
        saga booked them after the reconciler gave it up), for `pending_releases`. Idempotent."""
        ...

    async def release_done(self, booking_id: str) -> None:
        """The shard has freed the cancelled booking's nights. Idempotent."""
        ...


class RegionalStore(BookingStore, EventOutbox, Protocol):
    """One region's users, refresh tokens and bookings (a regional MySQL/Aurora or SQLite database).

    A store holds only rows of its own `region`: `create_user` refuses a user of another region,
    and every token and booking row references a user of this store. Times are aware UTC
    datetimes. No row locks: every conditional change is a compare-and-set in one UPDATE.
    """

    region: Region

    async def __aenter__(self) -> RegionalStore: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def migrate(self) -> list[int]: ...

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, new: NewUser) -> User:
        """Store a user with a fresh id. Raises DuplicateEmail if this store has the email."""
        ...

    async def user(self, user_id: int) -> User | None: ...

    async def account_by_email(self, email: str) -> Account | None:
        """The user with that (normalized) email, with their password hash."""
        ...

    async def emails_registered_since(self, since: dt.datetime) -> list[str]:
        """The emails of the users created at or after `since` (settling the email directory)."""
        ...

    async def set_role(self, user_id: int, role: Role, now: dt.datetime) -> bool: ...

    async def set_password_hash(self, user_id: int, password_hash: str, now: dt.datetime) -> bool: ...

    async def delete_user(self, user_id: int) -> bool:
        """Remove a user that owns no tokens or bookings (undoing a registration that lost a race)."""
        ...

    # -- refresh tokens ------------------------------------------------------------------------

    async def insert_refresh_token(self, token: RefreshToken) -> None: ...

    async def refresh_token(self, token_hash: str) -> RefreshToken | None: ...

    async def rotate_refresh_token(self, token_hash: str, successor: RefreshToken, now: dt.datetime) -> bool:
        """If the token is neither rotated nor revoked: mark it rotated and insert its successor,
        in one transaction, and return True. Otherwise change nothing and return False."""
        ...

    async def revoke_refresh_token(self, token_hash: str, now: dt.datetime) -> bool:
        """Revoke one token; False if it was unknown or already revoked."""
        ...

    async def revoke_token_family(self, family_id: str, now: dt.datetime) -> int:
        """Revoke every token of one login; return how many were still unrevoked."""
        ...

    async def revoke_user_tokens(self, user_id: int, now: dt.datetime) -> int: ...


class EmailDirectory(Protocol):
    """The global directory of email keys (keyed hashes, never emails) -> the region holding the
    account, in the global store. A key has at most one entry; only its own region changes it."""

    async def __aenter__(self) -> EmailDirectory: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def migrate(self) -> None: ...

    async def claim(self, key: str, region: Region, now: dt.datetime) -> Region:
        """Claim `key` for `region` (pending) unless it has an entry: the region that holds it
        now (ours means claimed, or claimed before by a registration that is being retried)."""
        ...

    async def confirm(self, key: str, region: Region) -> bool:
        """Mark our claim confirmed; False if the key is not ours (released, or another's)."""
        ...

    async def release(self, key: str, region: Region) -> bool:
        """Delete our pending claim (a registration that did not create its user); never a confirmed entry."""
        ...

    async def remove(self, key: str, region: Region) -> bool:
        """Delete our entry, confirmed or not (the account is deleted)."""
        ...

    async def region_of(self, key: str) -> Region | None: ...

    async def pending(self, region: Region, claimed_before: dt.datetime) -> list[PendingClaim]:
        """Our claims still pending that were made before `claimed_before`."""
        ...


class SearchIndex(Protocol):
    """Rooms by text, place, price, capacity and amenities (OpenSearch, or the embedded index).

    A write is visible to every search started after it returns. `reindex` rebuilds the whole
    index from the given rooms while searches keep being answered, from the old contents until
    the new ones are complete; writes made during a reindex are kept (they count as newer than
    the rooms given to it).
    """

    async def __aenter__(self) -> SearchIndex: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def upsert(self, rooms: Sequence[Room]) -> None:
        """Add the rooms, or replace those already indexed under the same id (ids must be set)."""
        ...

    async def delete(self, room_ids: Sequence[int]) -> None:
        """Remove the rooms; unknown ids are ignored."""
        ...

    async def search(self, query: RoomQuery, *, candidate_limit: int | None = None) -> SearchPage:
        """One page of matching rooms in the query's order. With candidate_limit, the first that
        many matches instead of the page (for a caller that filters them further, e.g. by
        availability, and pages itself); at most 10,000. The query's stay is not for the index:
        its caller keeps the rooms free on every night of it."""
        ...

    def candidates(self, query: RoomQuery, *, page_size: int) -> AsyncIterator[list[int]]:
        """The ids of every matching room, however many, in the query's order, at most page_size
        at a time (for a caller that filters them further, e.g. by availability). Pages past
        the first may reflect writes made after it; a room is never yielded twice."""
        ...

    async def count(self) -> int:
        """How many rooms are indexed."""
        ...

    async def reindex(self, rooms: Sequence[Room]) -> None:
        """Replace the whole contents with `rooms`, with no moment where search sees less."""
        ...


class ObjectStore(Protocol):
    """Immutable blobs by key: room photos (S3, or files under the data directory).

    `put` overwrites whole or leaves the old contents (never a partial object); putting the same
    key and bytes again is harmless. `url` is where a browser fetches the object: None when the
    app serves it itself (the file store, from `get`).
    """

    async def __aenter__(self) -> ObjectStore: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def put(self, key: str, data: bytes, *, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is none under that key."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove the objects; missing ones are ignored."""
        ...

    async def url(self, key: str) -> str | None: ...


class Cache(Protocol):
    """Bytes under string keys, each with a TTL (Redis, or the embedded MemoryCache).

    Any failure of the backend is raised as CacheUnavailable, never as a driver error, so callers
    can fall back to the source (roombook.storage.cache.resilient.ResilientCache does it for them). Generations
    are per-namespace counters that only grow: putting the generation into a key makes a bump
    invalidate every key of the namespace at once.
    """

    async def __aenter__(self) -> Cache: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values in the order of `keys`, None for each missing or expired one."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove the keys; missing ones are ignored."""
        ...

    async def bump_generation(self, namespace: str) -> int:
        """Advance the namespace's generation and return the new value."""
        ...

    async def generation(self, namespace: str) -> int:
        """The namespace's current generation (never smaller than an earlier answer)."""
        ...


# -- the event bus and mail --------------------------------------------------------------------


EventHandler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    """Topics per event family fanned out to named queues (see storage/event_routing.py).

    Delivery is at least once and unordered: a handler that returns acknowledges its event; one
    that raises gets it again later, and after `max_receives` failed deliveries the message goes
    to the queue's dead-letter queue. A message that is not a valid event goes there the same
    way. Handlers must therefore be idempotent (ProcessedEvents, or an effect that is by nature).
    """

    async def __aenter__(self) -> EventBus: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def ensure_topology(self, queues: Collection[str]) -> None:
        """Make the topics and these queues (with their dead-letter queues and subscriptions)
        exist; idempotent. A queue receives the events published after it exists."""
        ...

    async def publish(self, events: Sequence[Event]) -> None:
        """Hand every event to the bus, or raise (then some may have been published)."""
        ...

    async def consume(self, queue: str, handler: EventHandler, *, max_messages: int = 10, wait_s: float = 1.0) -> None:
        """Deliver the queue's events to `handler` until cancelled: up to `max_messages` at a
        time, handled concurrently, waiting up to `wait_s` for the next ones (long polling)."""
        ...


class MailSender(Protocol):
    """Sends one email. `key` names the message: sending the same key again must not make a
    second copy where the adapter can prevent it (the file adapter overwrites)."""

    async def __aenter__(self) -> MailSender: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def send(self, message: Message, *, key: str) -> None: ...
