"""Group commit of a MariaDB regional store's booking writes (mysql_booking_batches): concurrent
PENDING inserts and transitions share transactions, each caller answered as the write alone would
have answered it, and no fault (a write that fails, a transaction cut before its commit, a
COMMIT whose answer is lost, the store gone) makes an answer false or a write happen twice."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
from collections.abc import AsyncIterator

import pytest

from bench.chaos.proxy import MysqlFaultProxy
from bench.databases import connect
from roombook.domain.accounts import NewUser, Region
from roombook.domain.bookings import Booking, BookingIds, BookingRequest, BookingStatus, pending_booking, stay_quote
from roombook.domain.errors import StoreUnavailable
from roombook.domain.events import booking_event
from roombook.storage.sql.mysql_db import mysql_target
from roombook.storage.sql.mysql_regional import MysqlRegionalStore
from roombook.storage.sql.regional_schema import booking_params

pytestmark = pytest.mark.mysql
NOW = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)
BATCH_SQL = b"ON DUPLICATE KEY UPDATE id = id"  # only the batched insert's transaction says this
IDS = BookingIds()


def booking(user_id: int, key: str, room_id: int = 7) -> Booking:
    request = BookingRequest(room_id=room_id, check_in=dt.date(2030, 6, 1), check_out=dt.date(2030, 6, 3), guests=1)
    return pending_booking(
        booking_id=IDS.next(int(NOW.timestamp() * 1000)),
        user_id=user_id,
        request=request,
        quote=stay_quote(request, price_per_night=decimal.Decimal("99.50"), currency="EUR"),
        idempotency_key=key,
        now=NOW,
    )


def created(b: Booking):
    return booking_event(b, region="eu", previous=None, now_s=NOW.timestamp())


async def open_store(dsn: str, *, group_commit: bool = True) -> MysqlRegionalStore:
    store = MysqlRegionalStore(mysql_target(dsn), Region.EU, pool_size=4, group_commit=group_commit)
    await store.__aenter__()
    return store


@pytest.fixture
async def store(mysql_dsn: str) -> AsyncIterator[MysqlRegionalStore]:
    opened = await open_store(mysql_dsn)
    await opened.migrate()
    yield opened
    await opened.__aexit__(None, None, None)


async def user(store: MysqlRegionalStore, n: int = 0) -> int:
    new = NewUser(email=f"u{n}@example.org", password_hash="$argon2id$fake", region=Region.EU, created_at=NOW)
    return (await store.create_user(new)).id


@contextlib.asynccontextmanager
async def proxied_store(dsn: str) -> AsyncIterator[tuple[MysqlFaultProxy, MysqlRegionalStore, int]]:
    """A migrated store reached through the MySQL fault proxy, and a user of it."""
    target = mysql_target(dsn)
    async with MysqlFaultProxy(target.host, target.port) as proxy:
        store = await open_store(proxy.through(dsn))
        try:
            await store.migrate()
            yield proxy, store, await user(store)
        finally:
            await store.__aexit__(None, None, None)


async def stored(dsn: str) -> tuple[dict[str, tuple[int, str, str]], list[str]]:
    """Every booking row (id -> user, key, status) and every outbox event's id, read directly."""
    conn = await connect(mysql_target(dsn))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT id, user_id, idempotency_key, status FROM bookings")
            rows = {row[0]: (row[1], row[2], row[3]) for row in await cur.fetchall()}
            await cur.execute("SELECT event_id FROM outbox")
            events = [row[0] for row in await cur.fetchall()]
    finally:
        conn.close()
    return rows, events


async def test_concurrent_inserts_and_transitions_share_commits_and_each_gets_its_answer(store, mysql_dsn):
    ada = await user(store)
    pending = [booking(ada, f"k-{i}") for i in range(40)]
    answers = await asyncio.gather(*(store.insert_booking(b, created(b)) for b in pending))
    assert answers == pending
    assert store._batches is not None and store._batches.batches < 40  # shared transactions
    done = await asyncio.gather(
        *(
            store.transition_booking(b.id, expected=BookingStatus.PENDING, to=BookingStatus.CONFIRMED, now=NOW)
            for b in pending
        ),
        store.transition_booking(pending[0].id, expected=BookingStatus.PENDING, to=BookingStatus.EXPIRED, now=NOW),
    )
    assert done.count(True) == 40 and done.count(False) == 1  # a booking settles once
    rows, events = await stored(mysql_dsn)
    assert {b.id: (ada, b.idempotency_key, "CONFIRMED") for b in pending} == rows
    assert len(set(events)) == len(events) == len(pending)  # each insert's event, once


async def test_a_taken_key_in_the_same_batch_answers_the_one_stored_booking(store, mysql_dsn):
    ada = await user(store)
    first, second = booking(ada, "same"), booking(ada, "same")
    answers = await asyncio.gather(
        store.insert_booking(first, created(first)), store.insert_booking(second, created(second))
    )
    assert answers[0].id == answers[1].id  # both callers see the one booking of the key
    rows, events = await stored(mysql_dsn)
    assert list(rows) == [answers[0].id] and len(events) == 1


async def test_a_write_that_fails_fails_only_its_own_caller(store, mysql_dsn):
    ada = await user(store)
    good = [booking(ada, f"k-{i}") for i in range(5)]
    bad = booking(ada + 10_000, "nobody")  # no such user: the foreign key refuses it
    answers = await asyncio.gather(*(store.insert_booking(b) for b in [*good, bad]), return_exceptions=True)
    assert answers[:5] == good and isinstance(answers[5], Exception)
    assert set((await stored(mysql_dsn))[0]) == {b.id for b in good}


async def test_a_lost_commit_answer_leaves_each_write_stored_once_and_answered_truly(mysql_dsn):
    async with proxied_store(mysql_dsn) as (proxy, store, ada):
        pending = [booking(ada, f"k-{i}") for i in range(10)]
        proxy.drop_commit_ack(1, only_if=BATCH_SQL)
        answers = await asyncio.gather(*(store.insert_booking(b, created(b)) for b in pending))
        assert proxy.counters.acks_dropped == 1  # a batch's COMMIT reached the server, its answer did not
        assert [a.id for a in answers] == [b.id for b in pending]  # each read back its own row
        rows, events = await stored(mysql_dsn)
        assert set(rows) == {b.id for b in pending} and len(events) == len(pending)  # once each
        proxy.drop_commit_ack(1, only_if=b"UPDATE bookings")
        settled = await asyncio.gather(
            *(
                store.transition_booking(b.id, expected=BookingStatus.PENDING, to=BookingStatus.CONFIRMED, now=NOW)
                for b in pending
            )
        )
        # a transition the lost commit did store answers False (its guard no longer matches):
        # the caller reads the booking back and finds it CONFIRMED; never a write twice
        assert proxy.counters.acks_dropped == 2
        rows, events = await stored(mysql_dsn)
        assert {status for _, _, status in rows.values()} == {"CONFIRMED"}
        assert len(events) == len(pending) and len(settled) == len(pending)


async def test_a_batch_cut_before_its_commit_is_rolled_back_and_each_write_made_alone(mysql_dsn):
    async with proxied_store(mysql_dsn) as (proxy, store, ada):
        pending = [booking(ada, f"k-{i}") for i in range(10)]
        proxy.cut_mid_transaction(1, only_if=BATCH_SQL)
        answers = await asyncio.gather(*(store.insert_booking(b, created(b)) for b in pending))
        assert proxy.counters.transactions_cut == 1 and answers == pending
        rows, events = await stored(mysql_dsn)
        assert set(rows) == {b.id for b in pending} and len(events) == len(pending)


async def test_with_the_store_gone_every_caller_is_told_it_failed_and_none_that_it_succeeded(mysql_dsn):
    async with proxied_store(mysql_dsn) as (proxy, store, ada):
        await proxy.outage(True)
        pending = [booking(ada, f"k-{i}") for i in range(5)]
        answers = await asyncio.gather(*(store.insert_booking(b) for b in pending), return_exceptions=True)
        assert all(isinstance(a, StoreUnavailable) for a in answers)
        await proxy.outage(False)
        assert await asyncio.gather(*(store.insert_booking(b) for b in pending)) == pending  # retried: stored
        assert len((await stored(mysql_dsn))[0]) == len(pending)


async def test_concurrent_key_lookups_share_one_read_and_each_gets_its_own_booking_or_none(store, mysql_dsn):
    ada, bob = await user(store, 1), await user(store, 2)
    mine, theirs = booking(ada, "k-1"), booking(bob, "K-1")  # keys are compared exactly
    await store.insert_booking(mine, created(mine))
    await store.insert_booking(theirs, created(theirs))
    before = store._lookups.batches

    found = await asyncio.gather(
        store.booking_by_key(ada, "k-1"),
        store.booking_by_key(bob, "K-1"),
        store.booking_by_key(ada, "K-1"),  # bob's key, not ada's
        store.booking_by_key(bob, "k-1"),
        store.booking_by_key(ada, "never used"),
    )

    assert found == [mine, theirs, None, None, None]
    assert store._lookups.batches - before <= 2  # one statement, or two while the first was in flight


async def test_key_lookups_with_the_store_gone_fail_each_caller_and_work_again_after(mysql_dsn):
    async with proxied_store(mysql_dsn) as (proxy, store, ada):
        mine = booking(ada, "k-1")
        await store.insert_booking(mine, created(mine))
        await proxy.outage(True)
        answers = await asyncio.gather(
            *(store.booking_by_key(ada, key) for key in ("k-1", "k-2")), return_exceptions=True
        )
        assert all(isinstance(a, StoreUnavailable) for a in answers)
        await proxy.outage(False)
        assert await asyncio.gather(store.booking_by_key(ada, "k-1"), store.booking_by_key(ada, "k-2")) == [
            mine,
            None,
        ]


@pytest.mark.parametrize("group_commit", [True, False], ids=["batched", "alone"])
async def test_inserts_of_one_key_waiting_on_a_transaction_that_rolls_back_each_answer_the_one_booking(
    mysql_dsn, group_commit
):
    # Another transaction holds the key's row while two requests with that key wait on it. At its
    # rollback InnoDB grants the waiters their locks together and their inserts deadlock; the
    # victim was rolled back whole and runs again, so no request sees the deadlock.
    store = await open_store(mysql_dsn, group_commit=group_commit)
    await store.migrate()
    ada = await user(store)
    holder = await connect(mysql_target(mysql_dsn))
    try:
        async with holder.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(store._q.insert_booking, booking_params(booking(ada, "held"), store._enc))
            first, second = booking(ada, "held"), booking(ada, "held")
            waiting = [asyncio.create_task(store.insert_booking(first, created(first)))]
            await asyncio.sleep(0.05)  # in a batch of its own
            waiting.append(asyncio.create_task(store.insert_booking(second, created(second))))
            await asyncio.sleep(0.3)  # both are now waiting on the held row
            assert not any(task.done() for task in waiting)
            await holder.rollback()
        answers = await asyncio.gather(*waiting)
        assert answers[0].id == answers[1].id in (first.id, second.id)
        rows, events = await stored(mysql_dsn)
        assert list(rows) == [answers[0].id] and len(events) == 1
    finally:
        holder.close()
        await store.__aexit__(None, None, None)
