"""Real databases for integration tests: a fresh MariaDB database per test, and the availability
store on both of its engines so one contract suite runs on SQLite and on MySQL.

A missing MariaDB fails the test with the way to start it; it never skips (CI must not pass green
on a machine without the server).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Coroutine, Iterator

import asyncmy.errors
import msgspec
import pytest

from roombook.storage import connect
from roombook.storage.mysql_db import MysqlTarget, create_database, drop_database, mysql_target
from roombook.storage.ports import AvailabilityStore

DEFAULT_TEST_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"


def run_on_a_fresh_loop(coro: Coroutine[object, object, object]) -> None:
    """Run coro on its own loop in a helper thread.

    Sync fixtures may be set up from inside a running loop (an async fixture calling
    request.getfixturevalue("mysql_dsn")), where asyncio.run would refuse to start.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, coro).result()


def dsn_of(target: MysqlTarget) -> str:
    credentials = urllib.parse.quote(target.user, safe="")
    if target.password:
        credentials += ":" + urllib.parse.quote(target.password, safe="")
    return f"mysql://{credentials}@{target.host}:{target.port}/{target.database}"


@pytest.fixture
def mysql_dsn() -> Iterator[str]:
    """The DSN of a new, empty utf8mb4 database on the test server, dropped after the test.

    Only the server part of ROOMBOOK_TEST_MYSQL_DSN is used; the database name is random.
    """
    server = mysql_target(os.environ.get("ROOMBOOK_TEST_MYSQL_DSN", DEFAULT_TEST_MYSQL_DSN))
    target = msgspec.structs.replace(server, database=f"rb_t_{secrets.token_hex(6)}")
    try:
        run_on_a_fresh_loop(create_database(target))
    except (OSError, asyncmy.errors.OperationalError) as exc:
        pytest.fail(
            f"the MySQL test server {server!r} is unreachable ({exc}). Start MariaDB with "
            "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` or point "
            "ROOMBOOK_TEST_MYSQL_DSN at a server. Tests that need it fail rather than skip"
            + (" (CI is set)." if os.environ.get("CI") else "."),
            pytrace=False,
        )
    yield dsn_of(target)
    run_on_a_fresh_loop(drop_database(target))


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def availability_dsn(request: pytest.FixtureRequest, tmp_path) -> str:
    """A DSN of an empty global availability database, once per engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'global.db'}"
    return request.getfixturevalue("mysql_dsn")


@pytest.fixture
async def availability_store(availability_dsn: str) -> AsyncIterator[AvailabilityStore]:
    """An open, migrated store on `availability_dsn`."""
    async with connect.availability_store(availability_dsn) as store:
        await store.migrate()
        yield store
