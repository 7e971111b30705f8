"""The RoomShard on the embedded store (SQLite file): group commit, durability, fencing, expiry, recovery."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time

import pytest

from roombook.actors.shard import GroupCommit, RoomShard
from roombook.domain.calendar import HoldView
from roombook.domain.commands import (
    CheckStay,
    ConfirmHold,
    Failure,
    FreeRooms,
    MoveBooking,
    PlaceHold,
    ReleaseHold,
)
from roombook.domain.errors import ShardOwnedElsewhere, StoreUnavailable
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

RING = ShardRing(1)
DAY = dt.timedelta(days=1)
START = dt.date(2031, 6, 1)


def stay(offset: int, nights: int = 1) -> Stay:
    return Stay(check_in=START + offset * DAY, check_out=START + (offset + nights) * DAY)


@pytest.fixture
async def store(tmp_path):
    async with availability_store(f"sqlite:///{tmp_path / 'global.db'}") as store:
        await store.migrate()
        yield store


@pytest.fixture
async def shard(store):
    shard = RoomShard(store, RING, 0, owner="test")
    await shard.start()
    yield shard
    await shard.stop()


def committed_row(store, room_id: int, date: dt.date):
    """Read the row through a new connection, synchronously: only what is committed is visible."""
    with sqlite3.connect(store.path) as conn:
        return conn.execute(
            "SELECT status, holder, version FROM availability WHERE room_id = ? AND date = ?",
            (room_id, date.isoformat()),
        ).fetchone()


async def test_concurrent_confirms_share_transactions_and_each_is_durable_when_acknowledged(store, shard):
    holds = [PlaceHold(room_id=room, hold_id=f"g{room}", stay=stay(0, 2), ttl_s=600) for room in range(200)]
    assert all(isinstance(r, HoldView) for r in await shard.apply(holds))
    commits_before = (await store.leases())[0].commits
    unacked_on_disk = []

    async def confirm(room: int) -> None:
        [reply] = await shard.apply([ConfirmHold(room_id=room, hold_id=f"g{room}")])
        assert isinstance(reply, HoldView) and reply.status == "booked"
        for night in (START, START + DAY):  # acknowledged => already committed
            if committed_row(store, room, night) != ("booked", f"g{room}", 2):
                unacked_on_disk.append((room, night))

    await asyncio.gather(*(confirm(room) for room in range(200)))
    transactions = (await store.leases())[0].commits - commits_before
    assert unacked_on_disk == []
    assert 1 <= transactions < 200


async def test_without_group_commit_every_change_is_its_own_transaction(store):
    shard = RoomShard(store, RING, 0, owner="test", group_commit=GroupCommit(enabled=False))
    await shard.start()
    holds = [PlaceHold(room_id=room, hold_id=f"n{room}", stay=stay(0), ttl_s=600) for room in range(50)]
    commits_before = (await store.leases())[0].commits
    await asyncio.gather(*(shard.apply([h]) for h in holds))
    assert (await store.leases())[0].commits - commits_before == 50
    await shard.stop()


async def batches_for_two_calls_apart(shard: RoomShard, first_room: int) -> int:
    """Batches the shard runs for two callers' calls, the second sent 20 ms after the first."""
    before = shard.status().batches

    async def later() -> None:
        await asyncio.sleep(0.02)
        await shard.apply([PlaceHold(room_id=first_room + 1, hold_id=f"c{first_room + 1}", stay=stay(0), ttl_s=600)])

    await asyncio.gather(
        shard.apply([PlaceHold(room_id=first_room, hold_id=f"c{first_room}", stay=stay(0), ttl_s=600)]), later()
    )
    return shard.status().batches - before


@pytest.mark.parametrize("linger_alone", [False, True])
async def test_a_shard_lingers_for_company_only_while_batches_gather_several_calls(store, linger_alone):
    shard = RoomShard(store, RING, 0, owner="test", group_commit=GroupCommit(linger_s=1.0, linger_alone=linger_alone))
    await shard.start()
    try:
        # at first, and after a batch of several calls, an idle shard waits for company: one batch
        assert await batches_for_two_calls_apart(shard, 1) == 1
        # a lone caller's call (one call in its batch) ...
        await shard.apply([PlaceHold(room_id=10, hold_id="alone", stay=stay(0), ttl_s=600)])
        # ... and the next call runs at once, without waiting for the second caller: two batches
        assert await batches_for_two_calls_apart(shard, 20) == (1 if linger_alone else 2)
    finally:
        await shard.stop()


async def test_a_failed_write_fails_its_batch_and_rolls_back_memory(store, shard):
    with sqlite3.connect(store.path) as conn:  # a real store failure, for room 666 only
        conn.execute(
            "CREATE TRIGGER refuse_666 BEFORE INSERT ON availability WHEN NEW.room_id = 666 "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    good = PlaceHold(room_id=1, hold_id="good", stay=stay(0), ttl_s=600)
    bad = PlaceHold(room_id=666, hold_id="bad", stay=stay(0), ttl_s=600)
    replies = await shard.apply([good, bad])
    assert [r.kind for r in replies if isinstance(r, Failure)] == ["shard_unavailable"] * 2
    assert committed_row(store, 1, START) is None

    # memory was rolled back: placing the same hold again writes it (a replay would write nothing)
    [reply] = await shard.apply([good])
    assert isinstance(reply, HoldView)
    assert committed_row(store, 1, START) == ("held", "good", 1)


async def test_a_stale_owner_is_fenced_and_the_newer_owner_keeps_its_state(store, shard):
    newer = RoomShard(store, RING, 0, owner="newer")
    await newer.start()
    assert newer.epoch == shard.epoch + 1
    [mine] = await newer.apply([PlaceHold(room_id=7, hold_id="newer", stay=stay(0), ttl_s=600)])
    assert isinstance(mine, HoldView)

    [stale] = await shard.apply([PlaceHold(room_id=7, hold_id="stale", stay=stay(1), ttl_s=600)])
    assert isinstance(stale, Failure) and stale.kind == "shard_fenced"
    [after] = await shard.apply([ReleaseHold(room_id=7, hold_id="x")])
    assert isinstance(after, Failure) and after.kind == "shard_fenced"  # stops serving for good
    assert committed_row(store, 7, START) == ("held", "newer", 1)
    assert committed_row(store, 7, START + DAY) is None
    await newer.stop()


async def test_a_hold_is_released_after_its_expiry_and_never_before(store, shard):
    [view] = await shard.apply([PlaceHold(room_id=3, hold_id="short", stay=stay(0), ttl_s=0.3)])
    while committed_row(store, 3, START)[0] == "held":
        await asyncio.sleep(0.02)
        assert time.time() < view.expires_at_s + 5, "the sweep never released the hold"
    released_at = time.time()
    assert released_at >= view.expires_at_s
    assert committed_row(store, 3, START) == ("available", None, 2)
    [reply] = await shard.apply([ConfirmHold(room_id=3, hold_id="short")])
    assert isinstance(reply, Failure) and reply.kind == "hold_expired"


async def test_an_expired_hold_cannot_be_confirmed_even_before_the_sweep(store):
    clock = [1_000_000.0]
    shard = RoomShard(store, RING, 0, owner="test", clock=lambda: clock[0])
    await shard.start()
    await shard.apply([PlaceHold(room_id=4, hold_id="h", stay=stay(0), ttl_s=60)])
    clock[0] += 60
    [reply] = await shard.apply([ConfirmHold(room_id=4, hold_id="h")])
    assert isinstance(reply, Failure) and reply.kind == "hold_expired"
    await shard.stop()


async def test_a_restart_reloads_state_and_releases_holds_that_expired_while_down(store):
    first = RoomShard(store, RING, 0, owner="first")
    await first.start()
    await first.apply(
        [
            PlaceHold(room_id=5, hold_id="booked", stay=stay(0, 2), ttl_s=600),
            PlaceHold(room_id=5, hold_id="lapses", stay=stay(2), ttl_s=0.2),
            PlaceHold(room_id=5, hold_id="lives", stay=stay(3), ttl_s=600),
        ]
    )
    await first.apply([ConfirmHold(room_id=5, hold_id="booked")])
    await first.stop()
    await asyncio.sleep(0.3)

    second = RoomShard(store, RING, 0, owner="second")
    await second.start()
    assert second.status().rows == 4  # the booking's 2 nights, the lapsed night, the live hold's night
    assert committed_row(store, 5, START + 2 * DAY) == ("available", None, 2)
    assert committed_row(store, 5, START) == ("booked", "booked", 2)
    [replay] = await second.apply([ConfirmHold(room_id=5, hold_id="booked")])
    assert isinstance(replay, HoldView) and replay.status == "booked"
    [again] = await second.apply([PlaceHold(room_id=5, hold_id="lives", stay=stay(3), ttl_s=600)])
    assert isinstance(again, HoldView) and again.status == "held"
    assert committed_row(store, 5, START + 3 * DAY) == ("held", "lives", 1)  # replay wrote nothing
    await second.stop()


async def test_concurrent_callers_for_one_night_get_exactly_one_winner(shard):
    attempts = [PlaceHold(room_id=9, hold_id=f"c{i}", stay=stay(0, 3), ttl_s=600) for i in range(500)]
    replies = await asyncio.gather(*(shard.apply([a]) for a in attempts))
    winners = [r for [r] in replies if isinstance(r, HoldView)]
    losers = [r for [r] in replies if isinstance(r, Failure)]
    assert len(winners) == 1 and len(losers) == 499
    assert all(f.kind == "nights_unavailable" and len(f.nights) == 3 for f in losers)


async def test_a_night_changed_twice_in_one_batch_is_written_as_two_versions(store, shard):
    replies = await shard.apply(
        [
            PlaceHold(room_id=11, hold_id="twice", stay=stay(0), ttl_s=600),
            ConfirmHold(room_id=11, hold_id="twice"),
            ReleaseHold(room_id=11, hold_id="other"),
        ]
    )
    assert [r.status for r in replies] == ["held", "booked", "released"]
    assert committed_row(store, 11, START) == ("booked", "twice", 2)


async def test_refusals_go_ahead_while_their_batch_commits_and_changes_wait_for_the_commit(store, shard):
    [first] = await shard.apply([PlaceHold(room_id=1, hold_id="first", stay=stay(0), ttl_s=600)])
    assert isinstance(first, HoldView)
    ahead: list[list] = []
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: the shard's commit waits
    try:
        taken = PlaceHold(room_id=1, hold_id="late", stay=stay(0), ttl_s=600)
        free = PlaceHold(room_id=1, hold_id="free", stay=stay(3), ttl_s=600)
        call = asyncio.ensure_future(shard.apply([taken, free], ahead.append))
        for _ in range(200):
            if ahead:
                break
            await asyncio.sleep(0.01)
        [refusals] = ahead
        assert [(index, reply.kind) for index, reply in refusals] == [(0, "nights_unavailable")]
        assert not call.done() and committed_row(store, 1, START + 3 * DAY) is None
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    late, held = await call
    assert isinstance(late, Failure) and late.kind == "nights_unavailable"  # the answer has every reply
    assert isinstance(held, HoldView) and committed_row(store, 1, START + 3 * DAY) == ("held", "free", 1)


async def test_a_stay_check_changes_nothing_and_its_refusal_goes_ahead_of_the_commit(store, shard):
    [first] = await shard.apply([PlaceHold(room_id=1, hold_id="first", stay=stay(0, 2), ttl_s=600)])
    assert isinstance(first, HoldView)
    [free] = await shard.apply([CheckStay(room_id=1, stay=stay(2, 2))])
    assert free == FreeRooms(room_ids=[1]) and committed_row(store, 1, START + 2 * DAY) is None
    ahead: list[list] = []
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the shard's commit waits: the check's refusal must not
    try:
        change = PlaceHold(room_id=2, hold_id="other", stay=stay(0), ttl_s=600)
        call = asyncio.ensure_future(shard.apply([change, CheckStay(room_id=1, stay=stay(1, 2))], ahead.append))
        for _ in range(200):
            if ahead:
                break
            await asyncio.sleep(0.01)
        [refusals] = ahead
        [(index, refused)] = refusals
        assert (index, refused.kind, refused.nights) == (1, "nights_unavailable", [START + DAY])
        assert not call.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    held, _ = await call
    assert isinstance(held, HoldView)
    # The check held nothing: the night it found free is still free to hold.
    [later] = await shard.apply([PlaceHold(room_id=1, hold_id="later", stay=stay(2, 2), ttl_s=600)])
    assert isinstance(later, HoldView) and later.status == "held"


async def test_a_free_stay_check_goes_ahead_of_the_commit_and_the_hold_still_decides(store, shard):
    ahead: list[list] = []
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the shard's commit waits; the check's answer must not
    try:
        change = PlaceHold(room_id=2, hold_id="other", stay=stay(0), ttl_s=600)
        call = asyncio.ensure_future(shard.apply([change, CheckStay(room_id=1, stay=stay(1, 2))], ahead.append))
        for _ in range(200):
            if ahead:
                break
            await asyncio.sleep(0.01)
        [[(index, free)]] = ahead
        assert (index, free) == (1, FreeRooms(room_ids=[1])) and not call.done()
        # taken meanwhile (queued behind the uncommitted batch): the check only advised
        taking = asyncio.ensure_future(
            shard.apply([PlaceHold(room_id=1, hold_id="quicker", stay=stay(1, 2), ttl_s=600)])
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    held, checked = await call
    assert isinstance(held, HoldView) and checked == FreeRooms(room_ids=[1])
    [quicker] = await taking
    assert isinstance(quicker, HoldView)
    [late] = await shard.apply([PlaceHold(room_id=1, hold_id="late", stay=stay(1, 2), ttl_s=600)])
    assert isinstance(late, Failure) and late.kind == "nights_unavailable"


async def test_a_call_with_nothing_to_commit_is_answered_whole_without_going_ahead(shard):
    await shard.apply([PlaceHold(room_id=1, hold_id="first", stay=stay(0), ttl_s=600)])
    ahead = []
    [reply] = await shard.apply([PlaceHold(room_id=1, hold_id="second", stay=stay(0), ttl_s=600)], ahead.append)
    assert isinstance(reply, Failure) and ahead == []


async def test_an_idle_shard_renews_its_lease_and_another_deployment_cannot_take_it(store):
    shard = RoomShard(store, RING, 0, owner="a-1", deployment="a", actor="shard-0", lease_s=0.6)
    await shard.start()
    try:
        await asyncio.sleep(1.0)  # longer than the lease: only the heartbeat keeps it live
        lease = await store.lease(0)
        assert lease is not None and lease.renewed_s_ago is not None and lease.renewed_s_ago < 0.6
        rival = RoomShard(store, RING, 0, owner="b-1", deployment="b", lease_s=0.6)
        with pytest.raises(ShardOwnedElsewhere):  # it waits up to 1.5 leases, then gives up
            await rival.start()
        reply = await shard.apply([PlaceHold(room_id=1, hold_id="h1", stay=stay(0), ttl_s=60)])
        assert isinstance(reply[0], HoldView)  # the live owner was never fenced
    finally:
        await shard.stop()


async def test_a_lease_left_by_a_dead_deployment_is_taken_once_it_lapses(store):
    dead = RoomShard(store, RING, 0, owner="a-1", deployment="a", lease_s=0.5)
    await dead.start()
    await dead.apply([PlaceHold(room_id=1, hold_id="h1", stay=stay(0), ttl_s=60)])
    dead._loop_task.cancel()  # dies without a word: no more heartbeats
    successor = RoomShard(store, RING, 0, owner="b-1", deployment="b", lease_s=0.5)
    await successor.start()  # waits for the lapse instead of failing
    try:
        assert successor.epoch == dead.epoch + 1
        [reply] = await successor.apply([PlaceHold(room_id=1, hold_id="h1", stay=stay(0), ttl_s=60)])
        assert isinstance(reply, HoldView) and reply.hold_id == "h1"  # the dead owner's hold, reloaded
    finally:
        await successor.stop()


async def test_a_heartbeat_that_finds_a_newer_owner_stops_the_shard(store):
    shard = RoomShard(store, RING, 0, owner="a-1", deployment="a", lease_s=0.3)
    await shard.start()
    newer = await store.acquire_shard(0, "a-2", deployment="a")
    await asyncio.sleep(0.3)
    assert shard.status().state == "fenced"
    [reply] = await shard.apply([PlaceHold(room_id=1, hold_id="h1", stay=stay(0), ttl_s=60)])
    assert isinstance(reply, Failure) and reply.kind == "shard_fenced"
    assert (await store.lease(0)).epoch == newer


async def test_a_stopped_shard_refuses_as_moved_after_answering_what_was_queued(store, shard):
    placing = asyncio.ensure_future(shard.apply([PlaceHold(room_id=1, hold_id="h1", stay=stay(0), ttl_s=60)]))
    await asyncio.sleep(0)
    await shard.stop()
    assert isinstance((await placing)[0], HoldView)
    assert committed_row(store, 1, START)[0] == "held"
    [late] = await shard.apply([ConfirmHold(room_id=1, hold_id="h1")])
    assert isinstance(late, Failure) and late.kind == "shard_moved"
    assert shard.status().state == "handed_over"


async def test_a_heartbeat_the_store_does_not_answer_is_tried_again_and_the_shard_serves_on(store):
    class RenewFails:
        """The store, but renew_lease raises for the first `down` calls (a dropped connection)."""

        def __init__(self, down: int) -> None:
            self.down, self.calls = down, 0

        def __getattr__(self, name: str):
            return getattr(store, name)

        async def renew_lease(self, shard_id: int, epoch: int) -> bool:
            self.calls += 1
            if self.calls <= self.down:
                raise StoreUnavailable("connection lost")
            return await store.renew_lease(shard_id, epoch)

    flaky = RenewFails(down=3)
    shard = RoomShard(flaky, RING, 0, owner="a-1", deployment="a", lease_s=0.6)
    await shard.start()
    try:
        await asyncio.sleep(1.0)
        assert flaky.calls > 3  # tried again after each failure, then renewed
        assert shard.status().state == "serving"
        lease = await store.lease(0)
        assert lease.epoch == shard.epoch and lease.renewed_s_ago < 0.6
        [reply] = await shard.apply([PlaceHold(room_id=1, hold_id="h1", stay=stay(0), ttl_s=60)])
        assert isinstance(reply, HoldView)
    finally:
        await shard.stop()


async def test_a_move_is_durable_when_acknowledged_and_refused_for_a_room_of_another_shard(store):
    ring = ShardRing(2)
    room, other_shards_room = 1, next(r for r in range(2, 50) if ring.shard_of(r) != ring.shard_of(1))
    shard = RoomShard(store, ring, ring.shard_of(room), owner="test")
    await shard.start()
    try:
        booked = await shard.apply([PlaceHold(room_id=room, hold_id="bk", stay=stay(0, 2), ttl_s=60)])
        await shard.apply([ConfirmHold(room_id=room, hold_id="bk")])
        assert isinstance(booked[0], HoldView)

        [moved] = await shard.apply([MoveBooking(room_id=room, booking_id="bk", to_room_id=room, stay=stay(1, 2))])
        [elsewhere] = await shard.apply(
            [MoveBooking(room_id=room, booking_id="bk", to_room_id=other_shards_room, stay=stay(1, 2))]
        )

        assert isinstance(moved, HoldView) and moved.nights == [START + DAY, START + 2 * DAY]
        assert committed_row(store, room, START) == ("available", None, 3)
        assert committed_row(store, room, START + 2 * DAY) == ("booked", "bk", 1)
        assert isinstance(elsewhere, Failure) and elsewhere.kind == "shard_unavailable"
    finally:
        await shard.stop()


@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 2)], ids=["grow", "shrink"])
async def test_a_shard_resumed_under_a_new_ring_holds_what_a_fresh_load_of_the_store_holds(store, before, after):
    # A resize restarts each surviving shard from its own memory plus the rooms it gains: that must
    # be the very calendar a start from the store alone would build, holds and their expiries too
    old, new = ShardRing(before, version=1), ShardRing(after, version=2)
    olds = [RoomShard(store, old, shard_id, owner=f"old-{shard_id}") for shard_id in range(before)]
    for shard in olds:
        await shard.start()
    for room in range(1, 61):
        owner = olds[old.shard_of(room)]
        [held] = await owner.apply([PlaceHold(room_id=room, hold_id=f"h{room}", stay=stay(room % 5, 2), ttl_s=600)])
        assert isinstance(held, HoldView)
        if room % 3 == 0:
            await owner.apply([ConfirmHold(room_id=room, hold_id=f"h{room}")])
        elif room % 3 == 1:
            await owner.apply([ReleaseHold(room_id=room, hold_id=f"h{room}")])
    for shard in olds:
        await shard.stop()
    for shard_id in range(after):
        resumed = olds[shard_id] if shard_id < before else None
        shard = RoomShard(store, new, shard_id, owner=f"new-{shard_id}")
        await shard.start(resumed=resumed)
        reference = RoomShard(store, new, shard_id, owner=f"reference-{shard_id}")
        await reference.start()  # a newer epoch: from here on it, not `shard`, owns the rows
        assert _rows(shard) == _rows(reference)
        assert shard._calendar.row_count > 0
        for room in range(1, 61):
            if new.owns(shard_id, room):
                mine, stored = shard._calendar.hold(f"h{room}"), reference._calendar.hold(f"h{room}")
                assert (mine is None) == (stored is None)
                if mine is not None:
                    assert (mine.status, mine.nights) == (stored.status, stored.nights)
            else:
                assert shard._calendar.hold(f"h{room}") is None  # its room left with the resize
        await reference.stop()
        await shard.stop()


async def test_a_shard_that_did_not_stop_cleanly_is_not_resumed_from_memory(store):
    shard = RoomShard(store, RING, 0, owner="first")
    await shard.start()
    assert shard.take_calendar() is None  # serving: its memory runs ahead of any snapshot
    await shard.apply([PlaceHold(room_id=1, hold_id="kept", stay=stay(0), ttl_s=600)])
    await shard.stop()
    ring, calendar = shard.take_calendar()
    assert ring == RING and calendar.hold("kept") is not None
    assert shard.take_calendar() is None  # once only
    fenced = RoomShard(store, RING, 0, owner="second")
    await fenced.start()
    await fenced.apply([PlaceHold(room_id=2, hold_id="newer", stay=stay(0), ttl_s=600)])
    third = RoomShard(store, RING, 0, owner="third")
    await third.start()  # fences `fenced`
    [refused] = await fenced.apply([PlaceHold(room_id=3, hold_id="late", stay=stay(0), ttl_s=600)])
    assert isinstance(refused, Failure)
    await fenced.stop()
    assert fenced.take_calendar() is None
    await third.stop()


def _rows(shard):
    """The calendar's rows in order, expiries to within 10 µs (the store keeps microseconds)."""
    rows = sorted(shard._calendar.rows(), key=lambda n: (n.room_id, n.date))
    expiry = lambda n: None if n.hold_expires_at_s is None else pytest.approx(n.hold_expires_at_s, abs=1e-5)  # noqa: E731
    return [(n.room_id, n.date, n.status, n.holder, n.version, expiry(n)) for n in rows]
