"""The availability store on both of its engines, so one contract suite runs on SQLite and on
MySQL (`mysql_dsn`, a fresh MariaDB database per test, is in tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from roombook.storage.ports import AvailabilityStore
from roombook.storage.sql import connect


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
