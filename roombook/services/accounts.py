"""Accounts over the regional stores: register, log in, rotate refresh tokens, log out.

A user lives in exactly one region's store; every lookup that starts from an email asks all
regions the service has, and a refresh token names its region in its prefix ("eu.<random>"), so
nothing of a user is ever written to, or looked for first in, another region.

A service may have the stores of some regions only (a process serving one region). A user, token
or region hint of another region then raises WrongRegion: the edge routes such requests by the
access token's region claim, or, before there is a token, by the login's region hint. Such a
service checks that an email is unique within its own regions only.

Never log a password, a token or the secret: errors here carry no such value.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping

import argon2
import msgspec

from roombook.domain.accounts import (
    PASSWORD_MAX_CHARS,
    Account,
    NewUser,
    RefreshToken,
    Region,
    User,
    check_password_policy,
    normalize_email,
    refresh_token_hash,
)
from roombook.domain.errors import (
    AuthenticationFailed,
    DuplicateEmail,
    InvalidEmail,
    InvalidToken,
    RefreshTokenReused,
    StoreUnavailable,
    WrongRegion,
)
from roombook.services.access_tokens import AccessClaims, AccessTokenCodec
from roombook.services.email_directory import AccountDirectory
from roombook.services.login_throttle import LoginThrottle, Throttle, throttle_key
from roombook.storage.ports import RegionalStore


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Settings of accounts and tokens (to be folded into the global Settings)."""

    jwt_secret: str
    jwt_issuer: str = "roombook"
    access_ttl_s: int = 15 * 60
    access_tokens_kept: int = 4096
    refresh_ttl_s: int = 30 * 24 * 3600
    token_leeway_s: int = 5
    login_max_failures: int = 5
    login_window_s: int = 5 * 60
    # argon2-cffi's defaults (RFC 9106 "low memory"); tests lower them to stay fast
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4

    def __repr__(self) -> str:  # the secret must never reach a log
        return f"AuthSettings(jwt_issuer={self.jwt_issuer!r}, access_ttl_s={self.access_ttl_s}, ...)"


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token is valid
    refresh_expires_in: int
    token_type: str = "Bearer"

    def __repr__(self) -> str:
        return f"TokenPair(expires_in={self.expires_in}, refresh_expires_in={self.refresh_expires_in})"


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """What a successful login or refresh hands back."""

    user: User
    tokens: TokenPair


class AccountService:
    """Registration, authentication and token lifecycles; holds the RegionalStore of each region
    it serves, and never touches a user of another region."""

    def __init__(
        self,
        stores: Mapping[Region, RegionalStore],
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.time,
        throttle: Throttle | None = None,  # default: this process's own LoginThrottle
        directory: AccountDirectory | None = None,
    ) -> None:
        if not stores:
            raise ValueError("at least one regional store is needed")
        self._stores = dict(stores)
        self._settings = settings
        self._clock = clock
        self.directory = directory
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._dummy_hash: str | None = None
        self._tokens = AccessTokenCodec(
            secret=settings.jwt_secret,
            issuer=settings.jwt_issuer,
            ttl_s=settings.access_ttl_s,
            leeway_s=settings.token_leeway_s,
            clock=clock,
            kept=settings.access_tokens_kept,
        )
        self._throttle: Throttle = throttle or LoginThrottle(
            max_failures=settings.login_max_failures, window_s=settings.login_window_s
        )

    def derived_key(self, purpose: bytes) -> bytes:
        """A key for one purpose (signing calendar links, ...), derived from the token secret, so
        every process of a deployment derives the same one and none can forge a token from it."""
        return hmac.new(self._settings.jwt_secret.encode(), purpose, hashlib.sha256).digest()

    # -- registration --------------------------------------------------------------------------

    async def register(
        self,
        *,
        email: str,
        password: str,
        region: Region,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """Create a user in their region. Raises InvalidEmail, WeakPassword or DuplicateEmail.

        An email is unique across regions, but no database spans them, so uniqueness is
        checked, not enforced: (1) refuse an email any region has; (2) insert, where the home
        region's UNIQUE index settles races within it; (3) look at the other regions again and,
        if the email appeared there meanwhile, delete our row and refuse. Two registrations
        racing in different regions both insert before they look, so at least one of them sees
        the other in step (3): at most one survives (possibly neither; the client retries).
        With an email directory (the deployment's global register of keyed emails -> region,
        see roombook.services.email_directory) the email is claimed there first: a claim of
        another region refuses it, which closes the cross-region race too, and a retry after a
        crash settles what the crash left (the directory entry is confirmed once the user exists).
        """
        home = self._store_of(region)
        email = normalize_email(email)
        check_password_policy(password)
        directory = self.directory
        if directory is not None and await directory.claim(email, region, self._now()) != region:
            raise DuplicateEmail("this email is registered already")
        existing = await self._find_account(email)
        if existing is not None:
            if directory is not None:  # ours: a retry after a crash left the claim pending; else free it
                await (directory.confirm if existing.user.region == region else directory.release)(email, region)
            raise DuplicateEmail("this email is registered already")
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        new = NewUser(
            email=email,
            password_hash=password_hash,
            first_name=first_name,
            last_name=last_name,
            region=region,
            created_at=self._now(),
        )
        try:
            user = await home.create_user(new)
        except DuplicateEmail:  # a registration racing in this region won: its claim is this one
            raise
        except Exception:
            if directory is not None:
                await _quietly(directory.release(email, region))  # else the settler frees it
            raise
        others = [store for r, store in self._stores.items() if r != region]
        found = await asyncio.gather(*(store.account_by_email(email) for store in others))
        if any(account is not None for account in found):
            await home.delete_user(user.id)
            if directory is not None:
                await _quietly(directory.release(email, region))
            raise DuplicateEmail("this email is registered already")
        if directory is not None and not await directory.confirm(email, region):
            # the settler gave our claim up before the user existed: undo, the retry starts over
            await home.delete_user(user.id)
            raise StoreUnavailable("registration took too long: send it again", outcome_unknown=False)
        return user

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(self, email: str, password: str) -> User:
        """The user whose email and password these are, or AuthenticationFailed. An unknown
        email costs one password verification too, so timing does not tell which part failed."""
        try:
            account = await self._find_account(normalize_email(email))
        except InvalidEmail:
            account = None
        if len(password) > PASSWORD_MAX_CHARS:
            raise AuthenticationFailed("wrong email or password")
        stored_hash = account.password_hash if account is not None else await self._dummy()
        if not await asyncio.to_thread(self._verify, stored_hash, password) or account is None:
            raise AuthenticationFailed("wrong email or password")
        if self._hasher.check_needs_rehash(stored_hash):
            new_hash = await asyncio.to_thread(self._hasher.hash, password)
            await self._stores[account.user.region].set_password_hash(account.user.id, new_hash, self._now())
        return account.user

    async def login(self, *, email: str, password: str, client_key: str, region_hint: Region | None = None) -> Session:
        """Authenticate and open a new token family. Raises TooManyAttempts once an email and
        client have failed `login_max_failures` times within `login_window_s`, and WrongRegion
        when the client says the user lives in a region this service does not have."""
        if self.directory is not None:  # it knows better than a hint; an account of another region: 421
            region_hint = await self.directory.region_of(email) or region_hint
        if region_hint is not None:
            self._store_of(region_hint)
        key = throttle_key(email, client_key)
        await self._throttle.begin(key, self._clock())
        user = await self.authenticate(email, password)
        await self._throttle.succeeded(key)
        raw, token = self._new_refresh_token(user, secrets.token_hex(16))
        await self._stores[user.region].insert_refresh_token(token)
        return Session(user=user, tokens=self._pair(user, raw))

    def verify_access_token(self, token: str) -> AccessClaims:
        """The token's claims; InvalidToken if it is not valid, WrongRegion (only once it is) if
        its user lives in a region this service does not have."""
        claims = self._tokens.decode(token)
        self._store_of(claims.region)
        return claims

    @property
    def regions(self) -> tuple[Region, ...]:
        return tuple(self._stores)

    # -- refresh tokens ------------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> Session:
        """Swap a live refresh token for a new pair. Presenting a token that was already
        rotated means it leaked (or two clients raced): the whole family is revoked."""
        store, token_hash = self._locate(refresh_token)
        row = await store.refresh_token(token_hash) if store is not None else None
        now = self._now()
        if store is None or row is None or row.revoked_at is not None or row.is_expired(now):
            raise InvalidToken("refresh token is not valid")
        if row.rotated_at is not None:
            await store.revoke_token_family(row.family_id, now)
            raise RefreshTokenReused("refresh token was already used; this login is revoked")
        user = await store.user(row.user_id)
        if user is None:
            raise InvalidToken("refresh token is not valid")
        raw, successor = self._new_refresh_token(user, row.family_id)
        if not await store.rotate_refresh_token(token_hash, successor, now):
            # another refresh of this same token won the compare-and-set: that is reuse too
            await store.revoke_token_family(row.family_id, now)
            raise RefreshTokenReused("refresh token was already used; this login is revoked")
        return Session(user=user, tokens=self._pair(user, raw))

    async def logout(self, refresh_token: str) -> None:
        """Revoke the login the token belongs to. Unknown or dead tokens are ignored."""
        store, token_hash = self._locate(refresh_token)
        row = await store.refresh_token(token_hash) if store is not None else None
        if store is not None and row is not None:
            await store.revoke_token_family(row.family_id, self._now())

    # -- internals -----------------------------------------------------------------------------

    def _store_of(self, region: Region) -> RegionalStore:
        try:
            return self._stores[region]
        except KeyError:
            raise WrongRegion(region) from None

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    async def _find_account(self, email: str) -> Account | None:
        found = await asyncio.gather(*(store.account_by_email(email) for store in self._stores.values()))
        accounts = [account for account in found if account is not None]
        # Two only after a crash mid-registration (see register): the older one is the real one.
        return min(accounts, key=lambda a: a.user.created_at, default=None)

    async def settle_directory(self) -> tuple[int, int]:
        """Confirm or free this service's regions' directory claims that registrations left
        pending (see roombook.services.email_directory): (confirmed, released)."""
        if self.directory is None:
            return 0, 0
        return await self.directory.settle(self._stores, self._now())

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_urlsafe(16))
        return self._dummy_hash

    def _new_refresh_token(self, user: User, family_id: str) -> tuple[str, RefreshToken]:
        raw = f"{user.region.value}.{secrets.token_urlsafe(32)}"
        now = self._now()
        row = RefreshToken(
            token_hash=refresh_token_hash(raw),
            user_id=user.id,
            family_id=family_id,
            issued_at=now,
            expires_at=now + dt.timedelta(seconds=self._settings.refresh_ttl_s),
        )
        return raw, row

    def _locate(self, refresh_token: str) -> tuple[RegionalStore | None, str]:
        """The store the token's region prefix names (None if it names no region), and its hash.
        Raises WrongRegion if it names a region this service does not have."""
        prefix, _, _ = refresh_token.partition(".")
        try:
            region = Region(prefix)
        except ValueError:
            return None, refresh_token_hash(refresh_token)
        return self._store_of(region), refresh_token_hash(refresh_token)

    def _pair(self, user: User, raw_refresh: str) -> TokenPair:
        return TokenPair(
            access_token=self._tokens.encode(user),
            refresh_token=raw_refresh,
            expires_in=self._settings.access_ttl_s,
            refresh_expires_in=self._settings.refresh_ttl_s,
        )


async def _quietly(step: Awaitable[object]) -> None:
    """A clean-up step that may fail (its store is down too): what it leaves is settled later."""
    try:
        await step
    except Exception:
        logging.getLogger(__name__).warning("directory clean-up failed; the settler will finish it", exc_info=True)
