"""The MySQL stores' connection pool hands its connections out in the order they were asked for,
on a real MariaDB: a task that releases one and asks again at once queues behind the waiters."""

from __future__ import annotations

import asyncio

import pytest

from roombook.storage.sql.mysql_db import create_pool, mysql_target

pytestmark = pytest.mark.mysql


async def test_a_released_connection_goes_to_the_longest_waiter(mysql_dsn):
    pool = await create_pool(mysql_target(mysql_dsn), minsize=1, maxsize=1)
    order: list[str] = []

    async def take(name: str) -> None:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            order.append(name)
            await conn.commit()

    try:
        async with pool.acquire():
            waiters = [asyncio.ensure_future(take(f"waiter {n}")) for n in range(3)]
            await asyncio.sleep(0.05)  # all three parked on the pool
        await take("releaser again")
        await asyncio.gather(*waiters)
    finally:
        pool.close()
        await pool.wait_closed()
    assert order == ["waiter 0", "waiter 1", "waiter 2", "releaser again"]


async def test_a_waiter_that_gives_up_leaves_the_connection_to_the_next(mysql_dsn):
    pool = await create_pool(mysql_target(mysql_dsn), minsize=1, maxsize=1)
    order: list[str] = []

    async def take(name: str) -> None:
        async with pool.acquire():
            order.append(name)

    try:
        async with pool.acquire():
            gone, waiter = asyncio.ensure_future(take("gone")), asyncio.ensure_future(take("waiter"))
            await asyncio.sleep(0.05)
            gone.cancel()
        await waiter
    finally:
        pool.close()
        await pool.wait_closed()
    assert order == ["waiter"] and gone.cancelled()


async def test_a_connection_dropped_in_use_gives_its_place_back_and_the_next_gets_a_working_one(mysql_dsn):
    """What the stores do after an error whose protocol state is unknown (a lost COMMIT answer):
    close the connection inside the block. The gate must not lose the place, nor hand out the dead
    connection."""
    pool = await create_pool(mysql_target(mysql_dsn), minsize=1, maxsize=1)
    try:
        for _ in range(3):
            async with pool.acquire() as conn:
                conn.close()
        async with asyncio.timeout(5), pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
    finally:
        pool.close()
        await pool.wait_closed()
