"""Scratch MariaDB databases for benchmark settings: each setting or round starts from an empty one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import TypedDict

import asyncmy
import msgspec

from roombook.storage.sql.mysql_db import MysqlTarget, create_database, drop_database, mysql_target

DEFAULT_MYSQL_DSN = os.environ.get("ROOMBOOK_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")


def with_database(dsn: str, database: str) -> str:
    """The same server, credentials and options, another database."""
    return urllib.parse.urlsplit(dsn)._replace(path="/" + database).geturl()


async def fresh_mysql(base_dsn: str, prefix: str = "rb_bench") -> str:
    """A new empty database on the same server as base_dsn; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await create_database(msgspec.structs.replace(mysql_target(base_dsn), database=name))
    return with_database(base_dsn, name)


@contextlib.asynccontextmanager
async def scratch_mysql(base_dsn: str, prefix: str = "rb_bench") -> AsyncIterator[str]:
    """A fresh database for the block, dropped after it (also when the block fails)."""
    dsn = await fresh_mysql(base_dsn, prefix)
    try:
        yield dsn
    finally:
        await drop_database(mysql_target(dsn))


CONNECT_TIMEOUT_S = 10.0
CONNECT_ATTEMPTS = 3
CONNECTS_AT_ONCE = 32  # well under MariaDB's default listen backlog (back_log = 80)


class ConnectionOptions(TypedDict):
    host: str
    port: int
    user: str
    password: str
    db: str
    charset: str


def connection_options(target: MysqlTarget) -> ConnectionOptions:
    """asyncmy's arguments for a plain utf8mb4 connection to `target` (also a pool's)."""
    return {
        "host": target.host,
        "port": target.port,
        "user": target.user,
        "password": target.password,
        "db": target.database,
        "charset": "utf8mb4",
    }


async def connect(target: MysqlTarget, **options: object) -> asyncmy.Connection:
    """One plain connection (server defaults: REPEATABLE READ, no session settings changed).

    A connection that has not completed its handshake within CONNECT_TIMEOUT_S is given up and
    tried again (CONNECT_ATTEMPTS in all). That happens when many clients connect at once and the
    server's listen backlog overflows: the kernel then drops the client's last handshake packet,
    the client believes it is connected, and it would wait forever for a greeting that never
    comes (in MySQL's protocol the server speaks first). Seen here once, with 256 at once: a B-conn
    round hung for 24 minutes."""
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return await asyncio.wait_for(asyncmy.connect(**connection_options(target), **options), CONNECT_TIMEOUT_S)
        except TimeoutError:
            if attempt == CONNECT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def connect_many(target: MysqlTarget, count: int) -> list[asyncmy.Connection]:
    """`count` connections, at most CONNECTS_AT_ONCE of them being opened at a time (see connect)."""
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def one() -> asyncmy.Connection:
        async with gate:
            return await connect(target)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def global_variable(target: MysqlTarget, name: str) -> int:
    conn = await connect(msgspec.structs.replace(target, database="mysql"))
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT @@GLOBAL.{name}")
            (value,) = await cur.fetchone()
        return int(value)
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def max_connections_at_least(base_dsn: str, needed: int) -> AsyncIterator[str | None]:
    """Raise the server's max_connections to `needed` for the block if it is lower; put the old
    value back after it (only if nobody changed it meanwhile). Yields a note when it changed it."""
    target = mysql_target(base_dsn)
    before = await global_variable(target, "max_connections")
    if before >= needed:
        yield None
        return
    admin = await connect(msgspec.structs.replace(target, database="mysql"))
    try:
        async with admin.cursor() as cur:
            await cur.execute(f"SET GLOBAL max_connections = {int(needed)}")
        yield f"max_connections raised from {before} to {needed} for the run"
    finally:
        try:
            async with admin.cursor() as cur:
                await cur.execute(f"SELECT @@GLOBAL.max_connections = {int(needed)}")
                (unchanged,) = await cur.fetchone()
                if unchanged:
                    await cur.execute(f"SET GLOBAL max_connections = {int(before)}")
        finally:
            admin.close()
