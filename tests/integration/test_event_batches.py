"""Group commit of the consumers' writes to a MariaDB global store (mysql_event_batches): concurrent
claims, completions and analytics counts share transactions, each answered as the write alone
would have answered it, and no fault (a redelivered event in a batch, a transaction cut before
its commit, a COMMIT whose answer is lost, the store gone) makes an event counted twice, a
claim granted twice or an answer false."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bench.chaos.proxy import MysqlFaultProxy
from bench.databases import connect
from roombook.domain.analytics import BookingCountKind
from roombook.domain.errors import StoreUnavailable
from roombook.storage.ports import ClaimOutcome
from roombook.storage.sql.mysql_availability import MysqlAvailabilityStore
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = pytest.mark.mysql
DAY = dt.date(2030, 6, 1)
CLAIMS_SQL = b"INSERT IGNORE INTO processed_events"  # only a batch's claims say this
COUNTS_SQL = b"created = created + VALUES(created)"  # only a batch's counts say this


async def open_store(dsn: str, *, group_commit: bool = True) -> MysqlAvailabilityStore:
    store = MysqlAvailabilityStore(mysql_target(dsn), pool_size=4, batch_event_writes=group_commit)
    await store.__aenter__()
    await store.migrate()
    return store


@pytest.fixture
async def store(mysql_dsn: str) -> AsyncIterator[MysqlAvailabilityStore]:
    opened = await open_store(mysql_dsn)
    yield opened
    await opened.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def proxied_store(dsn: str) -> AsyncIterator[tuple[MysqlFaultProxy, MysqlAvailabilityStore]]:
    target = mysql_target(dsn)
    async with MysqlFaultProxy(target.host, target.port) as proxy:
        store = await open_store(proxy.through(dsn))
        try:
            yield proxy, store
        finally:
            await store.__aexit__(None, None, None)


def count(store: MysqlAvailabilityStore, event_id: str, kind: BookingCountKind, room_id: int = 7):
    return store.count_booking_event(event_id, kind, day=DAY, room_id=room_id, region="eu")


async def counters(store: MysqlAvailabilityStore) -> dict[tuple[int, str], tuple[int, int, int]]:
    rows = await store.booking_counts(DAY, DAY + dt.timedelta(days=1))
    return {(r.room_id, r.region): (r.created, r.confirmed, r.cancelled) for r in rows}


async def states(dsn: str) -> dict[tuple[str, str], str]:
    conn = await connect(mysql_target(dsn))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT consumer, event_id, state FROM processed_events")
            return {(consumer, event_id): state for consumer, event_id, state in await cur.fetchall()}
    finally:
        conn.close()


KINDS = (BookingCountKind.CREATED, BookingCountKind.CONFIRMED, BookingCountKind.CANCELLED)


async def test_concurrent_claims_completions_and_counts_share_commits_and_each_gets_its_answer(store, mysql_dsn):
    claims = await asyncio.gather(*(store.claim_event("email", f"e-{i}", lease_s=60) for i in range(30)))
    assert claims == [ClaimOutcome.NEW] * 30
    counted = await asyncio.gather(*(count(store, f"c-{i}", KINDS[i % 3], room_id=i % 2) for i in range(30)))
    assert counted == [True] * 30
    await asyncio.gather(*(store.complete_event("email", f"e-{i}") for i in range(30)))
    assert store._event_writes is not None and store._event_writes.batches < 90  # shared transactions
    assert set((await states(mysql_dsn)).values()) == {"done"}
    # room 0 had i = 0, 2, ..., 28: kinds created, cancelled, confirmed in turn, five of each
    assert await counters(store) == {(0, "eu"): (5, 5, 5), (1, "eu"): (5, 5, 5)}
    again = await asyncio.gather(*(store.claim_event("email", f"e-{i}", lease_s=60) for i in range(3)))
    assert again == [ClaimOutcome.DONE] * 3


async def test_two_copies_of_one_event_in_a_batch_are_claimed_once_and_counted_once(store):
    claims = await asyncio.gather(*(store.claim_event("email", name, lease_s=60) for name in ("a", "b", "a", "c")))
    assert sorted(claims) == sorted([ClaimOutcome.NEW, ClaimOutcome.NEW, ClaimOutcome.NEW, ClaimOutcome.BUSY])
    assert claims[1] is claims[3] is ClaimOutcome.NEW
    counted = await asyncio.gather(*(count(store, name, BookingCountKind.CREATED) for name in ("x", "y", "x")))
    assert sorted(counted) == [False, True, True] and counted[1] is True
    assert await counters(store) == {(7, "eu"): (2, 0, 0)}


async def test_a_redelivered_event_among_new_ones_is_answered_as_handled_and_the_others_as_new(store):
    assert await store.claim_event("email", "old", lease_s=60) is ClaimOutcome.NEW
    await store.complete_event("email", "old")
    assert await count(store, "old", BookingCountKind.CONFIRMED)
    claims = await asyncio.gather(*(store.claim_event("email", n, lease_s=60) for n in ("n1", "old", "n2")))
    assert claims == [ClaimOutcome.NEW, ClaimOutcome.DONE, ClaimOutcome.NEW]
    counted = await asyncio.gather(*(count(store, n, BookingCountKind.CONFIRMED) for n in ("n1", "old", "n2")))
    assert counted == [True, False, True]
    assert await counters(store) == {(7, "eu"): (0, 3, 0)}


async def test_the_same_writes_unbatched_answer_the_same(mysql_dsn):
    store = await open_store(mysql_dsn, group_commit=False)
    try:
        assert store._event_writes is None
        claims = await asyncio.gather(*(store.claim_event("email", n, lease_s=60) for n in ("a", "b", "a")))
        assert sorted(claims) == [ClaimOutcome.BUSY, ClaimOutcome.NEW, ClaimOutcome.NEW]
        counted = await asyncio.gather(*(count(store, n, BookingCountKind.CREATED) for n in ("x", "y", "x")))
        assert sorted(counted) == [False, True, True]
        assert await counters(store) == {(7, "eu"): (2, 0, 0)}
    finally:
        await store.__aexit__(None, None, None)


async def test_a_lost_commit_answer_counts_each_event_once_and_grants_no_claim_twice(mysql_dsn):
    async with proxied_store(mysql_dsn) as (proxy, store):
        proxy.drop_commit_ack(1, only_if=COUNTS_SQL)
        counted = await asyncio.gather(*(count(store, f"c-{i}", BookingCountKind.CREATED) for i in range(10)))
        assert proxy.counters.acks_dropped == 1  # the batch's COMMIT reached the server, its answer did not
        # each count alone then finds its event id stored: counted once, by the batch
        assert counted == [False] * 10 and await counters(store) == {(7, "eu"): (10, 0, 0)}
        proxy.drop_commit_ack(1, only_if=CLAIMS_SQL)
        claims = await asyncio.gather(*(store.claim_event("email", f"e-{i}", lease_s=60) for i in range(10)))
        assert proxy.counters.acks_dropped == 2
        # alone, each claim finds the row the lost batch stored: busy, never granted twice; its
        # event comes back once the lease runs out
        assert claims == [ClaimOutcome.BUSY] * 10
        assert set((await states(mysql_dsn)).values()) == {"claimed"}


async def test_a_batch_cut_before_its_commit_is_rolled_back_and_each_write_made_alone(mysql_dsn):
    async with proxied_store(mysql_dsn) as (proxy, store):
        proxy.cut_mid_transaction(1, only_if=COUNTS_SQL)
        counted = await asyncio.gather(*(count(store, f"c-{i}", BookingCountKind.CANCELLED) for i in range(10)))
        assert proxy.counters.transactions_cut == 1 and counted == [True] * 10
        assert await counters(store) == {(7, "eu"): (0, 0, 10)}


async def test_with_the_store_gone_every_caller_is_told_it_failed_and_a_retry_counts_once(mysql_dsn):
    async with proxied_store(mysql_dsn) as (proxy, store):
        await proxy.outage(True)
        failed = await asyncio.gather(
            *(count(store, f"c-{i}", BookingCountKind.CREATED) for i in range(5)),
            store.claim_event("email", "e", lease_s=60),
            return_exceptions=True,
        )
        assert all(isinstance(a, StoreUnavailable) for a in failed)
        await proxy.outage(False)
        assert await asyncio.gather(*(count(store, f"c-{i}", BookingCountKind.CREATED) for i in range(5))) == [True] * 5
        assert await counters(store) == {(7, "eu"): (5, 0, 0)}


async def test_a_caller_that_goes_away_leaves_its_batch_and_the_other_callers_alone(store):
    tasks = [asyncio.create_task(count(store, f"c-{i}", BookingCountKind.CREATED)) for i in range(5)]
    await asyncio.sleep(0)  # every write queued and the flusher started
    await asyncio.sleep(0)
    tasks[0].cancel()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(answers[0], asyncio.CancelledError) and answers[1:] == [True] * 4
    # the batch made the cancelled caller's write too, as an unbatched write sent before its
    # caller went away may have been made: counted once, never lost half-way
    assert await counters(store) == {(7, "eu"): (5, 0, 0)}
    assert store._event_writes is not None and store._event_writes.batches == 1


HELD = {
    "count": ("INSERT INTO booking_counts_events (event_id) VALUES ('held')", True, False),
    "claim": (
        "INSERT INTO processed_events (consumer, event_id, state, lease_until)"
        " VALUES ('email', 'held', 'claimed', NOW())",
        ClaimOutcome.NEW,
        ClaimOutcome.BUSY,
    ),
}


def deliver(store: MysqlAvailabilityStore, what: str):
    if what == "count":
        return count(store, "held", BookingCountKind.CREATED)
    return store.claim_event("email", "held", lease_s=60)


@pytest.mark.parametrize("what", HELD)
@pytest.mark.parametrize("group_commit", [True, False], ids=["batched", "alone"])
async def test_deliveries_waiting_on_a_transaction_that_rolls_back_are_answered_once_each(
    mysql_dsn, group_commit, what
):
    # Another transaction (a batch being rolled back, say) holds the event's row while deliveries
    # of that event wait on it. At the rollback InnoDB grants the waiters their locks together and
    # their inserts deadlock; the victim's transaction was rolled back whole and runs again, so
    # one delivery writes the row and the others find it, and no caller sees the deadlock.
    held, first, then = HELD[what]
    store = await open_store(mysql_dsn, group_commit=group_commit)
    holder = await connect(mysql_target(mysql_dsn))
    try:
        async with holder.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(held)
            waiting = [asyncio.create_task(deliver(store, what)) for _ in range(2)]
            if group_commit:  # one batch would hold both copies: let the first start its own
                await asyncio.sleep(0.05)
                waiting.append(asyncio.create_task(deliver(store, what)))
            await asyncio.sleep(0.3)  # every delivery is now waiting on the held row
            assert not any(task.done() for task in waiting)
            await holder.rollback()
        answers = await asyncio.gather(*waiting)
        assert answers.count(first) == 1 and answers.count(then) == len(answers) - 1
        if what == "count":
            assert await counters(store) == {(7, "eu"): (1, 0, 0)}
        else:
            assert await states(mysql_dsn) == {("email", "held"): "claimed"}
    finally:
        holder.close()
        await store.__aexit__(None, None, None)
