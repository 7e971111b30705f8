"""Access tokens: short-lived HS256 JWTs that carry who the caller is and where their data lives.

The edge reads `region` to route a request to the user's region without a database lookup, so
a token must be self-contained and verifiable with the shared secret alone. Time checks use an
injected clock (pyjwt's own would read the wall clock), with a small leeway for clock skew.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

import jwt
import msgspec

from roombook.domain.accounts import Region, Role, User
from roombook.domain.errors import InvalidToken

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output
_REQUIRED_CLAIMS = ["sub", "region", "role", "exp", "iat", "jti", "iss"]
# Every number a token carries is bounded where it is decoded: a signed token is still input, and an
# id past a signed 64-bit column or a time past datetime's range would fail deep in a store or a
# conversion (a 500) instead of here (a 401).
MAX_USER_ID = 2**63 - 1
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
Timestamp = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMESTAMP)]
ShortText = Annotated[str, msgspec.Meta(max_length=255)]


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The verified claims of an access token. `sub` is the user id as a string (RFC 7519), 1 to
    MAX_USER_ID."""

    sub: Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,18}$")]
    region: Region
    role: Role
    exp: Timestamp
    iat: Timestamp
    jti: ShortText
    iss: ShortText

    def __post_init__(self) -> None:
        if int(self.sub) > MAX_USER_ID:  # 19 digits reach past it: the pattern alone cannot bound it
            raise ValueError(f"sub must be at most {MAX_USER_ID}")

    @property
    def user_id(self) -> int:
        return int(self.sub)


class AccessTokenCodec:
    """Signs and verifies access tokens with one secret; never logs or repeats a token."""

    def __init__(
        self,
        *,
        secret: str,
        issuer: str,
        ttl_s: int,
        leeway_s: int,
        clock: Callable[[], float],
        kept: int = 4096,
    ) -> None:
        """kept: verified tokens whose claims are kept (0: every token verified on every use).
        A client sends the same token with every request until it expires, so its signature is
        checked once and its claims kept by the exact token; its times are checked on every use."""
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._issuer = issuer
        self.ttl_s = ttl_s
        self._leeway_s = leeway_s
        self._clock = clock
        self._kept = kept
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    def __repr__(self) -> str:
        return f"AccessTokenCodec(issuer={self._issuer!r}, ttl_s={self.ttl_s})"

    def encode(self, user: User) -> str:
        now = int(self._clock())
        claims = {
            "sub": str(user.id),
            "region": user.region.value,
            "role": user.role.value,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_urlsafe(16),
            "iss": self._issuer,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> AccessClaims:
        """The token's claims if its signature, issuer, claims and times are valid; else InvalidToken."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if self._kept > 0:
                self._verified[token] = claims
                if len(self._verified) > self._kept:
                    self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        now = self._clock()
        if claims.exp <= now - self._leeway_s:
            raise InvalidToken("access token expired")
        if claims.iat > now + self._leeway_s:
            raise InvalidToken("access token issued in the future")
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # fixed: never trust the token's own "alg"
                issuer=self._issuer,
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_exp": False,  # checked below against the injected clock
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
            return msgspec.convert(payload, AccessClaims)
        except (jwt.PyJWTError, msgspec.ValidationError):
            raise InvalidToken("access token is not valid") from None
