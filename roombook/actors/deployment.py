"""Start (or reach) the shards a Settings describes and hand out a client for them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from roombook.actors.client import AvailabilityClient, CallObserver
from roombook.actors.local_runtime import LocalShards
from roombook.config import Settings
from roombook.routing.ring import ShardRing
from roombook.storage.sql.connect import availability_store


@contextlib.asynccontextmanager
async def availability_service(
    settings: Settings, *, observer: CallObserver | None = None
) -> AsyncIterator[AvailabilityClient]:
    """On a Ray cluster (RAY_ADDRESS): create or find the named, detached shard actors, which
    outlive this client. On a local Ray or in-process: the shards are drained and stopped on exit.
    `observer` is told of every call to a shard (for metrics)."""
    ring = ShardRing(settings.shards)
    if settings.runtime == "local":
        async with availability_store(settings.dsn("global")) as store:
            shards = LocalShards(store, ring, group_commit=settings.group_commit_policy())
            await shards.start()
            try:
                yield AvailabilityClient(shards, ring, observer=observer)
            finally:
                await shards.stop()
        return
    from roombook.actors import ray_runtime  # Ray is imported only when it is used

    ray_runtime.init_ray(settings.ray_address, namespace=settings.ray_namespace)
    ray_shards = ray_runtime.RayShards(
        store_dsn=settings.dsn("global"),
        ring=ring,
        namespace=settings.ray_namespace,
        name_prefix=settings.ray_actor_prefix,
        group_commit=settings.group_commit_policy(),
        detached=settings.ray_address is not None,
        direct=settings.ray_direct,
        freeze_heap=settings.gc_freeze,
    )
    await ray_shards.start()
    try:
        yield AvailabilityClient(ray_shards, ring, observer=observer)
    finally:
        await ray_shards.close()
        if settings.ray_address is None:  # our own local Ray: the actors end with this process
            await ray_shards.drain()
            ray_shards.stop()
