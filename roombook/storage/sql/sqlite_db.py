"""One SQLite connection served by one thread: the embedded default's database handle.

All work on the connection runs in its own thread, so a whole transaction is one hop from the
event loop. WAL mode with synchronous=FULL: a commit is on disk before the call returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from roombook.domain.errors import StoreUnavailable

T = TypeVar("T")


def sqlite_path(dsn: str) -> str:
    """`sqlite:///relative/or/absolute/path.db` -> the path (`sqlite:///:memory:` is allowed)."""
    if not dsn.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite DSN: {dsn!r}")
    return dsn.removeprefix("sqlite:///")


# sqlite3.OperationalError messages of a file that is busy or failing, not of a wrong query
_UNAVAILABLE = ("database is locked", "disk I/O error", "unable to open database file", "database or disk is full")


class SqliteDatabase:
    """A connection and the one thread that may use it."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        await self.run(self._connect)

    def _connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._conn = conn

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) on the database thread (fn uses self.conn). A file that cannot be read,
        written or locked in time is StoreUnavailable; every other error passes through."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, fn, *args)
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith(_UNAVAILABLE):
                raise
            raise StoreUnavailable(f"{self.path} is not answering ({exc})") from exc

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) inside BEGIN IMMEDIATE ... COMMIT; any exception rolls everything back."""
        return await self.run(self._in_transaction, fn)

    def _in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) inside BEGIN ... COMMIT, for reads: under WAL they all see one snapshot,
        and no write lock is taken, so other connections keep writing meanwhile."""
        return await self.run(self._in_snapshot, fn)

    def _in_snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn
        conn.execute("BEGIN DEFERRED")
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:  # an error may have ended it already
                conn.execute("COMMIT")  # nothing was written: ending the read is all it does

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self.run(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=True)
