"""The Ray runtime: one named actor per shard. The only module that calls Ray's actor API.

Each actor wraps a RoomShard and opens its own store connection in its own process. Actors are
named `roombook-shard-<id>` in a namespace, so every front process of a deployment reaches the same
ones. Ray restarts a crashed actor (`max_restarts=-1`) and retries the calls it was running
(`max_task_retries=-1`); the restarted actor takes a new epoch and reloads from the store, and every
command is idempotent by hold id, so a retried command cannot apply twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import msgspec
import ray
import ray.exceptions

from roombook.actors.shard import GroupCommit, RoomShard, ShardStatus
from roombook.domain.commands import Command, Reply, command_batch, reply_batch
from roombook.routing.ring import ShardRing
from roombook.storage.connect import availability_store

log = logging.getLogger(__name__)

_encoder = msgspec.msgpack.Encoder()
_status_decoder = msgspec.msgpack.Decoder(ShardStatus)


class ShardActorConfig(msgspec.Struct, frozen=True, kw_only=True):
    store_dsn: str
    shard_id: int
    shard_count: int
    group_commit: GroupCommit = GroupCommit()


class RoomShardActor:
    """The actor's body: decode, hand to the RoomShard, encode. Starts the shard on first use."""

    def __init__(self, config: bytes) -> None:
        self._config = msgspec.msgpack.decode(config, type=ShardActorConfig)
        self._shard: RoomShard | None = None
        self._starting: asyncio.Task[RoomShard] | None = None

    async def _ready_shard(self) -> RoomShard:
        if self._shard is not None:
            return self._shard
        if self._starting is None or (self._starting.done() and self._starting.exception()):
            self._starting = asyncio.get_running_loop().create_task(self._start())
        self._shard = await asyncio.shield(self._starting)
        return self._shard

    async def _start(self) -> RoomShard:
        cfg = self._config
        store = availability_store(cfg.store_dsn)
        await store.__aenter__()
        owner = f"ray:{socket.gethostname()}:{os.getpid()}:{ray.get_runtime_context().get_actor_id()}"
        shard = RoomShard(store, ShardRing(cfg.shard_count), cfg.shard_id, owner=owner, group_commit=cfg.group_commit)
        await shard.start()
        return shard

    async def ready(self) -> int:
        return (await self._ready_shard()).epoch

    async def apply(self, payload: bytes) -> bytes:
        shard = await self._ready_shard()
        return _encoder.encode(await shard.apply(command_batch.decode(payload)))

    async def status(self) -> bytes:
        return _encoder.encode((await self._ready_shard()).status())

    async def pid(self) -> int:
        return os.getpid()

    async def drain(self) -> None:
        """Answer what is queued, persist it, stop serving (the actor stays until killed)."""
        if self._shard is not None:
            await self._shard.stop()


_RemoteShard = ray.remote(RoomShardActor)


def init_ray(address: str | None = None, *, namespace: str = "roombook", **kwargs: object) -> None:
    """Connect to a cluster at `address`, or start a local one when there is none."""
    if ray.is_initialized():
        return
    options: dict[str, object] = {"namespace": namespace, "logging_level": "warning", "log_to_driver": False}
    if address:
        options["address"] = address
    else:
        # our own Ray advertises loopback, so workers and actors talk over 127.0.0.1; its ports still
        # bind every interface, guarded by Ray's token authentication (on by default: keep it on)
        options |= {"address": "local", "include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    ray.init(**(options | kwargs))


class RayShards:
    """A ShardTransport over the named shard actors (created if missing)."""

    calls_in_flight = 1  # see ShardTransport

    def __init__(
        self,
        *,
        store_dsn: str,
        ring: ShardRing,
        namespace: str = "roombook",
        name_prefix: str = "roombook-shard",
        group_commit: GroupCommit | None = None,
        detached: bool = False,
        call_timeout_s: float = 30.0,
    ) -> None:
        self._ring = ring
        self._namespace = namespace
        self._name_prefix = name_prefix
        self._detached = detached
        self._call_timeout_s = call_timeout_s
        self._configs = [
            _encoder.encode(
                ShardActorConfig(
                    store_dsn=store_dsn,
                    shard_id=shard_id,
                    shard_count=ring.shard_count,
                    group_commit=group_commit or GroupCommit(),
                )
            )
            for shard_id in range(ring.shard_count)
        ]
        self._actors = [self._actor(shard_id) for shard_id in range(ring.shard_count)]

    def _actor(self, shard_id: int) -> ray.actor.ActorHandle:
        return _RemoteShard.options(
            name=f"{self._name_prefix}-{shard_id}",
            namespace=self._namespace,
            get_if_exists=True,
            lifetime="detached" if self._detached else None,
            max_restarts=-1,
            max_task_retries=-1,
            num_cpus=0,
        ).remote(self._configs[shard_id])

    async def start(self) -> list[int]:
        """Wait until every shard owns its rooms; return their epochs."""
        return list(await asyncio.gather(*(actor.ready.remote() for actor in self._actors)))

    async def apply(self, shard_id: int, commands: list[Command]) -> list[Reply]:
        payload = _encoder.encode(commands)
        deadline = time.monotonic() + self._call_timeout_s
        while True:
            try:
                return reply_batch.decode(await self._actors[shard_id].apply.remote(payload))
            except ray.exceptions.ActorDiedError:
                # gone for good (killed with no_restart, node lost): make or find a new one by name
                if time.monotonic() > deadline:
                    raise
                self._actors[shard_id] = self._actor(shard_id)
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
                # restarting: every command is idempotent by hold id, so sending again is safe
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def statuses(self) -> list[ShardStatus]:
        raw = await asyncio.gather(*(actor.status.remote() for actor in self._actors))
        return [_status_decoder.decode(r) for r in raw]

    async def actor_pid(self, shard_id: int) -> int:
        return await self._actors[shard_id].pid.remote()

    def kill(self, shard_id: int, *, restart: bool = True) -> None:
        """Kill a shard's actor process, as a crash would (Ray restarts it when restart is True)."""
        ray.kill(self._actors[shard_id], no_restart=not restart)

    async def drain(self) -> None:
        """Let every shard finish and persist its queued commands, then stop serving."""
        await asyncio.gather(*(actor.drain.remote() for actor in self._actors))

    def stop(self) -> None:
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
