"""The account service over real EU and US stores (SQLite and MariaDB): registration across
regions, login and its throttle, refresh-token rotation and reuse detection, logout."""

from __future__ import annotations

import asyncio

import pytest
from regional_stores import ENGINES, open_regional_stores

from roombook.domain.accounts import Region, Role, refresh_token_hash
from roombook.domain.errors import (
    AuthenticationFailed,
    DuplicateEmail,
    InvalidEmail,
    InvalidToken,
    RefreshTokenReused,
    TooManyAttempts,
    WeakPassword,
)
from roombook.services.accounts import AccountService, AuthSettings

PASSWORD = "correct horse battery"
T0 = 1_900_000_000.0
CHEAP_ARGON2 = dict(argon2_time_cost=1, argon2_memory_kib=256, argon2_parallelism=1)
SETTINGS = AuthSettings(jwt_secret="test-secret-" + "x" * 32, **CHEAP_ARGON2)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=[e if e == "sqlite" else pytest.param(e, marks=pytest.mark.mysql) for e in ENGINES])
async def stores(request, tmp_path):
    mysql_dsn = request.getfixturevalue("mysql_dsn") if request.param == "mysql" else None
    async with open_regional_stores(request.param, tmp_path, mysql_dsn) as opened:
        yield opened


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def accounts(stores, clock):
    return AccountService(stores, SETTINGS, clock=clock)


async def login(accounts: AccountService, email: str = "ada@example.org", password: str = PASSWORD):
    return await accounts.login(email=email, password=password, client_key="203.0.113.7")


# -- registration ---------------------------------------------------------------------------------


async def test_a_user_is_registered_in_their_region_only(accounts, stores):
    ada = await accounts.register(email=" Ada@Example.org", password=PASSWORD, region=Region.EU, first_name="Ada")

    assert (ada.email, ada.region, ada.role, ada.first_name) == ("ada@example.org", Region.EU, Role.USER, "Ada")
    assert (await stores[Region.EU].account_by_email("ada@example.org")).user == ada
    assert await stores[Region.US].account_by_email("ada@example.org") is None
    assert (await stores[Region.EU].account_by_email("ada@example.org")).password_hash.startswith("$argon2id$")


async def test_an_email_used_in_one_region_cannot_register_in_the_other(accounts):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)

    with pytest.raises(DuplicateEmail):
        await accounts.register(email="ADA@example.org", password=PASSWORD, region=Region.US)
    with pytest.raises(DuplicateEmail):
        await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)


async def test_racing_registrations_in_both_regions_leave_at_most_one_user(accounts, stores):
    for attempt in range(5):
        email = f"race{attempt}@example.org"
        results = await asyncio.gather(
            *(accounts.register(email=email, password=PASSWORD, region=r) for r in (Region.EU, Region.US, Region.EU)),
            return_exceptions=True,
        )

        users = [r for r in results if not isinstance(r, BaseException)]
        assert all(isinstance(r, DuplicateEmail) for r in results if isinstance(r, BaseException))
        stored = [await s.account_by_email(email) for s in stores.values()]
        assert len(users) <= 1 and sum(a is not None for a in stored) == len(users)


async def test_a_weak_password_or_a_bad_email_is_refused(accounts):
    with pytest.raises(WeakPassword):
        await accounts.register(email="ada@example.org", password="short", region=Region.EU)
    with pytest.raises(InvalidEmail):
        await accounts.register(email="ada-at-example.org", password=PASSWORD, region=Region.EU)


# -- login ----------------------------------------------------------------------------------------


async def test_login_issues_a_bearer_access_token_and_a_refresh_token_stored_only_as_a_hash(accounts, stores):
    ada = await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.US)

    session = await login(accounts, email="ADA@example.org")

    assert session.user == ada
    assert session.tokens.token_type == "Bearer" and session.tokens.expires_in == 900
    claims = accounts.verify_access_token(session.tokens.access_token)
    assert (claims.user_id, claims.region, claims.role) == (ada.id, Region.US, Role.USER)
    raw = session.tokens.refresh_token
    assert raw.startswith("us.")
    stored = await stores[Region.US].refresh_token(refresh_token_hash(raw))
    assert stored.user_id == ada.id and stored.token_hash != raw
    assert await stores[Region.EU].refresh_token(refresh_token_hash(raw)) is None
    assert PASSWORD not in repr(session) and raw not in repr(session)


async def test_a_wrong_password_and_an_unknown_email_fail_alike(accounts):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)

    with pytest.raises(AuthenticationFailed) as wrong_password:
        await login(accounts, password="not the password")
    with pytest.raises(AuthenticationFailed) as unknown_email:
        await login(accounts, email="nobody@example.org")

    assert str(wrong_password.value) == str(unknown_email.value)


async def test_repeated_failures_are_throttled_until_the_window_passes(accounts, clock):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await login(accounts, password="not the password")

    clock.now += 60
    with pytest.raises(TooManyAttempts) as throttled:
        await login(accounts)  # even the right password waits
    assert throttled.value.retry_after_s == 240

    clock.now += 240
    assert (await login(accounts)).user.email == "ada@example.org"


async def test_a_password_hashed_with_older_parameters_is_rehashed_at_login(stores, clock):
    old = AccountService(stores, SETTINGS, clock=clock)
    ada = await old.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    old_hash = (await stores[Region.EU].account_by_email(ada.email)).password_hash
    stronger = AuthSettings(jwt_secret=SETTINGS.jwt_secret, **{**CHEAP_ARGON2, "argon2_memory_kib": 512})

    await login(AccountService(stores, stronger, clock=clock))

    new_hash = (await stores[Region.EU].account_by_email(ada.email)).password_hash
    assert new_hash != old_hash and "m=512" in new_hash
    assert (await login(AccountService(stores, stronger, clock=clock))).user == ada


# -- tokens ---------------------------------------------------------------------------------------


async def test_refresh_rotates_the_refresh_token(accounts):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    first = await login(accounts)

    second = await accounts.refresh(first.tokens.refresh_token)
    third = await accounts.refresh(second.tokens.refresh_token)

    assert len({first.tokens.refresh_token, second.tokens.refresh_token, third.tokens.refresh_token}) == 3
    assert accounts.verify_access_token(third.tokens.access_token).user_id == first.user.id


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_login(accounts):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    stolen = (await login(accounts)).tokens.refresh_token
    other_login = (await login(accounts)).tokens.refresh_token
    current = (await accounts.refresh(stolen)).tokens.refresh_token

    with pytest.raises(RefreshTokenReused):
        await accounts.refresh(stolen)

    with pytest.raises(InvalidToken):
        await accounts.refresh(current)
    assert (await accounts.refresh(other_login)).user.email == "ada@example.org"  # other logins live on


async def test_concurrent_refreshes_of_one_token_let_one_through_and_revoke_the_family(accounts):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    token = (await login(accounts)).tokens.refresh_token

    results = await asyncio.gather(*(accounts.refresh(token) for _ in range(3)), return_exceptions=True)

    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) <= 1
    assert all(isinstance(r, InvalidToken) for r in results if isinstance(r, BaseException))
    for session in winners:
        with pytest.raises(InvalidToken):
            await accounts.refresh(session.tokens.refresh_token)


async def test_an_expired_refresh_token_is_refused(accounts, clock):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    token = (await login(accounts)).tokens.refresh_token

    clock.now += SETTINGS.refresh_ttl_s
    with pytest.raises(InvalidToken):
        await accounts.refresh(token)


async def test_an_expired_access_token_is_refused(accounts, clock):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    access = (await login(accounts)).tokens.access_token

    clock.now += SETTINGS.access_ttl_s + SETTINGS.token_leeway_s
    with pytest.raises(InvalidToken):
        accounts.verify_access_token(access)


async def test_logout_revokes_the_refresh_token_and_is_idempotent(accounts):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    token = (await login(accounts)).tokens.refresh_token

    await accounts.logout(token)
    await accounts.logout(token)
    await accounts.logout("us.unknown")
    await accounts.logout("garbage")

    with pytest.raises(InvalidToken):
        await accounts.refresh(token)


@pytest.mark.parametrize("forged", ["", "garbage", "mars.abc", "us.abc", "eu." + "A" * 43])
async def test_unknown_refresh_tokens_are_refused(accounts, forged):
    with pytest.raises(InvalidToken):
        await accounts.refresh(forged)


async def test_a_token_naming_the_wrong_region_is_not_found(accounts):
    await accounts.register(email="ada@example.org", password=PASSWORD, region=Region.EU)
    token = (await login(accounts)).tokens.refresh_token

    with pytest.raises(InvalidToken):
        await accounts.refresh("us." + token.removeprefix("eu."))
