"""A room shard on the real MariaDB when the store fails the way networks do: a COMMIT whose answer
is lost, a transaction cut before its COMMIT, an outage. The shard must never guess what the store
holds: it answers what is committed, never books a night twice, and serves again by itself."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bench.chaos.proxy import MysqlFaultProxy
from roombook.actors.shard import RoomShard
from roombook.domain.calendar import HoldView
from roombook.domain.commands import ConfirmHold, Failure, PlaceHold, ReadCalendar
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.mysql_availability import MysqlAvailabilityStore
from roombook.storage.sql.mysql_db import mysql_target

pytestmark = pytest.mark.mysql

RING = ShardRing(1)
START = dt.date(2031, 5, 1)
BATCH_WRITE = b"shard_leases"  # only a shard's batch write touches the lease row this way


def stay(offset: int, nights: int = 2) -> Stay:
    return Stay(check_in=START + dt.timedelta(days=offset), check_out=START + dt.timedelta(days=offset + nights))


def hold(hold_id: str, offset: int = 0) -> PlaceHold:
    return PlaceHold(room_id=1, hold_id=hold_id, stay=stay(offset), ttl_s=600)


@pytest.fixture
async def direct(mysql_dsn: str) -> AsyncIterator[MysqlAvailabilityStore]:
    """The store as the database holds it, read without the proxy."""
    async with MysqlAvailabilityStore(mysql_target(mysql_dsn)) as store:
        await store.migrate()
        yield store


@pytest.fixture
async def proxy(mysql_dsn: str, direct: MysqlAvailabilityStore) -> AsyncIterator[MysqlFaultProxy]:
    target = mysql_target(mysql_dsn)
    async with MysqlFaultProxy(target.host, target.port) as proxy:
        yield proxy


@pytest.fixture
async def shard(proxy: MysqlFaultProxy, mysql_dsn: str) -> AsyncIterator[RoomShard]:
    async with MysqlAvailabilityStore(mysql_target(proxy.through(mysql_dsn))) as store:
        shard = RoomShard(store, RING, 0, owner="faults", unavailable_after_s=0.5)
        await shard.start()
        yield shard
        await shard.stop()


async def stored(store: MysqlAvailabilityStore) -> list[tuple[str, str | None, int]]:
    return [(n.status.value, n.holder, n.version) for n in await store.nights(1, START, START + dt.timedelta(days=9))]


async def test_a_lost_commit_acknowledgement_answers_what_was_committed(shard, proxy, direct):
    proxy.drop_commit_ack(only_if=BATCH_WRITE)
    [placed] = await shard.apply([hold("first")])
    assert proxy.counters.acks_dropped == 1
    assert isinstance(placed, HoldView) and placed.status == "held", placed
    assert await stored(direct) == [("held", "first", 1)] * 2  # committed once, not twice

    # memory agrees with the store: the nights are taken, and the shard's next writes are not
    # refused as stale (it was neither rolled back in memory nor fenced)
    [refused] = await shard.apply([hold("second")])
    assert isinstance(refused, Failure) and refused.kind == "nights_unavailable"
    [booked] = await shard.apply([ConfirmHold(room_id=1, hold_id="first")])
    assert isinstance(booked, HoldView) and booked.status == "booked"
    assert await stored(direct) == [("booked", "first", 2)] * 2
    status = shard.status()
    assert (status.serving, status.reloads) == (True, 1)


async def test_a_transaction_cut_before_its_commit_runs_again_and_commits_once(shard, proxy, direct):
    proxy.cut_mid_transaction(only_if=BATCH_WRITE)
    [placed] = await shard.apply([hold("first")])
    assert proxy.counters.transactions_cut == 1
    assert isinstance(placed, HoldView) and placed.status == "held"
    assert await stored(direct) == [("held", "first", 1)] * 2
    assert shard.status().serving


async def test_a_lost_acknowledgement_of_a_confirm_never_frees_the_booked_nights(shard, proxy, direct):
    [placed] = await shard.apply([hold("first")])
    assert isinstance(placed, HoldView)
    proxy.drop_commit_ack(only_if=BATCH_WRITE)
    [booked] = await shard.apply([ConfirmHold(room_id=1, hold_id="first")])
    assert isinstance(booked, HoldView) and booked.status == "booked"
    [refused] = await shard.apply([hold("second")])
    assert isinstance(refused, Failure) and refused.kind == "nights_unavailable"
    [view] = await shard.apply([ReadCalendar(room_id=1, start=START, end=START + dt.timedelta(days=2))])
    assert [n.status.value for n in view.nights] == ["booked", "booked"]
    assert await stored(direct) == [("booked", "first", 2)] * 2


async def test_an_outage_refuses_commands_quickly_and_the_shard_serves_again_once_it_ends(shard, proxy, direct):
    await proxy.outage(True)
    [unknown] = await shard.apply([hold("during")])  # its write failed: it may have committed
    assert isinstance(unknown, Failure) and unknown.kind == "outcome_unknown"
    [refused] = await shard.apply([hold("next", offset=4)])  # the shard knows it cannot write now
    assert isinstance(refused, Failure) and refused.kind == "shard_unavailable"
    assert not shard.status().serving
    await proxy.outage(False)
    for _ in range(200):
        if shard.status().serving:
            break
        await asyncio.sleep(0.05)
    assert shard.status().serving
    [again] = await shard.apply([hold("during")])  # the retry settles it, with the same id
    assert isinstance(again, HoldView) and again.status == "held"
    assert await stored(direct) == [("held", "during", 1)] * 2


async def test_a_restarted_owner_loads_what_the_lost_acknowledgement_committed(shard, proxy, direct, mysql_dsn):
    proxy.drop_commit_ack(only_if=BATCH_WRITE)
    [placed] = await shard.apply([hold("first")])
    assert isinstance(placed, HoldView)
    await shard.stop()
    async with MysqlAvailabilityStore(mysql_target(mysql_dsn)) as store:
        restarted = RoomShard(store, RING, 0, owner="restarted")
        await restarted.start()
        [refused] = await restarted.apply([hold("second")])
        assert isinstance(refused, Failure) and refused.kind == "nights_unavailable"
        await restarted.stop()
