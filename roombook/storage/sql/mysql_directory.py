"""The email directory in the global MySQL/MariaDB/Aurora store."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import asyncmy

from roombook.storage.sql.directory_sql import SqlEmailDirectory
from roombook.storage.sql.mysql_db import FairPool, MysqlTarget, create_pool, mysql_target, store_failures

_TABLE = (
    "CREATE TABLE IF NOT EXISTS email_directory ("
    " email_key CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,"
    " region VARCHAR(8) CHARACTER SET ascii NOT NULL,"
    " confirmed TINYINT(1) NOT NULL DEFAULT 0,"
    " claimed_at DATETIME(6) NOT NULL,"
    " KEY ix_email_directory_pending (region, confirmed, claimed_at)"
    ") ENGINE=InnoDB"
)


class MysqlEmailDirectory(SqlEmailDirectory):
    p = "%s"
    insert_ignore = "INSERT IGNORE"

    def __init__(self, target: MysqlTarget | str, *, pool_size: int = 4) -> None:
        self._target = mysql_target(target) if isinstance(target, str) else target
        self._pool_size = pool_size
        self._pool: FairPool | None = None

    async def __aenter__(self) -> MysqlEmailDirectory:
        with store_failures("the email directory"):
            self._pool = await create_pool(self._target, minsize=1, maxsize=self._pool_size)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    async def migrate(self) -> None:
        async with self._cursor() as cur:
            await cur.execute(_TABLE)

    @contextlib.asynccontextmanager
    async def _cursor(self) -> AsyncIterator[asyncmy.cursors.Cursor]:
        """One statement's transaction: committed on success, rolled back on any error."""
        if self._pool is None:
            raise RuntimeError("directory is not open")
        with store_failures("the email directory"):
            async with self._pool.acquire() as conn:
                try:
                    async with conn.cursor() as cur:
                        yield cur
                except BaseException:
                    with contextlib.suppress(Exception):
                        await conn.rollback()
                    raise
                try:
                    await conn.commit()
                except BaseException:
                    conn.close()  # the COMMIT's answer is lost: the connection's state is unknown
                    raise

    async def _one(self, sql: str, params: tuple) -> tuple | None:
        async with self._cursor() as cur:
            await cur.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: tuple) -> list[tuple]:
        async with self._cursor() as cur:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

    async def _write(self, sql: str, params: tuple) -> int:
        async with self._cursor() as cur:
            return await cur.execute(sql, params)

    def _time(self, value: dt.datetime) -> object:
        return value.astimezone(dt.UTC).replace(tzinfo=None)  # the sessions run in UTC

    def _from_time(self, value: object) -> dt.datetime:
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC)
