"""Accounts: who a user is, where their data lives, and the rules for emails and passwords."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re

import msgspec

from roombook.domain.errors import InvalidEmail, WeakPassword

PASSWORD_MIN_CHARS = 10
PASSWORD_MAX_CHARS = 1024  # argon2 accepts more, but an unbounded input is a cheap CPU attack
EMAIL_MAX_CHARS = 254  # RFC 5321 path limit, and it fits the VARCHAR(255) column

# Deliberately small: one @, a non-empty local part without spaces, a dotted domain of
# letters, digits and hyphens. Real validation is "can the user read mail sent there".
_EMAIL = re.compile(r"^[^\s@]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class Region(enum.StrEnum):
    """Where a user's data lives; nothing of theirs is ever stored in the other region."""

    EU = "eu"
    US = "us"


# Each region numbers its users from its own block, so a user id alone names its region, and a
# row filed in the wrong region's store fails its foreign key instead of landing on a stranger.
USER_ID_BLOCK = 10**12


def first_user_id(region: Region) -> int:
    return 1 + list(Region).index(region) * USER_ID_BLOCK


def region_of_user_id(user_id: int) -> Region:
    regions = list(Region)
    index = (user_id - 1) // USER_ID_BLOCK
    if user_id < 1 or index >= len(regions):
        raise ValueError(f"user id {user_id} belongs to no region")
    return regions[index]


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A registered user. `id` is unique within the user's region; (region, id) is global."""

    id: int
    email: str
    first_name: str | None = None
    last_name: str | None = None
    region: Region
    role: Role = Role.USER
    created_at: dt.datetime


class NewUser(msgspec.Struct, frozen=True, kw_only=True):
    """A user about to be stored: no id yet, the password already hashed."""

    email: str
    password_hash: str
    first_name: str | None = None
    last_name: str | None = None
    region: Region
    role: Role = Role.USER
    created_at: dt.datetime


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A user with the hash their password is checked against. Never leaves the service layer."""

    user: User
    password_hash: str

    def __repr__(self) -> str:  # keep the hash out of logs and tracebacks
        return f"Account(user={self.user!r})"


class RefreshToken(msgspec.Struct, frozen=True, kw_only=True):
    """A stored refresh token: only its hash is kept. A family is one login and its rotations."""

    token_hash: str
    user_id: int
    family_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    rotated_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def is_expired(self, now: dt.datetime) -> bool:
        return self.expires_at <= now


def normalize_email(email: str) -> str:
    """The form an email is stored and compared in: trimmed, lower case. Raises InvalidEmail."""
    normalized = email.strip().lower()
    if len(normalized) > EMAIL_MAX_CHARS or not _EMAIL.match(normalized):
        raise InvalidEmail("not a valid email address")
    return normalized


def check_password_policy(password: str) -> None:
    """Raise WeakPassword unless the password has 10 to 1024 characters."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise WeakPassword(f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    if len(password) > PASSWORD_MAX_CHARS:
        raise WeakPassword(f"a password has at most {PASSWORD_MAX_CHARS} characters")


def refresh_token_hash(token: str) -> str:
    """sha256 hex of a refresh token. Enough because tokens carry 256 random bits: no salt or
    slow hash is needed to stop guessing, and a lookup by hash stays one index probe."""
    return hashlib.sha256(token.encode()).hexdigest()
