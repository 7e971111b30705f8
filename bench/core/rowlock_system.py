"""System B: the conventional booking flow on row locks, for comparison only.

The product never takes row locks; this module is the baseline it is measured against:
1. one transaction: `SELECT ... FROM availability WHERE room_id=? AND date BETWEEN ? AND ? FOR
   UPDATE` over pre-created rows; if every night is `available`, mark them `held` with
   hold_expires_at, commit (otherwise roll back: a conflict);
2. the simulated payment;
3. a second transaction: mark the nights `booked`, INSERT the CONFIRMED booking row, commit.
The server's defaults stand: InnoDB, REPEATABLE READ, durable commits. A deadlock or lock wait
timeout rolls its transaction back; it is counted and the step retried a few times, then the
attempt fails (after releasing its hold when it had one).

Rows are pre-created per room and window (HotRooms): the first two windows before the round, and
the window after the next one whenever a room moves to a new window, by a background task on its
own connection, so the clients always find their window's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import asyncmy
import asyncmy.errors

from bench.core.verification import StoredState
from bench.core.workload import BOOKED, CONFLICT, WINDOW_NIGHTS, Attempt, BookedStay, HotRooms, failed
from bench.databases import connect, connect_many, connection_options
from roombook.domain.stays import Stay
from roombook.services.payments import SimulatedPayments
from roombook.storage.sql.mysql_db import MysqlTarget, mysql_target

SCHEMA = [
    # one row per room and night with its status, and a bookings table keyed by idempotency key
    "CREATE TABLE availability ("
    " room_id BIGINT NOT NULL,"
    " date DATE NOT NULL,"
    " status ENUM('available','held','booked') NOT NULL DEFAULT 'available',"
    " hold_expires_at DATETIME NULL,"
    " version INT DEFAULT 0,"
    " PRIMARY KEY (room_id, date)"
    ") ENGINE=InnoDB",
    "CREATE TABLE bookings ("
    " id BIGINT PRIMARY KEY AUTO_INCREMENT,"
    " user_id BIGINT NOT NULL,"
    " room_id BIGINT NOT NULL,"
    " check_in DATE NOT NULL,"
    " check_out DATE NOT NULL,"
    " guests INT NOT NULL,"
    " status ENUM('PENDING','CONFIRMED','CANCELLED','EXPIRED') DEFAULT 'PENDING',"
    " total_price DECIMAL(10,2) NOT NULL,"
    " idempotency_key VARCHAR(255) UNIQUE NOT NULL,"
    " payment_intent_id VARCHAR(255),"
    " INDEX idx_user (user_id),"
    " INDEX idx_room_dates (room_id, check_in, check_out)"
    ") ENGINE=InnoDB",
]
HOLD_TTL_S = 600
PRICE_PER_NIGHT = decimal.Decimal("100.00")
CARD_TOKEN = "tok_bench"
LOCK_RETRIES = 3  # per transaction; the release of a hold gets more (a stranded hold fails the round)
RELEASE_RETRIES = 20
_LOCK_ERRORS = {1213: "deadlock", 1205: "lock wait timeout"}
_SELECT = "SELECT date, status FROM availability WHERE room_id = %s AND date BETWEEN %s AND %s FOR UPDATE"
_HOLD = (
    "UPDATE availability SET status = 'held', hold_expires_at = UTC_TIMESTAMP() + INTERVAL %s SECOND,"
    " version = version + 1 WHERE room_id = %s AND date BETWEEN %s AND %s"
)
_BOOK = (
    "UPDATE availability SET status = 'booked', hold_expires_at = NULL, version = version + 1"
    " WHERE room_id = %s AND date BETWEEN %s AND %s AND status = 'held'"
)
_RELEASE = (
    "UPDATE availability SET status = 'available', hold_expires_at = NULL, version = version + 1"
    " WHERE room_id = %s AND date BETWEEN %s AND %s AND status = 'held'"
)
_INSERT_BOOKING = (
    "INSERT INTO bookings (user_id, room_id, check_in, check_out, guests, status, total_price,"
    " idempotency_key, payment_intent_id) VALUES (%s, %s, %s, %s, 2, 'CONFIRMED', %s, %s, %s)"
)
_ROOMS_PER_INSERT = 100
_BOOKINGS_PER_INSERT = 1_000
DAY = dt.timedelta(days=1)
_T = TypeVar("_T")


class LockError(Exception):
    """The server rolled the transaction back (deadlock) or gave up waiting for a lock."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class RowLockBookings:
    """One booking attempt on row locks. `lock_errors` counts every deadlock and lock wait timeout."""

    def __init__(self, target: MysqlTarget, connections: _Connections, inventory: _Inventory) -> None:
        self._target = target
        self._connections = connections
        self._inventory = inventory
        self._payments = SimulatedPayments()
        self.lock_errors: Counter[str] = Counter()
        self.cpu_groups: dict[str, list[int]] = {}

    def window_refilled(self, room_id: int, window: int) -> None:
        self._inventory.request(room_id, window + 1)  # keep one window ahead pre-created

    async def book(self, client: int, key: str, room_id: int, stay: Stay) -> Attempt:
        first, last = stay.check_in, stay.check_out - DAY
        nights = stay.night_count
        held = await self._retried(client, LOCK_RETRIES, self._hold, room_id, first, last, nights)
        if isinstance(held, LockError):
            return failed(f"hold: {held.kind}")
        if held is None:
            return failed("hold: rows not pre-created yet")
        if not held:
            return CONFLICT
        price = PRICE_PER_NIGHT * nights
        intent = await self._payments.authorize(price, "EUR", CARD_TOKEN, key)
        if not intent.authorized:
            await self._retried(client, RELEASE_RETRIES, self._release, room_id, first, last)
            return failed("payment declined")
        booked = await self._retried(
            client, LOCK_RETRIES, self._book, room_id, first, last, nights, client, price, key, intent.id
        )
        if booked is True:
            return BOOKED
        await self._retried(client, RELEASE_RETRIES, self._release, room_id, first, last)
        return failed(f"book: {booked.kind if isinstance(booked, LockError) else 'hold lost'}")

    async def _retried(
        self, client: int, tries: int, step: Callable[..., Awaitable[_T]], *args: object
    ) -> _T | LockError:
        """Run one transaction step; a lock error rolls it back, is counted, and the step runs again.
        After `tries` lock errors, the last one is returned; any other error propagates."""
        error = LockError("no try")
        for _ in range(tries):
            async with self._connections.of(client) as conn:
                try:
                    return await step(conn, *args)
                except asyncmy.errors.MySQLError as exc:
                    kind = _LOCK_ERRORS.get(exc.args[0]) if exc.args else None
                    if kind is None:
                        raise
                    await conn.rollback()
                    self.lock_errors[kind] += 1
                    error = LockError(kind)
        return error

    async def _hold(
        self, conn: asyncmy.Connection, room_id: int, first: dt.date, last: dt.date, nights: int
    ) -> bool | None:
        """True: held; False: some night is taken; None: the nights have no rows (yet)."""
        async with conn.cursor() as cur:
            await cur.execute(_SELECT, (room_id, first, last))
            rows = await cur.fetchall()
            if len(rows) != nights or any(status != "available" for _, status in rows):
                await conn.rollback()
                return None if len(rows) != nights else False
            await cur.execute(_HOLD, (HOLD_TTL_S, room_id, first, last))
        await conn.commit()
        return True

    async def _book(
        self,
        conn: asyncmy.Connection,
        room_id: int,
        first: dt.date,
        last: dt.date,
        nights: int,
        client: int,
        price: decimal.Decimal,
        key: str,
        payment_intent_id: str,
    ) -> bool:
        async with conn.cursor() as cur:
            await cur.execute(_BOOK, (room_id, first, last))
            if cur.rowcount != nights:  # only a bug could take our hold away: refuse to book then
                await conn.rollback()
                return False
            await cur.execute(_INSERT_BOOKING, (client + 1, room_id, first, last + DAY, price, key, payment_intent_id))
        await conn.commit()
        return True

    async def _release(self, conn: asyncmy.Connection, room_id: int, first: dt.date, last: dt.date) -> bool:
        async with conn.cursor() as cur:
            await cur.execute(_RELEASE, (room_id, first, last))
        await conn.commit()
        return True

    async def stored_state(self) -> StoredState:
        return await read_stored_state(self._target)


async def read_stored_state(target: MysqlTarget) -> StoredState:
    """The CONFIRMED rows of `bookings` and every availability row, as committed."""
    conn = await connect(target)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT idempotency_key, room_id, check_in, check_out FROM bookings WHERE status = 'CONFIRMED'"
            )
            bookings = [BookedStay(*row) for row in await cur.fetchall()]
            await cur.execute("SELECT room_id, date, status FROM availability")
            rows = list(await cur.fetchall())
    finally:
        conn.close()
    return StoredState(bookings=bookings, rows=rows)


class _Connections:
    """Where a client's transaction gets its connection: a shared pool, or one of its own. After an
    error other than a lock error the connection's state is unknown: it is closed (the pool drops
    it; a client's own is opened again on its next use)."""

    def __init__(
        self,
        target: MysqlTarget,
        pool: asyncmy.Pool | None,
        own: list[asyncmy.Connection | None],
        gate: asyncio.Semaphore | None = None,
    ) -> None:
        """gate: as many slots as the pool has connections; waiting for one in it first makes
        the pool first come first served (asyncio's Semaphore hands a freed slot to the longest
        waiter, while asyncmy's pool lets whoever asks while one is free take it)."""
        self._target = target
        self._pool = pool
        self._own = own
        self._gate = gate

    @contextlib.asynccontextmanager
    async def of(self, client: int) -> AsyncIterator[asyncmy.Connection]:
        if self._pool is not None:
            async with self._gate or contextlib.nullcontext(), self._pool.acquire() as pooled:
                try:
                    yield pooled
                except BaseException:
                    pooled.close()
                    raise
            return
        conn = self._own[client]
        if conn is None:
            conn = self._own[client] = await connect(self._target)
        try:
            yield conn
        except BaseException:
            conn.close()
            self._own[client] = None
            raise


class _Inventory:
    """Pre-creates the availability rows of (room, window) pairs, in the background on its own
    connection, many rooms per INSERT."""

    def __init__(self, conn: asyncmy.Connection) -> None:
        self._conn = conn
        self._queue: list[tuple[int, int]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.rows_created = 0

    async def create_now(self, pairs: Sequence[tuple[int, int]]) -> None:
        for i in range(0, len(pairs), _ROOMS_PER_INSERT):
            chunk = pairs[i : i + _ROOMS_PER_INSERT]
            values = [
                (room_id, HotRooms.window_start(window) + DAY * n)
                for room_id, window in chunk
                for n in range(WINDOW_NIGHTS)
            ]
            async with self._conn.cursor() as cur:
                await cur.execute(
                    "INSERT INTO availability (room_id, date) VALUES " + ", ".join(["(%s, %s)"] * len(values)),
                    [v for pair in values for v in pair],
                )
            await self._conn.commit()
            self.rows_created += len(values)

    def request(self, room_id: int, window: int) -> None:
        self._queue.append((room_id, window))
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            pairs, self._queue = self._queue, []
            if pairs:
                await self.create_now(pairs)

    async def stop(self) -> None:
        """Let the INSERT under way finish (cancelling it mid-statement breaks the connection),
        then create what was requested since: the rows are harmless."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            self._wakeup.set()
            await task
        if self._queue:
            pairs, self._queue = self._queue, []
            await self.create_now(pairs)


async def store_bookings(conn: asyncmy.Connection, bookings: Sequence[BookedStay]) -> None:
    """CONFIRMED booking rows for `bookings` and their nights' (pre-created) rows booked, as the
    booking flow would have left them."""
    for i in range(0, len(bookings), _BOOKINGS_PER_INSERT):
        chunk = bookings[i : i + _BOOKINGS_PER_INSERT]
        nights = [(booking.room_id, date) for booking in chunk for date in booking.nights()]
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO availability (room_id, date, status, version) VALUES "
                + ", ".join(["(%s, %s, 'booked', 1)"] * len(nights))
                + " ON DUPLICATE KEY UPDATE status = 'booked', hold_expires_at = NULL, version = version + 1",
                [value for night in nights for value in night],
            )
            await cur.execute(
                "INSERT INTO bookings (user_id, room_id, check_in, check_out, guests, status, total_price,"
                " idempotency_key) VALUES " + ", ".join(["(0, %s, %s, %s, 2, 'CONFIRMED', %s, %s)"] * len(chunk)),
                [
                    value
                    for b in chunk
                    for value in (b.room_id, b.check_in, b.check_out, PRICE_PER_NIGHT * len(b.nights()), b.key)
                ],
            )
        await conn.commit()


@contextlib.asynccontextmanager
async def rowlock_bookings(
    dsn: str,
    *,
    room_ids: Sequence[int],
    clients: int,
    pool_size: int | None,
    aged: Sequence[BookedStay] = (),
    fifo: bool = True,
) -> AsyncIterator[RowLockBookings]:
    """Create the row-lock schema and the first two windows of rows in the (empty) database at dsn, with
    the `aged` bookings (workload.aged_start) stored. pool_size: one pool of that many connections
    shared by the clients; None: one per client. fifo: the pool's connections go to the clients in
    the order they asked (False: asyncmy's pool alone, see _Connections)."""
    target = mysql_target(dsn)
    admin = await connect(target)
    pool = None
    own: list[asyncmy.Connection | None] = []
    inventory = _Inventory(admin)
    try:
        async with admin.cursor() as cur:
            for statement in SCHEMA:
                await cur.execute(statement)
        await inventory.create_now([(room_id, window) for room_id in room_ids for window in (0, 1)])
        await store_bookings(admin, aged)
        if pool_size is not None:
            pool = await asyncmy.create_pool(minsize=pool_size, maxsize=pool_size, **connection_options(target))
        else:
            own = list(await connect_many(target, clients))
        gate = asyncio.Semaphore(pool_size) if pool_size is not None and fifo else None
        connections = _Connections(target, pool, own, gate)
        yield RowLockBookings(target, connections, inventory)
    finally:
        with contextlib.suppress(Exception):
            await inventory.stop()
        for conn in own:
            if conn is not None:
                conn.close()
        if pool is not None:
            pool.close()
            await pool.wait_closed()
        admin.close()
