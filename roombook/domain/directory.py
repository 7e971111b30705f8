"""The email directory's entries: which region holds the account of an email, by keyed hash.

The key of an email is HMAC-SHA256 over its normalized form with a secret the deployment keeps,
so the global store holds no email (nor anything a dictionary of emails could be hashed against
without the secret). A registration first *claims* the key for its region (pending), creates the
user in the region's store, then *confirms* the entry; see roombook.services.email_directory for
what happens when a step is missing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import msgspec

from roombook.domain.accounts import Region, normalize_email


def email_key(secret: bytes, email: str) -> str:
    """The directory key of an email (64 hex digits). Raises InvalidEmail as normalize_email does."""
    return hmac.new(secret, normalize_email(email).encode(), hashlib.sha256).hexdigest()


class PendingClaim(msgspec.Struct, frozen=True, kw_only=True):
    """A claim whose registration has not confirmed it (in flight, or cut short by a crash)."""

    key: str
    region: Region
    claimed_at: dt.datetime
