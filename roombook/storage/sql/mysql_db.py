"""MySQL / MariaDB / Aurora connection pools from a DSN, through asyncmy."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

import asyncmy
import asyncmy.errors
import msgspec

from roombook.domain.errors import StoreUnavailable

# What asyncmy raises when the server is down or restarting, a connection breaks or times out, or
# the server gives up on a transaction (lock wait timeout, deadlock). IntegrityError and
# ProgrammingError are answers about the query, not failures of the server: they pass through.
CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    asyncmy.errors.OperationalError,
    asyncmy.errors.InterfaceError,
    asyncmy.errors.InternalError,
    OSError,
    asyncio.IncompleteReadError,
    TimeoutError,
)


_CLIENT_ERRORS = 2000  # MySQL's client error codes (CR_*) start here
_POOL_FAILURES = ("Transport does not expose socket instance", "Cannot acquire connection after closing pool")


@contextlib.contextmanager
def store_failures(what: str) -> Iterator[None]:
    """Raise a server or connection failure inside the block as StoreUnavailable (the port's one
    failure), keeping the driver's error as its cause for the log."""
    try:
        yield
    except RuntimeError as exc:
        # asyncmy's pool says so while the server restarts or the pool is closing
        if not str(exc).startswith(_POOL_FAILURES):
            raise
        raise StoreUnavailable(f"{what} is not answering ({exc})") from exc
    except CONNECTION_FAILURES as exc:
        server_error = isinstance(exc, asyncmy.errors.OperationalError | asyncmy.errors.InternalError)
        code = exc.args[0] if server_error and exc.args and isinstance(exc.args[0], int) else None
        # Codes below 2000 are the server's own answers (lock wait timeout, deadlock, a trigger's
        # SIGNAL): the statement failed and nothing commits. 2000 and up are the client's: the
        # connection failed, and a COMMIT sent on it may have landed.
        answered = code is not None and code < _CLIENT_ERRORS
        raise StoreUnavailable(
            f"{what} is not answering ({type(exc).__name__} {code or ''})".replace(" )", ")"),
            outcome_unknown=not answered,
        ) from exc


_DEADLOCK = 1213  # ER_LOCK_DEADLOCK: the server chose this transaction and rolled all of it back
DEADLOCK_ATTEMPTS = 4
T = TypeVar("T")
P = ParamSpec("P")


def deadlocked(exc: BaseException) -> bool:
    """Whether a StoreUnavailable is the server's deadlock answer (nothing of it committed)."""
    cause = exc.__cause__
    return (
        isinstance(exc, StoreUnavailable)
        and isinstance(cause, asyncmy.errors.OperationalError)
        and bool(cause.args)
        and cause.args[0] == _DEADLOCK
    )


async def retry_deadlocks(transaction: Callable[[], Awaitable[T]], *, attempts: int = DEADLOCK_ATTEMPTS) -> T:
    """Run a transaction again when the server answers that it deadlocked: InnoDB rolls the
    victim back whole, so running it again is safe, and is what the server asks. Concurrent
    inserts of one key deadlock that way when a transaction holding the key rolls back (the
    waiters' locks pass to them together), which nothing in the statements can rule out."""
    for attempt in range(1, attempts):
        try:
            return await transaction()
        except StoreUnavailable as exc:
            if not deadlocked(exc):
                raise
        # a little jitter, so that the two that met do not meet again at once
        await asyncio.sleep(random.uniform(0.0, 0.005 * attempt))
    return await transaction()


def deadlocks_retried(write: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A method that is one transaction, run again when it deadlocks (retry_deadlocks)."""

    @functools.wraps(write)
    async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
        return await retry_deadlocks(lambda: write(*args, **kwargs))

    return retried


class MysqlTarget(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str
    # Whether a store may send a write's statements together, as one multi-statement query (the
    # availability store's group commit does). `?pack_writes=false` in the DSN sends one statement
    # per round trip, for a proxy that refuses multi-statement queries or pins a connection on them.
    pack_writes: bool = True

    def __repr__(self) -> str:  # never print the password
        return f"MysqlTarget({self.user}@{self.host}:{self.port}/{self.database})"


_OPTIONS = ("pack_writes",)
_BOOLEANS = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}


def mysql_target(dsn: str) -> MysqlTarget:
    """`mysql://user:password@host:port/database[?pack_writes=false]` -> its parts (password may be
    percent-encoded). Errors never quote the DSN: it may hold the password."""
    url = urllib.parse.urlsplit(dsn)
    if url.scheme not in ("mysql", "mariadb") or not url.path.strip("/"):
        raise ValueError("expected mysql://user:password@host:port/database")
    options = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"unknown MySQL DSN option(s) {', '.join(unknown)}: known are {', '.join(_OPTIONS)}")
    pack_writes = _BOOLEANS.get(options.get("pack_writes", "true").lower())
    if pack_writes is None:
        raise ValueError("pack_writes must be true or false")
    return MysqlTarget(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=urllib.parse.unquote(url.username or "root"),
        password=urllib.parse.unquote(url.password or ""),
        database=url.path.strip("/"),
        pack_writes=pack_writes,
    )


async def create_database(target: MysqlTarget) -> None:
    """CREATE DATABASE IF NOT EXISTS, utf8mb4 (the target's user needs the right to)."""
    conn = await asyncmy.connect(host=target.host, port=target.port, user=target.user, password=target.password)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{target.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()


async def drop_database(target: MysqlTarget) -> None:
    conn = await asyncmy.connect(host=target.host, port=target.port, user=target.user, password=target.password)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
    finally:
        conn.close()


class FairPool:
    """asyncmy's pool with its connections handed out first come first served.

    Alone, asyncmy's pool gives a free connection to whoever asks while it is free, so a task that
    has just released one takes it straight back ahead of the tasks already waiting: under load a
    few of them wait for seconds while the median is fast. A FIFO semaphore of the pool's size in
    front of it makes them queue in order."""

    def __init__(self, pool: asyncmy.Pool, size: int) -> None:
        self.pool = pool
        self._gate = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncmy.Connection]:
        async with self._gate, self.pool.acquire() as conn:
            yield conn

    def close(self) -> None:
        self.pool.close()

    async def wait_closed(self) -> None:
        await self.pool.wait_closed()


async def create_pool(target: MysqlTarget, *, minsize: int = 1, maxsize: int = 10) -> FairPool:
    return FairPool(await _create_pool(target, minsize=minsize, maxsize=maxsize), maxsize)


async def _create_pool(target: MysqlTarget, *, minsize: int, maxsize: int) -> asyncmy.Pool:
    return await asyncmy.create_pool(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        db=target.database,
        minsize=minsize,
        maxsize=maxsize,
        autocommit=False,
        charset="utf8mb4",
        # Two session statements: SET TRANSACTION cannot share a SET with other assignments, and
        # its variable is named differently in MariaDB 10 (tx_isolation) and MySQL 8
        # (transaction_isolation). asyncmy sends `SET sql_mode=<sql_mode>` first, so the other
        # session variables ride on that statement.
        sql_mode="'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'",
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    )
