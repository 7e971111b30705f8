"""The email directory (keyed hashes of emails -> region, in the global store) and the
registration flow around it, over real stores (SQLite and MariaDB): what a registration writes,
what a crash between its steps leaves, and how a retry or the settler mends it."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from regional_stores import ENGINES, open_regional_stores
from test_accounts import PASSWORD, SETTINGS, Clock

from roombook.domain.accounts import NewUser, Region
from roombook.domain.errors import DuplicateEmail, StoreUnavailable, WrongRegion
from roombook.services.accounts import AccountService
from roombook.services.email_directory import CLAIM_GRACE_S, AccountDirectory
from roombook.storage.sql.connect import email_directory

SECRET = b"directory-test-secret-" + b"s" * 32
EU, US = Region.EU, Region.US


@pytest.fixture(params=[e if e == "sqlite" else pytest.param(e, marks=pytest.mark.mysql) for e in ENGINES])
def engine(request):
    return request.param


@pytest.fixture
async def stores(request, engine, tmp_path):
    mysql_dsn = request.getfixturevalue("mysql_dsn") if engine == "mysql" else None
    async with open_regional_stores(engine, tmp_path, mysql_dsn) as opened:
        yield opened


@pytest.fixture
async def directory(request, engine, tmp_path: Path):
    dsn = f"sqlite:///{tmp_path / 'global.db'}" if engine == "sqlite" else request.getfixturevalue("mysql_dsn")
    async with email_directory(dsn) as store:
        await store.migrate()
        yield AccountDirectory(store, SECRET)


@pytest.fixture
def clock():
    return Clock()


def one_region(stores, region: Region, directory, clock) -> AccountService:
    """A process serving one region only, as a front of a two-region deployment is."""
    return AccountService({region: stores[region]}, SETTINGS, clock=clock, directory=directory)


def now_of(clock: Clock) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock.now, dt.UTC)


async def test_a_registration_leaves_a_confirmed_entry_of_its_region_keyed_not_in_clear(
    stores, directory, clock, engine, tmp_path
):
    us = one_region(stores, US, directory, clock)
    await us.register(email="Ada@Example.org", password=PASSWORD, region=US)
    assert await directory.region_of("ada@example.org") is US
    assert await directory.region_of(" ADA@example.org ") is US  # normalized first
    assert await directory.region_of("bob@example.org") is None
    assert await directory.store.pending(US, now_of(clock) + dt.timedelta(days=1)) == []  # confirmed
    if engine == "sqlite":  # the table holds the key and the region, nothing of the email
        rows = sqlite3.connect(tmp_path / "global.db").execute("SELECT * FROM email_directory").fetchall()
        assert len(rows) == 1 and "ada" not in repr(rows).lower() and len(rows[0][0]) == 64


async def test_an_email_of_another_region_is_refused_even_by_a_process_that_cannot_see_it(stores, directory, clock):
    eu, us = one_region(stores, EU, directory, clock), one_region(stores, US, directory, clock)
    await us.register(email="ada@example.org", password=PASSWORD, region=US)
    with pytest.raises(DuplicateEmail):
        await eu.register(email="ada@example.org", password=PASSWORD, region=EU)
    assert await stores[EU].account_by_email("ada@example.org") is None


async def test_a_login_without_a_hint_at_the_wrong_region_names_the_right_one(stores, directory, clock):
    eu, us = one_region(stores, EU, directory, clock), one_region(stores, US, directory, clock)
    await us.register(email="ada@example.org", password=PASSWORD, region=US)
    with pytest.raises(WrongRegion) as refused:
        await eu.login(email="ada@example.org", password=PASSWORD, client_key="k")
    assert refused.value.region == "us"
    assert (await us.login(email="ada@example.org", password=PASSWORD, client_key="k")).user.region is US


async def test_a_crash_after_the_claim_is_released_by_the_settler_and_the_email_is_free_again(stores, directory, clock):
    eu, us = one_region(stores, EU, directory, clock), one_region(stores, US, directory, clock)
    await directory.claim("ada@example.org", US, now_of(clock))  # then the US process died
    with pytest.raises(DuplicateEmail):  # another region cannot take it meanwhile
        await eu.register(email="ada@example.org", password=PASSWORD, region=EU)
    assert await us.settle_directory() == (0, 0)  # within the grace: a registration may be in flight
    clock.now += CLAIM_GRACE_S + 1
    assert await us.settle_directory() == (0, 1)
    assert await directory.region_of("ada@example.org") is None
    await eu.register(email="ada@example.org", password=PASSWORD, region=EU)
    assert await directory.region_of("ada@example.org") is EU


async def test_a_crash_after_the_user_is_created_is_confirmed_by_a_retry_or_by_the_settler(stores, directory, clock):
    us = one_region(stores, US, directory, clock)
    for email in ("ada@example.org", "bob@example.org"):  # the state a crash before the confirm leaves
        await directory.claim(email, US, now_of(clock))
        new = NewUser(email=email, password_hash="x", region=US, created_at=now_of(clock))
        await stores[US].create_user(new)
    with pytest.raises(DuplicateEmail):  # the retry: the account exists, and its entry is confirmed
        await us.register(email="ada@example.org", password=PASSWORD, region=US)
    clock.now += CLAIM_GRACE_S + 1
    assert await us.settle_directory() == (1, 0)  # bob's, the one nobody retried
    assert await directory.store.pending(US, now_of(clock)) == []
    assert await directory.region_of("bob@example.org") is US


async def test_a_registration_whose_claim_was_settled_away_undoes_its_user_and_can_be_retried(stores, directory, clock):
    us = one_region(stores, US, directory, clock)

    class SlowStore:  # the settler runs between the claim and the user's creation
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        async def create_user(self, new):
            await directory.release(new.email, US)
            return await self._inner.create_user(new)

    slow = AccountService({US: SlowStore(stores[US])}, SETTINGS, clock=clock, directory=directory)  # type: ignore[dict-item]
    with pytest.raises(StoreUnavailable):
        await slow.register(email="ada@example.org", password=PASSWORD, region=US)
    assert await stores[US].account_by_email("ada@example.org") is None
    await us.register(email="ada@example.org", password=PASSWORD, region=US)
    assert await directory.region_of("ada@example.org") is US


async def test_an_all_region_process_keeps_its_cross_region_check_with_the_directory(stores, directory, clock):
    both = AccountService(stores, SETTINGS, clock=clock, directory=directory)
    await both.register(email="ada@example.org", password=PASSWORD, region=EU)
    with pytest.raises(DuplicateEmail):
        await both.register(email="ada@example.org", password=PASSWORD, region=US)
    assert await directory.region_of("ada@example.org") is EU
