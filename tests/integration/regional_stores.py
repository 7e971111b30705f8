"""Open a pair of regional stores (EU and US, separate databases) on SQLite or MariaDB.

Imported by the regional-store and accounts tests; `mysql_dsn` (conftest) gives the EU database
and a sibling database is made here for the US, so both regions are real, separate databases.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from roombook.domain.accounts import Region
from roombook.storage.ports import RegionalStore
from roombook.storage.sql.mysql_db import create_database, drop_database, mysql_target
from roombook.storage.sql.mysql_regional import MysqlRegionalStore
from roombook.storage.sql.sqlite_regional import SqliteRegionalStore

ENGINES = ["sqlite", "mysql"]


@contextlib.asynccontextmanager
async def open_regional_stores(
    engine: str, tmp_path: Path, mysql_dsn: str | None
) -> AsyncIterator[dict[Region, RegionalStore]]:
    """Migrated, open stores for both regions; every database is dropped afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        stores: dict[Region, RegionalStore] = {}
        for region in Region:
            if engine == "sqlite":
                store = SqliteRegionalStore(str(tmp_path / f"regional-{region}.db"), region)
            else:
                eu = mysql_target(mysql_dsn)
                target = eu if region is Region.EU else msgspec.structs.replace(eu, database=f"{eu.database}_{region}")
                if target is not eu:  # the conftest drops the EU database itself
                    await create_database(target)
                    stack.push_async_callback(drop_database, target)
                store = MysqlRegionalStore(target, region, pool_size=4)
            stores[region] = await stack.enter_async_context(store)
            await store.migrate()
        yield stores
