"""Every error the domain and the room-shard layer raise.

RoombookError
├── InvalidStay            the stay itself is malformed (check_out <= check_in, too long)
├── NightsUnavailable      some nights of a stay are held or booked by someone else (.nights)
├── HoldExpired            the hold ran out before it was confirmed
├── UnknownHold            no hold or booking with that id on that room
├── HoldMismatch           an id reused for a different room or different nights
├── InvalidEmail           not an email address we accept (a ValueError too)
├── WeakPassword           a password outside the length policy (a ValueError too)
├── DuplicateEmail         the email is registered already, in either region
├── AuthenticationFailed   wrong email or password; never says which
├── TooManyAttempts        too many failed logins for one email and client (.retry_after_s)
├── InvalidToken           an access or refresh token that is malformed, expired, revoked or unknown
│   └── RefreshTokenReused a rotated refresh token came back: its whole family is now revoked
├── WrongRegion            a user (or token) of a region this process does not serve (.region)
├── InvalidBookingTransition  a status change the booking lifecycle does not allow
├── IdempotencyKeyReused   an Idempotency-Key sent again with a different request body
├── InvalidCardToken       not a card token (e.g. a raw card number) (a ValueError too)
├── InvalidBooking         a request the booking rules refuse (past, too long, too many guests)
├── UnknownRoom            no room with that id in the catalogue
├── UnknownImage           no image with that id on that room
├── InvalidImage           an upload that is not a photo we accept (type, size in pixels, file name)
├── ImageTooLarge          an upload over the size limit
├── UnknownBooking         no booking with that id for this user (someone else's looks the same)
├── PaymentDeclined        the payment was declined; the booking is CANCELLED (.decline_code)
├── BookingInProgress      the same Idempotency-Key is still being worked on; retry shortly
├── BookingNotModifiable   a change of a booking that is not CONFIRMED, or is being changed already
├── InvalidSearchQuery     a room search that makes no sense (min above max, radius with no point) (a ValueError too)
├── CacheUnavailable       the cache cannot answer (down, timed out); callers fall back to the source
├── EventBusy              another consumer is handling this event right now: deliver it again later (.retry_after_s)
├── StoreUnavailable       a store did not answer (down, connection refused or cut, timed out)
├── OutcomeUnknown         a change was sent but whether it took effect is unknown: retry it as it was
│                          (same Idempotency-Key), which settles it
└── ShardUnavailable       the owning shard cannot answer (store down, fenced, restarting)
    ├── ShardFenced        a newer owner took the shard over: this actor must stop serving it
    └── ShardDiverged      the stored rows are not the versions this owner holds: it must reload
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar


class RoombookError(Exception):
    """Base of every roombook error. Each class states once, as keywords of its class line, how it
    leaves the process (a subclass inherits what it does not state):

    kind     its name in a shard's Failure reply and in a refused booking's row (see error_of_kind)
    status   the HTTP status it answers with
    problem  the slug of its problem type, title that problem's title
    outcome  its label in the booking-outcome metric
    """

    kind: ClassVar[str] = "invalid"
    status: ClassVar[int] = 400
    problem: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    outcome: ClassVar[str] = "refused"

    def __init_subclass__(
        cls,
        *,
        kind: str | None = None,
        status: int | None = None,
        problem: str | None = None,
        title: str | None = None,
        outcome: str | None = None,
    ) -> None:
        super().__init_subclass__()
        if kind is not None:
            if kind in _OF_KIND:
                raise TypeError(f"{cls.__name__}: kind {kind!r} is {_OF_KIND[kind].__name__}'s already")
            cls.kind = kind
            _OF_KIND[kind] = cls
        if status is not None:
            cls.status = status
        if problem is not None:
            cls.problem = problem
        if title is not None:
            cls.title = title
        if outcome is not None:
            cls.outcome = outcome


_OF_KIND: dict[str, type[RoombookError]] = {}


def error_of_kind(kind: str) -> type[RoombookError]:
    """The class that declared `kind`; RoombookError for a kind this version does not know."""
    return _OF_KIND.get(kind, RoombookError)


class InvalidStay(
    RoombookError,
    ValueError,
    kind="invalid_stay",
    status=422,
    problem="invalid-request",
    title="Invalid stay",
):
    """A ValueError too, so msgspec reports it as a validation error while decoding."""


class NightsUnavailable(
    RoombookError,
    kind="nights_unavailable",
    status=409,
    problem="nights-unavailable",
    title="Some nights are not available",
    outcome="unavailable",
):
    """The commonest refusal under contention: its message is only written when someone reads it."""

    def __init__(self, room_id: int, nights: list[dt.date]) -> None:
        super().__init__(room_id, nights)
        self.room_id = room_id
        self.nights = nights

    def __str__(self) -> str:
        return f"room {self.room_id}: nights not available: {', '.join(map(str, self.nights))}"


class WrongRegion(RoombookError, status=421, problem="wrong-region", title="Misdirected Request"):
    """The user's data lives in `region`, which this process does not serve: the edge must route
    the request there (it reads the access token's region claim, or the login's region hint)."""

    def __init__(self, region: str) -> None:
        self.region = str(region)
        super().__init__(f"this user is served by region '{region}': send the request there")


class HoldExpired(RoombookError, kind="hold_expired", status=409, problem="hold-expired", title="The hold expired"):
    pass


class UnknownHold(RoombookError, kind="unknown_hold", status=404, problem="not-found", title="Not found"):
    pass


class HoldMismatch(
    RoombookError,
    kind="hold_mismatch",
    status=422,
    problem="idempotency-mismatch",
    title="Id reused for other nights",
):
    pass


class ShardUnavailable(
    RoombookError,
    kind="shard_unavailable",
    status=503,
    problem="unavailable",
    title="Availability service unavailable",
    outcome="shard_unavailable",
):
    pass


class ShardFenced(ShardUnavailable, kind="shard_fenced"):
    pass


class ShardMoved(ShardUnavailable, kind="shard_moved"):
    """A shard's owner handed it over (a move, a resize, a drain): the command was not run, and the
    caller finds the new owner and sends it again there."""


class RingChanged(ShardUnavailable, kind="ring_changed"):
    """The shards were resized: the command was routed by an older ring (or a newer one won a
    race to be recorded). Nothing ran; the caller reads the current ring and routes again."""


class ShardOwnedElsewhere(ShardUnavailable, kind="shard_owned_elsewhere"):
    """Taking a shard was refused: another deployment's owner renewed its lease moments ago, so it is
    alive and taking the shard would fence it. An operator error (two deployments on one store),
    never resolved by force."""

    def __init__(self, message: str, *, deployment: str = "", renewed_s_ago: float = 0.0, lease_s: float = 0.0) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.renewed_s_ago = renewed_s_ago
        self.lease_s = lease_s  # the owner's: it lapses lease_s - renewed_s_ago from now unless renewed


class ShardDiverged(ShardUnavailable):
    """Raised by a store for a write whose rows' stored versions are not the ones the writer
    expected although its epoch is current: its memory differs from the store, so it reloads."""


class StoreUnavailable(
    RoombookError,
    status=503,
    problem="unavailable",
    title="A store is not answering",
    outcome="store_unavailable",
):
    """Every store adapter raises this (from the driver's error) when its backend fails.
    outcome_unknown: whether a write took effect cannot be told (the connection failed, so a
    COMMIT may have landed); False when the server answered with an error, which commits nothing."""

    def __init__(self, message: str, *, outcome_unknown: bool = True) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class OutcomeUnknown(
    RoombookError,
    kind="outcome_unknown",
    status=503,
    problem="outcome-unknown",
    title="The outcome is not known yet: retry the same request",
    outcome="outcome_unknown",
):
    """A request whose change may or may not have taken effect: never answered as a failure."""


class InvalidEmail(RoombookError, ValueError, status=422, problem="invalid-request", title="Invalid email"):
    pass


class WeakPassword(
    RoombookError,
    ValueError,
    status=422,
    problem="invalid-request",
    title="Password does not meet the policy",
):
    pass


class DuplicateEmail(RoombookError, status=409, problem="duplicate-email", title="Email already registered"):
    pass


class AuthenticationFailed(RoombookError, status=401, problem="unauthorized", title="Wrong email or password"):
    """Deliberately vague: the caller must not learn whether the email exists."""


class TooManyAttempts(RoombookError, status=429, problem="too-many-attempts", title="Too many failed attempts"):
    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed attempts; retry in {retry_after_s} s")


class InvalidToken(RoombookError, status=401, problem="unauthorized", title="Not authenticated"):
    pass


class RefreshTokenReused(InvalidToken):
    pass


class InvalidBookingTransition(RoombookError):
    pass


class IdempotencyKeyReused(
    RoombookError,
    status=422,
    problem="idempotency-key-reused",
    title="Idempotency-Key reused with another body",
):
    pass


class InvalidCardToken(
    RoombookError,
    ValueError,
    status=422,
    problem="invalid-request",
    title="Send a card token, never a card number",
):
    pass


class InvalidBooking(RoombookError, ValueError, status=422, problem="invalid-request", title="Invalid booking"):
    pass


class UnknownRoom(RoombookError, status=404, problem="not-found", title="Not found"):
    pass


class UnknownImage(RoombookError, status=404, problem="not-found", title="Not found"):
    pass


class InvalidImage(RoombookError, ValueError, status=422, problem="invalid-image", title="Not an image we accept"):
    pass


class ImageTooLarge(RoombookError, status=413, problem="too-large", title="Payload Too Large"):
    pass


class UnknownBooking(RoombookError, status=404, problem="not-found", title="Not found"):
    pass


class PaymentDeclined(
    RoombookError,
    kind="payment_declined",
    status=402,
    problem="payment-declined",
    title="Payment declined",
    outcome="declined",
):
    def __init__(self, decline_code: str) -> None:
        self.decline_code = decline_code
        super().__init__(f"the payment was declined ({decline_code}); nothing was charged")


class BookingInProgress(
    RoombookError,
    status=409,
    problem="booking-in-progress",
    title="A request with this Idempotency-Key is in progress",
    outcome="in_progress",
):
    pass


class BookingNotModifiable(
    RoombookError, status=409, problem="booking-not-modifiable", title="This booking cannot be changed now"
):
    pass


class InvalidSearchQuery(RoombookError, ValueError, status=422, problem="invalid-request", title="Invalid request"):
    """A ValueError too, so msgspec reports it as a validation error while decoding a query."""


class CacheUnavailable(RoombookError):
    """Every cache adapter raises this, and only this, when its backend fails."""


class EventBusy(RoombookError):
    """Raised by an event handler: not a failure, the bus delivers the event again after retry_after_s."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)
