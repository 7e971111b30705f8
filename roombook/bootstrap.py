"""The composition root: the one place where Settings become adapters, runtimes and settings of services.

Everything below `bootstrap` takes what it needs as arguments (a store, a cache, a GroupCommit, ...)
and never reads Settings itself; the http app, `roombook serve`, `roombook worker` and the ops
commands all build their parts here. Every function returns its resource unopened: nothing
connects until the caller enters it with `async with`. Which SQL adapter a DSN names is decided in
`storage/sql/connect.py`, because a shard actor in another process opens its store from the DSN
alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from roombook.actors.client import AvailabilityClient, CallObserver
from roombook.actors.local_runtime import LocalShards
from roombook.actors.shard import GroupCommit
from roombook.config import Settings, env_name
from roombook.domain.accounts import Region
from roombook.domain.errors import ShardUnavailable
from roombook.routing.ring import ShardRing
from roombook.services.accounts import AuthSettings
from roombook.services.email_directory import AccountDirectory
from roombook.services.login_throttle import LoginThrottle, Throttle
from roombook.services.payments import MemoryPaymentKeys, PaymentKeys, PaymentSettings
from roombook.services.room_images import ImageLimits
from roombook.storage.cache.keys import CacheSettings
from roombook.storage.cache.memory_cache import MemoryCache
from roombook.storage.cache.redis_cache import RedisCache
from roombook.storage.cache.redis_limits import RedisLimits
from roombook.storage.cache.resilient import ResilientCache
from roombook.storage.ports import (
    AvailabilityStore,
    Cache,
    EventBus,
    MailSender,
    ObjectStore,
    RegionalStore,
    SearchIndex,
)
from roombook.storage.sql import connect

if TYPE_CHECKING:
    from roombook.actors.ray_runtime import FoundShard, MoveReport, RayShards, ResizeReport
    from roombook.events.worker import EventWorker

JWT_SECRET_FILE = "jwt-secret"


# --- stores ---------------------------------------------------------------------------------------


log = logging.getLogger(__name__)


def global_store(settings: Settings) -> AvailabilityStore:
    """Rooms and availability: the one source of truth for every region."""
    return connect.availability_store(
        settings.dsn("global"), pool_size=settings.mysql_pool_size, group_commit=settings.consumer_group_commit
    )


def regional_store(settings: Settings, region: Region) -> RegionalStore:
    """One region's users and bookings."""
    return connect.regional_store(
        settings.dsn(region.value),
        region,
        group_commit=settings.regional_group_commit,
        pool_size=settings.mysql_pool_size,
    )


def email_directory(settings: Settings) -> AccountDirectory:
    """Which region holds each email's account (keyed hashes), in the global store; its `store`
    is unopened. The key is ROOMBOOK_DIRECTORY_SECRET, else derived from the JWT secret (so every
    process of a deployment, the edge included, computes the same keys)."""
    secret = (
        settings.directory_secret.encode()
        or hmac.new(ensure_jwt_secret(settings).encode(), b"roombook email directory", hashlib.sha256).digest()
    )
    dsn = settings.dsn("directory") if settings.directory_dsn else settings.dsn("global")
    return AccountDirectory(connect.email_directory(dsn), secret)


# --- settings of the parts below ------------------------------------------------------------------


def ensure_jwt_secret(settings: Settings) -> str:
    """The configured secret, else the one kept in <data_dir>/jwt-secret, created (mode 0600) on
    first start.

    Written to a private temporary file and then hard-linked into place, so concurrent first
    starts (several workers) all end up reading the one secret that won, never a partial file.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    data_dir = Path(settings.data_dir)
    path = data_dir / JWT_SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read_secret(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{JWT_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if not secret:
        raise SystemExit(f"roombook: {path} is empty: delete it to generate a new secret")
    return secret


def auth_settings(settings: Settings) -> AuthSettings:
    """Account settings; the secret comes from ensure_jwt_secret (which may create its file)."""
    return AuthSettings(
        jwt_secret=ensure_jwt_secret(settings),
        jwt_issuer=settings.jwt_issuer,
        access_ttl_s=settings.access_ttl_s,
        access_tokens_kept=settings.access_tokens_kept,
        refresh_ttl_s=settings.refresh_ttl_s,
        login_max_failures=settings.login_max_failures,
        login_window_s=settings.login_window_s,
    )


def payment_settings(settings: Settings) -> PaymentSettings:
    return PaymentSettings(
        decline_rate=settings.payment_decline_rate, latency_s=settings.payment_latency_s, seed=settings.payment_seed
    )


def cache_settings(settings: Settings) -> CacheSettings:
    return CacheSettings(
        availability_ttl_s=settings.availability_ttl_s,
        room_details_ttl_s=settings.room_details_ttl_s,
        search_ttl_s=settings.search_ttl_s,
        redis_url=settings.redis_url if settings.cache == "redis" else None,
        key_prefix=settings.cache_key_prefix,
    )


# --- limits every process of a deployment shares --------------------------------------------------


def shared_limits(settings: Settings) -> contextlib.AbstractAsyncContextManager[RedisLimits | None]:
    """Redis for the limits every process shares with ROOMBOOK_CACHE=redis, else None (each
    process keeps its own). Connects on first use."""
    if settings.cache != "redis":
        return contextlib.nullcontext(None)
    return RedisLimits(settings.redis_url, prefix=settings.cache_key_prefix)


def login_throttle(limits: RedisLimits | None, *, max_failures: int, window_s: float) -> Throttle:
    """Failed logins counted in Redis (one limit for all processes) when there is one, else in
    this process; the process's own count stands in while Redis is down."""
    local = LoginThrottle(max_failures=max_failures, window_s=window_s)
    if limits is None:
        return local
    return limits.login_throttle(max_failures=max_failures, window_s=window_s, fallback=local)


def payment_keys(limits: RedisLimits | None, payments: PaymentSettings) -> PaymentKeys:
    """Payment idempotency keys in Redis when there is one, else in this process."""
    local = MemoryPaymentKeys(payments.remembered_keys)
    return local if limits is None else limits.payment_keys(fallback=local)


def group_commit(settings: Settings) -> GroupCommit:
    return GroupCommit(
        enabled=settings.group_commit,
        max_batch=settings.group_commit_max_batch,
        linger_s=settings.group_commit_linger_ms / 1000,
        linger_alone=settings.group_commit_linger_alone,
    )


# --- views: the cache and the search index --------------------------------------------------------


def open_cache(settings: CacheSettings) -> ResilientCache:
    """The configured cache, wrapped so that an outage reads as a miss. Connects on first use."""
    inner: Cache
    if settings.redis_url is None:
        inner = MemoryCache(max_entries=settings.memory_max_entries, max_bytes=settings.memory_max_bytes)
    else:
        inner = RedisCache(settings.redis_url, prefix=settings.key_prefix)
    return ResilientCache(inner, retry_after_s=settings.outage_retry_after_s)


def search_index(settings: Settings) -> SearchIndex:
    if settings.search == "opensearch":
        from roombook.storage.search.opensearch_search import OpenSearchSearchIndex

        return OpenSearchSearchIndex(settings.opensearch_url, alias=settings.opensearch_alias)
    from roombook.storage.search.memory_search import MemorySearchIndex

    return MemorySearchIndex()


def object_store(settings: Settings) -> ObjectStore:
    """Where room photos are kept: files under the data directory, or the S3 bucket."""
    if settings.object_store == "s3":
        from roombook.storage.objects.s3_objects import S3ObjectStore, S3Settings

        return S3ObjectStore(
            S3Settings(
                bucket=settings.s3_bucket,
                endpoint_url=settings.s3_endpoint_url or settings.aws_endpoint_url,
                region=settings.aws_region,
                public_url=settings.s3_public_url,
                presign_s=settings.s3_presign_s,
            )
        )
    from roombook.storage.objects.file_objects import FileObjectStore

    return FileObjectStore(settings.objects_directory)


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(max_bytes=settings.image_max_bytes, max_pixels=settings.image_max_pixels)


# --- events: the bus, mail, and the worker that runs the relay and the consumers ------------------


def event_bus(settings: Settings) -> EventBus:
    if settings.event_bus == "sns-sqs":
        from roombook.storage.bus.sns_sqs_bus import SnsSqsConfig, SnsSqsEventBus

        config = SnsSqsConfig(
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            prefix=settings.event_prefix,
            max_receives=settings.event_max_receives,
        )
        return SnsSqsEventBus(config)
    from roombook.storage.bus.memory_bus import MemoryEventBus

    return MemoryEventBus(max_receives=settings.event_max_receives)


def mail_sender(settings: Settings) -> MailSender:
    """SMTP when a host is configured, else .eml files under the mail directory."""
    if settings.smtp_host:
        from roombook.storage.mail.smtp_mail import SmtpConfig, SmtpMailSender

        return SmtpMailSender(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                tls=settings.smtp_tls,
            )
        )
    from roombook.storage.mail.file_mail import FileMailSender

    return FileMailSender(settings.mail_directory)


def event_worker(
    settings: Settings,
    *,
    catalogue: AvailabilityStore,
    regions: Mapping[Region, RegionalStore],
    relay: bool = True,
    consume: bool = True,
    cache: ResilientCache | None = None,
    index: SearchIndex | None = None,
) -> EventWorker:
    """The relay and the consumers over open stores. `cache` and `index` are the app's when it runs
    the worker in-process (the embedded ones live in its memory); else the worker opens its own."""
    from roombook.events.worker import EventWorker, consumers

    opens: list[contextlib.AbstractAsyncContextManager[object]] = []
    registered = []
    if consume:
        mail = mail_sender(settings)
        if cache is None:
            cache = open_cache(cache_settings(settings))
            opens.append(cache)
        if index is None:
            index = search_index(settings)
            opens.append(index)
        opens.insert(0, mail)
        registered = consumers(
            catalogue=catalogue,
            regions=regions,
            mail=mail,
            cache=cache.cache,
            index=index,
            mail_from=settings.mail_from,
        )
    return EventWorker(
        bus=event_bus(settings), catalogue=catalogue, regions=regions, relay=relay, consumers=registered, opens=opens
    )


# --- the shards -----------------------------------------------------------------------------------


def ray_shards(settings: Settings, *, ray_address: str | None = None, ring: ShardRing | None = None) -> RayShards:
    """The named shard actors of the deployment (created on start, or found if they exist).

    On a cluster of its own (no RAY_ADDRESS) the actors are the process's and end with it; on a
    shared cluster they are detached and outlive every client."""
    from roombook.actors import ray_runtime  # Ray is imported only when it is used

    ray_runtime.init_ray(
        ray_address or settings.ray_address, namespace=settings.ray_namespace, runtime_env=settings.runtime_env
    )
    return ray_runtime.RayShards(
        store_dsn=settings.dsn("global"),
        ring=ring or ShardRing(settings.shards),
        namespace=settings.ray_namespace,
        name_prefix=settings.ray_actor_prefix,
        group_commit=group_commit(settings),
        detached=settings.ray_address is not None,
        direct=settings.ray_direct,
        freeze_heap=settings.gc_freeze,
        lease_s=settings.shard_lease_s,
        placement=ray_runtime.ShardPlacement(num_cpus=settings.shard_num_cpus, memory_mb=settings.shard_memory_mb),
    )


async def live_shard_actors(settings: Settings, shard_ids: Sequence[int]) -> list[FoundShard]:
    """Join the deployment's cluster (settings.ray_address) and ask each shard's actor, found by
    name only, for its status. Creates no actor and takes no epoch; leaves the cluster after."""
    from roombook.actors import ray_runtime

    if settings.ray_address is None:
        raise ValueError("live_shard_actors needs a Ray address (it never starts a cluster)")
    ray_runtime.join_cluster(settings.ray_address, namespace=settings.ray_namespace)
    try:
        return await ray_runtime.find_shard_statuses(
            shard_ids, namespace=settings.ray_namespace, name_prefix=settings.ray_actor_prefix
        )
    finally:
        ray_runtime.shutdown_ray()


class DeploymentCluster:
    """The shard actors of a running deployment, found by name on its Ray cluster (see
    deployment_cluster): the operations `roombook shards move | rebalance | stop` run."""

    def __init__(self, settings: Settings) -> None:
        from roombook.actors import ray_runtime

        self._ray = ray_runtime
        self._settings = settings
        self._names = {"namespace": settings.ray_namespace, "name_prefix": settings.ray_actor_prefix}

    def nodes(self) -> list[str]:
        return self._ray.alive_nodes()

    def node_named(self, text: str) -> str:
        """The live node whose id starts with `text`, or whose address is `text`."""
        return self._ray.resolve_node(text)

    async def move(self, shard_id: int, node: str | None) -> MoveReport:
        return await self._ray.move_shard(shard_id, to_node=node, **self._names)

    async def shard_nodes(self) -> dict[int, str]:
        async with global_store(self._settings) as store:
            ring = await deployment_ring(self._settings, store)
        return await self._ray.shard_nodes(ring.shard_count, **self._names)

    def rebalance_plan(self, placed: dict[int, str]) -> list[tuple[int, str]]:
        return self._ray.rebalance_plan(placed, self.nodes())

    async def stop(self) -> list[str]:
        return await self._ray.stop_shards(**self._names)

    async def resize(self, shard_count: int) -> ResizeReport:
        async with global_store(self._settings) as store:
            return await self._ray.resize_shards(shard_count, store=store, **self._names)


@contextlib.asynccontextmanager
async def deployment_cluster(settings: Settings) -> AsyncIterator[DeploymentCluster]:
    """Join the deployment's Ray cluster (settings.ray_address; never start one) for an operation
    on its shards, and leave it after."""
    from roombook.actors import ray_runtime

    if settings.runtime != "ray" or settings.ray_address is None:
        raise SystemExit(
            "roombook: this operates on the shard actors of a running deployment: name its Ray cluster"
            " with --ray-address or RAY_ADDRESS (and the ray runtime)"
        )
    ray_runtime.join_cluster(settings.ray_address, namespace=settings.ray_namespace)
    try:
        yield DeploymentCluster(settings)
    finally:
        ray_runtime.shutdown_ray()


@contextlib.asynccontextmanager
async def availability_service(
    settings: Settings, *, observer: CallObserver | None = None
) -> AsyncIterator[AvailabilityClient]:
    """A client of the deployment's shards. In-process shards, and the actors of a Ray of this
    process's own, are drained and stopped on exit; a shared cluster's actors are left serving.
    `observer` is told of every call to a shard (for metrics)."""
    if settings.runtime == "local":
        async with global_store(settings) as store:
            ring = await deployment_ring(settings, store)
            shards = LocalShards(store, ring, group_commit=group_commit(settings), lease_s=settings.shard_lease_s)
            await shards.start()
            try:
                yield AvailabilityClient(shards, ring, observer=observer)
            finally:
                await shards.stop()
        return
    actors = await started_ray_shards(settings)
    ring = actors.ring
    try:
        yield AvailabilityClient(actors, ring, observer=observer)
    finally:
        await actors.close()
        if settings.ray_address is None:  # our own local Ray: the actors end with this process
            await actors.drain()
            actors.stop()


async def started_ray_shards(settings: Settings) -> RayShards:
    """The deployment's shard actors, by the ring the store records, each owning its shard."""
    async with global_store(settings) as store:
        ring = await deployment_ring(settings, store)
    shards = ray_shards(settings, ring=ring)
    await shards.start()
    return shards


async def deployment_ring(settings: Settings, store: AvailabilityStore) -> ShardRing:
    """The ring the store records (the first process to start records ROOMBOOK_SHARDS'). Once
    recorded, only `roombook shards resize` changes it: a process configured with another count
    serves by the recorded ring, and says so."""
    ring = await store.ring(default_shard_count=settings.shards)
    if ring is None:  # cannot be: the store just recorded one if it had none
        raise ShardUnavailable("the store records no ring")
    if ring.shard_count != settings.shards:
        log.warning(
            "the store's ring has %d shards (version %d): serving by it, not by %s=%d"
            " (roombook shards resize changes it)",
            ring.shard_count,
            ring.version,
            env_name("shards"),
            settings.shards,
        )
    return ring
