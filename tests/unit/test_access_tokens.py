"""Access tokens: HS256 JWTs with sub, region, role, exp, iat, jti, checked against an injected clock."""

import datetime as dt

import jwt
import pytest

from roombook.domain.accounts import Region, Role, User
from roombook.domain.errors import InvalidToken
from roombook.services.access_tokens import AccessTokenCodec

SECRET = "s" * 32
T0 = 1_900_000_000.0
ADA = User(
    id=1_000_000_000_042,
    email="ada@example.org",
    region=Region.US,
    role=Role.ADMIN,
    created_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def codec(clock: Clock, secret: str = SECRET, issuer: str = "roombook", kept: int = 4096) -> AccessTokenCodec:
    return AccessTokenCodec(secret=secret, issuer=issuer, ttl_s=900, leeway_s=5, clock=clock, kept=kept)


def test_a_token_carries_who_the_user_is_and_where_their_data_lives():
    clock = Clock(T0)

    claims = codec(clock).decode(codec(clock).encode(ADA))

    assert claims.user_id == ADA.id and claims.sub == str(ADA.id)
    assert claims.region is Region.US and claims.role is Role.ADMIN
    assert claims.iat == int(T0) and claims.exp == int(T0) + 900
    assert len(claims.jti) >= 16


def test_every_token_has_its_own_jti():
    clock = Clock(T0)
    tokens = codec(clock)

    assert tokens.decode(tokens.encode(ADA)).jti != tokens.decode(tokens.encode(ADA)).jti


def test_a_token_is_refused_once_expired_beyond_the_leeway():
    clock = Clock(T0)
    tokens = codec(clock)
    token = tokens.encode(ADA)

    clock.now = T0 + 900 + 4
    tokens.decode(token)
    clock.now = T0 + 900 + 5
    with pytest.raises(InvalidToken, match="expired"):
        tokens.decode(token)


def test_a_token_issued_in_the_future_is_refused():
    issuer_clock, verifier_clock = Clock(T0 + 60), Clock(T0)

    with pytest.raises(InvalidToken):
        codec(verifier_clock).decode(codec(issuer_clock).encode(ADA))


def test_a_token_signed_with_another_secret_is_refused():
    clock = Clock(T0)
    with pytest.raises(InvalidToken):
        codec(clock).decode(codec(clock, secret="t" * 32).encode(ADA))


def test_a_token_from_another_issuer_is_refused():
    clock = Clock(T0)
    with pytest.raises(InvalidToken):
        codec(clock).decode(codec(clock, issuer="someone-else").encode(ADA))


def test_an_unsigned_token_is_refused():
    claims = {
        "sub": "1",
        "region": "eu",
        "role": "admin",
        "iat": int(T0),
        "exp": int(T0) + 900,
        "jti": "x",
        "iss": "roombook",
    }
    unsigned = jwt.encode(claims, None, algorithm="none")

    with pytest.raises(InvalidToken):
        codec(Clock(T0)).decode(unsigned)


def valid_claims() -> dict[str, object]:
    """The claims of a well-formed access token issued at T0."""
    return {
        "sub": "1",
        "region": "eu",
        "role": "user",
        "iat": int(T0),
        "exp": int(T0) + 900,
        "jti": "x",
        "iss": "roombook",
    }


@pytest.mark.parametrize(
    "change",
    [{"region": "mars"}, {"role": "root"}, {"sub": "not-a-number"}, {"sub": 7}, {"jti": None}],
)
def test_a_token_with_missing_or_malformed_claims_is_refused(change):
    claims = valid_claims() | change
    claims = {k: v for k, v in claims.items() if v is not None}

    with pytest.raises(InvalidToken):
        codec(Clock(T0)).decode(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_a_tampered_token_is_refused():
    clock = Clock(T0)
    header, _payload, signature = codec(clock).encode(ADA).split(".")
    forged = jwt.encode({"sub": "1", "region": "eu", "role": "admin"}, "x" * 32).split(".")[1]

    with pytest.raises(InvalidToken):
        codec(clock).decode(f"{header}.{forged}.{signature}")


def test_garbage_is_refused():
    with pytest.raises(InvalidToken):
        codec(Clock(T0)).decode("not a token")


def test_a_short_secret_is_refused_up_front():
    with pytest.raises(ValueError):
        codec(Clock(T0), secret="short")


def test_the_codec_never_shows_its_secret():
    assert SECRET not in repr(codec(Clock(T0)))


@pytest.mark.parametrize(
    "change",
    [
        {"sub": "9999999999999999999"},  # 19 digits, past a signed 64-bit id
        {"sub": str(2**63)},
        {"exp": 10**30},
        {"exp": -1},
        {"iat": 2**64},
        {"iat": -(2**63)},
        {"exp": 1.9e9},
        {"jti": "j" * 256},
    ],
)
def test_a_signed_token_with_an_out_of_range_claim_is_refused(change):
    claims = valid_claims() | change

    with pytest.raises(InvalidToken):
        codec(Clock(T0)).decode(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_the_largest_signed_64_bit_user_id_is_still_a_user_id():
    claims = {
        "sub": str(2**63 - 1),
        "region": "eu",
        "role": "user",
        "iat": int(T0),
        "exp": int(T0) + 900,
        "jti": "x",
        "iss": "roombook",
    }

    assert codec(Clock(T0)).decode(jwt.encode(claims, SECRET, algorithm="HS256")).user_id == 2**63 - 1


def test_a_verified_token_is_checked_once_and_its_times_on_every_use(monkeypatch):
    clock = Clock(T0)
    tokens = codec(clock)
    token = tokens.encode(ADA)
    verified = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: verified.append(a[0]) or real_decode(*a, **kw))

    assert [tokens.decode(token).user_id for _ in range(3)] == [ADA.id] * 3
    assert verified == [token]
    clock.now = T0 + 900 + 5
    with pytest.raises(InvalidToken, match="expired"):
        tokens.decode(token)


def test_a_tampered_copy_of_a_verified_token_is_still_refused():
    clock = Clock(T0)
    tokens = codec(clock)
    token = tokens.encode(ADA)
    tokens.decode(token)
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]

    with pytest.raises(InvalidToken):
        tokens.decode(f"{head}.{body}.{flipped}")
    with pytest.raises(InvalidToken):
        tokens.decode(f"{head}.{body}x.{signature}")


def test_the_verified_tokens_kept_are_bounded(monkeypatch):
    clock = Clock(T0)
    tokens = codec(clock, kept=3)
    issued = [tokens.encode(ADA) for _ in range(5)]
    for token in issued:
        tokens.decode(token)
    verified = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: verified.append(a[0]) or real_decode(*a, **kw))

    tokens.decode(issued[4])
    tokens.decode(issued[2])
    assert verified == []  # the three used last are kept
    tokens.decode(issued[0])
    assert verified == [issued[0]] and len(tokens._verified) == 3


def test_with_none_kept_every_use_is_verified(monkeypatch):
    tokens = codec(Clock(T0), kept=0)
    token = tokens.encode(ADA)
    verified = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: verified.append(a[0]) or real_decode(*a, **kw))

    tokens.decode(token)
    tokens.decode(token)

    assert verified == [token, token] and not tokens._verified
