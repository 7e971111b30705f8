"""Shard owners, the directory that finds them, and the client's transport to them.

An owner is one incarnation of a shard actor: a RoomShard (the product class, or a subclass a
test passes) and the real shard_wire ShardServer in front of it. Like Ray, the cluster restarts a
crashed owner (a new one, which takes a new epoch and reloads from the store) and tells clients
where the newest one listens; unlike Ray, it can also start a second owner while the first still
serves (a partition, a restart the old process did not notice), and end the old one later.

`SimShards` is the client side of RayShards' direct path, over the simulated network: one cached
connection per shard, found again through the directory when it is lost, and the real
`call_until_answered` resending what has no reply yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Coroutine

from roombook.actors.shard import EarlyReplies, GroupCommit, RoomShard, ShardStatus
from roombook.actors.shard_wire import ShardConnection, ShardEndpoint, ShardServer, call_until_answered
from roombook.domain.commands import Command, Reply
from roombook.routing.ring import ShardRing
from roombook.sim.network import SimNetwork, SimWriter
from roombook.sim.store import SimStore

# call_until_answered measures its deadline on the wall clock: no virtual run reaches this one, so
# a call is resent until answered and the checker, not a timeout, decides when waiting is too long.
_RESEND_FOR_S = 1e9


class Owner:
    """One incarnation of a shard actor."""

    def __init__(self, shard: RoomShard, name: str) -> None:
        self.shard = shard
        self.name = name
        self.server: ShardServer | None = None
        self.port: int | None = None
        self.alive = True

    @property
    def epoch(self) -> int:
        return self.shard.epoch


class Cluster:
    """Every owner of every shard, and which one clients are sent to (the newest serving one)."""

    def __init__(
        self,
        store: SimStore,
        ring: ShardRing,
        network: SimNetwork,
        *,
        shard_class: type[RoomShard],
        group_commit: GroupCommit,
        trace: Callable[..., None],
    ) -> None:
        self.store = store
        self.ring = ring
        self.network = network
        self.owners: dict[int, list[Owner]] = {shard_id: [] for shard_id in range(ring.shard_count)}
        self.starting: set[int] = set()
        self._shard_class = shard_class
        self._group_commit = group_commit
        self._trace = trace
        self._names = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what Ray does -------------------------------------------------------------------------

    async def start_owner(self, shard_id: int) -> Owner:
        """A new incarnation: it retries its start (a new epoch, a load) until the store answers."""
        self.starting.add(shard_id)
        try:
            name = f"sim:{shard_id}:{next(self._names)}"
            loop = asyncio.get_running_loop()
            shard = self._shard_class(
                self.store, self.ring, shard_id, owner=name, group_commit=self._group_commit, clock=loop.time
            )
            owner = Owner(shard, name)
            self.owners[shard_id].append(owner)
            while True:
                try:
                    await shard.start()
                    break
                except Exception as exc:  # the store refused: Ray would call the actor's start again
                    self._trace("start_failed", name, type(exc).__name__)
                    await asyncio.sleep(0.05)
                if not owner.alive:
                    return owner
            if not owner.alive:  # crashed while starting
                owner.alive = True
                self.crash(owner)
                return owner
            server = owner.server = ShardServer(shard.apply, epoch=shard.epoch)
            owner.port = self.network.listen(lambda reader, writer: self._accept(server, reader, writer))
            server.endpoint = ShardEndpoint(host="sim", port=owner.port, token=server._token, epoch=shard.epoch)
            self._trace("owner_started", name, shard.epoch)
            return owner
        finally:
            self.starting.discard(shard_id)

    def crash(self, owner: Owner) -> None:
        """kill -9: its connections reset, its tasks end where they stand."""
        if not owner.alive:
            return
        owner.alive = False
        self._trace("owner_crashed", owner.name)
        if owner.port is not None:
            self.network.unlisten(owner.port)
        if owner.server is not None:
            self._spawn(owner.server.close())
        task = owner.shard._loop_task  # a dead process's loop does not finish its batch
        if task is not None:
            task.cancel()

    def newest(self, shard_id: int) -> Owner | None:
        """The started owner with the highest epoch, if it is alive: where the directory sends
        clients. Like Ray's actor name it never falls back to an older incarnation; a client
        still connected to one keeps reaching it until that process ends."""
        started = [owner for owner in self.owners[shard_id] if owner.server is not None]
        newest = max(started, key=lambda owner: owner.epoch, default=None)
        return newest if newest is not None and newest.alive else None

    def sole_owner(self, shard_id: int) -> Owner | None:
        """The one live, started owner of the shard, if there is exactly one and it holds the
        store's lease (no deposed incarnation that might answer from its old memory)."""
        live = [owner for owner in self.owners[shard_id] if owner.alive and owner.server is not None]
        lease = self.store.leases.get(shard_id)
        if len(live) != 1 or lease is None or lease.epoch != live[0].epoch:
            return None
        return live[0]

    async def endpoint(self, shard_id: int) -> ShardEndpoint:
        """Like RayShards asking the actor for its endpoint: waits while the shard restarts."""
        while True:
            await asyncio.sleep(0.001)  # a Ray call's round trip
            owner = self.newest(shard_id)
            if owner is not None and owner.server is not None and owner.server.endpoint is not None:
                return owner.server.endpoint
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for owners in self.owners.values():
            for owner in owners:
                self.crash(owner)
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _accept(self, server: ShardServer, reader: asyncio.StreamReader, writer: SimWriter) -> None:
        self._spawn(server._serve(reader, writer))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class SimShards:
    """A ShardTransport like RayShards(direct=True), over the simulated network."""

    calls_in_flight = 1  # as RayShards asks for

    def __init__(self, cluster: Cluster, network: SimNetwork) -> None:
        self._cluster = cluster
        self._network = network
        self._connections: dict[int, ShardConnection] = {}

    async def apply(
        self,
        shard_id: int,
        commands: list[Command],
        early: EarlyReplies | None = None,
        ring_version: int | None = None,
    ) -> list[Reply]:
        return await call_until_answered(
            lambda: self._connection(shard_id),
            commands,
            early,
            timeout_s=_RESEND_FOR_S,
            pause_s=0.05,
            ring_version=ring_version,
        )

    async def current_ring(self) -> ShardRing:
        return self._cluster.ring  # a simulation is never resized

    def use_ring(self, ring: ShardRing) -> None:
        if ring != self._cluster.ring:
            raise ValueError("a simulation is never resized")

    async def statuses(self) -> list[ShardStatus]:
        return [owner.shard.status() for shard_id in self._cluster.owners if (owner := self._cluster.newest(shard_id))]

    async def close(self) -> None:
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await connection.close()

    async def _connection(self, shard_id: int) -> ShardConnection:
        connection = self._connections.get(shard_id)
        if connection is not None and connection.usable:
            return connection
        endpoint = await self._cluster.endpoint(shard_id)
        connection = await self._network.open(endpoint)
        replaced = self._connections.get(shard_id)
        self._connections[shard_id] = connection
        if replaced is not None:
            await replaced.close()
        return connection
