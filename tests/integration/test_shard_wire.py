"""The direct data path (shard_wire) on loopback, in front of a real RoomShard on SQLite."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3

import msgspec
import pytest

from roombook.actors.shard import RoomShard
from roombook.actors.shard_wire import MAX_FRAME_BYTES, ShardConnection, ShardServer, call_until_answered
from roombook.domain.calendar import HoldView
from roombook.domain.commands import ConfirmHold, Failure, FreeRooms, PlaceHold, ReadCalendar, ReadFreeRooms
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

RING = ShardRing(1)
START = dt.date(2031, 7, 1)
DAY = dt.timedelta(days=1)


def hold(hold_id: str, room_id: int = 1, offset: int = 0) -> PlaceHold:
    stay = Stay(check_in=START + offset * DAY, check_out=START + (offset + 1) * DAY)
    return PlaceHold(room_id=room_id, hold_id=hold_id, stay=stay, ttl_s=600)


@pytest.fixture
async def shard(tmp_path):
    async with availability_store(f"sqlite:///{tmp_path / 'global.db'}") as store:
        await store.migrate()
        shard = RoomShard(store, RING, 0, owner="wire-test")
        await shard.start()
        yield shard
        await shard.stop()


@pytest.fixture
async def server(shard):
    server = ShardServer(shard.apply, epoch=shard.epoch)
    await server.start("127.0.0.1")
    yield server
    await server.close()


async def test_commands_go_through_and_replies_come_back_in_command_order(server, shard):
    connection = await ShardConnection.open(server.endpoint)
    replies = await connection.call([hold("a"), hold("b"), ConfirmHold(room_id=1, hold_id="a")])
    assert isinstance(replies[0], HoldView) and replies[0].status == "held"
    assert isinstance(replies[1], Failure) and replies[1].kind == "nights_unavailable"
    assert isinstance(replies[2], HoldView) and replies[2].status == "booked"
    assert server.endpoint.epoch == shard.epoch
    await connection.close()


async def test_a_free_rooms_read_crosses_the_wire_with_its_rooms_in_order(server, shard):
    connection = await ShardConnection.open(server.endpoint)
    await connection.call([hold("taken", room_id=5, offset=1)])
    read = ReadFreeRooms(room_id=9, room_ids=[9, 5, 2, 7], start=START, end=START + 3 * DAY)
    [reply] = await connection.call([read])
    assert reply == FreeRooms(room_ids=[9, 2, 7])
    await connection.close()


async def test_concurrent_calls_on_one_connection_each_get_their_own_replies(server):
    connection = await ShardConnection.open(server.endpoint)
    calls = [connection.call([hold(f"h{room}", room_id=room)]) for room in range(1, 101)]
    replies = await asyncio.gather(*calls)
    assert [r[0].hold_id for r in replies] == [f"h{room}" for room in range(1, 101)]
    assert all(r[0].status == "held" for r in replies)
    await connection.close()


async def test_a_connection_closed_before_its_reader_ever_ran_fails_its_calls_instead_of_leaving_them_waiting(
    server,
):
    # Two openings of a shard's connection race (lanes of an old ring and a new one): the loser is
    # closed at once, before its reader task has taken a step. Its calls must fail over, not hang.
    connection = await ShardConnection.open(server.endpoint)
    call = asyncio.ensure_future(connection.call([hold("raced")]))
    await connection.close()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(call, 5)
    assert not connection.usable
    with pytest.raises(ConnectionError):
        await connection.call([hold("after")])


async def test_a_connection_with_the_wrong_token_is_closed_before_any_command_runs(server, shard):
    forged = msgspec.structs.replace(server.endpoint, token=b"x" * 32)
    connection = await ShardConnection.open(forged)
    with pytest.raises(ConnectionError):
        await connection.call([hold("intruder")])
    assert shard.status().commands == 0
    reply = await (await ShardConnection.open(server.endpoint)).call(
        [ReadCalendar(room_id=1, start=START, end=START + DAY)]
    )
    assert [n.status for n in reply[0].nights] == ["available"]


async def test_an_oversized_frame_is_refused_by_dropping_the_connection(server, shard):
    reader, writer = await asyncio.open_connection(server.endpoint.host, server.endpoint.port)
    token = server.endpoint.token
    writer.write(len(token).to_bytes(4, "big") + token + (MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    assert await reader.read() == b""  # closed by the server, nothing answered
    writer.close()
    assert shard.status().commands == 0


async def test_calls_in_flight_fail_with_connection_error_when_the_server_goes_away(tmp_path):
    async with availability_store(f"sqlite:///{tmp_path / 'global.db'}") as store:
        await store.migrate()
        shard = RoomShard(store, RING, 0, owner="wire-test")
        await shard.start()
        answered = asyncio.Event()

        async def slow_apply(commands, early=None, ring_version=None):
            answered.set()
            await asyncio.sleep(3600)  # never answers: the server is closed first
            return await shard.apply(commands, early)

        server = ShardServer(slow_apply, epoch=shard.epoch)
        endpoint = await server.start("127.0.0.1")
        connection = await ShardConnection.open(endpoint)
        call = asyncio.ensure_future(connection.call([hold("lost")]))
        await answered.wait()
        await server.close()
        with pytest.raises(ConnectionError):
            await call
        assert not connection.usable
        await connection.close()
        await shard.stop()


async def test_refusals_arrive_ahead_of_the_answer_while_the_shard_commits(server, shard, tmp_path):
    connection = await ShardConnection.open(server.endpoint)
    await connection.call([hold("first")])
    ahead = []
    blocker = sqlite3.connect(tmp_path / "global.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the shard's next commit waits for this writer
    try:
        call = asyncio.ensure_future(connection.call([hold("late"), hold("free", offset=5)], ahead.append))
        for _ in range(200):
            if ahead:
                break
            await asyncio.sleep(0.01)
        assert [[(index, reply.kind) for index, reply in refusals] for refusals in ahead] == [
            [(0, "nights_unavailable")]
        ]
        assert not call.done()  # the hold on the free night waits for its commit
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    late, free = await call
    assert isinstance(late, Failure) and late.kind == "nights_unavailable"
    assert isinstance(free, HoldView) and free.status == "held"
    await connection.close()


async def test_after_a_lost_connection_only_the_commands_without_a_reply_are_resent(server, shard):
    """A refusal that went ahead stands: resending that hold could place it with no one to confirm it."""
    refused = Failure(kind="nights_unavailable", message="nights not available", room_id=1, nights=[START])
    went_ahead = asyncio.Event()

    async def dying_apply(commands, early, ring_version=None):  # refuses the first command ahead, then its process dies
        early([(0, refused)])
        went_ahead.set()
        await asyncio.sleep(3600)

    dying = ShardServer(dying_apply, epoch=shard.epoch)
    endpoints = iter([await dying.start("127.0.0.1"), server.endpoint])
    connections: list[ShardConnection] = []

    async def connect() -> ShardConnection:  # as RayShards finds a restarted actor: a new endpoint
        connections.append(await ShardConnection.open(next(endpoints)))
        return connections[-1]

    async def crash_once_refused() -> None:
        await went_ahead.wait()
        await dying.close()

    crash = asyncio.ensure_future(crash_once_refused())
    heard: list[tuple[int, Failure]] = []
    replies = await call_until_answered(connect, [hold("refused"), hold("other", offset=2)], heard.extend, timeout_s=10)
    await crash
    assert replies[0] == refused and heard == [(0, refused)]
    assert isinstance(replies[1], HoldView) and replies[1].hold_id == "other"
    assert shard.status().commands == 1  # the refused hold never reached the live shard
    [calendar] = await connections[-1].call([ReadCalendar(room_id=1, start=START, end=START + DAY)])
    assert [n.status for n in calendar.nights] == ["available"]
    for connection in connections:
        await connection.close()


async def test_when_every_reply_went_ahead_a_lost_connection_needs_no_second_one(shard):
    refused = Failure(kind="nights_unavailable", message="nights not available", room_id=1, nights=[START])

    async def dying_apply(commands, early, ring_version=None):
        early([(index, refused) for index in range(len(commands))])
        await asyncio.sleep(3600)

    dying = ShardServer(dying_apply, epoch=shard.epoch)
    endpoints = iter([await dying.start("127.0.0.1")])  # a second connect would raise StopIteration
    connections: list[ShardConnection] = []

    async def connect() -> ShardConnection:
        connections.append(await ShardConnection.open(next(endpoints)))
        return connections[-1]

    arrived = asyncio.Event()
    call = asyncio.ensure_future(
        call_until_answered(connect, [hold("a"), hold("b")], lambda _: arrived.set(), timeout_s=10)
    )
    await arrived.wait()  # the refusals reached this side: now the shard's process dies
    await dying.close()
    assert await asyncio.wait_for(call, 5) == [refused, refused]
    await connections[0].close()


async def test_a_call_the_lost_process_never_answers_is_resent_once_the_shard_listens_elsewhere(server, shard):
    """A process lost with its node can keep the connection open and answer nothing: after stall_s the
    client asks whether the shard's endpoint changed and, as it did, resends to the new one."""

    async def silent_apply(commands, early, ring_version=None):  # accepts the call, never answers
        await asyncio.sleep(3600)

    silent = ShardServer(silent_apply, epoch=shard.epoch)
    endpoints = iter([await silent.start("127.0.0.1"), server.endpoint])
    connections: list[ShardConnection] = []

    async def connect() -> ShardConnection:
        if not connections or not connections[-1].usable:
            connections.append(await ShardConnection.open(next(endpoints)))
        return connections[-1]

    asked: list[bool] = []

    async def stale(connection: ShardConnection) -> bool:  # as RayShards asks Ray for the endpoint now
        asked.append(connection.endpoint != server.endpoint)
        return asked[-1]

    [reply] = await call_until_answered(connect, [hold("moved")], timeout_s=10, stale=stale, stall_s=0.2)
    assert isinstance(reply, HoldView) and reply.status == "held"
    assert asked == [True] and len(connections) == 2 and not connections[0].usable
    await connections[1].close()
    await silent.close()


async def test_a_slow_answer_on_a_connection_that_is_still_current_is_waited_for(server, shard):
    async def slow_apply(commands, early, ring_version=None):
        await asyncio.sleep(0.5)
        return await shard.apply(commands, early, ring_version)

    slow = ShardServer(slow_apply, epoch=shard.epoch)
    endpoint = await slow.start("127.0.0.1")
    connection = await ShardConnection.open(endpoint)
    asked = []

    async def stale(c: ShardConnection) -> bool:
        asked.append(c.endpoint)
        return False

    [reply] = await call_until_answered(
        lambda: asyncio.sleep(0, connection), [hold("slow")], timeout_s=10, stale=stale, stall_s=0.1
    )
    assert isinstance(reply, HoldView) and reply.status == "held" and asked  # asked, kept waiting, answered
    await connection.close()
    await slow.close()
