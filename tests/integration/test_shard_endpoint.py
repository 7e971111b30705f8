"""Where a shard actor's direct socket listens on the session's local Ray, and who gets in: loopback
only (never every interface, nor the machine's address), and only a client with the token."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid

import msgspec
import pytest

from roombook.actors.client import AvailabilityClient
from roombook.actors.ray_runtime import RayShards
from roombook.actors.shard_wire import ShardConnection, ShardEndpoint
from roombook.domain.commands import PlaceHold
from roombook.domain.nights import NightStatus
from roombook.domain.stays import Stay
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store

pytestmark = pytest.mark.ray

RING = ShardRing(1)
NIGHT = dt.date(2031, 10, 1)
ONE_NIGHT = Stay(check_in=NIGHT, check_out=NIGHT + dt.timedelta(days=1))


@pytest.fixture
async def dsn(tmp_path):
    dsn = f"sqlite:///{tmp_path / 'global.db'}"
    async with availability_store(dsn) as store:
        await store.migrate()
    return dsn


@pytest.fixture
async def shards(ray_cluster, dsn):
    shards = RayShards(store_dsn=dsn, ring=RING, name_prefix=f"ep-{uuid.uuid4().hex[:8]}")
    await shards.start()
    yield shards
    await shards.close()
    shards.stop()


def listening_addresses(port: int) -> set[str]:
    """The local addresses of this machine's listening TCP sockets on `port` (from /proc/net)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, port_hex = local.split(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    # /proc prints each 32-bit word of the address in host (little-endian) order
                    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                    found.add(socket.inet_ntop(family, packed))
    return found


async def test_on_a_local_ray_a_shard_listens_on_loopback_only(shards):
    endpoint = await shards.endpoint(0)

    assert endpoint.host == "127.0.0.1"
    assert listening_addresses(endpoint.port) == {"127.0.0.1"}


async def test_detached_shards_listen_on_the_address_ray_has_for_their_node(ray_cluster, dsn):
    # they serve front processes on other nodes; nothing is sent there, only where it listens
    shards = RayShards(store_dsn=dsn, ring=RING, name_prefix=f"ep-{uuid.uuid4().hex[:8]}", detached=True)
    try:
        await shards.start()
        endpoint = await shards.endpoint(0)
    finally:
        shards.stop()
    node_addresses = {node["NodeManagerAddress"] for node in ray_cluster.nodes() if node["Alive"]}

    assert endpoint.host in node_addresses
    assert listening_addresses(endpoint.port) == {endpoint.host}


async def raw_connection(endpoint: ShardEndpoint, first_frame: bytes) -> bytes:
    """Connect, send first_frame and then a command that would hold a night; what comes back
    before the shard closes the connection."""
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    command = msgspec.msgpack.encode((0, [PlaceHold(room_id=1, hold_id="intruder", stay=ONE_NIGHT, ttl_s=600)]))
    for frame in (first_frame, command):
        writer.write(len(frame).to_bytes(4, "big") + frame)
    try:
        async with asyncio.timeout(10):
            answer = await reader.read()  # to EOF: the shard closes the connection
    except ConnectionResetError:  # closed with our command unread
        answer = b""
    writer.close()
    return answer


@pytest.mark.parametrize(
    "first_frame",
    [b"x" * 32, b"", msgspec.msgpack.encode((0, []))],
    ids=["wrong-token", "empty-token", "a-command-instead-of-the-token"],
)
async def test_a_connection_without_the_token_is_dropped_before_any_command_runs(shards, first_frame):
    endpoint = await shards.endpoint(0)

    assert await raw_connection(endpoint, first_frame) == b""
    nights = await AvailabilityClient(shards, RING).calendar(room_id=1, start=NIGHT, end=ONE_NIGHT.check_out)
    assert [n.status for n in nights] == [NightStatus.AVAILABLE]


async def test_the_token_ray_hands_out_opens_the_socket(shards):
    connection = await ShardConnection.open(await shards.endpoint(0))
    try:
        (reply,) = await connection.call([PlaceHold(room_id=1, hold_id="guest", stay=ONE_NIGHT, ttl_s=600)])
    finally:
        await connection.close()

    assert reply.status == "held"
