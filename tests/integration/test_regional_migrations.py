"""A regional store migrated from before refusals had columns answers its old bookings the same.

The rows are written as the schema of migrations 1..3 held them (a failure_reason text to parse),
then the store migrates; every refused booking must come back with the refusal that text stood for,
and so be refused again the same way on a replay of its key.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from roombook.domain.accounts import Region, first_user_id
from roombook.domain.bookings import Refusal
from roombook.storage.sql.migrations import apply_mysql, apply_sqlite
from roombook.storage.sql.mysql_db import create_pool, mysql_target
from roombook.storage.sql.mysql_regional import MysqlRegionalStore
from roombook.storage.sql.regional_schema import REGIONAL_MIGRATIONS
from roombook.storage.sql.sqlite_regional import SqliteRegionalStore

BEFORE_REFUSALS = [m for m in REGIONAL_MIGRATIONS if m.version <= 3]
CHECK_IN = dt.date(2031, 1, 30)
USER_ID = first_user_id(Region.EU)

# booking id -> (status, failure_reason as the old saga wrote it, the refusal it stands for)
OLD_ROWS = {
    "bk_taken": (
        "CANCELLED",
        "nights_unavailable:0,2",
        Refusal(kind="nights_unavailable", nights=[CHECK_IN, CHECK_IN + dt.timedelta(days=2)]),
    ),
    "bk_declined": (
        "CANCELLED",
        "payment_declined:insufficient_funds",
        Refusal(kind="payment_declined", decline_code="insufficient_funds"),
    ),
    "bk_expired": ("EXPIRED", "hold_expired", Refusal(kind="hold_expired")),
    "bk_shard": ("CANCELLED", "shard_unavailable", Refusal(kind="shard_unavailable")),
    "bk_confirmed": ("CONFIRMED", None, None),
    "bk_cancelled_by_guest": ("CANCELLED", None, None),
}
_USER = (
    "INSERT INTO users (id, email, password_hash, region, role, created_at, updated_at)"
    " VALUES ({p}, 'ada@example.com', 'x', 'eu', 'user', '2031-01-01 00:00:00', '2031-01-01 00:00:00')"
)
_BOOKING = (
    "INSERT INTO bookings (id, user_id, room_id, check_in, check_out, guests, nights, status, total_price,"
    " currency, idempotency_key, request_hash, created_at, updated_at, failure_reason)"
    " VALUES ({p}, {p}, 7, {p}, {p}, 1, 3, {p}, {p}, 'EUR', {p}, {p},"
    " '2031-01-01 00:00:00', '2031-01-01 00:00:00', {p})"
)


def _booking_params(booking_id: str, status: str, reason: str | None, *, cents: bool) -> tuple:
    price = 30000 if cents else "300.00"  # SQLite keeps money as integer cents
    check_out = CHECK_IN + dt.timedelta(days=3)
    stay = (CHECK_IN.isoformat(), check_out.isoformat())
    return (booking_id, USER_ID, *stay, status, price, booking_id, "0" * 64, reason)


def _old_sqlite_store(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        apply_sqlite(conn, BEFORE_REFUSALS)
        conn.execute(_USER.format(p="?"), (USER_ID,))
        for booking_id, (status, reason, _) in OLD_ROWS.items():
            conn.execute(_BOOKING.format(p="?"), _booking_params(booking_id, status, reason, cents=True))
    finally:
        conn.close()


async def _old_mysql_store(dsn: str) -> None:
    pool = await create_pool(mysql_target(dsn), maxsize=1)
    try:
        await apply_mysql(pool, BEFORE_REFUSALS)
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_USER.format(p="%s"), (USER_ID,))
            for booking_id, (status, reason, _) in OLD_ROWS.items():
                await cur.execute(_BOOKING.format(p="%s"), _booking_params(booking_id, status, reason, cents=False))
            await conn.commit()
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def test_old_refused_bookings_come_back_with_the_refusal_their_text_stood_for(engine, tmp_path, request):
    if engine == "sqlite":
        path = str(tmp_path / "regional-eu.db")
        _old_sqlite_store(path)
        store = SqliteRegionalStore(path, Region.EU)
    else:
        dsn = request.getfixturevalue("mysql_dsn")
        await _old_mysql_store(dsn)
        store = MysqlRegionalStore(dsn, Region.EU, pool_size=2)
    async with store:
        # 4 and 5 carry the old refusals over; every later migration runs after them
        assert await store.migrate() == sorted(m.version for m in REGIONAL_MIGRATIONS if m.version >= 4)
        assert await store.migrate() == []
        for booking_id, (status, _, refusal) in OLD_ROWS.items():
            booking = await store.booking(booking_id, USER_ID)
            assert booking is not None and (booking.status, booking.refusal) == (status, refusal), booking_id
