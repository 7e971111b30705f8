"""The Ray runtime: one named actor per shard. The only module that calls Ray's actor API.

Each actor wraps a RoomShard and opens its own store connection in its own process. Actors are
named `roombook-shard-<id>` in a namespace, so every front process of a deployment reaches the same
ones. Ray restarts a crashed actor (`max_restarts=-1`) and retries the calls it was running
(`max_task_retries=-1`); the restarted actor takes a new epoch and reloads from the store, and every
command is idempotent by hold id, so a retried command cannot apply twice.

Each shard's entry actor (`<prefix>-<id>`) is where every front finds it: it owns the shard, or,
once the shard was moved (move_shard) to another actor, forwards to it. Resizes (resize_shards)
restart every shard by the next ring the store records. The leases say who owns what: an entry
that finds its shard fenced starts it again unless a live actor of its deployment owns it.

Ray is the control plane: it places the actors, restarts them, and tells clients where each one
listens (`endpoint`). Commands take the direct data path of shard_wire (a socket per shard), which
costs a fraction of a Ray call; `direct=False` sends them as Ray calls instead (for comparison).
A lost connection is a restarting actor: the client asks Ray for the new endpoint and resends.

Where an actor's socket listens: on loopback while the whole Ray cluster is on this machine and the
actors end with this process (a local Ray: nobody elsewhere may reach them); else on the address Ray
has for the actor's node, which front processes on other nodes reach. Never on every interface.
Ray itself never advertises loopback for a node (it swaps 127.0.0.1 for the machine's address).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypedDict, Unpack

import msgspec
import ray
import ray.actor
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from roombook.actors.shard import EarlyReplies, GroupCommit, RoomShard, ShardStatus
from roombook.actors.shard_wire import ShardConnection, ShardEndpoint, ShardServer, call_until_answered
from roombook.domain.commands import Command, Reply, command_batch, reply_batch
from roombook.domain.errors import RingChanged, RoombookError, ShardMoved, ShardUnavailable
from roombook.heap import GcPauses, freeze_startup_heap
from roombook.routing.ring import ShardRing
from roombook.storage.ports import AvailabilityStore, ShardStore
from roombook.storage.sql.connect import availability_store

log = logging.getLogger(__name__)

_encoder = msgspec.msgpack.Encoder()
_status_decoder = msgspec.msgpack.Decoder(ShardStatus)
_endpoint_decoder = msgspec.msgpack.Decoder(ShardEndpoint)
LOOPBACK = "127.0.0.1"
CALL_ATTEMPT_S = 2.0  # a control call to a shard's actor (its endpoint, ...) answers in milliseconds when it is up


class ShardPlacement(msgspec.Struct, frozen=True, kw_only=True):
    """What each shard actor reserves on its node. Ray spreads the actors over the cluster's nodes
    (its SPREAD strategy); a reservation also keeps a node from taking more shards than it can run.
    num_cpus=0 (the default) reserves nothing: a shard is mostly waiting on its store."""

    num_cpus: float = 0.0
    memory_mb: int = 0


class ShardActorConfig(msgspec.Struct, frozen=True, kw_only=True):
    store_dsn: str
    shard_id: int
    shard_count: int
    group_commit: GroupCommit = GroupCommit()
    freeze_heap: bool = True  # see roombook/heap.py
    listen_host: str | None = None  # the direct socket's address; None: the one Ray has for the actor's node
    deployment: str = ""  # recorded with the lease: who the owner belongs to (see RoomShard)
    namespace: str = "roombook"
    name: str = ""  # this actor's name, recorded with the lease so that others find the owner
    lease_s: float = 0.0
    detached: bool = False  # the actor outlives the process that made it (a shared cluster)
    placement: ShardPlacement = ShardPlacement()


class _Forward(msgspec.Struct, frozen=True):
    """The shard is owned by another live actor of this deployment (it was moved there)."""

    name: str


class RoomShardActor:
    """The actor's body: decode, hand to the RoomShard, encode.

    Every shard has an entry actor, named `<prefix>-<shard id>`, which is where fronts look it up.
    It owns the shard, or, once the shard was moved to another actor (see move_shard), forwards:
    what it is asked it asks the owner the lease names. A shard that is fenced or stopped is
    started again on the next call, unless a live actor of the deployment owns it now: so a
    fenced owner heals by itself, and never fights a legitimate newer one."""

    def __init__(self, config: bytes) -> None:
        self._config = msgspec.msgpack.decode(config, type=ShardActorConfig)
        self._owner_id = f"ray:{socket.gethostname()}:{os.getpid()}:{ray.get_runtime_context().get_actor_id()}"
        self._store: AvailabilityStore | None = None
        self._shard: RoomShard | None = None
        self._server: ShardServer | None = None
        self._starting: asyncio.Task[RoomShard | _Forward] | None = None
        self._forward: _Forward | None = None
        self._handing_over: asyncio.Future[None] | None = None
        self._resume: RoomShard | None = None  # stopped by a resize: the next start keeps its nights
        self._gc_pauses = GcPauses()
        self._frozen = False
        self._collected = False  # start-up's garbage collected already (see prepare)
        self._drained = False

    async def _owner(self) -> RoomShard | _Forward:
        """This actor's serving shard, starting it if need be, or where the shard is now."""
        if self._handing_over is not None:
            await asyncio.shield(self._handing_over)
        if self._forward is not None:
            return self._forward
        if self._drained:
            raise ShardUnavailable(f"shard {self._config.shard_id} was drained: it serves no more")
        shard = self._shard
        if shard is not None and shard.state in ("serving", "unavailable"):
            return shard
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start())
        return await asyncio.shield(self._starting)

    async def _ready_shard(self) -> RoomShard:
        owner = await self._owner()
        if isinstance(owner, _Forward):
            raise ShardMoved(f"shard {self._config.shard_id} is owned by {owner.name}")
        return owner

    async def _open_store(self) -> AvailabilityStore:
        if self._store is None:
            store = availability_store(self._config.store_dsn)
            await store.__aenter__()
            self._store = store
        return self._store

    async def _ring(self) -> ShardRing:
        """The deployment's ring as the store records it (the first to ask records the configured one)."""
        store = await self._open_store()
        ring = await store.ring(default_shard_count=self._config.shard_count)
        if ring is None:  # cannot be: the store just recorded one if it had none
            raise ShardUnavailable("the store records no ring")
        return ring

    async def _start(self) -> RoomShard | _Forward:
        cfg = self._config
        store = await self._open_store()
        ring = await self._ring()
        if cfg.shard_id >= ring.shard_count:
            raise RingChanged(f"shard {cfg.shard_id} is not in the ring of {ring.shard_count} shards (v{ring.version})")
        lease = await store.lease(cfg.shard_id)
        if (
            lease is not None
            and lease.deployment == cfg.deployment
            and lease.actor not in ("", cfg.name)
            and _actor_exists(lease.actor, cfg.namespace)
        ):
            self._forward = _Forward(lease.actor)
            return self._forward
        self._forward = None
        return await self._own(store, ring)

    async def _own(self, store: AvailabilityStore, ring: ShardRing) -> RoomShard:
        """Start a RoomShard of this actor's shard by `ring` (a new epoch) and take commands for it."""
        cfg = self._config
        shard = RoomShard(
            store,
            ring,
            cfg.shard_id,
            owner=self._owner_id,
            group_commit=cfg.group_commit,
            deployment=cfg.deployment,
            actor=cfg.name,
            lease_s=cfg.lease_s,
        )
        resumed, self._resume = self._resume, None
        await shard.start(resumed=resumed)
        await self._serve(shard)
        if cfg.freeze_heap and not self._frozen:
            self._frozen = True
            # Ray's worker, the store's pool, the loaded calendar. An actor prepared for a move or
            # a resize collected its garbage then, before the pause: now only the freeze, no collection
            freeze_startup_heap(collect=not self._collected)
        return shard

    async def _serve(self, shard: RoomShard) -> None:
        """Take commands for `shard` on a new socket (new token): connections to an earlier
        incarnation's socket end, and their callers find this one."""
        old, self._server = self._server, ShardServer(shard.apply, epoch=shard.epoch)
        await self._server.start(self._config.listen_host or _node_address())
        self._shard = shard
        if old is not None:
            await old.close()

    async def _on_owner(self, method: str, *args: object) -> Any:
        """Ask the actor this one forwards to. One that is gone for good (killed after it handed
        the shard on, or lost) is forgotten, and the lease says again who owns the shard."""
        for _ in range(3):
            owner = await self._owner()
            if isinstance(owner, RoomShard):
                return await getattr(self, method)(*args)
            try:
                actor = ray.get_actor(owner.name, namespace=self._config.namespace)
                return await getattr(actor, method).remote(*args)
            except (ValueError, ray.exceptions.ActorDiedError):
                if self._forward == owner:
                    self._forward = None
        raise ShardUnavailable(f"shard {self._config.shard_id}: its owner keeps changing")

    @ray.method
    async def follow(self) -> str:
        """Read the lease again to find the owner (after a move); return its name."""
        self._forward = None  # a shard of its own that is not serving is started again, unless owned elsewhere
        owner = await self._owner()
        return self._config.name if isinstance(owner, RoomShard) else owner.name

    # @ray.method changes nothing at run time; it types the methods' `.remote()` on a handle.

    @ray.method
    async def ready(self) -> int:
        owner = await self._owner()
        if isinstance(owner, RoomShard):
            return owner.epoch
        epoch: int = await self._on_owner("ready")
        return epoch

    @ray.method
    async def endpoint(self) -> bytes:
        """Where the shard's owner takes commands directly now (see shard_wire)."""
        owner = await self._owner()
        if isinstance(owner, _Forward):
            endpoint: bytes = await self._on_owner("endpoint")
            return endpoint
        if self._server is None or self._server.endpoint is None:
            raise ShardUnavailable("this shard's socket is not listening")
        return _encoder.encode(self._server.endpoint)

    @ray.method
    async def owner_name(self) -> str:
        """The name of the actor that owns the shard now: this one, or the one it forwards to."""
        owner = await self._owner()
        if isinstance(owner, _Forward) and not _actor_exists(owner.name, self._config.namespace):
            # gone for good (e.g. pinned to a node that was lost): the lease says again who owns it
            self._forward = None
            owner = await self._owner()
        return self._config.name if isinstance(owner, RoomShard) else owner.name

    @ray.method
    async def apply(self, payload: bytes, ring_version: int | None) -> bytes:
        owner = await self._owner()
        if isinstance(owner, _Forward):
            answer: bytes = await self._on_owner("apply", payload, ring_version)
            return answer
        return _encoder.encode(await owner.apply(command_batch.decode(payload), None, ring_version))

    @ray.method
    async def ring(self) -> tuple[int, int]:
        """(version, shard count) of the deployment's ring, as the store records it now."""
        ring = await self._ring()
        return ring.version, ring.shard_count

    @ray.method
    async def reshard_begin(self) -> None:
        """The first step of a resize: stop taking commands, commit what is queued, and hold every
        call (they wait) until reshard_end."""
        if self._forward is not None:
            await self._on_owner("reshard_begin")
            return
        if self._handing_over is not None:
            return
        self._handing_over = asyncio.get_running_loop().create_future()
        if self._shard is not None:
            await self._shard.stop()
            # Until reshard_end no one writes this shard's rooms, so what it holds in memory is
            # the store's: the restart keeps it and reads only the rooms it gains
            self._resume = self._shard

    @ray.method
    async def reshard_end(self) -> int:
        """The last step of a resize: serve again, by the ring the store records now; return the new
        epoch, or 0 for a shard that is no longer in the ring (it serves no more)."""
        if self._forward is not None and self._handing_over is None:
            epoch: int = await self._on_owner("reshard_end")
            return epoch
        held, self._handing_over = self._handing_over, None
        if held is not None and not held.done():
            held.set_result(None)
        try:
            owner = await self._owner()
        except RingChanged:
            return 0
        if isinstance(owner, RoomShard):
            return owner.epoch
        forwarded: int = await self._on_owner("ready")
        return forwarded

    @ray.method
    async def status(self) -> bytes:
        owner = await self._owner()
        if isinstance(owner, _Forward):
            answer: bytes = await self._on_owner("status")
            return answer
        return _encoder.encode(owner.status())

    @ray.method
    async def status_if_started(self) -> bytes | None:
        """The shard's status, or None while this incarnation has not started it. Never starts
        it: a start takes a new epoch, which fences whoever owns the shard now."""
        if self._forward is not None:
            actor = ray.get_actor(self._forward.name, namespace=self._config.namespace)
            answer: bytes | None = await actor.status_if_started.remote()
            return answer
        return None if self._shard is None else _encoder.encode(self._shard.status())

    @ray.method
    async def pid(self) -> int:
        return os.getpid()

    @ray.method
    async def config(self) -> bytes:
        return _encoder.encode(self._config)

    @ray.method
    async def node_id(self) -> str:
        return _node_id()

    @ray.method
    async def gc_report(self) -> tuple[int, list[tuple[int, float]]]:
        """(objects frozen, collection pauses since the last report: (generation, seconds))."""
        await self._ready_shard()
        return gc.get_freeze_count(), self._gc_pauses.take()

    @ray.method
    async def prepare(self) -> str:
        """Get ready to take the shard over (process up, store open), taking nothing yet."""
        await self._open_store()
        if self._config.freeze_heap and not self._collected:
            self._collected = True
            gc.collect()  # start-up's garbage, while no command waits on this process
        return _node_id()

    @ray.method
    async def take_over(self) -> int:
        """Own the shard now (a new epoch, the nights loaded from the store); return the epoch."""
        if self._handing_over is not None:
            await asyncio.shield(self._handing_over)
        self._forward = None
        if self._shard is not None and self._shard.state == "serving":
            return self._shard.epoch
        self._starting = asyncio.get_running_loop().create_task(self._take_over())
        owner = await asyncio.shield(self._starting)
        if not isinstance(owner, RoomShard):
            raise ShardUnavailable(f"shard {self._config.shard_id}: take-over found {owner}")
        return owner.epoch

    async def _take_over(self) -> RoomShard | _Forward:
        return await self._own(await self._open_store(), await self._ring())

    @ray.method
    async def hand_over(self, to_name: str) -> float:
        """Hand the shard to the (prepared) actor `to_name`: stop taking commands, finish and
        commit the queued ones, let it take over, then forward to it. Calls that arrive meanwhile
        are answered shard_moved, and their callers resend them to the new owner. If the take-over
        fails, this actor serves again. Returns the pause: seconds during which no one served."""
        shard = await self._ready_shard()
        loop = asyncio.get_running_loop()
        self._handing_over = loop.create_future()
        started = loop.time()
        try:
            await shard.stop()
            successor = ray.get_actor(to_name, namespace=self._config.namespace)
            try:
                await successor.take_over.remote()
            except Exception:
                log.exception("shard %d: %s did not take over; serving it again", self._config.shard_id, to_name)
                self._starting = loop.create_task(self._take_over())
                await asyncio.shield(self._starting)
                raise
            self._forward = _Forward(to_name)
            return loop.time() - started
        finally:
            self._handing_over.set_result(None)
            self._handing_over = None

    @ray.method
    async def drain(self) -> None:
        """Answer what is queued, persist it, stop serving for good (the actor stays until killed)."""
        if self._forward is not None:
            await self._on_owner("drain")
        self._drained = True
        if self._shard is not None:
            await self._shard.stop()


@contextlib.contextmanager
def _causes_raised() -> Iterator[None]:
    """A refusal an actor raised (ShardOwnedElsewhere, ShardUnavailable...) as itself, not as the
    RayTaskError around it, whose message is a remote traceback."""
    try:
        yield
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, RoombookError):
            raise exc.cause from None
        raise


def _actor_exists(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:  # Ray's answer for a name no live actor holds
        return False
    return True


def _node_id() -> str:
    return str(ray.get_runtime_context().get_node_id())


_RemoteShard = ray.remote(RoomShardActor)
# What creating or finding an actor answers: Ray types it as the handle or the class, so that a
# method's `.remote()` is typed by the class.
_ShardActor = ray.actor.ActorProxy[RoomShardActor]


def create_actor(config: ShardActorConfig, *, get_if_exists: bool = False, node_id: str | None = None) -> _ShardActor:
    """A shard actor named config.name (found if it exists and get_if_exists), on `node_id` if
    given, else where Ray's SPREAD strategy puts it. Ray restarts it wherever it dies."""
    strategy: str | NodeAffinitySchedulingStrategy = "SPREAD"
    if node_id is not None:
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    placement = config.placement
    return _RemoteShard.options(
        name=config.name,
        namespace=config.namespace,
        get_if_exists=get_if_exists,
        lifetime="detached" if config.detached else None,
        max_restarts=-1,
        max_task_retries=-1,
        num_cpus=placement.num_cpus,
        memory=placement.memory_mb * 2**20 or None,
        scheduling_strategy=strategy,
    ).remote(_encoder.encode(config))


class _Node(TypedDict):
    """The fields of a ray.nodes() entry read here."""

    NodeID: str
    NodeManagerAddress: str
    Alive: bool


def _nodes() -> list[_Node]:
    nodes: list[_Node] = ray.nodes()  # unannotated in Ray
    return nodes


def _node_address() -> str:
    """The address Ray registered for the node this process runs on (its NodeManagerAddress)."""
    node_id = ray.get_runtime_context().get_node_id()
    return next(node["NodeManagerAddress"] for node in _nodes() if node["NodeID"] == node_id)


def _cluster_on_this_machine() -> bool:
    """Whether every live node of the connected cluster has this process's node address."""
    here: str = ray.util.get_node_ip_address()  # unannotated in Ray
    return all(node["NodeManagerAddress"] == here for node in _nodes() if node["Alive"])


class LocalRayOptions(TypedDict, total=False):
    """ray.init's sizing of a local cluster (benchmarks set it)."""

    num_cpus: int
    object_store_memory: int
    _temp_dir: str


def init_ray(
    address: str | None = None,
    *,
    namespace: str = "roombook",
    runtime_env: dict[str, object] | None = None,
    **local: Unpack[LocalRayOptions],
) -> None:
    """Connect to a cluster at `address`, or start a local one when there is none. runtime_env: the
    environment Ray prepares for the actors this process creates (e.g. roombook installed by pip on
    nodes that lack it)."""
    if ray.is_initialized():
        return
    ray.init(
        address or "local",
        namespace=namespace,
        runtime_env=runtime_env,
        logging_level=logging.WARNING,
        log_to_driver=False,
        # A local cluster: Ray's own ports bind every interface, guarded by its token authentication
        # (on by default: keep it on); the shard actors' sockets listen on loopback (RayShards).
        include_dashboard=None if address else False,
        **local,
    )


def deployment_id(namespace: str) -> str:
    """Who a connected process's shards belong to: its cluster (the GCS address) and namespace.
    Every front and actor of one deployment agrees on it; a second deployment differs."""
    return f"ray:{cluster_address()}/{namespace}"


def entry_name(name_prefix: str, shard_id: int) -> str:
    """The name fronts find shard `shard_id` by (its entry actor)."""
    return f"{name_prefix}-{shard_id}"


def join_cluster(address: str, *, namespace: str = "roombook") -> None:
    """Connect to the running cluster at `address` (never start one). One that cannot be joined is
    ShardUnavailable, saying so in one line; with token authentication off in this process, that
    is the likely cause (`ray start --head` turns it on, a client given an address does not)."""
    try:
        init_ray(address, namespace=namespace)
    except ConnectionError as exc:
        hint = ""
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            hint = " (RAY_AUTH_MODE is not 'token' here: a cluster with token authentication refuses this process)"
        raise ShardUnavailable(f"{exc}{hint}") from exc


def cluster_address() -> str:
    """The address other processes join the connected cluster at (its GCS)."""
    return str(ray.get_runtime_context().gcs_address)


def shutdown_ray() -> None:
    """Leave the cluster; a cluster this process started ends with it."""
    ray.shutdown()


class RayShards:
    """A ShardTransport over the named shard actors (created if missing). Commands go over each
    actor's direct endpoint (direct=True) or as Ray calls; everything else is a Ray call.
    Actors that are not detached, on a cluster all on this machine, listen on loopback only."""

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
        direct: bool = True,
        freeze_heap: bool = True,
        lease_s: float = 0.0,
        placement: ShardPlacement | None = None,
    ) -> None:
        self._ring = ring
        self._namespace = namespace
        self._name_prefix = self.name_prefix = name_prefix
        self.store_dsn = store_dsn
        self._detached = detached
        self._call_timeout_s = call_timeout_s
        self._direct = direct
        # One call per shard at once, the rest coalesce into the next: a call costs about the same
        # whatever it carries
        self.calls_in_flight = 1
        self.deployment = deployment_id(namespace)
        listen_host = LOOPBACK if not detached and _cluster_on_this_machine() else None
        self._config = ShardActorConfig(
            store_dsn=store_dsn,
            shard_id=0,
            shard_count=ring.shard_count,
            group_commit=group_commit or GroupCommit(),
            freeze_heap=freeze_heap,
            listen_host=listen_host,
            deployment=self.deployment,
            namespace=namespace,
            lease_s=lease_s,
            detached=detached,
            placement=placement or ShardPlacement(),
        )
        self._created: list[_ShardActor] = []
        self._actors = [self._actor(shard_id) for shard_id in range(ring.shard_count)]
        self._connections: dict[int, ShardConnection] = {}
        self._opening: dict[int, asyncio.Task[ShardConnection]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def actor_config(self, shard_id: int, name: str) -> ShardActorConfig:
        return msgspec.structs.replace(self._config, shard_id=shard_id, name=name)

    def _actor(self, shard_id: int) -> _ShardActor:
        actor = create_actor(self.actor_config(shard_id, entry_name(self._name_prefix, shard_id)), get_if_exists=True)
        # An actor that is not detached lives only while the process that created it holds a handle
        # to it: this one may have, and a handle found again by name (see _call) must not drop it
        self._created.append(actor)
        return actor

    async def start(self) -> list[int]:
        """Wait until every shard owns its rooms; return their epochs."""
        with _causes_raised():
            return list(await asyncio.gather(*(actor.ready.remote() for actor in self._actors)))

    async def apply(
        self,
        shard_id: int,
        commands: list[Command],
        early: EarlyReplies | None = None,
        ring_version: int | None = None,
    ) -> list[Reply]:
        """The shard's replies to `commands`. On the direct path, `early` hears of refusals sent
        ahead of the answer, and a lost connection (the actor restarting) is found again and the
        unanswered commands resent; over Ray calls every reply comes with the answer."""
        if not self._direct:
            payload = _encoder.encode(commands)
            answer = await self._call(shard_id, lambda actor: actor.apply.remote(payload, ring_version))
            return reply_batch.decode(answer)

        async def stale(connection: ShardConnection) -> bool:
            try:
                return (await self.endpoint(shard_id)) != connection.endpoint
            except RingChanged:  # the shard left the ring: the connection leads nowhere now
                return True

        return await call_until_answered(
            lambda: self._connection(shard_id),
            commands,
            early,
            timeout_s=self._call_timeout_s,
            ring_version=ring_version,
            stale=stale,
        )

    async def current_ring(self) -> ShardRing:
        """The ring the store records now, as shard 0's actor reads it."""
        with _causes_raised():
            version, shard_count = await self._actors[0].ring.remote()
        return ShardRing(shard_count, version=version)

    @property
    def ring(self) -> ShardRing:
        return self._ring

    def use_ring(self, ring: ShardRing) -> None:
        """Reach the shards of `ring`: entry actors found (or made) for new shard ids, those of
        removed ones let go."""
        old = self._ring.shard_count
        self._ring = ring
        if ring.shard_count > old:
            self._actors += [self._actor(shard_id) for shard_id in range(old, ring.shard_count)]
        else:
            del self._actors[ring.shard_count :]
            for shard_id in range(ring.shard_count, old):
                connection = self._connections.pop(shard_id, None)
                if connection is not None and connection.loop is asyncio.get_running_loop():
                    closing = asyncio.get_running_loop().create_task(connection.close())
                    self._closing.add(closing)  # referenced until done: the loop holds tasks weakly
                    closing.add_done_callback(self._closing.discard)

    async def endpoint(self, shard_id: int) -> ShardEndpoint:
        """Where shard_id's actor takes commands directly now, and the token it wants first."""
        return _endpoint_decoder.decode(await self._call(shard_id, lambda actor: actor.endpoint.remote()))

    async def _connection(self, shard_id: int) -> ShardConnection:
        if shard_id >= len(self._actors):  # a lane of an older, larger ring
            raise RingChanged(f"shard {shard_id} is not in the ring of {len(self._actors)} shards")
        loop = asyncio.get_running_loop()
        connection = self._connections.get(shard_id)
        if connection is not None and connection.usable and connection.loop is loop:
            return connection
        # One opening at a time per shard: the lanes of an old ring and a new one can ask at once,
        # and a second opening would close the first one's connection under its calls
        opening = self._opening.get(shard_id)
        if opening is None or opening.done() or opening.get_loop() is not loop:
            opening = self._opening[shard_id] = loop.create_task(self._open(shard_id))
        return await asyncio.shield(opening)

    async def _open(self, shard_id: int) -> ShardConnection:
        connection = await ShardConnection.open(await self.endpoint(shard_id))
        replaced = self._connections.get(shard_id)
        self._connections[shard_id] = connection
        if replaced is not None and replaced.loop is connection.loop:
            await replaced.close()
        return connection

    async def _call(self, shard_id: int, call: Callable[[_ShardActor], ray.ObjectRef[bytes]]) -> bytes:
        """A Ray call to a shard's actor, retried while it restarts (every method is idempotent)."""
        deadline = time.monotonic() + self._call_timeout_s
        while True:
            if shard_id >= len(self._actors):  # a lane of an older, larger ring
                raise RingChanged(f"shard {shard_id} is not in the ring of {len(self._actors)} shards")
            try:
                with _causes_raised():
                    attempt_s = max(0.1, min(CALL_ATTEMPT_S, deadline - time.monotonic()))
                    return await asyncio.wait_for(call(self._actors[shard_id]), attempt_s)
            except TimeoutError:
                # A handle whose actor was restarted after its node was lost can go on retrying the
                # call on the gone incarnation for good; a handle found by name again reaches the new one
                if time.monotonic() > deadline:
                    raise
                found = _find(entry_name(self._name_prefix, shard_id), self._namespace)
                if found is not None:
                    self._actors[shard_id] = found
            except ray.exceptions.ActorDiedError:
                # gone for good (killed with no_restart, node lost): make or find a new one by name,
                # unless a resize retired the shard (its actors are ended then)
                if time.monotonic() > deadline:
                    raise
                if shard_id > 0 and shard_id >= (await self.current_ring()).shard_count:
                    raise RingChanged(f"shard {shard_id} was retired by a resize") from None
                self._actors[shard_id] = self._actor(shard_id)
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def statuses(self) -> list[ShardStatus]:
        raw = await asyncio.gather(*(actor.status.remote() for actor in self._actors))
        return [_status_decoder.decode(r) for r in raw]

    async def actor_pid(self, shard_id: int) -> int:
        return await self._actors[shard_id].pid.remote()

    async def gc_reports(self) -> list[tuple[int, list[tuple[int, float]]]]:
        """Per shard: objects frozen in its actor, and its collection pauses since the last call."""
        return list(await asyncio.gather(*(actor.gc_report.remote() for actor in self._actors)))

    def kill(self, shard_id: int, *, restart: bool = True) -> None:
        """Kill a shard's actor process, as a crash would (Ray restarts it when restart is True)."""
        ray.kill(_handle(self._actors[shard_id]), no_restart=not restart)

    async def drain(self) -> None:
        """Let every shard finish and persist its queued commands, then stop serving."""
        await asyncio.gather(*(actor.drain.remote() for actor in self._actors))

    async def close(self) -> None:
        """Close this process's direct connections (the actors go on)."""
        loop = asyncio.get_running_loop()
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            if connection.loop is loop:
                await connection.close()

    def stop(self) -> None:
        for actor in self._actors:
            ray.kill(_handle(actor), no_restart=True)


def _handle(actor: _ShardActor) -> ray.actor.ActorHandle[RoomShardActor]:
    """The handle an actor is at run time (ray.kill wants one)."""
    if not isinstance(actor, ray.actor.ActorHandle):
        raise TypeError(f"not an actor handle: {actor!r}")
    return actor


class FoundShard(msgspec.Struct, frozen=True, kw_only=True):
    """What a look-up by name found of one shard's actor: its status, or why there is none."""

    shard_id: int
    status: ShardStatus | None = None
    missing: str | None = None  # set exactly when status is None: "no actor", "not started", ...


async def find_shard_statuses(
    shard_ids: Iterable[int], *, namespace: str, name_prefix: str = "roombook-shard", timeout_s: float = 10.0
) -> list[FoundShard]:
    """Each shard's actor on the connected cluster, looked up by name only, and its status.

    Creates no actor and starts no shard, so no epoch is taken: a shard with no actor, or whose
    actor has not started it (e.g. just restarted by Ray), is reported, not brought up."""

    async def find(shard_id: int) -> FoundShard:
        try:
            actor: _ShardActor = ray.get_actor(f"{name_prefix}-{shard_id}", namespace=namespace)
        except ValueError:  # Ray's answer for a name no live actor holds
            return FoundShard(shard_id=shard_id, missing="no actor")
        try:
            raw = await asyncio.wait_for(actor.status_if_started.remote(), timeout_s)
        except TimeoutError:  # e.g. restarting on a node that is gone: Ray retries the call meanwhile
            return FoundShard(shard_id=shard_id, missing=f"no answer within {timeout_s:g} s")
        except ray.exceptions.RayActorError as exc:
            return FoundShard(shard_id=shard_id, missing=f"unavailable ({type(exc).__name__})")
        if raw is None:
            return FoundShard(shard_id=shard_id, missing="not started")
        return FoundShard(shard_id=shard_id, status=_status_decoder.decode(raw))

    return list(await asyncio.gather(*(find(shard_id) for shard_id in shard_ids)))


# -- operations on a running deployment's shards (roombook shards move | rebalance | stop) ------------


class MoveReport(msgspec.Struct, frozen=True, kw_only=True):
    shard_id: int
    from_actor: str
    to_actor: str
    from_node: str
    to_node: str
    epoch: int  # the new owner's
    pause_s: float  # from the old owner's last command to the new owner serving
    took_s: float  # the whole move, the new actor's start included


# The handles of the actors this process moved shards to, while they are not detached.
_MOVED_TO: dict[str, _ShardActor] = {}


def _get_actor(name: str, namespace: str) -> _ShardActor:
    try:
        actor: _ShardActor = ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise ShardUnavailable(f"no actor {name} in namespace {namespace}: is the deployment running?") from None
    return actor


async def move_shard(
    shard_id: int, *, namespace: str, name_prefix: str = "roombook-shard", to_node: str | None = None
) -> MoveReport:
    """Hand shard `shard_id` over, while it serves, to a new actor on `to_node` (a Ray node id; None:
    where Ray's SPREAD strategy puts it). The new actor starts and opens its store first, so the
    pause is only the old owner's last commit, the new epoch and the load of the shard's nights;
    commands sent meanwhile are answered by the new owner. A move that fails leaves the old owner
    serving. The entry actor stays (it forwards); an earlier moved-to actor is stopped."""
    started = time.monotonic()
    entry = entry_name(name_prefix, shard_id)
    with _causes_raised():
        current_name = await _get_actor(entry, namespace).owner_name.remote()
        current = _get_actor(current_name, namespace)
        config = msgspec.msgpack.decode(await current.config.remote(), type=ShardActorConfig)
        from_node = await current.node_id.remote()
        to_name = f"{entry}.{secrets.token_hex(4)}"
        successor = create_actor(msgspec.structs.replace(config, name=to_name), node_id=to_node)
        if not config.detached:  # an actor that is not detached lives only while someone holds its handle
            _MOVED_TO[to_name] = successor
        try:
            node = await successor.prepare.remote()
            pause_s = await current.hand_over.remote(to_name)
        except BaseException:
            ray.kill(_handle(successor), no_restart=True)
            _MOVED_TO.pop(to_name, None)
            raise
        epoch = await successor.ready.remote()
        await _get_actor(entry, namespace).follow.remote()
    if current_name != entry:
        ray.kill(_handle(current), no_restart=True)
        _MOVED_TO.pop(current_name, None)
    return MoveReport(
        shard_id=shard_id,
        from_actor=current_name,
        to_actor=to_name,
        from_node=from_node,
        to_node=node,
        epoch=epoch,
        pause_s=pause_s,
        took_s=time.monotonic() - started,
    )


def alive_nodes() -> list[str]:
    """The ids of the cluster's live nodes that can run a shard actor (they have a CPU)."""
    return sorted(node["NodeID"] for node in ray.nodes() if node["Alive"] and node.get("Resources", {}).get("CPU"))


def resolve_node(text: str) -> str:
    """The id of the live node whose id starts with `text` (at least 6 hex digits), or whose address is it."""
    nodes = [node for node in ray.nodes() if node["Alive"]]
    found = [
        node["NodeID"]
        for node in nodes
        if node["NodeManagerAddress"] == text or (len(text) >= 6 and node["NodeID"].startswith(text))
    ]
    if len(found) != 1:
        known = ", ".join(f"{node['NodeID'][:12]} ({node['NodeManagerAddress']})" for node in nodes)
        raise ShardUnavailable(f"no single live node is {text!r}: the live nodes are {known}")
    return str(found[0])


async def shard_nodes(shard_count: int, *, namespace: str, name_prefix: str = "roombook-shard") -> dict[int, str]:
    """shard id -> the node its owner runs on now."""

    async def node_of(shard_id: int) -> str:
        entry = _get_actor(entry_name(name_prefix, shard_id), namespace)
        with _causes_raised():
            owner = _get_actor(await entry.owner_name.remote(), namespace)
            return await owner.node_id.remote()

    nodes = await asyncio.gather(*(node_of(shard_id) for shard_id in range(shard_count)))
    return dict(enumerate(nodes))


def rebalance_plan(placed: dict[int, str], nodes: list[str]) -> list[tuple[int, str]]:
    """(shard, to node) moves that leave every node with floor or ceil of shards/nodes, moving as few
    shards as can be: shards on nodes that are gone or over their share go to the nodes under it."""
    if not nodes:
        return []
    share, extra = divmod(len(placed), len(nodes))
    by_node: dict[str, list[int]] = {node: [] for node in nodes}
    homeless: list[int] = []
    for shard_id, node in sorted(placed.items()):
        by_node.get(node, homeless).append(shard_id)
    # the nodes that hold the most keep the extra shards, so that fewer move
    ranked = sorted(nodes, key=lambda node: -len(by_node[node]))
    quota = {node: share + (1 if i < extra else 0) for i, node in enumerate(ranked)}
    for node in ranked:
        while len(by_node[node]) > quota[node]:
            homeless.append(by_node[node].pop())
    moves: list[tuple[int, str]] = []
    for node in ranked:
        while len(by_node[node]) < quota[node] and homeless:
            shard_id = homeless.pop(0)
            by_node[node].append(shard_id)
            moves.append((shard_id, node))
    return moves


async def stop_shards(*, namespace: str, name_prefix: str = "roombook-shard") -> list[str]:
    """Drain every shard of the deployment (answer and commit what is queued, serve no more), then
    end all its shard actors, moved-to ones included. Returns the names of the actors ended."""
    entries = [name for name in _actor_names(namespace, name_prefix) if "." not in name]
    found = [(name, actor) for name in entries if (actor := _find(name, namespace)) is not None]
    with _causes_raised():
        await asyncio.gather(*(actor.drain.remote() for _, actor in found))
    names = _actor_names(namespace, name_prefix)
    for name in names:
        actor = _find(name, namespace)
        if actor is not None:
            ray.kill(_handle(actor), no_restart=True)
        _MOVED_TO.pop(name, None)
    return names


def _find(name: str, namespace: str) -> _ShardActor | None:
    try:
        actor: _ShardActor = ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None
    return actor


def _is_shard_actor(name: str, name_prefix: str) -> bool:
    """`<prefix>-<id>` (an entry) or `<prefix>-<id>.<suffix>` (a moved-to actor)."""
    rest = name.removeprefix(f"{name_prefix}-")
    return rest != name and rest.split(".", 1)[0].isdigit()


class ResizeReport(msgspec.Struct, frozen=True, kw_only=True):
    from_ring: tuple[int, int]  # (version, shard count)
    to_ring: tuple[int, int]
    epochs: list[int]  # of the new ring's shards
    pause_s: float  # from the first shard's stop to the last one's serving again
    took_s: float
    # the pause's parts: every shard stopped and committed; the ring recorded; all serving again
    stop_s: float = 0.0
    record_s: float = 0.0
    restart_s: float = 0.0


async def resize_shards(
    shard_count: int, *, store: ShardStore, namespace: str, name_prefix: str = "roombook-shard"
) -> ResizeReport:
    """Change the deployment's shard count while it serves. The new shards' actors start first;
    then every shard stops and commits what is queued (calls wait meanwhile), the store records
    the next ring, the shards of the new ring take new epochs and load their rooms' nights by it
    (jump hash moves only the rooms that must move), and removed shard ids are retired (a new
    epoch that fences any owner left of them). Calls routed by the old ring are refused as
    ring_changed and routed again by their clients. If recording the ring fails, the shards serve
    again by the old one."""
    started = time.monotonic()
    ring = await store.ring()
    if ring is None:
        raise ShardUnavailable("the store records no ring: start the deployment first")
    if shard_count == ring.shard_count:
        # Nothing to change; but a resizer that died between the stop and the restart left the
        # shards held: they serve again (reshard_end is a no-op for a shard that serves)
        with _causes_raised():
            held = [_get_actor(entry_name(name_prefix, shard_id), namespace) for shard_id in range(ring.shard_count)]
            await asyncio.gather(*(actor.reshard_end.remote() for actor in held))
        return ResizeReport(
            from_ring=(ring.version, ring.shard_count),
            to_ring=(ring.version, ring.shard_count),
            epochs=[],
            pause_s=0.0,
            took_s=0.0,
        )
    with _causes_raised():
        old = [_get_actor(entry_name(name_prefix, shard_id), namespace) for shard_id in range(ring.shard_count)]
        base = msgspec.msgpack.decode(await old[0].config.remote(), type=ShardActorConfig)
        added = [
            create_actor(
                msgspec.structs.replace(base, shard_id=shard_id, name=entry_name(name_prefix, shard_id)),
                get_if_exists=True,
            )
            for shard_id in range(ring.shard_count, shard_count)
        ]
        if not base.detached:
            new_ids = range(ring.shard_count, shard_count)
            _MOVED_TO.update({entry_name(name_prefix, i): a for i, a in zip(new_ids, added, strict=True)})
        await asyncio.gather(*(actor.prepare.remote() for actor in added))
        paused = stopped = recorded = time.monotonic()
        ring_recorded = False
        try:
            await asyncio.gather(*(actor.reshard_begin.remote() for actor in old))
            stopped = time.monotonic()
            new_ring = await store.change_ring(ring.version, shard_count)
            retired = f"retired by ring {new_ring.version}"
            for shard_id in range(shard_count, ring.shard_count):
                await store.acquire_shard(shard_id, retired, deployment=base.deployment)
            recorded, ring_recorded = time.monotonic(), True
        finally:  # the old shards serve again, by whichever ring the store holds; the new ones start with them
            ends, ready = await asyncio.gather(
                asyncio.gather(*(actor.reshard_end.remote() for actor in old)),
                asyncio.gather(*(actor.ready.remote() for actor in added)) if ring_recorded else _no_epochs(),
            )
        epochs = [*ends[:shard_count], *ready]
        pause_s = time.monotonic() - paused
    for shard_id in range(shard_count, ring.shard_count):  # retired: end its actors, moved-to ones too
        for name in _actor_names(namespace, name_prefix, shard_id):
            actor = _find(name, namespace)
            if actor is not None:
                ray.kill(_handle(actor), no_restart=True)
            _MOVED_TO.pop(name, None)
    return ResizeReport(
        from_ring=(ring.version, ring.shard_count),
        to_ring=(new_ring.version, new_ring.shard_count),
        epochs=epochs,
        pause_s=pause_s,
        took_s=time.monotonic() - started,
        stop_s=stopped - paused,
        record_s=recorded - stopped,
        restart_s=paused + pause_s - recorded,
    )


async def _no_epochs() -> list[int]:
    return []


def _actor_names(namespace: str, name_prefix: str, shard_id: int | None = None) -> list[str]:
    """The names of the deployment's shard actors (of one shard id, if given), moved-to ones included."""
    names = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if entry["namespace"] != namespace or not _is_shard_actor(name, name_prefix):
            continue
        if shard_id is None or name.removeprefix(f"{name_prefix}-").split(".", 1)[0] == str(shard_id):
            names.append(name)
    return sorted(names)
