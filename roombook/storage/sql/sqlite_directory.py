"""The email directory in the embedded global store (SQLite)."""

from __future__ import annotations

import datetime as dt

from roombook.storage.sql.directory_sql import SqlEmailDirectory
from roombook.storage.sql.sqlite_db import SqliteDatabase

_TABLE = (
    "CREATE TABLE IF NOT EXISTS email_directory ("
    " email_key TEXT PRIMARY KEY CHECK (length(email_key) = 64),"
    " region TEXT NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0, claimed_at TEXT NOT NULL)"
)
_INDEX = "CREATE INDEX IF NOT EXISTS ix_email_directory_pending ON email_directory (region, confirmed, claimed_at)"


class SqliteEmailDirectory(SqlEmailDirectory):
    p = "?"
    insert_ignore = "INSERT OR IGNORE"

    def __init__(self, path: str) -> None:
        self._db = SqliteDatabase(path)

    async def __aenter__(self) -> SqliteEmailDirectory:
        await self._db.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._db.close()

    async def migrate(self) -> None:
        await self._db.run(lambda: (self._db.conn.execute(_TABLE), self._db.conn.execute(_INDEX)))

    async def _one(self, sql: str, params: tuple) -> tuple | None:
        return await self._db.run(lambda: self._db.conn.execute(sql, params).fetchone())

    async def _all(self, sql: str, params: tuple) -> list[tuple]:
        return await self._db.run(lambda: self._db.conn.execute(sql, params).fetchall())

    async def _write(self, sql: str, params: tuple) -> int:
        return await self._db.run(lambda: self._db.conn.execute(sql, params).rowcount)

    def _time(self, value: dt.datetime) -> object:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # sorts as it reads

    def _from_time(self, value: object) -> dt.datetime:
        return dt.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
