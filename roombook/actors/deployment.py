"""Start (or reach) the shards a Settings describes and hand out a client for them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from roombook.actors.client import AvailabilityClient
from roombook.actors.local_runtime import LocalShards
from roombook.config import Settings
from roombook.routing.ring import ShardRing
from roombook.storage.connect import availability_store


@contextlib.asynccontextmanager
async def availability_service(settings: Settings) -> AsyncIterator[AvailabilityClient]:
    """On Ray: create or find the named shard actors (they outlive this client). Locally: run
    the shards in this process, drained and stopped on exit."""
    ring = ShardRing(settings.shards)
    if settings.runtime == "local":
        async with availability_store(settings.dsn("global")) as store:
            shards = LocalShards(store, ring, group_commit=settings.group_commit_policy())
            await shards.start()
            try:
                yield AvailabilityClient(shards, ring)
            finally:
                await shards.stop()
        return
    from roombook.actors import ray_runtime  # Ray is imported only when it is used

    ray_runtime.init_ray(settings.ray_address, namespace=settings.ray_namespace)
    ray_shards = ray_runtime.RayShards(
        store_dsn=settings.dsn("global"),
        ring=ring,
        namespace=settings.ray_namespace,
        group_commit=settings.group_commit_policy(),
        detached=settings.ray_address is not None,
    )
    await ray_shards.start()
    yield AvailabilityClient(ray_shards, ring)
