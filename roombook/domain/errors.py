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
├── UnknownBooking         no booking with that id for this user (someone else's looks the same)
├── PaymentDeclined        the payment was declined; the booking is CANCELLED (.decline_code)
├── BookingInProgress      the same Idempotency-Key is still being worked on; retry shortly
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


class RoombookError(Exception):
    """Base of every roombook error."""


class InvalidStay(RoombookError, ValueError):
    """A ValueError too, so msgspec reports it as a validation error while decoding."""


class NightsUnavailable(RoombookError):
    """The commonest refusal under contention: its message is only written when someone reads it."""

    def __init__(self, room_id: int, nights: list[dt.date]) -> None:
        super().__init__(room_id, nights)
        self.room_id = room_id
        self.nights = nights

    def __str__(self) -> str:
        return f"room {self.room_id}: nights not available: {', '.join(map(str, self.nights))}"


class WrongRegion(RoombookError):
    """The user's data lives in `region`, which this process does not serve: the edge must route
    the request there (it reads the access token's region claim, or the login's region hint)."""

    def __init__(self, region: str) -> None:
        self.region = str(region)
        super().__init__(f"this user is served by region '{region}': send the request there")


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


class ShardDiverged(ShardUnavailable):
    """Raised by a store for a write whose rows' stored versions are not the ones the writer
    expected although its epoch is current: its memory differs from the store, so it reloads."""


class StoreUnavailable(RoombookError):
    """Every store adapter raises this (from the driver's error) when its backend fails.
    outcome_unknown: whether a write took effect cannot be told (the connection failed, so a
    COMMIT may have landed); False when the server answered with an error, which commits nothing."""

    def __init__(self, message: str, *, outcome_unknown: bool = True) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class OutcomeUnknown(RoombookError):
    """A request whose change may or may not have taken effect: never answered as a failure."""


class InvalidEmail(RoombookError, ValueError):
    pass


class WeakPassword(RoombookError, ValueError):
    pass


class DuplicateEmail(RoombookError):
    pass


class AuthenticationFailed(RoombookError):
    """Deliberately vague: the caller must not learn whether the email exists."""


class TooManyAttempts(RoombookError):
    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed attempts; retry in {retry_after_s} s")


class InvalidToken(RoombookError):
    pass


class RefreshTokenReused(InvalidToken):
    pass


class InvalidBookingTransition(RoombookError):
    pass


class IdempotencyKeyReused(RoombookError):
    pass


class InvalidCardToken(RoombookError, ValueError):
    pass


class InvalidBooking(RoombookError, ValueError):
    pass


class UnknownRoom(RoombookError):
    pass


class UnknownBooking(RoombookError):
    pass


class PaymentDeclined(RoombookError):
    def __init__(self, decline_code: str) -> None:
        self.decline_code = decline_code
        super().__init__(f"the payment was declined ({decline_code}); nothing was charged")


class BookingInProgress(RoombookError):
    pass


class InvalidSearchQuery(RoombookError, ValueError):
    """A ValueError too, so msgspec reports it as a validation error while decoding a query."""


class CacheUnavailable(RoombookError):
    """Every cache adapter raises this, and only this, when its backend fails."""


class EventBusy(RoombookError):
    """Raised by an event handler: not a failure, the bus delivers the event again after retry_after_s."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)
