"""Numbered schema migrations, recorded in `schema_migrations`, applied in order exactly once.

Each store module declares its own list of Migration; `apply_sqlite` / `apply_mysql` run the ones
the database has not seen yet, each migration in its own transaction where the engine allows it
(MySQL commits DDL implicitly, so each statement of a MySQL migration must be safe to re-run: a
column added or dropped already counts as done).
"""

from __future__ import annotations

import sqlite3

import msgspec
from asyncmy.errors import MySQLError


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    name: str
    sqlite: list[str]
    mysql: list[str]


# MySQL's answers to a column change made already: duplicate column name, can't drop what is gone
_ALREADY_DONE = frozenset({1060, 1091})

_SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
)
_MYSQL_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT PRIMARY KEY, name VARCHAR(255) NOT NULL,"
    " applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
)


def apply_sqlite(conn: sqlite3.Connection, migrations: list[Migration]) -> list[int]:
    """Run on the database thread (SqliteDatabase.run)."""
    conn.execute(_SQLITE_TABLE)
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for m in sorted(migrations, key=lambda m: m.version):
        if m.version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in m.sqlite:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (m.version, m.name))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(m.version)
    return applied


async def apply_mysql(pool, migrations: list[Migration]) -> list[int]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(_MYSQL_TABLE)
        await cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        await conn.commit()
        applied = []
        for m in sorted(migrations, key=lambda m: m.version):
            if m.version in done:
                continue
            for statement in m.mysql:
                try:
                    await cur.execute(statement)
                except MySQLError as exc:
                    # a re-run of a column change that took effect before the version was recorded
                    if exc.args[0] not in _ALREADY_DONE:
                        raise
            await cur.execute(
                "INSERT IGNORE INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name)
            )
            await conn.commit()
            applied.append(m.version)
        return applied
